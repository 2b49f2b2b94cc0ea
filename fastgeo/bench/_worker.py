"""One implementation, timed in a process of its own (``fastgeo bench`` starts one per
implementation, with every thread count already set in its environment).

    python -m fastgeo.bench._worker '{"impl": "torch", "threads": 1, "quick": true,
                                      "tasks": [{"workload": "A-fwd-256", "activation": "relu"}]}'

Writes one JSON object per line to its standard output: ``ready`` (versions) or
``unavailable`` (reason), then ``start`` and ``result``/``error`` per task. Anything the
libraries print goes to standard error instead. Without ``tasks`` in the spec it takes
them from its standard input, one JSON object per line, until that closes (how ``fastgeo
bench`` keeps every implementation's process alive and interleaves them row by row).
"""

import json
import os
import sys
import time
import traceback

import numpy as np


def _result_stream():
    """The real stdout for results; fd 1 then points at stderr, so that library chatter
    (C-level prints included) cannot corrupt the JSON lines."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", buffering=1)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def compile_times(impl):
    """First-call seconds of each kernel ``fastgeo reproduce`` needs (float64, both
    activations), in a process whose numba cache folder the parent chose."""
    from ..article import notebook, protocol
    from ..mlp import MLP

    X_train, X_test, y_train, y_test = notebook.notebook_data()
    perms = np.tile(np.arange(X_train.shape[0]), (2, 1))
    calls = {}
    t_all = time.perf_counter()
    for activation in protocol.ACTIVATIONS:
        net = MLP(protocol.PROTOCOL["sizes"], activation, seed=42, dtype="float64")
        for name, fn in (
            ("fit", lambda net=net: net.fit(X_train, y_train, 2, protocol.PROTOCOL["lr"],
                                            batch_size=protocol.PROTOCOL["batch_size"],
                                            permutations=perms)),
            ("forward", lambda net=net: net.forward(X_test)),
            ("forward_trace", lambda net=net: net.forward_trace(X_test)),
            ("loss", lambda net=net: net.loss(X_test, y_test)),
        ):
            t0 = time.perf_counter()
            fn()
            calls[f"{activation}.{name}"] = time.perf_counter() - t0
    return {"total_s": time.perf_counter() - t_all, "calls": calls,
            "cache_dir": os.environ.get("NUMBA_CACHE_DIR")}


def run_task(impl, task, quick):
    from . import peak, peers
    from . import workloads as wl
    from .timing import FULL, QUICK, measure

    key = task["workload"]
    if key == "peak":
        return peak.matmul_gflops(quick, torch=getattr(impl, "torch", None))
    if key == "fma":
        return peak.fma_limit(quick)
    if key == "compile":
        return compile_times(impl)
    w = wl.WORKLOADS[key]
    activation = task.get("activation")
    Ws, bs, X, Y = wl.inputs(w, activation)
    runner = impl.build(w, activation, Ws, bs, X, Y)
    result = measure(runner.run, **(QUICK if quick else FULL))
    # apples to apples, outside the timed region
    result["check"] = peers.check(impl, w, activation, Ws, bs, X, Y, runner=runner)
    result["samples_per_s"] = w.samples_per_call / result["per_call_s"]
    result["gflops"] = w.flops_per_call / result["per_call_s"] / 1e9
    if impl.name == "fastgeo" and key == peers.NJIT_API_WORKLOAD:
        result["njit_api"] = peers.njit_api_latency(activation, Ws, bs, X, quick)
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    out = _result_stream()

    def emit(**fields):
        out.write(json.dumps(_jsonable(fields)) + "\n")
        out.flush()

    from . import pinning as th

    n = int(spec["threads"])
    cpus = th.restrict_affinity(n)
    from .peers import IMPLEMENTATIONS

    impl = IMPLEMENTATIONS[spec["impl"]]
    reason = impl.unavailable()
    if reason:
        emit(event="unavailable", reason=reason)
        return 0
    try:
        impl.setup(n)
        pinned = th.pin(n)
    except Exception as e:  # noqa: BLE001 - a broken install is a skip with its reason, not a crash
        emit(event="unavailable", reason=f"{type(e).__name__}: {e}".splitlines()[0][:200])
        return 0
    emit(event="ready", versions=impl.versions(), cpus=cpus, pinned=pinned, pid=os.getpid())
    tasks = spec["tasks"] if "tasks" in spec else (json.loads(line) for line in sys.stdin
                                                   if line.strip())
    for task in tasks:
        emit(event="start", **task)
        try:
            result = run_task(impl, task, spec.get("quick", False))
        except Exception as e:  # noqa: BLE001 - reported, the other tasks go on
            emit(event="error", **task, error=f"{type(e).__name__}: {e}"[:500],
                 traceback=traceback.format_exc()[-2000:])
        else:
            emit(event="result", **task, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
