"""``MLP.forward`` on the numba backend checks X, the parameters and its output for NaN/inf
inside the kernel's own pass (X and the parameters before anything is computed). Every
path that does so (a serial pass over the tiles, the thread-pool blocks) must raise the
same errors as the Python checks of the other methods."""

import numba
import numpy as np
import pytest

import fastgeo
from fastgeo import kernels
from fastgeo.errors import forward_error

pytestmark = pytest.mark.kernels

NETS = {
    "tiles": (2, 8, 8, 1),
    "wide": (3, 130, 130, 2),  # 130-unit layers: many 4-unit blocks, the last one padded
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_all_finite_finds_every_position(dtype, value):
    for n in (1, 7, 8, 15, 16, 17, 33):  # around the two-vector loop's steps and tail
        x = np.arange(n, dtype=dtype)
        assert kernels.all_finite(x)
        for i in range(n):
            y = x.copy()
            y[i] = value
            assert not kernels.all_finite(y), (n, i)


def _call(kind, net, X):
    """forward through the serial kernel, or forced through two thread-pool blocks."""
    if kind == "serial":
        return net.forward(X)
    out = np.empty((X.shape[0], net.sizes[-1]), dtype=net.dtype)
    status = kernels.forward_parallel(net.params, net._sizes, net._act.code, X, out, 2)
    error = forward_error(status, net.dtype)
    if error is not None:
        raise error
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", sorted(NETS))
@pytest.mark.parametrize("kind", ["serial", "blocks"])
def test_nan_or_inf_in_X_is_found_anywhere(dtype, shape, kind):
    sizes = NETS[shape]
    net = fastgeo.MLP(sizes, "sigmoid", seed=1, dtype=dtype)
    X = np.random.RandomState(0).randn(600, sizes[0]).astype(dtype)
    expected = _call(kind, net, X)
    np.testing.assert_array_equal(expected, net.copy(backend="numba").forward(X))
    for row, col, value in ((0, 0, np.nan), (599, sizes[0] - 1, np.inf),
                            (300, 0, -np.inf), (257, sizes[0] - 1, np.nan)):
        bad = X.copy()
        bad[row, col] = value
        with pytest.raises(ValueError, match="X contains NaN or inf"):
            _call(kind, net, bad)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", sorted(NETS))
@pytest.mark.parametrize("kind", ["serial", "blocks"])
def test_nan_in_parameters_is_found(dtype, shape, kind):
    sizes = NETS[shape]
    X = np.random.RandomState(0).randn(600, sizes[0]).astype(dtype)
    for where in (0, -1):
        net = fastgeo.MLP(sizes, "relu", seed=1, dtype=dtype)
        net.params[where] = np.inf
        with pytest.raises(ValueError, match="parameters contain NaN or inf"):
            _call(kind, net, X)
        with pytest.raises(ValueError, match="X contains NaN or inf"):  # X is checked first
            bad = X.copy()
            bad[5, 0] = np.nan
            _call(kind, net, bad)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="interpreted, the kernel's scalar "
                    "arithmetic warns as it overflows; compiled, it raises as tested here")
@pytest.mark.parametrize("shape", sorted(NETS))
@pytest.mark.parametrize("kind", ["serial", "blocks"])
def test_output_overflow_raises(shape, kind):
    sizes = NETS[shape]
    # z2 overflows to inf in float32; inf * 0 in the output layer is NaN
    weights = [np.full((sizes[0], sizes[1]), 1e30), np.full((sizes[1], sizes[2]), 1e30),
               np.zeros((sizes[2], sizes[3]))]
    biases = [np.zeros(s) for s in sizes[1:]]
    net = fastgeo.MLP.from_params(weights, biases, "relu", dtype="float32")
    with pytest.raises(FloatingPointError, match="non-finite"):
        _call(kind, net, np.ones((600, sizes[0]), dtype=np.float32))


def test_input_needing_conversion_is_still_checked_in_python():
    net = fastgeo.MLP((2, 8, 1), "relu", dtype="float32")
    with pytest.raises(ValueError, match="beyond the float32 range"):
        net.forward(np.array([[1e300, 0.0]]))  # float64: would become inf in float32
    with pytest.raises(ValueError, match="NaN or inf"):
        net.forward(np.asfortranarray(np.array([[np.nan, 0.0], [1.0, 2.0]], np.float32)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_train_step_checks_a_batch_that_needs_no_conversion(dtype):
    """``train_step`` checks such a batch (X finite, y 0/1) in one compiled pass."""
    net = fastgeo.MLP((2, 8, 1), "relu", seed=0, dtype=dtype)
    X = np.random.RandomState(0).randn(300, 2).astype(dtype)
    y = (X[:, 0] > 0).astype(dtype)
    before = net.params.copy()
    for row in (0, 299):
        bad = X.copy()
        bad[row, 1] = np.nan
        with pytest.raises(ValueError, match="X contains NaN or inf"):
            net.train_step(bad, y, 0.1)
        for label in (0.5, np.nan, 2.0):
            bad_y = y.copy()
            bad_y[row] = label
            with pytest.raises(ValueError, match="only 0 and 1"):
                net.train_step(X, bad_y, 0.1)
            with pytest.raises(ValueError, match="only 0 and 1"):
                net.train_step(X, bad_y.reshape(-1, 1), 0.1)
    np.testing.assert_array_equal(net.params, before)
    assert np.isfinite(net.train_step(X, y.reshape(-1, 1), 0.1))


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="interpreted, the kernel's scalar "
                    "arithmetic warns as it overflows; compiled, it raises as tested here")
def test_train_step_update_that_overflows_leaves_the_parameters_unchanged():
    net = fastgeo.MLP((2, 8, 1), "relu", seed=0, dtype="float32")
    X = np.random.RandomState(0).randn(64, 2).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    before = net.params.copy()
    with pytest.raises(FloatingPointError, match="parameters are unchanged"):
        net.train_step(X * np.float32(1e18), y, 1e30)  # first-layer gradients ~1e17
    np.testing.assert_array_equal(net.params, before)
    with pytest.raises(ValueError, match="lr must fit the net's float32"):
        net.train_step(X, y, 1e300)
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_direct_entry_of_small_calls_agrees_with_the_dispatched_path(dtype):
    """Small ready calls go to forward_into's machine code directly (``compiled_entry``);
    inputs it does not take (read-only, strided, float64 to a float32 net, a list) go through the
    checked path. Both give the same outputs, and NaN still raises on the direct one."""
    net = fastgeo.MLP([2, 8, 8, 1], "sigmoid", seed=3, dtype=dtype)
    X = np.random.default_rng(0).normal(size=(5, 2)).astype(dtype)
    direct = net.forward(X)
    assert net._backend._forward_entry is not None
    readonly = X.copy()
    readonly.flags.writeable = False
    strided = np.asfortranarray(X)
    for other in (readonly, strided, X.astype(np.float64), X.tolist()):
        np.testing.assert_array_equal(net.forward(other), direct)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        net.forward(bad)
