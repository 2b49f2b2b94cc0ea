"""The njit-callable kernel API (``fastgeo.kernels``' ``*_into`` functions, ``workspace``,
``sgd_step``), called from a user's own ``@njit`` code: the same numbers as ``MLP``."""

import numpy as np
import pytest
from helpers import DTYPES, assert_close, assert_params_close, data
from numba import njit

import fastgeo
from fastgeo import kernels


@njit
def simulate(params, sizes, code, x, steps, packed, tile):
    """A user's loop: a point moved each step by the net's output at that point."""
    out = np.empty((1, 1), x.dtype)
    path = np.empty(steps, x.dtype)
    for s in range(steps):
        status = kernels.forward_into(params, sizes, code, x, out, packed, tile)
        if status != kernels.FORWARD_OK:
            return path[:s]
        x[0, 0] += 0.1 * (out[0, 0] - 0.5)
        x[0, 1] -= 0.05 * out[0, 0]
        path[s] = out[0, 0]
    return path


@njit
def train(params, sizes, code, X, Y, steps, lr, grad, packed, tile):
    """A user's own gradient-descent loop over the njit API."""
    losses = np.empty(steps)
    rows = np.empty(0, np.int64)
    for s in range(steps):
        losses[s] = kernels.loss_gradient_into(params, sizes, code, X, Y, rows, grad, packed,
                                               tile, True)
        kernels.sgd_step(params, grad, lr)
    return losses


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_forward_into_in_a_users_njit_loop(activation, dtype):
    net = fastgeo.MLP((2, 8, 8, 1), activation, seed=3, dtype=np.dtype(dtype).name)
    x = np.array([[0.3, -0.2]], dtype)
    path = simulate(net.params, net._sizes, net._act.code, x.copy(), 50,
                    *kernels.workspace(net._sizes, dtype))
    expected, point = [], x.copy()
    for _ in range(50):
        p = net.forward(point)[0, 0]
        point[0, 0] += dtype(0.1) * (p - dtype(0.5))
        point[0, 1] -= dtype(0.05) * p
        expected.append(p)
    assert path.shape == (50,)
    assert_close(path, expected, dtype)


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_gradient_into_and_sgd_step_train_like_mlp(dtype):
    name = np.dtype(dtype).name
    user = fastgeo.MLP((2, 6, 4, 1), "tanh", seed=1, dtype=name)
    mlp = user.copy()
    X, y = data(300, 2, 1, seed=2, dtype=dtype)
    Y = y.reshape(-1, 1)
    grad = np.empty_like(user.params)
    losses = train(user.params, user._sizes, user._act.code, X, Y, 10, dtype(0.2), grad,
                   *kernels.workspace(user._sizes, dtype))
    expected = [mlp.train_step(X, y, 0.2) for _ in range(10)]
    assert_close(losses, expected, dtype)
    assert_params_close(user.weights + user.biases, mlp.weights + mlp.biases, dtype)


def test_api_version_and_layout_helpers():
    """The layout is public: params as MLP.params, the buffers from workspace."""
    assert kernels.KERNEL_API_VERSION == 6
    sizes = np.array([3, 5, 2], np.int64)
    packed, tile = kernels.workspace(sizes, np.float32)
    assert packed.dtype == tile.dtype == np.float32
    assert packed.size == kernels.packed_size([3, 5, 2])
    assert tile.shape == (kernels.tile_rows(sizes), kernels.tile_columns(sizes, np.float32))
    assert kernels.workspace(sizes, np.float32)[1] is tile  # kept per thread


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sizes", [(2, 8, 8, 1), (64, 64, 64, 10), (3, 5, 2)], ids=str)
def test_workspace_buffers_start_on_a_cache_line(sizes, dtype):
    """Whole-vector loads never straddle two cache lines (NumPy alone aligns to 16 bytes
    only): both workspace buffers start on ALIGNMENT bytes, C-contiguous and writeable;
    aligned_zeros gives zeros of the shape and dtype asked for, aligned the same way."""
    for a in kernels.workspace(np.array(sizes, np.int64), dtype):
        assert a.ctypes.data % kernels.ALIGNMENT == 0
        assert a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    for shape in ((7,), (3, 5), (1000,)):
        z = kernels.aligned_zeros(shape, dtype)
        assert z.shape == shape and z.dtype == dtype and not z.any()
        assert z.ctypes.data % kernels.ALIGNMENT == 0
