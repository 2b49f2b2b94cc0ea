"""pytest-benchmark comparisons: thread pinning, one set-up per implementation, and a
samples/s summary per group after the benchmark tables.

Threads: FASTGEO_BENCH_THREADS (default 1) for every library, applied only when the
benchmarks actually run (not under the default --benchmark-skip). All implementations
share this one process here; ``fastgeo bench`` runs each in its own for published numbers.
"""

import os

import pytest

from fastgeo.bench import peers


def _benchmarks_skipped(config):
    return bool(config.getoption("benchmark_skip", False))


@pytest.fixture(scope="session")
def bench_threads(request):
    n = int(os.environ.get("FASTGEO_BENCH_THREADS", "1"))
    if _benchmarks_skipped(request.config):
        yield n
        return
    from fastgeo.bench import threads

    threads.pin(n)
    yield n
    threads.unpin()


_ready = {}


@pytest.fixture(scope="session")
def implementations(bench_threads, request):
    """name -> the set-up implementation (pytest.skip with the reason when absent)."""

    def get(name):
        impl = peers.IMPLEMENTATIONS[name]
        reason = impl.unavailable()
        if reason:
            pytest.skip(reason)
        if name not in _ready:
            impl.setup(bench_threads)
            if not _benchmarks_skipped(request.config):
                from fastgeo.bench import threads

                threads.pin(bench_threads)  # again: limits for the BLAS/OpenMP it loaded
            _ready[name] = impl
        return impl

    return get


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    """samples/s per group and fastgeo's ratio to NumPy and to the best peer."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not getattr(session, "benchmarks", None):
        return
    if session.disabled:
        return
    groups = {}
    for bench in session.benchmarks:
        info = bench.extra_info
        if "samples_per_call" not in info or not bench.stats:
            continue
        sps = info["samples_per_call"] / bench.stats.median
        groups.setdefault(bench.group, {})[info["impl"]] = sps
    if not groups:
        return
    tr = terminalreporter
    tr.section("samples/s per group (median), fastgeo vs NumPy and vs the best peer")
    for group, row in groups.items():
        fg = row.get("fastgeo")
        cells = "  ".join(f"{k} {v:,.0f}" for k, v in sorted(row.items(), key=lambda kv: -kv[1]))
        best = max((v for k, v in row.items() if k in peers.PEERS), default=None)
        ratios = ""
        if fg and row.get("numpy"):
            ratios += f"  | fastgeo/numpy {fg / row['numpy']:.2f}x"
        if fg and best:
            ratios += f"  fastgeo/best peer {fg / best:.2f}x"
        tr.write_line(f"{group}: {cells}{ratios}")
