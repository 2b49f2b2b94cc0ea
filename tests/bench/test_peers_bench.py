"""Side by side, as pytest-benchmark groups: one group per phase x net x batch x activation,
each comparing fastgeo (numba), NumPy and every installed peer. Skipped in the normal
test run (--benchmark-skip); ``make bench`` runs them, CI runs each once
(--benchmark-disable) so they cannot rot. Every benchmark is checked against the
reference and warmed up before pytest-benchmark calibrates."""

import pytest

from fastgeo.bench import peers
from fastgeo.bench import workloads as wl

CASES = [(w.key, a) for w in wl.WORKLOADS.values() if w.phase != "article"
         for a in wl.ACTIVATIONS] + [("article", "both")]
#: under --benchmark-disable (the CI smoke run) torch.compile runs one case only: each
#: net compiles for seconds, the first ~30 s
COMPILE_SMOKE = {("A-fwd-256", "relu")}


@pytest.mark.parametrize("name", list(peers.IMPLEMENTATIONS))
@pytest.mark.parametrize("key,activation", CASES)
def test_side_by_side(benchmark, implementations, request, key, activation, name):
    w = wl.WORKLOADS[key]
    impl = implementations(name)
    if impl.skip_reason(w):
        pytest.skip(impl.skip_reason(w))
    disabled = request.config.getoption("benchmark_disable", False)
    if name == "torch.compile" and disabled and (key, activation) not in COMPILE_SMOKE:
        pytest.skip("torch.compile: one case in the smoke run (compiles take seconds each)")
    benchmark.group = f"{w.phase}: {w.describe()}, {activation}"
    benchmark.name = name
    benchmark.extra_info.update(impl=name, workload=key, activation=activation,
                                samples_per_call=w.samples_per_call,
                                flops_per_call=w.flops_per_call)
    Ws, bs, X, Y = wl.inputs(w, activation)
    runner = impl.build(w, activation, Ws, bs, X, Y)
    # apples to apples, outside the timed region (this also compiles and warms up)
    result = peers.check(impl, w, activation, Ws, bs, X, Y, runner=runner)
    assert result["ok"], result
    if not disabled:
        runner.run()  # one more warm call: pytest-benchmark calibrates on its first
    if w.phase in ("fit", "article"):
        benchmark.pedantic(runner.run, rounds=3, iterations=1)
    else:
        benchmark(runner.run)
