"""Numba kernels against the NumPy reference: values and gradients, every activation,
float32 and float64, many shapes."""

import numpy as np
import pytest
from helpers import RTOL, assert_gradients_close, ACTIVATIONS, DTYPES, assert_close, assert_params_close, data, pair
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgeo
from fastgeo import kernels

SHAPES = [
    (2, 1),  # no hidden layer
    (2, 8, 8, 1),  # the article's net
    (3, 5, 7, 2),  # odd widths, two outputs
    (1, 3, 1),
    (2, 8, 8, 8, 8, 8, 8, 1),  # six hidden layers
    (4, 512, 1),  # wide
    (3, 130, 131, 2),  # wide layers on both sides: the strip copies, forward and backward
    (5, 17, 3),
    (11, 6, 3),  # 11 inputs: 8 x 8 blocks loaded transposed, then 3 one by one
]
BATCHES = [1, 7, 300]

parity = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
every_activation = pytest.mark.parametrize("activation", ACTIVATIONS)


@parity
@every_activation
@pytest.mark.parametrize("sizes", SHAPES, ids=str)
@pytest.mark.parametrize("n", BATCHES)
def test_forward_loss_gradients(sizes, n, activation, dtype):
    fast, ref = pair(sizes, activation, dtype, seed=n)
    X, y = data(n, sizes[0], sizes[-1], seed=1, dtype=dtype)
    assert_close(fast.forward(X), ref.forward(X), dtype, what="forward")
    assert_close(fast.loss(X, y), ref.loss(X, y), dtype, what="loss")
    fz, fa = fast.forward_trace(X)
    rz, ra = ref.forward_trace(X)
    assert_params_close(fz, rz, dtype, what="z")
    assert_params_close(fa, ra, dtype, what="a")
    (fW, fb), (rW, rb) = fast.gradients(X, y), ref.gradients(X, y)
    assert_params_close(fW, rW, dtype, what="dW")
    assert_params_close(fb, rb, dtype, what="db")
    assert all(g.dtype == dtype for g in fW + fb)


@parity
@every_activation
@pytest.mark.parametrize("sizes", [(2, 8, 8, 1), (3, 5, 7, 2), (2, 8, 8, 8, 8, 8, 8, 1)], ids=str)
def test_train_step(sizes, activation, dtype):
    fast, ref = pair(sizes, activation, dtype)
    X, y = data(64, sizes[0], sizes[-1], dtype=dtype)
    assert_close(fast.train_step(X, y, 0.3), ref.train_step(X, y, 0.3), dtype)
    assert_params_close(fast.weights + fast.biases, ref.weights + ref.biases, dtype)


@parity
@every_activation
@pytest.mark.parametrize(
    "sizes, batch_size, shuffle",
    [((2, 8, 8, 1), None, False), ((2, 8, 8, 1), 16, True), ((3, 6, 2), 7, True),
     ((2, 8, 8, 8, 1), 50, False), ((11, 6, 2), 20, True)],
    ids=str,
)
def test_fit_200_epochs(sizes, batch_size, shuffle, activation, dtype):
    fast, ref = pair(sizes, activation, dtype)
    X, y = data(100, sizes[0], sizes[-1], dtype=dtype)
    kw = dict(batch_size=batch_size, shuffle_seed=7 if shuffle else None)
    hist_fast = fast.fit(X, y, 200, 0.1, **kw)
    hist_ref = ref.fit(X, y, 200, 0.1, **kw)
    assert_close(hist_fast, hist_ref, dtype)
    assert_params_close(fast.weights + fast.biases, ref.weights + ref.biases, dtype)
    assert hist_fast[-1] < hist_fast[0]


@parity
def test_fit_with_given_permutations(dtype):
    fast, ref = pair((2, 8, 8, 1), "relu", dtype)
    X, y = data(30, 2, dtype=dtype)
    perms = np.array([np.random.RandomState(e).permutation(30) for e in range(20)])
    assert_close(fast.fit(X, y, 20, 0.1, batch_size=8, permutations=perms),
                 ref.fit(X, y, 20, 0.1, batch_size=8, permutations=perms), dtype)
    assert_params_close(fast.weights, ref.weights, dtype)


def test_epoch_loss_is_mean_of_batch_losses_before_each_update():
    net = fastgeo.MLP((2, 4, 1), "tanh", seed=3)
    X, y = data(10, 2, seed=2)
    copy = net.copy()
    hist = net.fit(X, y, 1, 0.5, batch_size=4)
    losses = [copy.train_step(X[s:s + 4], y[s:s + 4], 0.5) for s in (0, 4, 8)]
    assert hist[0] == pytest.approx(np.mean(losses), rel=1e-12)
    assert_params_close(net.params[None], copy.params[None], np.float64)


@pytest.mark.kernels
def test_minstd_permutation_matches_reference():
    state = fastgeo.reference.shuffle_state(123)
    order = np.empty(50, dtype=np.int64)
    for _ in range(3):
        expected, new_state = fastgeo.reference.permutation(50, state)
        state_kernel = kernels.minstd_permutation(order, state)
        np.testing.assert_array_equal(order, expected)
        assert state_kernel == new_state
        state = new_state
    assert sorted(order) == list(range(50))


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_kernels_small(activation, dtype):
    """Small enough to run as plain Python too (NUMBA_DISABLE_JIT=1 in `make test`)."""
    fast, ref = pair((3, 5, 4, 2), activation, dtype)
    X, y = data(9, 3, 2, dtype=dtype)
    assert_close(fast.forward(X), ref.forward(X), dtype)
    assert_params_close(fast.gradients(X, y)[0], ref.gradients(X, y)[0], dtype)
    assert_close(fast.fit(X, y, 5, 0.2, batch_size=4, shuffle_seed=1),
                 ref.fit(X, y, 5, 0.2, batch_size=4, shuffle_seed=1), dtype)


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n_chunks", [2, 3, 8])
def test_serial_and_parallel_kernels_agree(n_chunks, dtype):
    net = fastgeo.MLP((3, 16, 16, 2), "sigmoid", seed=0, dtype=np.dtype(dtype).name)
    X, Y = data(101, 3, 2, dtype=dtype)
    code = net._act.code
    serial = np.empty((101, 2), dtype=dtype)
    parallel = np.empty_like(serial)
    kernels.forward(net.params, net._sizes, code, X, serial)
    kernels.forward_parallel(net.params, net._sizes, code, X, parallel, n_chunks)
    np.testing.assert_array_equal(parallel, serial)  # same per-row arithmetic

    rows = np.arange(101)
    g_serial = np.empty_like(net.params)
    g_parallel = np.empty_like(net.params)
    partials = np.empty((n_chunks, net.params.size), dtype=dtype)
    l_serial = kernels.loss_and_gradient(net.params, net._sizes, code, X, Y, rows, g_serial)
    l_parallel = kernels.loss_and_gradient_parallel(net.params, net._sizes, code, X, Y, rows,
                                                    g_parallel, partials)
    # only the summation order differs
    assert_close(l_parallel, l_serial, dtype)
    assert_close(g_parallel, g_serial, dtype)


def test_public_paths_use_parallel_kernels_for_big_batches():
    """Above the threshold, MLP.forward/gradients go through the parallel kernels."""
    fast, ref = pair((2, 64, 64, 1), "relu", np.float64)
    X, y = data(5000, 2)
    assert fastgeo.backends.n_chunks(5000, fast.macs_per_sample) > 1 or \
        fastgeo.backends.numba.get_num_threads() == 1
    assert_close(fast.forward(X), ref.forward(X), np.float64)
    assert_params_close(fast.gradients(X, y)[0], ref.gradients(X, y)[0], np.float64)


@settings(deadline=None, max_examples=100)
@given(
    hidden=st.lists(st.integers(1, 12), min_size=0, max_size=4),
    n_in=st.integers(1, 5),
    n_out=st.integers(1, 3),
    n=st.integers(1, 40),
    activation=st.sampled_from(ACTIVATIONS),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 10.0),
)
def test_hypothesis_shapes_and_values(hidden, n_in, n_out, n, activation, dtype, seed, scale):
    sizes = (n_in, *hidden, n_out)
    fast, ref = pair(sizes, activation, dtype, seed=seed % 1000)
    X, y = data(n, n_in, n_out, seed=seed, dtype=dtype)
    X = (X * scale).astype(dtype)
    assert_close(fast.forward(X), ref.forward(X), dtype)
    assert_close(fast.loss(X, y), ref.loss(X, y), dtype)
    # relu-family kinks: a z within rounding of 0 may take either side; skip those draws
    zs = ref.forward_trace(X)[0]
    if activation in ("relu", "leaky_relu") and any(
            (np.abs(z) < 1e-5 * (1 + np.abs(z).max())).any() for z in zs[:-1]):
        return
    (fW, fb), (rW, rb) = fast.gradients(X, y), ref.gradients(X, y)
    if dtype == np.float64:
        assert_gradients_close(fW + fb, rW + rb, dtype)
        return
    # float32: sums of per-sample terms that cancel leave both float32 computations a few
    # float32 roundings of the summands away from the exact gradient. Judge the kernels
    # against the float64 reference: no further from it than twice the NumPy float32
    # reference is, plus rtol of the whole gradient's scale.
    exact = fastgeo.MLP.from_params([W.astype(np.float64) for W in fast.weights],
                                    [b.astype(np.float64) for b in fast.biases], activation,
                                    backend="numpy")
    eW, eb = exact.gradients(X.astype(np.float64), np.asarray(y, np.float64))
    scale = max(float(np.abs(g).max()) for g in eW + eb)
    for l, (f, r, e) in enumerate(zip(fW + fb, rW + rb, eW + eb)):
        err_fast = np.abs(f.astype(np.float64) - e).max()
        err_ref = np.abs(r.astype(np.float64) - e).max()
        assert err_fast <= 2 * err_ref + RTOL[np.float32] * scale, (l, err_fast, err_ref)
