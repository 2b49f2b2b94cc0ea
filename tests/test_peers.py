"""Apples to apples: every installed peer, started from fastgeo's weights and data, gives
fastgeo's forward output, one-SGD-step update and short-fit update (fastgeo.bench.peers
is what ``fastgeo bench`` and tests/bench time). A missing peer is a clean skip."""

import importlib.util

import numpy as np
import pytest

from fastgeo.bench import peers
from fastgeo.bench import workloads as wl

#: cheap enough for every run: C's step costs NumPy/sklearn a few hundred ms each
CASES = ["A-fwd-1", "A-fwd-256", "A-step-4096", "A-fit", "B-fwd-4096", "B-step-4096",
         "C-fwd-4096"]
#: torch.compile compiles ~30 s cold: one case (forward + backward graphs) is enough here
COMPILE_CASES = [("A-step-4096", "relu")]

def implementation(name):
    impl, reason = peers.ready(name, 1)
    if reason:
        pytest.skip(reason)
    return impl


def outcome_check(name, key, activation):
    impl = implementation(name)
    w = wl.WORKLOADS[key]
    if impl.skip_reason(w):
        pytest.skip(impl.skip_reason(w))
    Ws, bs, X, Y = wl.inputs(w, activation)
    result = peers.check(impl, w, activation, Ws, bs, X, Y)
    assert result["ok"], f"{name} {key} {activation}: {result}"
    return result


@pytest.mark.parametrize("activation", wl.ACTIVATIONS)
@pytest.mark.parametrize("key", CASES)
@pytest.mark.parametrize("name", [n for n in peers.IMPLEMENTATIONS if n != "torch.compile"])
def test_outcome_matches_reference(name, key, activation):
    outcome_check(name, key, activation)


@pytest.mark.parametrize("key,activation", COMPILE_CASES)
def test_torch_compile_matches_reference(key, activation):
    outcome_check("torch.compile", key, activation)


def test_step_runner_repeats_steps_and_resets():
    """run() keeps stepping (the timed loop), reset() goes back to the initial weights."""
    impl = implementation("fastgeo")
    w = wl.WORKLOADS["A-step-4096"]
    Ws, bs = wl.initial_params(w.sizes, "relu")
    X, Y = wl.data(w)
    r = impl.build(w, "relu", Ws, bs, X, Y)
    r.run()
    one = r.result()
    r.run()
    two = r.result()
    assert not np.allclose(one[0], two[0])
    r.reset()
    np.testing.assert_array_equal(r.result()[0], Ws[0])


def test_check_catches_a_wrong_gradient():
    """The check is not vacuous: a step with half the learning rate fails it."""
    impl = implementation("numpy")
    w = wl.WORKLOADS["A-step-4096"]
    Ws, bs = wl.initial_params(w.sizes, "sigmoid")
    X, Y = wl.data(w)
    r = impl.build(w, "sigmoid", Ws, bs, X, Y)
    from dataclasses import replace

    half = replace(w, lr=w.lr / 2)
    r2 = impl.build(half, "sigmoid", Ws, bs, X, Y)
    r2.run()
    want = peers.expected(w, "sigmoid", Ws, bs, X, Y)
    err, tol = peers.compare(w, r2.result(), want, list(Ws) + list(bs))
    assert err > 100 * tol
    r.run()
    err, tol = peers.compare(w, r.result(), want, list(Ws) + list(bs))
    assert err <= tol


def test_missing_peer_is_skipped_with_a_reason(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "jax" else real(name, *a))
    reason = peers.IMPLEMENTATIONS["jax"].unavailable()
    assert reason and "jax not installed" in reason and "fastgeo[peers]" in reason


def test_every_workload_has_same_weights_for_everyone():
    for w in wl.WORKLOADS.values():
        if w.phase == "article":
            continue
        Ws, bs = wl.initial_params(w.sizes, "relu")
        import fastgeo

        net = fastgeo.MLP(w.sizes, "relu", seed=0, dtype="float32")
        for a, b in zip(Ws + bs, net.weights + net.biases):
            np.testing.assert_array_equal(a, b)


def test_notebook_and_fastgeo_agree_on_the_article_protocol():
    """The article row's two sides (fastgeo.article's notebook transcription and
    fastgeo.MLP) train the same nets on the same data and orders."""
    w = wl.WORKLOADS["article"]
    assert w.samples_per_call == 2 * 300 * 800
    fastgeo, numpy = implementation("fastgeo"), implementation("numpy")
    outcomes = {}
    for name, runner in (("notebook", numpy.build(w, "both", None, None, None, None, 30)),
                         ("numba", fastgeo.build(w, "both", None, None, None, None, 30)),
                         ("reference", fastgeo.article(30, backend="numpy"))):
        runner.run()
        outcomes[name] = runner.result()
    nb, fg, ref = outcomes["notebook"], outcomes["numba"], outcomes["reference"]
    for activation in ("sigmoid", "relu"):
        assert len(fg[activation]["loss_history"]) == 30
        # the notebook puts 1e-9 inside its logs: a few 1e-9 relative in the losses
        np.testing.assert_allclose(nb[activation]["loss_history"],
                                   fg[activation]["loss_history"], rtol=1e-6)
        np.testing.assert_allclose(ref[activation]["loss_history"],
                                   fg[activation]["loss_history"], rtol=1e-10)
        assert nb[activation]["test_accuracy"] == fg[activation]["test_accuracy"]


def test_article_error_measures_against_the_articles_numbers():
    from fastgeo.article import ARTICLE

    exact = {a: {"loss_history": [9.0, ARTICLE[a]["final_loss"]],
                 "test_accuracy": ARTICLE[a]["test_accuracy"]} for a in ("sigmoid", "relu")}
    assert peers.article_error(exact) == 0
    exact["relu"]["loss_history"][-1] += 4e-5  # still 0.0353 to 4 decimals
    assert peers.article_error(exact) <= 1
    exact["sigmoid"]["test_accuracy"] = 0.80
    assert peers.article_error(exact) > 1


# --- PyTorch as a second oracle of the training maths -------------------------------
#
# Where torch's formulation is scikit-learn's: SGD with (Nesterov) momentum at a constant
# rate (torch's v <- mu v + g, p <- p - lr v is scikit-learn's v' = -lr v) and L2 as
# weight decay on the weights only (torch adds wd p to the gradient: scikit-learn's
# alpha / n). Its Adam puts epsilon elsewhere, so Adam is scikit-learn's oracle alone.


@pytest.mark.parametrize("head", ["sigmoid", "softmax", "identity"])
@pytest.mark.parametrize("nesterov", [False, True])
def test_torch_momentum_sgd_is_fastgeos(head, nesterov):
    torch = pytest.importorskip("torch")
    from fastgeo import MLP, optimizers

    rng = np.random.RandomState(0)
    n, k, batch, epochs, lr, mu, alpha = 60, 3, 15, 15, 0.05, 0.9, 0.03
    X = rng.randn(n, 4)
    Y = {"sigmoid": (rng.rand(n, k) > 0.5).astype(float),
         "softmax": np.eye(k)[rng.randint(0, k, n)], "identity": rng.randn(n, k)}[head]
    net = MLP((4, 7, k), "tanh", seed=1, head=head, backend="numba")
    W0, b0 = [W.copy() for W in net.weights], [b.copy() for b in net.biases]
    net.fit(X, Y, epochs, batch_size=batch, alpha=alpha,
            optimizer=optimizers.SGD(lr, momentum=mu, nesterov=nesterov))

    Ws = [torch.tensor(W, requires_grad=True) for W in W0]
    bs = [torch.tensor(b, requires_grad=True) for b in b0]
    opt = torch.optim.SGD([{"params": Ws, "weight_decay": alpha / batch},
                           {"params": bs, "weight_decay": 0.0}],
                          lr=lr, momentum=mu, nesterov=nesterov)
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    for _ in range(epochs):
        for s in range(0, n, batch):
            x, y = Xt[s:s + batch], Yt[s:s + batch]
            z = torch.tanh(x @ Ws[0] + bs[0]) @ Ws[1] + bs[1]
            if head == "sigmoid":
                loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
            elif head == "softmax":
                loss = torch.nn.functional.cross_entropy(z, y)
            else:
                loss = 0.5 * ((z - y) ** 2).sum() / len(y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for ours, theirs in zip(net.weights + net.biases, Ws + bs):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-9, atol=1e-12)
