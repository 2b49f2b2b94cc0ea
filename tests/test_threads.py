"""Several Python threads using different nets at once: safe (results bit-identical to a
sequential run) and actually parallel (the compiled kernels release the GIL).

Proof of parallelism without timing the speed-up: worker threads wait at a barrier and
each record the interval of their ``fit``/``forward`` call, while the main thread runs
Python code in a loop (a timestamp every millisecond). If the intervals overlap AND the
main thread kept ticking all through the overlap, then during that window both calls
were in progress and neither held the GIL: they ran concurrently. A kernel holding the
GIL would leave a tick gap as long as itself; a control with a GIL-holding
``numba.njit`` function checks that the detector sees that.

The nets here are small enough that ``fastgeo.MLP`` picks the serial kernels (several
Python threads each launching numba's parallel kernels is fine with the omp/tbb
threading layers, but not with ``workqueue``).
"""

import threading
import time

import numba
import numpy as np
import pytest

import fastgeo

N_THREADS = 3


def run_concurrently(calls):
    """Run each call in its own thread, started together. Returns (results, intervals,
    ticks): ticks are the main thread's timestamps taken while the workers ran."""
    barrier = threading.Barrier(len(calls) + 1)
    results = [None] * len(calls)
    intervals = [None] * len(calls)
    errors = []

    def worker(i, fn):
        barrier.wait()
        start = time.perf_counter()
        try:
            results[i] = fn()
        except Exception as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)
        intervals[i] = (start, time.perf_counter())

    threads = [threading.Thread(target=worker, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    barrier.wait()
    ticks = []
    while any(t.is_alive() for t in threads):
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results, intervals, ticks


def concurrency(intervals, ticks):
    """(overlap, longest_gap): the window in which every call was in progress, and the
    longest stretch of it in which the main thread could not run Python."""
    lo = max(s for s, _ in intervals)
    hi = min(e for _, e in intervals)
    if hi <= lo:
        return 0.0, 0.0
    inside = [lo] + [t for t in ticks if lo < t < hi] + [hi]
    return hi - lo, float(np.max(np.diff(inside)))


def assert_ran_in_parallel(intervals, ticks):
    overlap, gap = concurrency(intervals, ticks)
    shortest = min(e - s for s, e in intervals)
    assert overlap > 0.5 * shortest, (
        f"calls overlapped for {overlap:.3f}s only; shortest call {shortest:.3f}s")
    assert gap < 0.5 * overlap, (
        f"the main thread was blocked for {gap:.3f}s of the {overlap:.3f}s overlap: "
        f"a kernel held the GIL")


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(400, 2)
    y = (X[:, 0] * X[:, 1] > 0).astype(float)
    return X, y


def make_nets():
    # (2, 32, 32, 1): 1120 MACs per sample; batches of 32 stay on the serial kernels
    specs = [("relu", "float64"), ("tanh", "float32"), ("sigmoid", "float64"),
             ("leaky_relu", "float32")][:N_THREADS]
    return [fastgeo.MLP((2, 32, 32, 1), activation=a, dtype=d, seed=i)
            for i, (a, d) in enumerate(specs)]


FIT = {"epochs": 150, "lr": 0.2, "batch_size": 32, "shuffle_seed": 5}


def test_fit_in_threads_is_safe_and_parallel(data):
    X, y = data
    sequential = []
    for net in make_nets():
        assert fastgeo.backends.n_chunks(FIT["batch_size"], 3 * net.macs_per_sample) == 1
        history = net.fit(X, y, **FIT)  # also warms up (compiles) every kernel used
        sequential.append((history, net.params.copy()))

    nets = make_nets()
    results, intervals, ticks = run_concurrently(
        [lambda net=net: net.fit(X, y, **FIT) for net in nets])
    for net, history, (history0, params0) in zip(nets, results, sequential):
        np.testing.assert_array_equal(history, history0)
        np.testing.assert_array_equal(net.params, params0)
    assert_ran_in_parallel(intervals, ticks)


def test_forward_in_threads_is_safe_and_parallel():
    X = np.random.RandomState(1).randn(150, 2)  # 150 x 1120 MACs: serial forward
    nets = make_nets()
    shared = nets[0]  # one net read by two threads at once, plus the others
    calls = [lambda net=net: [net.forward(X) for _ in range(800)] for net in nets + [shared]]
    expected = [net.forward(X) for net in nets + [shared]]
    assert fastgeo.backends.n_chunks(len(X), shared.macs_per_sample) == 1
    results, intervals, ticks = run_concurrently(calls)
    for outs, ref in zip(results, expected):
        for out in outs:
            np.testing.assert_array_equal(out, ref)
    assert_ran_in_parallel(intervals, ticks)


@numba.njit(nogil=False, cache=False)
def _busy_holding_gil(n):
    s = 0.0
    for i in range(n):
        s += np.sin(i * 1e-3)
    return s


def test_detector_sees_a_kernel_holding_the_gil():
    """Control: the same measurement on a numba function compiled without nogil."""
    _busy_holding_gil(10)
    n = 1
    while True:  # grow the work until one call takes ~0.2 s
        t0 = time.perf_counter()
        _busy_holding_gil(n)
        if time.perf_counter() - t0 > 0.2:
            break
        n *= 2
    _, intervals, ticks = run_concurrently([lambda: _busy_holding_gil(n)] * 2)
    with pytest.raises(AssertionError):
        assert_ran_in_parallel(intervals, ticks)
