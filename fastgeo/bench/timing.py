"""Warm-up-then-time: the one timer ``fastgeo bench`` uses for every implementation."""

import gc
import statistics
import time

#: --quick and the full run: seconds per repeat at least, repeats, and the seconds of
#: timed repeats allowed to one measurement, down to at least so many repeats (long calls,
#: such as whole fits, get fewer repeats)
QUICK = {"min_time": 0.05, "repeats": 3, "budget": 1.0, "min_repeats": 1}
FULL = {"min_time": 0.2, "repeats": 7, "budget": 10.0, "min_repeats": 3}


def measure(fn, min_time=0.2, repeats=7, budget=None, min_repeats=1):
    """Time ``fn()`` after warming it up.

    The first call is timed alone (it compiles, for JIT libraries). A calibration loop
    then warms caches and sizes the repeats: it doubles its number of calls until they
    last ``min_time / 4`` (timeit's autorange), so one slow early call cannot shrink the
    repeats below ``min_time`` (a single probe call once set 10 ms repeats for a 2 us
    call). Each repeat runs ``number`` calls lasting at least ``min_time``; calls so long
    that ``repeats`` of them would exceed ``budget`` seconds get fewer repeats, no fewer
    than ``min_repeats``. Returns seconds: per_call (median of the repeats), best,
    first_call and compile (first call minus a steady call, >= 0), with number, repeats
    and calibration_calls.
    """
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    probe, calibration_calls = _calibrate(fn, min_time / 4)
    number = max(1, int(min_time / probe + 0.999))
    if budget is not None:
        repeats = max(min_repeats, min(repeats, int(budget / (number * probe))))
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
        "calibration_calls": calibration_calls,
    }


def _calibrate(fn, min_time):
    """(seconds per call, calls made): loops of 1, 2, 4, ... calls until one lasts
    ``min_time``; the per-call time of that last loop."""
    number = 1
    calls = 0
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - t0
        calls += number
        if elapsed >= min_time:
            return max(elapsed / number, 1e-9), calls
        number *= 2
