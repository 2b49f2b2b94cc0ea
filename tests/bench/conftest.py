"""pytest-benchmark comparisons: thread pinning, one set-up per implementation, and a
samples/s summary per group after the benchmark tables.

Threads: FASTGEO_BENCH_THREADS (default 1) for every library, applied only when the
benchmarks actually run (not under the default --benchmark-skip). All implementations
share this one process here; ``fastgeo bench`` runs each in its own for published numbers.
"""

import os

import pytest

from fastgeo.bench import peers, pinning


def _benchmarks_skipped(config):
    return bool(config.getoption("benchmark_skip", False))


@pytest.fixture(scope="session")
def bench_threads(request):
    n = int(os.environ.get("FASTGEO_BENCH_THREADS", "1"))
    if _benchmarks_skipped(request.config):
        yield n
        return
    pinning.pin(n)
    yield n
    pinning.unpin()


@pytest.fixture(scope="session")
def implementations(bench_threads, request):
    """name -> the set-up implementation (pytest.skip with the reason when absent)."""
    pinned = set()

    def get(name):
        impl, reason = peers.ready(name, bench_threads)
        if reason:
            pytest.skip(reason)
        if name not in pinned and not _benchmarks_skipped(request.config):
            pinning.pin(bench_threads)  # again: limits for the BLAS/OpenMP it loaded
            pinned.add(name)
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
