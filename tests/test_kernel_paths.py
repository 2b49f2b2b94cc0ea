"""Every execution path of ``fastgeo.kernels`` against the NumPy reference, on nets small
enough for a quick test: the thresholds that pick a path are lowered for the test.

* tiles (``_engine``) — serial, and on the thread pool in blocks of tiles;
* wide layers — NumPy matmuls (BLAS) with compiled element-wise passes;
* ``train`` — one fused engine call, or the Python epoch loop (threaded or wide
  batches), with permutations, minstd shuffles and the non-finite restore.
"""

import numpy as np
import pytest
from helpers import ACTIVATIONS, DTYPES, assert_close, assert_params_close, data, pair

import fastgeo
from fastgeo import kernels

parity = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


@pytest.fixture
def wide(monkeypatch):
    """Every net counts as wide (BLAS path) from 2 rows up."""
    monkeypatch.setattr(kernels, "WIDE_MIN_WEIGHTS", 1)
    monkeypatch.setattr(kernels, "WIDE_MIN_ROWS", 2)


@pytest.fixture
def tiny_tiles_parallel(monkeypatch):
    """The MLP picks the threaded paths for any call of 2+ tiles."""
    monkeypatch.setattr(fastgeo.mlp, "PARALLEL_MIN_MACS", 1)
    monkeypatch.setattr(fastgeo.mlp.numba, "get_num_threads", lambda: 3)


@parity
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes", [(2, 8, 8, 1), (3, 5, 7, 2), (2, 1)], ids=str)
def test_wide_path_matches_reference(sizes, activation, dtype, wide):
    fast, ref = pair(sizes, activation, dtype, seed=3)
    X, y = data(70, sizes[0], sizes[-1], seed=2, dtype=dtype)
    assert kernels._is_wide(fast._sizes, len(X))
    assert_close(fast.forward(X), ref.forward(X), dtype, what="forward")
    (fW, fb), (rW, rb) = fast.gradients(X, y), ref.gradients(X, y)
    assert_params_close(fW + fb, rW + rb, dtype, what="gradients")
    assert_close(fast.train_step(X, y, 0.2), ref.train_step(X, y, 0.2), dtype)
    kw = {"batch_size": 20, "shuffle_seed": 5}
    assert_close(fast.fit(X, y, 6, 0.2, **kw), ref.fit(X, y, 6, 0.2, **kw), dtype)
    assert_params_close(fast.weights + fast.biases, ref.weights + ref.biases, dtype)


@parity
def test_wide_parallel_kernels_use_one_blas_call(dtype, wide):
    net = fastgeo.MLP((3, 6, 2), "tanh", seed=1, dtype=np.dtype(dtype).name)
    X, Y = data(40, 3, 2, dtype=dtype)
    out1, out2 = np.empty((40, 2), dtype), np.empty((40, 2), dtype)
    kernels.forward(net.params, net._sizes, 2, X, out1)
    kernels.forward_parallel(net.params, net._sizes, 2, X, out2, 3)
    np.testing.assert_array_equal(out1, out2)
    rows = np.random.RandomState(0).permutation(40)
    g1, g2 = np.empty_like(net.params), np.empty_like(net.params)
    l1 = kernels.loss_and_gradient(net.params, net._sizes, 2, X, Y, rows, g1)
    l2 = kernels.loss_and_gradient_parallel(net.params, net._sizes, 2, X, Y, rows, g2,
                                            np.empty((3, net.params.size), dtype))
    assert l1 == l2
    np.testing.assert_array_equal(g1, g2)


@parity
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_threaded_blocks_match_reference(activation, dtype, tiny_tiles_parallel):
    """3 blocks of whole tiles on the pool: forward, gradients, and a fit whose epoch loop
    runs in Python (batches of 2+ tiles per block)."""
    fast, ref = pair((3, 9, 4, 2), activation, dtype, seed=1)
    n = 3 * 2 * kernels.TILE + 37
    X, y = data(n, 3, 2, seed=4, dtype=dtype)
    assert fastgeo.mlp._n_chunks(n, 3 * fast.macs_per_sample) == 3
    assert_close(fast.forward(X), ref.forward(X), dtype)
    assert_params_close(fast.gradients(X, y)[0], ref.gradients(X, y)[0], dtype)
    assert_close(fast.fit(X, y, 3, 0.3, shuffle_seed=2), ref.fit(X, y, 3, 0.3, shuffle_seed=2),
                 dtype)
    assert_params_close(fast.weights + fast.biases, ref.weights + ref.biases, dtype)


@pytest.mark.parametrize("path", ["fused", "threaded", "wide"])
def test_train_restores_params_and_reports_the_epoch(path, monkeypatch):
    """An lr that overflows in the second epoch: every path stops there, restores the
    parameters of that epoch's start and returns the epoch."""
    if path == "wide":
        monkeypatch.setattr(kernels, "WIDE_MIN_WEIGHTS", 1)
        monkeypatch.setattr(kernels, "WIDE_MIN_ROWS", 2)
    chunks = 2 if path == "threaded" else 1
    n = 2 * 2 * kernels.TILE
    X, Y = data(n, 2, 1, seed=0)
    Y = Y.reshape(-1, 1)
    results = []
    for lr in (1e-3, 1e300):
        net = fastgeo.MLP((2, 4, 1), "relu", seed=0)
        start = net.params.copy()
        history = np.full(4, -1.0)
        failed = kernels.train(net.params, net._sizes, net._act.code, X, Y, 4, lr, n, 0,
                               np.empty((0, n), np.int64), history, chunks)
        results.append((failed, history, start, net.params.copy()))
    failed, history, _, _ = results[0]
    assert failed == -1 and np.isfinite(history).all()
    failed, history, start, params = results[1]
    assert failed == 1  # epoch 0 measured its loss before the (overflowing) update
    assert np.isfinite(params).all() and not np.array_equal(params, start)
    assert history[2] == -1.0 and history[3] == -1.0  # never reached


def test_read_only_inputs_do_not_compile_another_engine():
    """Read-only arrays are another numba type: the wrappers copy them instead."""
    net = fastgeo.MLP((2, 3, 1), "relu", seed=0)
    X, _ = data(10, 2)
    X.flags.writeable = False
    params = net.params.copy()
    params.flags.writeable = False
    before = len(kernels._engine.signatures)
    out = np.empty((10, 1))
    kernels.forward(params, net._sizes, 1, X, out)
    assert len(kernels._engine.signatures) == before or before == 0
    np.testing.assert_allclose(out, net.forward(X))
