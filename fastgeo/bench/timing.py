"""Warm-up-then-time: the one timer ``fastgeo bench`` uses for every implementation."""

import gc
import statistics
import time

#: (seconds per repeat at least, repeats): --quick and the full run
QUICK = (0.05, 3)
FULL = (0.2, 7)


def measure(fn, min_time=0.2, repeats=7):
    """Time ``fn()`` after warming it up.

    The first call is timed alone (it compiles, for JIT libraries); a second call warms
    caches and sizes the loop: each repeat runs ``number`` calls lasting at least
    ``min_time``. Returns seconds: per_call (median of the repeats), best, first_call and
    compile (first call minus a steady call, >= 0), with number and repeats.
    """
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn()
    probe = max(time.perf_counter() - t0, 1e-9)
    number = max(1, int(min_time / probe + 0.999))
    times = []
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            times.append((time.perf_counter() - t0) / number)
    finally:
        if gc_was_on:
            gc.enable()
    per_call = statistics.median(times)
    return {
        "per_call_s": per_call,
        "best_s": min(times),
        "first_call_s": first,
        "compile_s": max(0.0, first - per_call),
        "number": number,
        "repeats": repeats,
    }
