"""Shared test helpers: the one tolerance table and data makers."""

import numpy as np

import fastgeo

#: rtol per dtype for numba-vs-reference parity. Absolute tolerance is rtol times the
#: largest magnitude in the expected array, so components that cancel to ~0 (sums of
#: per-sample gradient terms of both signs) are judged on the array's scale.
RTOL = {np.float64: 1e-10, np.float32: 1e-4}

ACTIVATIONS = tuple(fastgeo.ACTIVATIONS)
DTYPES = (np.float64, np.float32)


def assert_close(actual, expected, dtype, rtol=None, what=""):
    rtol = RTOL[np.dtype(dtype).type] if rtol is None else rtol
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    scale = np.max(np.abs(expected)) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def assert_params_close(a, b, dtype, rtol=None, what=""):
    for l, (x, y) in enumerate(zip(a, b)):
        assert_close(x, y, dtype, rtol, f"{what} layer {l}")


def assert_gradients_close(a, b, dtype, rtol=None, what=""):
    """Layer by layer, with the absolute tolerance scaled by the largest gradient of any
    layer: a layer whose gradient vanishes (saturated tanh, ~1e-15) is judged on the
    scale of the whole gradient, not on its own rounding noise."""
    rtol = RTOL[np.dtype(dtype).type] if rtol is None else rtol
    scale = max(float(np.max(np.abs(np.asarray(y, np.float64)))) for y in b)
    for l, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64),
                                   rtol=rtol, atol=rtol * scale, err_msg=f"{what} layer {l}")


def data(n, n_features, n_outputs=1, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, n_features).astype(dtype)
    Y = (rng.rand(n, n_outputs) < 0.5).astype(dtype)
    return X, (Y[:, 0] if n_outputs == 1 else Y)


def pair(sizes, activation, dtype, seed=0, init=None):
    """The same net on both backends."""
    net = fastgeo.MLP(sizes, activation, init=init, seed=seed, dtype=np.dtype(dtype).name)
    return net, net.copy(backend="numpy")
