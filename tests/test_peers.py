"""Apples to apples: every installed peer, started from fastgeo's weights and data, gives
fastgeo's forward output, one-SGD-step update and short-fit update (fastgeo.bench.peers
is what ``fastgeo bench`` and tests/bench time). A missing peer is a clean skip."""

import importlib.util

import numpy as np
import pytest

from fastgeo.bench import article, peers
from fastgeo.bench import workloads as wl

#: cheap enough for every run: C's step costs NumPy/sklearn a few hundred ms each
CASES = ["A-fwd-256", "A-step-4096", "A-fit", "B-fwd-4096", "B-step-4096", "C-fwd-4096"]
#: torch.compile compiles ~30 s cold: one case (forward + backward graphs) is enough here
COMPILE_CASES = [("A-step-4096", "relu")]

_ready = {}


def implementation(name):
    impl = peers.IMPLEMENTATIONS[name]
    reason = impl.unavailable()
    if reason:
        pytest.skip(reason)
    if name not in _ready:
        impl.setup(1)
        _ready[name] = impl
    return impl


def outcome_check(name, key, activation):
    impl = implementation(name)
    w = wl.WORKLOADS[key]
    if impl.skip_reason(w):
        pytest.skip(impl.skip_reason(w))
    Ws, bs = wl.initial_params(w.sizes, activation)
    X, Y = wl.data(w)
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
    data = article.protocol_data()
    assert data[0].shape == (300, 2) and data[1].shape == (100, 2)
    nb = article.run_notebook(data, epochs=30)
    fg = article.run_fastgeo(data, epochs=30)
    ref = article.run_fastgeo(data, epochs=30, backend="numpy")
    for activation in ("sigmoid", "relu"):
        # the notebook puts 1e-9 inside its logs: a few 1e-9 relative in the losses
        np.testing.assert_allclose(nb[activation][0], fg[activation][0], rtol=1e-6)
        np.testing.assert_allclose(ref[activation][0], fg[activation][0], rtol=1e-10)
        assert nb[activation][1] == fg[activation][1]


def test_legacy_draws_follow_the_seed_42_stream():
    params, perms = article.legacy_draws(300, epochs=3)
    rng = np.random.RandomState(42)
    np.testing.assert_array_equal(params["sigmoid"][0][0], rng.randn(2, 8) * np.sqrt(1 / 2))
    rng = np.random.RandomState(42)
    np.testing.assert_array_equal(params["relu"][0][0], rng.randn(2, 8) * np.sqrt(2 / 2))
    rng.randn(8, 8), rng.randn(8, 1)
    np.testing.assert_array_equal(perms[0], rng.permutation(300))
