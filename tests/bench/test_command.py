"""``fastgeo bench``: planning, skipping absent peers with a reason, the worker protocol,
the tables and the JSON (real worker processes on the always-installed implementations)."""

import importlib.util
import io
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from fastgeo.bench import chart, command, pinning
from fastgeo.bench import workloads as wl


def args(**kw):
    base = {"threads": 1, "quick": True, "json": None, "impls": None, "workloads": None,
            "activations": "sigmoid,relu", "no_compile_row": True, "timeout": 600,
            "plot": None, "from_json": None}
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
    # the BLAS reference rides with numpy, the FMA limit with fastgeo (numba); fastgeo
    # gets every workload and both activations
    assert tasks["numpy"][0] == {"workload": "peak", "activation": None}
    assert tasks["fastgeo"][0] == {"workload": "fma", "activation": None}
    n_article = 1
    assert len(tasks["fastgeo"]) == 1 + 2 * (len(wl.WORKLOADS) - 1) + n_article


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
    env = pinning.thread_env(1, base={})
    for var in pinning.THREAD_ENV_VARS:
        assert env[var] == "1"
    assert "xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    env2 = pinning.thread_env(2, base={"XLA_FLAGS": "--foo"})
    assert env2["XLA_FLAGS"] == "--foo" and env2["OMP_NUM_THREADS"] == "2"


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_end_to_end_prints_tables_json_and_chart(tmp_path):
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "bench.json", tmp_path / "speedup.png"
    proc = subprocess.run(
        [sys.executable, "-m", "fastgeo", "bench", "--quick", "--threads", "1",
         "--impls", "fastgeo,numpy,sklearn", "--workloads", "A-fwd-1,A-fwd-256,A-step-4096",
         "--activations", "relu", "--no-compile-row", "--json", str(out),
         "--plot", str(png)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert "samples/s" in text and "fastgeo speed-up" in text
    assert "FMA limit" in text and "BLAS reference" in text and "of FMA" in text
    assert "A forward batch 1" in text and "A forward batch 256" in text
    assert "A SGD step batch 4096" in text
    assert "njit API, A forward batch 1, relu: " in text and "us per sample" in text
    assert "[" in proc.stderr and "/" in proc.stderr  # the progress bar
    assert _is_png(png)
    report = json.loads(out.read_text())
    assert report["meta"]["threads"] == 1 and report["meta"]["quick"] is True
    assert report["peak"]["practical_gflops"] > 0 and report["peak"]["fma_limit_gflops"] > 0
    assert report["peak"]["fma"]["lanes"] in (64, 128)
    assert not report["errors"]
    rows = {(r["workload"], r["activation"]): r for r in report["rows"]}
    row = rows[("A-fwd-256", "relu")]
    assert set(row["samples_per_s"]) == {"fastgeo", "numpy", "sklearn"}
    assert row["best_peer"] == "sklearn" and row["vs_best_peer"] > 0
    assert row["targets"][0]["target"] == ">=2x best"
    assert 0 < row["fraction_of_fma"] < row["fraction_of_peak"] * 10
    one = rows[("A-fwd-1", "relu")]
    assert one["targets"][0]["target"] == ">=3x best"
    api = one["njit_api"]
    assert api["available"] and api["ok"] and 0 < api["per_call_s"] < 1e-3
    # interleaved: a row ran on every implementation before the next row began
    ran = [r["workload"] for r in report["results"]]
    assert ran == sorted(ran, key=["A-fwd-1", "A-fwd-256", "A-step-4096"].index)
    assert [r["impl"] for r in report["results"]][:3] == ["fastgeo", "numpy", "sklearn"]
    for r in report["results"]:
        assert r["check"]["ok"], r
        assert r["per_call_s"] > 0 and r["compile_s"] >= 0 and r["samples_per_s"] > 0

    # the same tables and chart from the JSON, without running anything
    png2 = tmp_path / "again.png"
    again = subprocess.run(
        [sys.executable, "-m", "fastgeo", "bench", "--from-json", str(out), "--plot", str(png2)],
        capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.split("\nwrote")[0].rstrip() == text.split("\nwrote")[0].rstrip()
    assert again.stderr == "" and _is_png(png2)


def test_from_json_rejects_what_is_not_a_report(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(SystemExit, match="not a `fastgeo bench --json` report"):
        command.run(args(from_json=str(bad)))
    bad.write_text("not json")
    with pytest.raises(SystemExit, match="is not JSON"):
        command.run(args(from_json=str(bad)))
    with pytest.raises(SystemExit, match="give one of them"):
        command.run(args(from_json=str(bad), json=str(tmp_path / "x.json")))


def test_worker_reports_a_failing_task_as_an_error():
    progress = command.Progress(1, stream=io.StringIO())
    ready, reason, events = command.run_worker(
        "fastgeo", [{"workload": "no-such-workload", "activation": "relu"}], 1, True, 300,
        progress)
    assert ready is not None and reason is None
    assert events[0]["event"] == "error" and "no-such-workload" in events[0]["error"]


def test_interleave_puts_each_row_of_every_implementation_back_to_back():
    fma, peak = {"workload": "fma", "activation": None}, {"workload": "peak", "activation": None}
    a, b = {"workload": "A", "activation": "relu"}, {"workload": "B", "activation": "relu"}
    order = command.interleave([("fastgeo", [fma, a, b]), ("numpy", [peak, a]),
                                ("jax", [b, a])])
    assert order == [("fastgeo", fma), ("fastgeo", a), ("numpy", a), ("jax", a),
                     ("fastgeo", b), ("jax", b), ("numpy", peak)]


def test_live_worker_takes_tasks_one_by_one_and_survives_a_failing_one():
    progress = command.Progress(3, stream=io.StringIO())
    worker = command.LiveWorker("fastgeo", 1, True, 300)
    try:
        ready, reason = worker.ready()
        assert reason is None and ready["event"] == "ready"
        bad = worker.run({"workload": "no-such-workload", "activation": "relu"}, progress)
        assert bad["event"] == "error" and "no-such-workload" in bad["error"]
        good = worker.run({"workload": "A-fwd-1", "activation": "relu"}, progress)
        assert good["event"] == "result" and good["check"]["ok"]
        assert ready["pid"] == worker.proc.pid and worker.dead is None
    finally:
        worker.close()
    assert worker.proc.returncode == 0  # stdin closed: the worker ends on its own


def test_live_worker_reports_a_dead_process_as_errors():
    worker = command.LiveWorker("numpy", 1, True, 300)
    worker.proc.kill()
    worker.proc.wait()
    ready, reason = worker.ready()
    assert ready is None and "worker exited with code" in reason
    ev = worker.run({"workload": "A-fwd-1", "activation": "relu"},
                    command.Progress(1, stream=io.StringIO()))
    assert ev["event"] == "error" and "worker exited with code" in ev["error"]
    worker.close()


def test_worker_turns_a_broken_peer_import_into_a_skip_reason(tmp_path):
    (tmp_path / "jax").mkdir()
    (tmp_path / "jax" / "__init__.py").write_text("raise ImportError('broken jax for the test')")
    progress = command.Progress(1, stream=io.StringIO())
    ready, reason, events = command.run_worker(
        "jax", [{"workload": "A-fwd-256", "activation": "relu"}], 1, True, 300, progress,
        env_extra={"PYTHONPATH": str(tmp_path)})
    assert ready is None and events == []
    assert reason == "ImportError: broken jax for the test"


def _fake_results():
    res = []
    for impl, sps, ok in (("fastgeo", 1e6, True), ("numpy", 5e5, True), ("jax", 4e6, False),
                          ("onnxruntime", 2e6, True)):
        res.append({"impl": impl, "workload": "A-fwd-256", "activation": "relu",
                    "samples_per_s": sps, "gflops": sps * 2 * 88 / 1e9, "compile_s": 0.1,
                    "check": {"ok": ok, "error": 0.5 if not ok else 0.0, "tolerance": 1e-4}})
    for impl, sps in (("fastgeo", 4e7), ("jax", 1e7), ("torch", 2e6), ("numpy", 3e6)):
        for act in ("sigmoid", "relu"):
            res.append({"impl": impl, "workload": "A-fit", "activation": act,
                        "samples_per_s": sps, "gflops": sps * 6 * 88 / 1e9, "compile_s": 0.1,
                        "check": {"ok": True, "error": 0.0, "tolerance": 1e-2}})
    return res


def _fake_report(res, rows):
    return {"meta": {"threads": 1, "quick": True, "cpus": 2, "load_before": 1.0,
                     "load_after": 1.0}, "skipped": {"torch": "torch not installed"},
            "peak": {"blas": {"numpy": {"gflops": 10.0}}, "practical_gflops": 10.0,
                     "fma": {"what": "numba FMA loop"}, "fma_limit_gflops": 20.0},
            "rows": rows, "results": res,
            "by_key": {f"{r['workload']}|{r['activation']}|{r['impl']}": r for r in res},
            "compile": None, "errors": []}


def test_render_marks_failed_checks_and_missed_targets():
    res = _fake_results()
    rows = command.summarize(res, {"fma_limit_gflops": 20.0, "practical_gflops": 10.0})
    fwd = next(r for r in rows if r["workload"] == "A-fwd-256")
    assert fwd["best_peer"] == "onnxruntime"  # jax failed its check: not a valid best
    assert fwd["vs_best_peer"] == pytest.approx(0.5)
    assert fwd["targets"][0]["met"] is False
    assert fwd["fraction_of_fma"] == pytest.approx(1e6 * 176 / 1e9 / 20.0)
    assert fwd["fraction_of_peak"] == pytest.approx(1e6 * 176 / 1e9 / 10.0)
    fits = {r["activation"]: r for r in rows if r["workload"] == "A-fit"}
    # issue 11's A fit row: >=5x JAX, >=30x torch, >=10x numpy, >=30% FMA for relu only
    assert [t["target"] for t in fits["sigmoid"]["targets"]] == [
        ">=5x jax", ">=30x torch", ">=10x numpy"]
    relu = {t["target"]: t["met"] for t in fits["relu"]["targets"]}
    assert relu == {">=5x jax": False, ">=30x torch": False, ">=10x numpy": True,
                    ">=30% FMA limit (relu)": True}  # 4e7 * 528 / 1e9 = 21 GFLOP/s of 20
    text = command.render(_fake_report(res, rows))
    assert "skipped torch: torch not installed" in text
    assert "4M!" in text and "CHECK FAILED jax" in text
    assert ">=2x best: MISS" in text and "FMA limit, float32 GFLOP/s: 20.0 = 1 x one core's 20.0" in text


def test_targets_follow_issues_11_and_13():
    targets = {k: [t.text() for t in w.targets] for k, w in wl.WORKLOADS.items()}
    assert targets == {
        "A-fit-adam": [">=5x jax", ">=30x torch", ">=10x sklearn"],
        "D-fwd": [">=1x best"], "D-fit": [">=1x best"],
        "A-fit": [">=5x jax", ">=30x torch", ">=10x numpy", ">=30% FMA limit (relu)"],
        "A-fwd-1": [">=3x best"], "A-fwd-256": [">=2x best"], "A-fwd-65536": [">=3x best"],
        "A-step-4096": [">=3x best"], "B-fwd-4096": [">=1.5x best"],
        "B-step-4096": [">=1.5x best"], "C-fwd-4096": [">=1x best"],
        "C-step-4096": [">=1x best"], "article": [">=20x numpy"]}
    assert {k: t.text() for k, t in wl.COMPILE_TARGETS.items()} == {
        "cold": "<=5s", "cached": "<=0.3s"}
    assert wl.WORKLOADS["A-fwd-1"].batch == 1 and wl.WORKLOADS["A-fwd-1"].sizes == (2, 8, 8, 1)
    digits = wl.WORKLOADS["D-fit"]
    assert (digits.sizes, digits.head, digits.optimizer, digits.batch_size) == (
        (64, 64, 64, 10), "softmax", "adam", 200)
    X, Y = wl.data(digits)
    assert X.shape == (1797, 64) and Y.shape == (1797, 10) and (Y.sum(axis=1) == 1).all()


def test_chart_draws_every_row_and_reads_old_targets(tmp_path):
    pytest.importorskip("matplotlib")
    res = _fake_results()
    rows = command.summarize(res, {"fma_limit_gflops": 20.0, "practical_gflops": 10.0})
    path = chart.speedup_chart(_fake_report(res, rows), str(tmp_path / "c.png"))
    assert _is_png(tmp_path / "c.png") and path.endswith("c.png")
    assert chart.speedup_target({"target": ">=5x jax"}) == ("jax", 5.0)
    assert chart.speedup_target({"target": ">=60% peak"}) is None
    assert chart.speedup_target({"target": ">=30% FMA limit (relu)", "against": "fma",
                                 "threshold": 0.3}) is None
    with pytest.raises(ValueError, match="no row"):
        chart.speedup_chart(_fake_report([], []), str(tmp_path / "none.png"))


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
    assert len(calls) == 1 + t["calibration_calls"] + t["number"] * t["repeats"]
    assert t["repeats"] == 3

    # a slow second call no longer sizes the repeats: they still last min_time
    fast = []

    def warming():
        fast.append(1)
        if len(fast) <= 2:
            _time.sleep(0.001)

    w = measure(warming, min_time=0.02, repeats=3)
    assert w["per_call_s"] < 1e-4 and w["number"] * w["per_call_s"] >= 0.01

    slow = measure(lambda: _time.sleep(0.02), min_time=0.001, repeats=7, budget=0.03,
                   min_repeats=1)
    assert slow["number"] == 1 and slow["repeats"] == 1
