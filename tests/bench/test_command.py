"""``fastgeo bench``: planning, skipping absent peers with a reason, the worker protocol,
the tables and the JSON (real worker processes on the always-installed implementations)."""

import importlib.util
import io
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from fastgeo.bench import command, threads
from fastgeo.bench import workloads as wl


def args(**kw):
    base = {"threads": 1, "quick": True, "json": None, "impls": None, "workloads": None,
            "activations": "sigmoid,relu", "no_compile_row": True, "timeout": 600}
    base.update(kw)
    return SimpleNamespace(**base)


def test_plan_skips_absent_peers_with_a_reason(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("torch", "jax") else real(name, *a))
    families, skipped = command.plan(args(quick=False))
    names = [n for n, _ in families]
    assert "torch" not in names and "jax" not in names and "torch.compile" not in names
    assert "torch not installed" in skipped["torch"] and "jax not installed" in skipped["jax"]
    assert names[:2] == ["fastgeo", "numpy"]
    tasks = dict(families)
    # the peak matmul rides with numpy; fastgeo gets every workload and both activations
    assert tasks["numpy"][0] == {"workload": "peak", "activation": None}
    n_article = 1
    assert len(tasks["fastgeo"]) == 2 * (len(wl.WORKLOADS) - 1) + n_article


def test_plan_quick_leaves_torch_compile_out_unless_named():
    _, skipped = command.plan(args(quick=True))
    if "torch.compile" in skipped:
        assert "--quick" in skipped["torch.compile"] or "not installed" in skipped["torch.compile"]
    _, skipped = command.plan(args(quick=True, impls="torch.compile"))
    assert "--quick" not in skipped.get("torch.compile", "")


def test_plan_rejects_unknown_names():
    with pytest.raises(SystemExit, match="unknown implementation"):
        command.plan(args(impls="fastgeo,tensorflow"))
    with pytest.raises(ValueError, match="unknown workload"):
        command.plan(args(workloads="Z-fwd"))


def test_onnxruntime_only_plans_forward_workloads():
    families, _ = command.plan(args(impls="onnxruntime"))
    for name, tasks in families:
        assert all(wl.WORKLOADS[t["workload"]].phase == "forward" for t in tasks)


def test_thread_env_pins_every_library():
    env = threads.thread_env(1, base={})
    for var in threads.THREAD_ENV_VARS:
        assert env[var] == "1"
    assert "xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    env2 = threads.thread_env(2, base={"XLA_FLAGS": "--foo"})
    assert env2["XLA_FLAGS"] == "--foo" and env2["OMP_NUM_THREADS"] == "2"


def test_bench_end_to_end_prints_tables_and_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "fastgeo", "bench", "--quick", "--threads", "1",
         "--impls", "fastgeo,numpy,sklearn", "--workloads", "A-fwd-256,A-step-4096",
         "--activations", "relu", "--no-compile-row", "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert "samples/s" in text and "fastgeo speed-up" in text and "practical float32 peak" in text
    assert "A forward batch 256" in text and "A SGD step batch 4096" in text
    assert "[" in proc.stderr and "/" in proc.stderr  # the progress bar
    report = json.loads(out.read_text())
    assert report["meta"]["threads"] == 1 and report["meta"]["quick"] is True
    assert report["peak"]["practical_gflops"] > 0
    assert not report["errors"]
    rows = {(r["workload"], r["activation"]): r for r in report["rows"]}
    row = rows[("A-fwd-256", "relu")]
    assert set(row["samples_per_s"]) == {"fastgeo", "numpy", "sklearn"}
    assert row["best_peer"] == "sklearn" and row["vs_best_peer"] > 0
    assert row["targets"][0]["target"] == ">=2x best"
    for r in report["results"]:
        assert r["check"]["ok"], r
        assert r["per_call_s"] > 0 and r["compile_s"] >= 0 and r["samples_per_s"] > 0


def test_worker_reports_a_failing_task_as_an_error():
    progress = command.Progress(1, stream=io.StringIO())
    ready, reason, events = command.run_worker(
        "fastgeo", [{"workload": "no-such-workload", "activation": "relu"}], 1, True, 300,
        progress)
    assert ready is not None and reason is None
    assert events[0]["event"] == "error" and "no-such-workload" in events[0]["error"]


def test_worker_turns_a_broken_peer_import_into_a_skip_reason(tmp_path):
    (tmp_path / "jax").mkdir()
    (tmp_path / "jax" / "__init__.py").write_text("raise ImportError('broken jax for the test')")
    progress = command.Progress(1, stream=io.StringIO())
    ready, reason, events = command.run_worker(
        "jax", [{"workload": "A-fwd-256", "activation": "relu"}], 1, True, 300, progress,
        env_extra={"PYTHONPATH": str(tmp_path)})
    assert ready is None and events == []
    assert reason == "ImportError: broken jax for the test"


def test_render_marks_failed_checks_and_missed_targets():
    res = []
    for impl, sps, ok in (("fastgeo", 1e6, True), ("numpy", 5e5, True), ("jax", 4e6, False),
                          ("onnxruntime", 2e6, True)):
        res.append({"impl": impl, "workload": "A-fwd-256", "activation": "relu",
                    "samples_per_s": sps, "gflops": sps * 2 * 88 / 1e9, "compile_s": 0.1,
                    "check": {"ok": ok, "error": 0.5 if not ok else 0.0, "tolerance": 1e-4}})
    rows = command.summarize(res, peak_gflops=10.0)
    assert rows[0]["best_peer"] == "onnxruntime"  # jax failed its check: not a valid best
    assert rows[0]["vs_best_peer"] == pytest.approx(0.5)
    assert rows[0]["targets"][0]["met"] is False
    report = {"meta": {"threads": 1, "quick": True, "cpus": 2, "load_before": 1.0,
                       "load_after": 1.0}, "skipped": {"torch": "torch not installed"},
              "peak": {"numpy": {"gflops": 10.0}, "practical_gflops": 10.0}, "rows": rows,
              "results": res, "by_key": {f"{r['workload']}|{r['activation']}|{r['impl']}": r
                                         for r in res}, "compile": None, "errors": []}
    text = command.render(report)
    assert "skipped torch: torch not installed" in text
    assert "4M!" in text and "CHECK FAILED jax" in text
    assert ">=2x best: MISS" in text


def test_measure_warms_up_times_apart_and_respects_the_budget():
    import time as _time

    from fastgeo.bench.timing import measure

    calls = []

    def fn():
        calls.append(1)
        if len(calls) == 1:
            _time.sleep(0.05)  # a "compiling" first call

    t = measure(fn, min_time=0.001, repeats=3)
    assert t["first_call_s"] >= 0.05 and t["compile_s"] >= 0.04
    assert t["per_call_s"] < 0.01 and t["best_s"] <= t["per_call_s"]
    assert len(calls) == 2 + t["number"] * t["repeats"] and t["repeats"] == 3

    slow = measure(lambda: _time.sleep(0.02), min_time=0.001, repeats=7, budget=0.03,
                   min_repeats=1)
    assert slow["number"] == 1 and slow["repeats"] == 1
