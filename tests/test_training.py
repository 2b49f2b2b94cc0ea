"""Heads, optimisers, L2 and sample weights through ``MLP``: the compiled backend against
the NumPy reference (forward, loss, gradients, fit), the reference's gradients against
finite differences, the optimiser state carried across calls, divergence, and bad input
rejected before any compiled code runs."""

import pickle

import numpy as np
import pytest

from fastgeo import MLP, optimizers, reference
from fastgeo.heads import HEADS

TOL = {"float64": 1e-10, "float32": 2e-4}
OUTPUTS = {"sigmoid": 3, "softmax": 4, "identity": 2}


def _problem(head, n=70, d=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    k = OUTPUTS[head]
    if head == "sigmoid":
        Y = (rng.rand(n, k) > 0.5).astype(float)
    elif head == "softmax":
        Y = np.eye(k)[rng.randint(0, k, n)]
    else:
        Y = rng.randn(n, k)
    return X, Y


def _nets(head, activation="tanh", dtype="float64", sizes=(3, 7, 5)):
    sizes = (*sizes, OUTPUTS[head])
    net = MLP(sizes, activation, seed=3, dtype=dtype, head=head)
    return net, net.copy(backend="numpy")


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("head", sorted(HEADS))
def test_forward_loss_gradients_match_the_reference(head, dtype):
    X, Y = _problem(head)
    fast, ref = _nets(head, dtype=dtype)
    tol = TOL[dtype]
    np.testing.assert_allclose(fast.forward(X), ref.forward(X), rtol=tol, atol=tol)
    np.testing.assert_allclose(fast.loss(X, Y), ref.loss(X, Y), rtol=tol)
    (fast_dW, fast_db), (ref_dW, ref_db) = fast.gradients(X, Y), ref.gradients(X, Y)
    for g, r in zip(fast_dW + fast_db, ref_dW + ref_db):
        np.testing.assert_allclose(g, r, rtol=tol, atol=tol * np.abs(r).max())
    _, acts = fast.forward_trace(X)
    np.testing.assert_allclose(acts[-1], ref.forward(X), rtol=tol, atol=tol)
    if head == "softmax":
        np.testing.assert_allclose(fast.forward(X).sum(axis=1), 1.0, rtol=tol)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_reference_gradients_are_the_loss_derivative(head):
    """Central differences of the reference loss, with L2 and sample weights (float64)."""
    X, Y = _problem(head, n=9)
    Ws, bs = reference.init_params((3, 4, OUTPUTS[head]), "tanh", seed=1)
    w = np.random.RandomState(2).uniform(0.3, 2.0, 9)
    dWs, dbs = reference.gradients(Ws, bs, X, Y, "tanh", head, 0.3, w)
    for p, g in zip(Ws + bs, dWs + dbs):
        numeric = np.empty_like(p)
        for idx in np.ndindex(*p.shape):
            old = p[idx]
            p[idx] = old + 1e-6
            up = reference.loss(Ws, bs, X, Y, "tanh", head, 0.3, w)
            p[idx] = old - 1e-6
            down = reference.loss(Ws, bs, X, Y, "tanh", head, 0.3, w)
            p[idx] = old
            numeric[idx] = (up - down) / 2e-6
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-9)


OPTIMISERS = {
    "plain": lambda: optimizers.SGD(0.05, momentum=0.0),
    "momentum": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=False),
    "nesterov": lambda: optimizers.SGD(0.05, momentum=0.9, schedule="invscaling"),
    "adam": lambda: optimizers.Adam(0.01),
}


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(OPTIMISERS))
@pytest.mark.parametrize("head", sorted(HEADS))
def test_fit_matches_the_reference(head, name, dtype):
    X, Y = _problem(head)
    w = np.random.RandomState(5).uniform(0.5, 2.0, X.shape[0])
    fast, ref = _nets(head, "relu", dtype)
    opt_fast, opt_ref = OPTIMISERS[name](), OPTIMISERS[name]()
    kwargs = {"batch_size": 16, "shuffle_seed": 4, "alpha": 0.01, "sample_weight": w}
    h_fast, r_fast = fast._fit(X, Y, 6, optimizer=opt_fast, **kwargs)
    h_ref, r_ref = ref._fit(X, Y, 6, optimizer=opt_ref, **kwargs)
    tol = TOL[dtype]
    np.testing.assert_allclose(h_fast, h_ref, rtol=tol)
    np.testing.assert_allclose(r_fast, r_ref, rtol=tol)
    np.testing.assert_allclose(fast.params, ref.params, rtol=tol,
                               atol=tol * np.abs(ref.params).max())
    np.testing.assert_allclose(opt_fast.state, opt_ref.state, rtol=tol * 10,
                               atol=tol * max(np.abs(opt_ref.state).max(initial=0), 1e-30))
    assert opt_fast.t == opt_ref.t and opt_fast.learning_rate == opt_ref.learning_rate


def test_plain_sgd_trajectory_unchanged():
    """Without an optimiser, fit is plain SGD: within 1e-12 of the reference (float64)."""
    X, Y = _problem("sigmoid", n=64)
    fast, ref = _nets("sigmoid", "sigmoid")
    h = fast.fit(X, Y, 30, 0.5, batch_size=16, shuffle_seed=1)
    h_ref = ref.fit(X, Y, 30, 0.5, batch_size=16, shuffle_seed=1)
    np.testing.assert_allclose(h, h_ref, rtol=1e-12)
    np.testing.assert_allclose(fast.params, ref.params, rtol=1e-12, atol=1e-14)
    net = _nets("sigmoid", "sigmoid")[0]
    net.fit(X, Y, 30, optimizer=optimizers.SGD(0.5, momentum=0.0), batch_size=16,
            shuffle_seed=1)
    np.testing.assert_array_equal(net.params, fast.params)


@pytest.mark.kernels
@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("make", [lambda: optimizers.Adam(0.02),
                                  lambda: optimizers.SGD(0.05, schedule="invscaling")])
def test_state_carries_across_calls(backend, make):
    """Six epochs in one call equal 2 + 4 epochs in two (Adam's moments and step count,
    the schedule's samples seen) bit for bit."""
    X, Y = _problem("softmax")
    one = MLP((3, 6, 4), "relu", seed=1, head="softmax", backend=backend)
    two = one.copy()
    a, b = make(), make()
    h1 = one.fit(X, Y, 6, optimizer=a, batch_size=32)
    h2 = np.concatenate([two.fit(X, Y, 2, optimizer=b, batch_size=32),
                         two.fit(X, Y, 4, optimizer=b, batch_size=32)])
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(one.params, two.params)
    np.testing.assert_array_equal(a.state, b.state)
    assert (a.t, a.learning_rate, a.samples_seen) == (b.t, b.learning_rate, b.samples_seen)


@pytest.mark.kernels
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_divergence_restores_net_and_optimiser(backend):
    X, Y = _problem("identity")
    net = MLP((3, 8, 2), "relu", seed=0, head="identity", backend=backend)
    opt = optimizers.SGD(0.01, momentum=0.9)
    net.fit(X, Y, 2, optimizer=opt)
    params, state = net.params.copy(), opt.state.copy()
    # (np.errstate: with NUMBA_DISABLE_JIT the kernels' overflow is NumPy's, and warns)
    with pytest.raises(FloatingPointError, match="epoch 0"), np.errstate(over="ignore",
                                                                          invalid="ignore"):
        net.fit(X * 1e150, Y, 3, optimizer=opt, batch_size=10)
    np.testing.assert_array_equal(net.params, params)
    np.testing.assert_array_equal(opt.state, state)


def test_optimiser_bound_to_one_net():
    X, Y = _problem("identity")
    opt = optimizers.Adam()
    MLP((3, 4, 2), head="identity").fit(X, Y, 1, optimizer=opt)
    with pytest.raises(ValueError, match="reset"):
        MLP((3, 5, 2), head="identity").fit(X, Y, 1, optimizer=opt)
    opt.reset()
    MLP((3, 5, 2), head="identity").fit(X, Y, 1, optimizer=opt)
    assert opt.t == 1  # reset, then one full-batch epoch: one step


def test_predict_and_score_per_head():
    X, Y = _problem("softmax")
    net = MLP((3, 8, 4), "relu", seed=0, head="softmax")
    net.fit(X, Y, 200, optimizer=optimizers.Adam(0.01), batch_size=16, shuffle_seed=0)
    assert net.predict(X).shape == (70,)
    assert net.score(X, Y) == np.mean(net.predict(X) == Y.argmax(axis=1))
    Xr = np.random.RandomState(1).randn(200, 3)
    yr = Xr @ np.array([1.0, -2.0, 0.5]) + 0.3
    reg = MLP((3, 16, 1), "relu", seed=0, head="identity")
    reg.fit(Xr, yr, 300, optimizer=optimizers.Adam(0.01), batch_size=32, shuffle_seed=0)
    assert reg.predict(Xr).shape == (200,)
    assert reg.score(Xr, yr) > 0.95
    again = pickle.loads(pickle.dumps(reg))
    assert again.head == "identity" and "head='identity'" in repr(again)
    np.testing.assert_array_equal(again.predict(Xr), reg.predict(Xr))


BAD_OPTIMISERS = [
    (lambda: optimizers.SGD(momentum=1.0), ValueError, "momentum"),
    (lambda: optimizers.SGD(momentum=-0.1), ValueError, "momentum"),
    (lambda: optimizers.SGD(schedule="cosine"), ValueError, "cosine"),
    (lambda: optimizers.SGD(nesterov=1), TypeError, "nesterov"),
    (lambda: optimizers.SGD(learning_rate_init=0.0), ValueError, "learning_rate_init"),
    (lambda: optimizers.Adam(beta_1=1.0), ValueError, "beta_1"),
    (lambda: optimizers.Adam(beta_2=float("nan")), ValueError, "beta_2"),
    (lambda: optimizers.Adam(epsilon=0.0), ValueError, "epsilon"),
    (lambda: optimizers.make("lbfgs", 0.1), ValueError, "lbfgs"),
]


@pytest.mark.parametrize("build,error,word", BAD_OPTIMISERS)
def test_bad_optimiser_settings(build, error, word):
    with pytest.raises(error, match=word):
        build()


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_bad_training_input(backend):
    X, Y = _problem("softmax")
    net = MLP((3, 4, 4), head="softmax", backend=backend)
    before = net.params.copy()
    cases = [
        ({"lr": 0.1, "optimizer": "adam"}, TypeError, "not both"),
        ({}, TypeError, "needs lr"),
        ({"lr": 0.1, "alpha": -1.0}, ValueError, "alpha"),
        ({"lr": 0.1, "alpha": float("nan")}, ValueError, "alpha"),
        ({"lr": 0.1, "sample_weight": -np.ones(70)}, ValueError, "sample_weight"),
        ({"lr": 0.1, "sample_weight": np.ones(69)}, ValueError, "sample_weight"),
        ({"lr": 0.1, "sample_weight": np.zeros(70)}, ValueError, "positive sum"),
        ({"optimizer": 3}, TypeError, "optimizer"),
    ]
    for kwargs, error, word in cases:
        with pytest.raises(error, match=word):
            net.fit(X, Y, 1, **kwargs)
    with pytest.raises(ValueError, match="one-hot"):
        net.fit(X, Y * 2, 1, 0.1)
    reg = MLP((3, 4, 2), head="identity", backend=backend)
    with pytest.raises(ValueError, match="finite"):
        reg.fit(X, np.full((70, 2), np.nan), 1, 0.1)
    with pytest.raises(ValueError, match="poisson"):
        MLP((3, 4, 1), head="poisson")
    with pytest.raises(ValueError, match="at least 2 outputs"):
        MLP((3, 4, 1), head="softmax")
    np.testing.assert_array_equal(net.params, before)
