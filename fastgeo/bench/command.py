"""``fastgeo bench``: fastgeo against NumPy and every installed peer, side by side.

Each implementation runs in a process of its own (``fastgeo.bench._worker``) whose thread
pools (numba, OpenBLAS/MKL/OpenMP, torch, XLA, ONNX Runtime) are pinned to ``--threads N``
before any library is imported (for 1 < N < CPUs the process is also kept on N cores,
which is what holds XLA to N threads): mixing several libraries' thread pools in one
process caused multi-millisecond stalls. The processes start together and take turns
row by row (every implementation's run of a row back to back, then the next row), so
that a ratio compares timings seconds apart, not minutes: this VM's speed drifts by
25-40% over minutes.
Every call is warmed up before timing; the first call's extra time is reported apart, as
compile time. A check outside the timed region compares each implementation's outcome
with fastgeo's NumPy reference (float64).

Each row is also set against two ceilings of the machine (``fastgeo.bench.peak``): the
FMA limit (float32 FLOP/s one core can issue, measured in the fastgeo process) and the
BLAS reference (a 2048^3 float32 matmul, measured in the numpy and torch processes).
``--plot PATH`` draws the speed-up chart (``fastgeo.bench.chart``), from this run or,
with ``--from-json FILE``, from an earlier run's ``--json`` without running anything.
"""

import json
import os
import platform
import queue
import subprocess
import sys
import tempfile
import threading
import time

from .. import activations as registry
from . import workloads as wl

#: column order of the tables
ORDER = ("fastgeo", "numpy", "torch", "torch.compile", "jax", "sklearn", "onnxruntime")
SHORT = {"fastgeo": "fastgeo", "numpy": "numpy", "torch": "torch",
         "torch.compile": "t.compile", "jax": "jax", "sklearn": "sklearn",
         "onnxruntime": "onnxrt"}


def add_parser(sub):
    import argparse

    p = sub.add_parser(
        "bench",
        help="time fastgeo against NumPy, PyTorch, JAX, scikit-learn and ONNX Runtime",
        description=__doc__.replace("``fastgeo bench``: fastgeo", "fastgeo", 1),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--threads", type=int, default=1,
                   help="thread count pinned for every library (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="short timing runs, and torch.compile left out unless named in --impls")
    p.add_argument("--json", metavar="PATH", help="also write every measurement as JSON")
    p.add_argument("--impls", metavar="LIST",
                   help=f"comma-separated implementations (default all): {','.join(ORDER)}")
    p.add_argument("--workloads", metavar="LIST",
                   help=f"comma-separated workloads (default all): {','.join(wl.WORKLOADS)}")
    p.add_argument("--activations", metavar="LIST", default="sigmoid,relu",
                   help="comma-separated hidden activations, any in the registry "
                        "(default sigmoid,relu; a peer without one skips it)")
    p.add_argument("--no-compile-row", action="store_true",
                   help="skip timing fastgeo's cold compile (fresh numba cache) and cached load")
    p.add_argument("--timeout", type=float, default=1800,
                   help="seconds allowed to one implementation's start and tasks in all "
                        "(default 1800)")
    p.add_argument("--plot", metavar="PATH",
                   help="also draw the speed-up chart as a PNG (needs matplotlib)")
    p.add_argument("--from-json", metavar="FILE",
                   help="run nothing: print the tables of an earlier --json FILE (and "
                        "draw its chart with --plot)")
    p.set_defaults(func=run)


# --- planning and running the workers ----------------------------------------------------


def _split(text):
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def plan(args):
    """[(impl name, [tasks])], {impl: skip reason}."""
    from .peers import IMPLEMENTATIONS

    names = _split(args.impls)
    unknown = [n for n in names or () if n not in IMPLEMENTATIONS]
    if unknown:
        raise SystemExit(f"fastgeo bench: unknown implementation(s) {unknown}; "
                         f"choose from {list(IMPLEMENTATIONS)}")
    chosen = names or list(ORDER)
    workloads = wl.select(_split(args.workloads))
    activations = _split(args.activations) or list(wl.ACTIVATIONS)
    for a in activations:
        if a not in registry.ACTIVATIONS:
            raise SystemExit(f"fastgeo bench: activation must be one of "
                             f"{list(registry.ACTIVATIONS)}, got {a!r}")
    skipped, families = {}, []
    for name in ORDER:
        impl = IMPLEMENTATIONS[name]
        if name not in chosen:
            continue
        if args.quick and getattr(impl, "slow", False) and not names:
            skipped[name] = ("left out of --quick (compiles ~30 s cold, ~5 s per net); "
                             "run without --quick or with --impls to include it")
            continue
        reason = impl.unavailable()
        if reason:
            skipped[name] = reason
            continue
        tasks = []
        for w in workloads:
            if impl.skip_reason(w):
                continue
            for a in (["both"] if w.phase == "article" else activations):
                if a != "both" and impl.skip_reason(w, a):
                    continue
                tasks.append({"workload": w.key, "activation": a})
        if tasks and name in ("numpy", "torch"):
            tasks.insert(0, {"workload": "peak", "activation": None})
        if tasks and name == "fastgeo":
            tasks.insert(0, {"workload": "fma", "activation": None})
        if tasks:
            families.append((name, tasks))
    return families, skipped


class Progress:
    """A one-line text progress bar on stderr (a line per implementation when stderr is
    not a terminal)."""

    def __init__(self, total, stream=sys.stderr, width=28):
        self.total, self.done, self.stream, self.width = max(total, 1), 0, stream, width
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.t0 = time.perf_counter()
        self.last = ""

    def show(self, text):
        elapsed = time.perf_counter() - self.t0
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {self.done:>3}/{self.total} {elapsed:5.0f}s {text}"
        if self.tty:
            self.stream.write("\r" + line[:110].ljust(len(self.last)))
            self.last = line[:110]
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def step(self, text):
        self.done += 1
        if self.tty:
            self.show(text)

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run_worker(impl, tasks, threads, quick, timeout, progress, env_extra=None):
    """Run one worker through ``tasks`` and close it: (ready info or None, unavailable
    reason or None, [events])."""
    worker, ready, reason = start_worker(impl, tasks, threads, quick, timeout, progress,
                                         env_extra)
    if worker is None:
        return None, reason, []
    try:
        return ready, None, [worker.run(task, progress) for task in tasks]
    finally:
        worker.close()


def start_worker(impl, tasks, threads, quick, timeout, progress, env_extra=None):
    """(LiveWorker, ready event, None) once its libraries loaded; (None, None, reason) for
    an implementation that cannot run here (its process closed, its tasks counted as
    skipped)."""
    worker = LiveWorker(impl, threads, quick, timeout, env_extra)
    ready, reason = worker.ready()
    if reason:
        worker.close()
        for _ in tasks:
            progress.step(f"{impl}: skipped")
        return None, None, reason
    return worker, ready, None


class LiveWorker:
    """One implementation's worker process kept alive across the run, fed one task at a
    time on its standard input, so that ``measure_all`` can time a row on every
    implementation back to back instead of an implementation's rows all at once."""

    def __init__(self, impl, threads, quick, budget, env_extra=None):
        from .pinning import thread_env

        self.impl, self.timeout = impl, budget
        self.budget = budget  # seconds its start and tasks may still take
        self.err = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by close())
        env = thread_env(threads)
        env.update(env_extra or {})
        spec = json.dumps({"impl": impl, "threads": threads, "quick": quick})
        self.proc = subprocess.Popen([sys.executable, "-m", "fastgeo.bench._worker", spec],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, env=env, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.dead = None  # why it can take no more tasks

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _event(self, deadline):
        """The next JSON event; None when the process ended or the deadline passed (then
        ``dead`` says which)."""
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill(f"timed out after {self.timeout:.0f} s")
                return None
            if line is None:
                self.proc.wait()
                self.dead = self.dead or f"worker exited with code {self.proc.returncode}"
                return None
            try:
                return json.loads(line)
            except ValueError:
                continue

    def ready(self):
        """(ready event or None, unavailable reason or None), once the libraries loaded;
        the caller closes a worker that is not ready."""
        t0 = time.monotonic()
        ev = self._event(t0 + self.budget)
        if ev is None:
            tail = self.stderr_tail().strip()
            return None, f"{self.dead}: {tail.splitlines()[-1] if tail else ''}"
        if ev.get("event") == "unavailable":
            return None, ev["reason"]
        self.budget -= time.monotonic() - t0
        return ev, None

    def run(self, task, progress):
        """The task's ``result`` or ``error`` event (an error if the process is gone)."""
        label = f"{self.impl}: {task['workload']} {task['activation'] or ''}"
        if self.dead is None:
            progress.show(label)
            t0 = time.monotonic()
            try:
                self.proc.stdin.write(json.dumps(task) + "\n")
                self.proc.stdin.flush()
            except OSError:
                self.dead = f"worker exited with code {self.proc.poll()}"
            while self.dead is None:
                ev = self._event(t0 + self.budget)
                if ev is not None and ev.get("event") in ("result", "error"):
                    self.budget -= time.monotonic() - t0
                    progress.step(label)
                    return ev
        progress.step(label)
        return {"event": "error", **task, "error": self.dead,
                "stderr_tail": self.stderr_tail()}

    def stderr_tail(self):
        self.err.seek(0)
        return self.err.read()[-1500:]

    def kill(self, why):
        self.dead = why
        self.proc.kill()
        self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def interleave(families):
    """[(impl, task)] with every implementation's task of a row back to back, the rows
    in the order they are first planned: the first family's (fastgeo's: the FMA limit,
    then its rows), then the tasks only later ones have (the BLAS reference)."""
    keys, by_key = [], {}
    for name, tasks in families:
        for task in tasks:
            key = (task["workload"], task["activation"])
            if key not in by_key:
                keys.append(key)
                by_key[key] = []
            by_key[key].append((name, task))
    return [pair for key in keys for pair in by_key[key]]


def compile_row(threads, timeout, progress):
    """Cold compile (fresh numba cache folder) and first call from that cache, each in a
    new process: {"cold": {...}, "cached": {...}}."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="fastgeo-bench-cache-") as cache:
        for label in ("cold", "cached"):
            _, reason, events = run_worker(
                "fastgeo", [{"workload": "compile", "activation": label}], threads, False,
                timeout, progress, {"NUMBA_CACHE_DIR": cache})
            ev = events[0] if events else {"event": "error", "error": reason}
            out[label] = ev
    return out


# --- tables ------------------------------------------------------------------------------


def si(x):
    if x is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def ratio(x):
    if x is None:
        return "-"
    return f"{x:.3g}x" if x < 100 else f"{x:.0f}x"


def summarize(results, peak):
    """Per (workload, activation): samples/s per impl, fastgeo's ratios, best peer, the
    fractions of the FMA limit and of the BLAS reference, targets. ``peak``: the report's
    "peak" dict (``fma_limit_gflops``, ``practical_gflops``; either may be None)."""
    from .peers import PEERS

    fma = peak.get("fma_limit_gflops")
    blas = peak.get("practical_gflops")
    rows = []
    keys = []
    for r in results:
        k = (r["workload"], r["activation"])
        if r["workload"] in wl.WORKLOADS and k not in keys:
            keys.append(k)
    keys.sort(key=lambda k: (list(wl.WORKLOADS).index(k[0]),
                             (list(registry.ACTIVATIONS) + ["both"]).index(k[1])))
    for wkey, act in keys:
        w = wl.WORKLOADS[wkey]
        here = {r["impl"]: r for r in results
                if (r["workload"], r["activation"]) == (wkey, act)}
        sps = {n: r.get("samples_per_s") for n, r in here.items()}
        ok = {n: (r.get("check") or {}).get("ok", False) for n, r in here.items()}
        fg = sps.get("fastgeo")
        speedup = {n: (fg / v if fg and v else None) for n, v in sps.items() if n != "fastgeo"}
        peers = {n: v for n, v in sps.items() if n in PEERS and v and ok.get(n)}
        best = max(peers, key=peers.get) if peers else None
        vs_best = fg / peers[best] if fg and best else None
        gflops = here["fastgeo"].get("gflops") if fg else None
        of_fma = gflops / fma if gflops and fma else None
        of_blas = gflops / blas if gflops and blas else None
        targets = []
        for t in w.targets:
            if not t.applies(act):
                continue
            if t.against == "fma":
                value = of_fma
            elif t.against == "best":
                value = vs_best
            else:
                value = speedup.get(t.against)
            met = None if value is None else bool(value >= t.value)
            targets.append({"target": t.text(), "against": t.against, "value": value,
                            "threshold": t.value, "met": met})
        rows.append({"workload": wkey, "activation": act, "title": w.describe(),
                     "samples_per_s": sps, "check_ok": ok, "speedup": speedup,
                     "best_peer": best, "vs_best_peer": vs_best,
                     "fraction_of_fma": of_fma, "fraction_of_peak": of_blas,
                     "targets": targets, "njit_api": (here.get("fastgeo") or {}).get("njit_api")})
    return rows


def _table(header, lines):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    fmt = lambda cells: "  ".join(
        str(c).ljust(w) if i < 2 else str(c).rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths)))
    out = [fmt(header), fmt(["-" * w for w in widths])]
    out += [fmt(line) for line in lines]
    return "\n".join(out)


def _percent(frac):
    return "-" if frac is None else f"{100 * frac:.2g}%"


def render(report):
    rows = report["rows"]
    impls = [n for n in ORDER if any(n in r["samples_per_s"] for r in rows)]
    lines = []
    meta = report["meta"]
    lines.append(f"fastgeo bench: {meta['threads']} thread(s){' --quick' if meta['quick'] else ''},"
                 f" float32 (article row float64), {meta['cpus']} CPUs, load average "
                 f"{meta['load_before']:.2f} before / {meta['load_after']:.2f} after")
    for name, reason in report["skipped"].items():
        lines.append(f"  skipped {name}: {reason}")
    pk = report["peak"]
    if pk.get("fma_limit_gflops"):
        core = pk["fma"].get("gflops", pk["fma_limit_gflops"] / meta["threads"])
        lines.append(f"  FMA limit, float32 GFLOP/s: {pk['fma_limit_gflops']:.1f} = "
                     f"{meta['threads']} x one core's {core:.1f} ({pk['fma']['what']})")
    if pk.get("practical_gflops"):
        blas = pk.get("blas") or {n: v for n, v in pk.items()  # reports before the FMA limit
                                  if isinstance(v, dict) and "gflops" in v}
        parts = [f"{n} {v['gflops']:.1f}" for n, v in blas.items()]
        lines.append(f"  BLAS reference, practical float32 peak (2048^3 matmul, GFLOP/s): "
                     f"{', '.join(parts)} -> {pk['practical_gflops']:.1f}")
    lines.append("")
    lines.append("samples/s (higher is better; '!' = failed the check against the reference)")
    body = []
    for r in rows:
        cells = [r["title"], r["activation"]]
        for n in impls:
            v = r["samples_per_s"].get(n)
            mark = "" if v is None or r["check_ok"].get(n) else "!"
            cells.append(si(v) + mark)
        body.append(cells)
    lines.append(_table(["workload", "act"] + [SHORT[n] for n in impls], body))
    lines.append("")
    lines.append("fastgeo speed-up: fastgeo samples/s / theirs (>1 = fastgeo faster); fastgeo's "
                 "GFLOP/s as a share of the FMA limit and of the BLAS reference")
    others = [n for n in impls if n != "fastgeo"]
    body = []
    for r in rows:
        cells = [r["title"], r["activation"]]
        cells += [ratio(r["speedup"].get(n)) for n in others]
        cells.append(SHORT.get(r["best_peer"], "-") if r["best_peer"] else "-")
        cells.append(ratio(r["vs_best_peer"]))
        cells.append(_percent(r.get("fraction_of_fma")))
        cells.append(_percent(r.get("fraction_of_peak")))
        cells.append(", ".join(
            f"{t['target']}: {'ok' if t['met'] else 'MISS' if t['met'] is False else 'n/a'}"
            for t in r["targets"]))
        body.append(cells)
    lines.append(_table(["workload", "act"] + [f"vs {SHORT[n]}" for n in others]
                        + ["best peer", "vs best", "of FMA", "of BLAS", "targets"], body))
    for r in rows:
        api = r.get("njit_api")
        if api is None:
            continue
        if api.get("available"):
            text = f"{api['per_call_s'] * 1e6:.2f} us per sample ({api.get('what', '')})"
        else:
            text = api.get("reason", "not measured")
        lines.append(f"njit API, {r['title']}, {r['activation']}: {text}")
    lines.append("")
    lines.append("first call minus a steady call (JIT compile, graph build), seconds")
    body = []
    for r in rows:
        cells = [r["title"], r["activation"]]
        for n in impls:
            res = report["by_key"].get(f"{r['workload']}|{r['activation']}|{n}")
            cells.append("-" if not res else f"{res['compile_s']:.3f}")
        body.append(cells)
    lines.append(_table(["workload", "act"] + [SHORT[n] for n in impls], body))
    comp = report.get("compile")
    if comp:
        lines.append("")
        for label, what in (("cold", "cold compile, empty cache"),
                            ("cached", "first calls from the on-disk cache")):
            ev = comp.get(label, {})
            target = wl.COMPILE_TARGETS[label]
            if ev.get("event") == "result":
                v = ev["total_s"]
                lines.append(f"fastgeo kernels `fastgeo reproduce` needs, {what}: {v:.2f} s "
                             f"(target {target.text()}: {'ok' if v <= target.value else 'MISS'})")
            else:
                lines.append(f"fastgeo {what}: failed ({ev.get('error')})")
    problems = [r for r in report["results"] if r.get("check") and not r["check"]["ok"]]
    for r in problems:
        lines.append(f"CHECK FAILED {r['impl']} {r['workload']} {r['activation']}: "
                     f"error {r['check']['error']:.3g} > tolerance {r['check']['tolerance']:.3g}")
    for e in report["errors"]:
        lines.append(f"ERROR {e['impl']} {e['workload']} {e['activation']}: {e['error']}")
    return "\n".join(lines)


def _by_key(results):
    return {f"{r['workload']}|{r['activation']}|{r['impl']}": r for r in results}


def load_report(path):
    """A report written by ``fastgeo bench --json``, ready for ``render`` and the chart.
    ValueError when the file is not one."""
    with open(path) as f:
        try:
            report = json.load(f)
        except ValueError as exc:
            raise ValueError(f"{path} is not JSON: {exc}") from None
    missing = [k for k in ("meta", "peak", "results", "rows", "skipped", "errors")
               if not isinstance(report, dict) or k not in report]
    if missing:
        raise ValueError(f"{path} is not a `fastgeo bench --json` report (no {missing})")
    report["by_key"] = _by_key(report["results"])
    return report


def measure_all(args):
    """Run every planned implementation and the compile row; returns the report."""
    families, skipped = plan(args)
    n_tasks = sum(len(t) for _, t in families) + (0 if args.no_compile_row else 2)
    progress = Progress(n_tasks)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.perf_counter()
    results, errors, versions = [], [], {}
    family_wall, workers = {}, {}
    try:
        for name, tasks in families:  # every implementation's process, ready at once
            t_start = time.perf_counter()
            worker, ready, reason = start_worker(name, tasks, args.threads, args.quick,
                                                 args.timeout, progress)
            if worker is None:
                skipped[name] = reason
                continue
            versions[name] = ready.get("versions", {})
            workers[name] = worker
            family_wall[name] = time.perf_counter() - t_start
        for name, task in interleave([(n, t) for n, t in families if n in workers]):
            t_task = time.perf_counter()
            ev = workers[name].run(task, progress)
            family_wall[name] += time.perf_counter() - t_task
            ev["impl"] = name
            (results if ev["event"] == "result" else errors).append(ev)
    finally:
        for worker in workers.values():
            worker.close()
    compile_info = None if args.no_compile_row else compile_row(args.threads, args.timeout,
                                                                  progress)
    progress.close()
    blas = {r["impl"]: {"gflops": r["gflops"], "what": r["what"]}
            for r in results if r["workload"] == "peak"}
    fma = next((r for r in results if r["workload"] == "fma"), None)
    # the FMA loop runs on one thread: the limit of N threads is N times one core's (a
    # ceiling; the BLAS reference is measured at N threads itself)
    peak = {"blas": blas,
            "practical_gflops": max((v["gflops"] for v in blas.values()), default=None),
            "fma": fma and {k: fma[k] for k in ("gflops", "lanes", "variants", "what")},
            "fma_limit_gflops": fma["gflops"] * args.threads if fma else None}
    bench = [r for r in results if r["workload"] not in ("peak", "fma")]
    return {
        "meta": {
            "threads": args.threads, "quick": args.quick, "cpus": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(),
            "load_before": load_before,
            "load_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
            "wall_s": time.perf_counter() - t0,
            "wall_s_per_implementation": family_wall,
            "command": "fastgeo bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"]
                                                   else sys.argv[1:]),
        },
        "versions": versions,
        "skipped": skipped,
        "peak": peak,
        "results": bench,
        "by_key": _by_key(bench),
        "rows": summarize(bench, peak),
        "compile": compile_info,
        "errors": errors,
    }


def run(args):
    if args.threads < 1:
        raise SystemExit("fastgeo bench: --threads must be >= 1")
    if args.plot:
        from .. import plots

        try:
            plots.require_matplotlib()
        except ImportError as exc:
            raise SystemExit(f"fastgeo bench: --plot: {exc}") from None
    if args.from_json and args.json:
        raise SystemExit("fastgeo bench: --from-json reads a report; --json writes one: "
                         "give one of them")
    if args.from_json:
        try:
            report = load_report(args.from_json)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"fastgeo bench: --from-json: {exc}") from None
    else:
        report = measure_all(args)
    print(render(report))
    if args.json:
        from ._worker import _jsonable

        with open(args.json, "w") as f:
            json.dump(_jsonable({k: v for k, v in report.items() if k != "by_key"}), f,
                      indent=1)
        print(f"\nwrote {args.json}")
    if args.plot:
        from . import chart

        print(f"wrote {chart.speedup_chart(report, args.plot)}")
    return 1 if report["errors"] and not args.from_json else 0
