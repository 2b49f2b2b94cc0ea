"""Every execution path of ``fastgeo.kernels`` against the NumPy reference, on nets small
enough for a quick test:

* tiles: one partial tile, exactly one, several with a partial last one; 1 and 2 input
  features (loaded a vector at a time) and more (element by element); one output (a
  contiguous copy) and several;
* rows in order (no gather) and shuffled (gathered);
* the thread pool, in blocks of whole tiles;
* ``train``: in order, permutations, minstd shuffles, mini-batches, the non-finite restore;
* one compiled specialisation per kernel and dtype, whatever the callers pass;
* narrow nets: float32 inference in registers (``_narrow_forward``), the same outputs.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import ACTIVATIONS, DTYPES, assert_close, assert_params_close, data, pair

import fastgeo
from fastgeo import kernels
from numba import njit
from fastgeo.simd import get, put, rows_of

parity = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


def tile(dtype):
    return kernels.tile_columns((2, 8, 8, 1), dtype)  # the widest tiles (small nets)


@pytest.fixture
def tiny_tiles_parallel(monkeypatch):
    """The MLP picks the threaded paths for any call of 2+ tiles."""
    monkeypatch.setattr(fastgeo.backends, "PARALLEL_MIN_MACS", 1)
    monkeypatch.setattr(fastgeo.backends.numba, "get_num_threads", lambda: 3)


@pytest.mark.kernels
@parity
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes", [(2, 8, 8, 1), (3, 5, 7, 2), (1, 6, 1), (2, 1), (5, 4)],
                         ids=str)
def test_tile_shapes_match_reference(sizes, activation, dtype):
    fast, ref = pair(sizes, activation, dtype, seed=3)
    T = tile(dtype)
    for n in (1, 7, T, 3 * T + 5):
        X, y = data(n, sizes[0], sizes[-1], seed=n, dtype=dtype)
        assert_close(fast.forward(X), ref.forward(X), dtype, what=f"forward n={n}")
        (fW, fb), (rW, rb) = fast.gradients(X, y), ref.gradients(X, y)
        assert_params_close(fW + fb, rW + rb, dtype, what=f"gradients n={n}")
        assert_close(fast.loss(X, y), ref.loss(X, y), dtype, what=f"loss n={n}")


@pytest.mark.kernels
@parity
def test_gathered_rows_match_the_rows_taken_out(dtype):
    """loss_and_gradient over shuffled rows (the gather path) equals the same rows taken
    out first (in order: no gather), and rows 0..n-1 equal no rows given."""
    net = fastgeo.MLP((2, 6, 3, 1), "tanh", seed=1, dtype=np.dtype(dtype).name)
    n = 2 * tile(dtype) + 9
    X, Y = data(n, 2, 1, seed=4, dtype=dtype)
    Y = Y.reshape(-1, 1)
    rows = np.random.RandomState(0).permutation(n)[: n - 11]
    g1, g2, g3 = (np.empty_like(net.params) for _ in range(3))
    l1 = kernels.loss_and_gradient(net.params, net._sizes, 2, X, Y, rows, g1)
    l2 = kernels.loss_and_gradient(net.params, net._sizes, 2, X[rows].copy(), Y[rows].copy(),
                                   np.arange(len(rows)), g2)
    assert_close(l1, l2, dtype)
    assert_params_close([g1], [g2], dtype)
    l3 = kernels.loss_and_gradient(net.params, net._sizes, 2, X, Y, np.arange(n), g3)
    assert l3 == kernels.loss(net.params, net._sizes, 2, X, Y)
    # rows None (what MLP passes): all of X in order, the gather skipped, the same bits
    g4 = np.empty_like(net.params)
    assert kernels.loss_and_gradient(net.params, net._sizes, 2, X, Y, None, g4) == l3
    np.testing.assert_array_equal(g4, g3)
    p1, p2 = (np.empty((3, net.params.size), dtype) for _ in range(2))
    g5, g6 = np.empty_like(g4), np.empty_like(g4)
    l5 = kernels.loss_and_gradient_parallel(net.params, net._sizes, 2, X, Y, None, g5, p1)
    l6 = kernels.loss_and_gradient_parallel(net.params, net._sizes, 2, X, Y, np.arange(n),
                                            g6, p2)
    assert l5 == l6
    np.testing.assert_array_equal(g5, g6)


@parity
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_threaded_blocks_match_reference(activation, dtype, tiny_tiles_parallel):
    """3 blocks of whole tiles on the pool: forward and gradients."""
    fast, ref = pair((3, 9, 4, 2), activation, dtype, seed=1)
    n = 3 * 2 * tile(dtype) + 37
    X, y = data(n, 3, 2, seed=4, dtype=dtype)
    assert fastgeo.backends.n_chunks(n, 3 * fast.macs_per_sample) == 3
    assert_close(fast.forward(X), ref.forward(X), dtype)
    assert_params_close(fast.gradients(X, y)[0], ref.gradients(X, y)[0], dtype)
    assert_close(fast.train_step(X, y, 0.3), ref.train_step(X, y, 0.3), dtype)
    assert_params_close(fast.weights + fast.biases, ref.weights + ref.biases, dtype)


@pytest.mark.kernels
@parity
@pytest.mark.parametrize("order", ["in order", "permutations", "shuffled"])
@pytest.mark.parametrize("batch_size", [None, 50])
def test_fit_orders_match_reference(order, batch_size, dtype):
    fast, ref = pair((2, 7, 5, 1), "sigmoid", dtype, seed=2)
    n = tile(dtype) + 30
    X, y = data(n, 2, 1, seed=6, dtype=dtype)
    kw = {"batch_size": batch_size}
    if order == "permutations":
        rng = np.random.RandomState(1)
        kw["permutations"] = np.array([rng.permutation(n) for _ in range(4)])
    elif order == "shuffled":
        kw["shuffle_seed"] = 5
    assert_close(fast.fit(X, y, 4, 0.3, **kw), ref.fit(X, y, 4, 0.3, **kw), dtype)
    assert_params_close(fast.weights + fast.biases, ref.weights + ref.biases, dtype)


def test_train_restores_params_and_reports_the_epoch():
    """An lr that overflows in the second epoch: train stops there, restores the
    parameters of that epoch's start and returns the epoch."""
    n = 2 * tile(np.float64)
    X, Y = data(n, 2, 1, seed=0)
    Y = Y.reshape(-1, 1)
    results = []
    for lr in (1e-3, 1e300):
        net = fastgeo.MLP((2, 4, 1), "relu", seed=0)
        start = net.params.copy()
        history = np.full(4, -1.0)
        failed = kernels.train(net.params, net._sizes, net._act.code, X, Y, 4, lr, n, 0,
                               np.empty((0, n), np.int64), history)
        results.append((failed, history, start, net.params.copy()))
    failed, history, _, _ = results[0]
    assert failed == -1 and np.isfinite(history).all()
    failed, history, start, params = results[1]
    assert failed == 1  # epoch 0 measured its loss before the (overflowing) update
    assert np.isfinite(params).all() and not np.array_equal(params, start)
    assert history[2] == -1.0 and history[3] == -1.0  # never reached


def test_read_only_inputs_do_not_compile_another_kernel():
    """Read-only arrays are another numba type: the wrappers copy them instead."""
    net = fastgeo.MLP((2, 3, 1), "relu", seed=0)
    X, _ = data(10, 2)
    out = np.empty((10, 1))
    kernels.forward(net.params, net._sizes, 1, X, out)
    before = len(kernels.run.signatures)
    X.flags.writeable = False
    params = net.params.copy()
    params.flags.writeable = False
    kernels.forward(params, net._sizes, 1, X, out)
    assert len(kernels.run.signatures) == before
    np.testing.assert_allclose(out, net.forward(X))


ONE_SPECIALISATION = r"""
import json, sys
import numpy as np
import fastgeo
from fastgeo import kernels
name = sys.argv[1]
rng = np.random.RandomState(0)
for sizes, act in (((2, 5, 1), "relu"), ((3, 4, 2), "sigmoid")):
    net = fastgeo.MLP(sizes, act, seed=0, dtype=name)
    X = rng.randn(30, sizes[0]).astype(name)
    y = (rng.rand(30, sizes[-1]) < 0.5).astype(name)
    net.forward(X)
    net.forward_trace(X)
    net.loss(X, y)
    net.fit(X, y, 2, 0.1, batch_size=7, shuffle_seed=1)
stages = (kernels._load_rows, kernels._pack, kernels._dense_forward, kernels._forward_tile,
          kernels._narrow_forward, kernels._pack_narrow,
          kernels._backward_tile, kernels._weight_gradient, kernels._dense_backward,
          kernels._output_error)
print(json.dumps({s.__name__: [str(sig) for sig in s.signatures] for s in stages}))
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_specialisation_per_stage(dtype, tmp_path):
    """Callers pass constants (row 0, a literal flag) next to variables: each stage still
    compiles once per dtype, not once per constant (a fresh process and cache, so that
    everything compiles)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_DISABLE_JIT", None)
    proc = subprocess.run([sys.executable, "-c", ONE_SPECIALISATION, dtype], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    signatures = json.loads(proc.stdout.strip().splitlines()[-1])
    for stage, sigs in signatures.items():
        # the narrow loop and its panels are float32's only: not even compiled for float64
        float32_only = stage in ("_narrow_forward", "_pack_narrow")
        expected = 0 if dtype == "float64" and float32_only else 1
        assert len(sigs) == expected, (stage, sigs)


@pytest.mark.kernels
@parity
def test_packed_weights_follow_every_change(dtype):
    """The packed weights are reused while the parameters are unchanged bit for bit: a
    change in place, another net of the same sizes sharing the thread's buffers, a sign
    of zero, and a forward pass (forward panels only) followed by gradients (backward
    panels too) are all seen."""
    name = np.dtype(dtype).name
    a = fastgeo.MLP((2, 5, 3, 1), "tanh", seed=1, dtype=name)
    b = fastgeo.MLP((2, 5, 3, 1), "tanh", seed=2, dtype=name)
    X, y = data(40, 2, 1, seed=3, dtype=dtype)
    for _ in range(2):
        for net in (a, b, a):
            ref = net.copy(backend="numpy")
            assert_close(net.forward(X), ref.forward(X), dtype)
            (fW, fb), (rW, rb) = net.gradients(X, y), ref.gradients(X, y)
            assert_params_close(fW + fb, rW + rb, dtype)
        a.weights[1][2, 1] += dtype(0.5)  # in place, through a view
        assert_close(a.forward(X), a.copy(backend="numpy").forward(X), dtype)
    a.weights[0][:] = 0.0
    first = a.forward(X)
    a.weights[0][:] = -0.0
    np.testing.assert_array_equal(a.forward(X), first)
    assert_close(first, a.copy(backend="numpy").forward(X), dtype)


@pytest.mark.kernels
@pytest.mark.parametrize("head", ["sigmoid", "softmax", "identity"])
@pytest.mark.parametrize("sizes", [(2, 8, 8, 1), (3, 5, 7, 2), (2, 3), (4, 8, 8, 8, 6)], ids=str)
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_narrow_loop_matches_the_tile_path(sizes, activation, head):
    """float32 inference through a narrow net runs the in-register loop; forward_trace
    (always the tile path) gives the same outputs, and so does the NumPy reference."""
    if head == "softmax" and sizes[-1] == 1:
        pytest.skip("softmax needs two outputs")
    net = fastgeo.MLP(sizes, activation, seed=3, dtype="float32", head=head)
    X, _ = data(2 * tile(np.float32) + 5, sizes[0], sizes[-1], seed=4, dtype=np.float32)
    out = net.forward(X)
    assert_close(out, net.forward_trace(X)[1][-1], np.float32)
    assert_close(out, net.copy(backend="numpy").forward(X), np.float32)


def test_narrow_loop_runs_where_it_applies():
    """_narrow_path: float32 nets of <= NARROW units per layer with ReLU or sigmoid;
    not float64, not wider nets, not the other activations (their tile path)."""
    from numba import njit

    @njit
    def ran(packed, sizes, code, tile):
        return kernels._narrow_path(packed, sizes, code, kernels.SIGMOID, tile,
                                    tile.shape[1], False)

    def case(sizes, activation, dtype):
        sizes = np.asarray(sizes, np.int64)
        net = fastgeo.MLP(sizes.tolist(), activation, seed=0, dtype=np.dtype(dtype).name)
        net.forward(np.zeros((1, sizes[0]), dtype))  # packs the weights
        packed, tile_buffer = kernels.workspace(sizes, dtype)
        return ran(packed, sizes, net._backend.code, tile_buffer)

    assert case((2, 8, 8, 1), "relu", np.float32)
    assert case((2, 8, 8, 1), "sigmoid", np.float32)
    assert not case((2, 8, 8, 1), "relu", np.float64)
    assert not case((2, 8, 9, 1), "relu", np.float32)
    assert not case((2, 8, 8, 1), "tanh", np.float32)


@njit
def _write_through_rows_of(a, r, n, s):
    view = rows_of(a, r, n, s)
    view[n - 1, s - 1] = -1.0
    return view.shape[0], view.shape[1], view[0, 0], view[1, 0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rows_of_is_a_view_of_the_same_memory_in_other_rows(dtype):
    """The strip copies of wide layers live in the tile through ``rows_of``: an (n, s)
    view starting at row r, written through to the tile."""
    a = np.arange(10 * 48, dtype=dtype).reshape(10, 48)
    shape0, shape1, first, second = _write_through_rows_of(a, 3, 5, 24)
    assert (shape0, shape1) == (5, 24)
    assert (first, second) == (a[3, 0], a[3, 24])
    assert a.reshape(-1)[3 * 48 + 5 * 24 - 1] == -1.0
    assert (a < 0).sum() == 1


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_wide_layers_and_many_inputs_small(activation, dtype):
    """The strip copies of wide layers (>= PACK_MIN units, forward and backward), the
    outer-product weight gradient (float32) and the transposed loads of 8+ features,
    small enough to run as plain Python too (the DISABLE_JIT, BOUNDSCHECK and generic-CPU
    runs of `make test`)."""
    sizes = (9, kernels.PACK_MIN + 2, kernels.PACK_MIN + 1, 2)
    fast, ref = pair(sizes, activation, dtype)
    X, y = data(10, sizes[0], sizes[-1], dtype=dtype)
    assert_close(fast.forward(X), ref.forward(X), dtype)
    assert_params_close(fast.gradients(X, y)[0], ref.gradients(X, y)[0], dtype)


def test_internal_kernels_may_not_return_arrays():
    """Internal kernels compile without reference counting (``_jit.INTERNAL_OPTIONS``): one
    returning an array would hand its caller a reference it never took. Such a kernel is
    refused as it compiles, and the package's own internal kernels return none."""
    from numba import config
    from numba.core.errors import TypingError

    from fastgeo import _jit

    if config.DISABLE_JIT:
        pytest.skip("a compile-time check")

    @_jit.kernel(internal=True)
    def same(a):  # numba itself refuses any other array; this one it lets through
        return a

    @njit
    def caller(a):
        return same(a)[0]

    with pytest.raises((TypeError, TypingError), match="returns an array"):
        caller(np.zeros((2, 2)))
    assert _jit.INTERNAL_OPTIONS["_nrt"] is False


@njit
def _copy_through_get_put(a, b, start):
    for i in range(start, a.shape[0]):
        put(b, i - start, get(a, i) * 2)
    return get(b, 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_get_and_put_are_plain_element_accesses(dtype):
    """``simd.get``/``put`` (the packing's element accesses, without negative-index
    wraparound) read and write the elements a[i] would, converting the value stored."""
    a = np.arange(10, dtype=dtype)
    b = np.zeros(10, dtype=dtype)
    assert _copy_through_get_put(a, b, 3) == 6.0
    np.testing.assert_array_equal(b, np.r_[np.arange(3, 10) * 2, np.zeros(3)].astype(dtype))
