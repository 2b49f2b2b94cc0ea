"""Determinism.

* Serial kernels: the same seeds give bitwise-identical results, call to call and
  process to process.
* Parallel kernels (``forward_parallel``, ``loss_and_gradient_parallel``, ``train`` with
  n_chunks > 1): for a fixed number of chunks the result is bitwise identical whatever
  the thread count (each chunk sums into its own buffer; the buffers are added in
  chunk order). Changing the number of chunks (which ``fastgeo.MLP`` derives from
  ``numba.get_num_threads()``) changes the summation order only, so results agree
  within PARALLEL_RTOL below, times the largest magnitude of the array compared.
  ``forward`` computes every row independently, so its parallel results are expected
  bitwise equal too, but the serial and parallel kernels are separately compiled
  (fastmath allows contraction/reassociation), so only PARALLEL_RTOL is promised.
"""

import hashlib
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import fastgeo
from fastgeo import kernels

#: Documented tolerance between parallel results at different chunk / thread counts
#: (relative to the largest magnitude in the compared array). Measured on the problems
#: below: gradients differ by <= 1.2e-16 (float64) / 6.4e-8 (float32) across chunk
#: counts, 5-epoch fits by <= 1e-16 / 1e-8; forward_parallel was bitwise equal.
PARALLEL_RTOL = {np.float64: 1e-12, np.float32: 1e-5}

DTYPES = [np.float64, np.float32]
TWO_THREADS = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                 reason="needs NUMBA_NUM_THREADS >= 2")


def assert_parallel_close(a, b, dtype):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rtol = PARALLEL_RTOL[np.dtype(dtype).type]
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)))


def problem(dtype, n=600, sizes=(3, 16, 16, 2), seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, sizes[0]).astype(dtype)
    Y = (rng.rand(n, sizes[-1]) < 0.5).astype(dtype)
    net = fastgeo.MLP(sizes, activation="tanh", seed=seed, dtype=np.dtype(dtype).name)
    return net, X, Y


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.fixture
def threads():
    """numba.set_num_threads for the test, restored afterwards."""
    before = numba.get_num_threads()
    yield numba.set_num_threads
    numba.set_num_threads(before)


def serial_fit_digest(dtype="float64"):
    """A mini-batch shuffled fit on the serial kernels; returns the digest of everything."""
    net, X, Y = problem(np.dtype(dtype).type, n=200)
    net.params[:] = fastgeo.MLP(net.sizes, "tanh", seed=3, dtype=dtype).params
    history = net.fit(X, Y, 15, 0.3, batch_size=16, shuffle_seed=7)
    return digest(net.params, history, net.forward(X))


# --- serial: bitwise ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_serial_fit_bitwise_repeatable(dtype, threads):
    threads(1)
    assert serial_fit_digest(dtype) == serial_fit_digest(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_serial_kernels_bitwise_repeatable(dtype):
    net, X, Y = problem(dtype)
    outs = []
    for _ in range(2):
        out = np.empty((len(X), 2), dtype=dtype)
        kernels.forward(net.params, net._sizes, 2, X, out)
        grad = np.empty_like(net.params)
        value = kernels.loss_and_gradient(net.params, net._sizes, 2, X, Y, np.arange(len(X)),
                                          grad)
        outs.append(digest(out, grad, np.array([value])))
    assert outs[0] == outs[1]


def test_same_seed_same_init_and_classifier():
    a = fastgeo.MLP((4, 8, 1), seed=11)
    b = fastgeo.MLP((4, 8, 1), seed=11)
    assert digest(a.params) == digest(b.params)
    assert digest(a.params) != digest(fastgeo.MLP((4, 8, 1), seed=12).params)


def test_bitwise_identical_across_processes(threads):
    """A fresh interpreter (its kernels loaded from the disk cache or compiled anew)
    reproduces this process's serial fit bit for bit."""
    threads(1)
    here = serial_fit_digest()
    code = ("import json, sys; sys.path.insert(0, 'tests'); import test_determinism as t; "
            "print(json.dumps(t.serial_fit_digest()))")
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True,
                         capture_output=True, text=True, timeout=600)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here


# --- parallel: chunk count --------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_parallel_chunk_counts(dtype):
    net, X, _ = problem(dtype)
    serial = np.empty((len(X), 2), dtype=dtype)
    kernels.forward(net.params, net._sizes, 2, X, serial)
    for n_chunks in (1, 2, 3, 7, len(X)):
        out = np.empty_like(serial)
        kernels.forward_parallel(net.params, net._sizes, 2, X, out, n_chunks)
        assert_parallel_close(out, serial, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_and_gradient_parallel_chunk_counts(dtype):
    net, X, Y = problem(dtype)
    rows = np.random.RandomState(1).permutation(len(X))
    grad = np.empty_like(net.params)
    loss = kernels.loss_and_gradient(net.params, net._sizes, 2, X, Y, rows, grad)
    for n_chunks in (1, 2, 3, 8, 64):
        pgrad = np.empty_like(grad)
        partials = np.empty((n_chunks, grad.size), dtype=dtype)
        ploss = kernels.loss_and_gradient_parallel(net.params, net._sizes, 2, X, Y, rows,
                                                   pgrad, partials)
        assert_parallel_close(ploss, loss, dtype)
        assert_parallel_close(pgrad, grad, dtype)


# --- parallel: thread count ------------------------------------------------------------


@TWO_THREADS
@pytest.mark.parametrize("dtype", DTYPES)
def test_fixed_chunks_bitwise_equal_across_thread_counts(dtype, threads):
    net, X, Y = problem(dtype)
    rows = np.arange(len(X))
    digests = []
    for t in (1, 2):
        threads(t)
        out = np.empty((len(X), 2), dtype=dtype)
        kernels.forward_parallel(net.params, net._sizes, 2, X, out, 4)
        grad = np.empty_like(net.params)
        partials = np.empty((4, grad.size), dtype=dtype)
        value = kernels.loss_and_gradient_parallel(net.params, net._sizes, 2, X, Y, rows,
                                                   grad, partials)
        digests.append(digest(out, grad, np.array([value])))
    assert digests[0] == digests[1]


@TWO_THREADS
@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_results_across_thread_counts(dtype, threads):
    """fastgeo.MLP picks its chunk count from numba.get_num_threads(): 1 thread runs the
    serial kernels, 2 threads the parallel ones (data large enough); results agree
    within PARALLEL_RTOL."""
    results = []
    for t in (1, 2):
        threads(t)
        net, X, Y = problem(dtype, n=4096)
        assert fastgeo.backends.n_chunks(len(X), 3 * net.macs_per_sample) == t
        p = net.forward(X)
        dWs, dbs = net.gradients(X, Y)
        g = np.concatenate([a.ravel() for a in dWs + dbs])
        history = net.fit(X, Y, 3, 0.3)
        results.append((p, g, history, net.params.copy()))
    for a, b in zip(*results):
        assert_parallel_close(a, b, dtype)


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_chunk_edges(dtype):
    """More chunks than rows, one row per chunk, a single chunk: block boundaries stay in
    bounds (also run with NUMBA_BOUNDSCHECK=1 and as Python in `make test`)."""
    net, X, Y = problem(dtype, n=7, sizes=(2, 3, 2))
    serial = np.empty((7, 2), dtype=dtype)
    kernels.forward(net.params, net._sizes, 2, X, serial)
    rows = np.array([6, 0, 5, 1, 4])
    grad = np.empty_like(net.params)
    loss = kernels.loss_and_gradient(net.params, net._sizes, 2, X, Y, rows, grad)
    for n_chunks in (1, 2, 5, 7, 10):
        out = np.empty_like(serial)
        kernels.forward_parallel(net.params, net._sizes, 2, X, out, n_chunks)
        assert_parallel_close(out, serial, dtype)
        pgrad = np.empty_like(grad)
        partials = np.empty((n_chunks, grad.size), dtype=dtype)
        ploss = kernels.loss_and_gradient_parallel(net.params, net._sizes, 2, X, Y, rows,
                                                   pgrad, partials)
        assert_parallel_close(ploss, loss, dtype)
        assert_parallel_close(pgrad, grad, dtype)
