"""The machine's float32 ceilings that ``fastgeo bench`` reports each row against.

* The **FMA limit** (``fma_limit_gflops``): the float32 FLOP/s one core can issue,
  measured with a loop that does nothing but fused multiply-adds on accumulators that
  stay in vector registers. A row's "of FMA" column is fastgeo's GFLOP/s over it (at
  ``--threads N``, over N times one core's limit).
* The **BLAS reference** (``matmul_gflops``): a 2048^3 float32 matmul through NumPy's
  BLAS (OpenBLAS in the PyPI wheels) or ``torch.mm``: what a tuned library reaches on a
  large, friendly shape; the "of BLAS" column.

How the FMA loop is written, and why: ``lanes`` float32 accumulators live in an array
of a size fixed at compile time (a closure constant), and every pass updates each one as
``a = a * x + y``. With the trip count known, LLVM keeps the whole array in vector
registers across the outer loop (no loads or stores inside it), vectorizes the inner
loop to the widest registers the CPU has and contracts each multiply-add into one FMA
instruction. The chains are independent, so the loop is limited by FMA throughput, not
latency, once there are more chains than (FMA latency x FMA units) vectors. Written as
16-32 separate scalar locals the same loop does NOT vectorize (numba 0.68: 32 scalar
``vfmadd..ss`` instructions, ~15 GFLOP/s on a 3.7 GHz AMD EPYC with AVX-512), hence the
array. Measured on that machine, 1 thread: 64 lanes ~108 GFLOP/s, 128 lanes ~115
GFLOP/s (4 and 8 zmm registers; ~32 flops per cycle at ~3.6 GHz), 256 lanes no higher;
32 lanes is fully unrolled into scalar code (~10 GFLOP/s). ``fma_limit`` therefore takes
the best of 64 and 128 lanes (128 lanes are 16 ymm registers on an AVX2-only CPU, which
may spill; 64 lanes fit). Replace the body with vector intrinsics if a CPU needs them;
keep the function's contract (float32 GFLOP/s of one thread, best of its variants).
"""

import numpy as np

from .timing import FULL, QUICK, measure

#: Accumulator counts tried; the best one is the limit.
FMA_LANES = (64, 128)
#: Passes of the loop per call: ~2-5 ms per call at 100+ GFLOP/s.
FMA_PASSES = 2_000_000

_kernels = {}


def fma_kernel(lanes):
    """The compiled FMA loop over ``lanes`` float32 accumulators: ``f(n, x, y)`` runs n
    passes of ``a[j] = a[j] * x + y`` over every accumulator (starting at 1 + j/lanes)
    and returns their sum as a float32 (so the loop cannot be dropped)."""
    if lanes not in _kernels:
        from numba import njit

        @njit(fastmath={"contract"}, error_model="numpy", nogil=True)
        def chains(n, x, y):
            acc = np.empty(lanes, np.float32)
            for j in range(lanes):
                acc[j] = np.float32(1.0 + j / lanes)
            for _ in range(n):
                for j in range(lanes):
                    acc[j] = acc[j] * x + y
            total = np.float32(0.0)
            for j in range(lanes):
                total += acc[j]
            return total

        _kernels[lanes] = chains
    return _kernels[lanes]


def fma_limit(quick=False, passes=FMA_PASSES, lanes=FMA_LANES):
    """Measure the FMA limit on the calling thread: {"gflops": the best variant's float32
    GFLOP/s (2 flops per FMA, its best repeat), "lanes": that variant's accumulator
    count, "variants": {lanes: GFLOP/s}, "what"}."""
    if passes < 1 or not lanes:
        raise ValueError("fma_limit needs passes >= 1 and at least one lane count")
    x, y = np.float32(0.999), np.float32(0.001)
    variants = {}
    for k in lanes:
        f = fma_kernel(k)
        t = measure(lambda f=f: f(passes, x, y), **(QUICK if quick else FULL))
        variants[k] = 2 * k * passes / t["best_s"] / 1e9
    best = max(variants, key=variants.get)
    return {"gflops": variants[best], "lanes": best, "variants": variants,
            "what": f"numba FMA loop, {best} float32 accumulators in registers, 1 thread"}


def fma_limit_gflops(quick=False):
    """The float32 FMA limit of one core, GFLOP/s (see the module docstring)."""
    return fma_limit(quick)["gflops"]


def matmul_gflops(quick=False, n=2048, torch=None):
    """The BLAS reference: an n x n x n float32 matmul (``torch.mm`` when the torch
    module is given, else NumPy's BLAS). Returns measure()'s timings with "gflops"
    (from the best repeat: a ceiling) and "what"."""
    rng = np.random.RandomState(0)
    A = rng.rand(n, n).astype(np.float32)
    B = rng.rand(n, n).astype(np.float32)
    if torch is not None:
        At, Bt = torch.from_numpy(A), torch.from_numpy(B)
        fn = lambda: torch.mm(At, Bt)
        what = f"torch.mm {n}x{n} float32"
    else:
        fn = lambda: A @ B
        what = f"numpy matmul {n}x{n} float32"
    t = measure(fn, **(QUICK if quick else FULL))
    t["gflops"] = 2 * n ** 3 / t["best_s"] / 1e9
    t["what"] = what
    return t
