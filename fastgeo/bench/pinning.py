"""Pinning every library's thread pools to one count.

``thread_env(n)`` is the environment a worker process starts with (read by OpenBLAS,
MKL, OpenMP, numba and XLA at import); ``pin(n)`` also applies the runtime calls of the
libraries already imported (numba, torch, threadpoolctl for BLAS), and
``restrict_affinity(n)`` keeps the process on n CPUs, which is how XLA's CPU thread pool
(sized from the CPUs it may run on) is held to n threads when 1 < n < CPUs.
"""

import os
import sys

#: environment variables read at import by the BLAS/OpenMP runtimes and numba
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)

#: XLA flags for one thread: no Eigen thread pool for the CPU backend
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

_limits = None  # the threadpoolctl controller, kept alive while pinned


def thread_env(n, base=None):
    """A copy of ``base`` (default os.environ) with every thread count set to n."""
    env = dict(os.environ if base is None else base)
    for var in THREAD_ENV_VARS:
        env[var] = str(n)
    flags = env.get("XLA_FLAGS", "")
    if n == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        env["XLA_FLAGS"] = (flags + " " + XLA_ONE_THREAD).strip()
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def restrict_affinity(n):
    """Keep this process on the first n CPUs it may use when n < CPUs; returns the CPU set
    in force. XLA sizes its pool from them; at n = 1 too: jax 0.10's CPU runtime ran its
    dots on a second thread despite ``XLA_FLAGS`` (a 4096 x 32 x 512 x 512 forward at 194
    GFLOP/s unpinned, 96 pinned to one CPU, 117 being one core's FMA limit)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if n < len(cpus):
        os.sched_setaffinity(0, cpus[:n])
    return sorted(os.sched_getaffinity(0))


def pin(n):
    """Pin thread counts to n: environment for libraries not yet imported, runtime calls for
    those already imported. Returns a dict of what was set, for the record."""
    global _limits
    done = {}
    os.environ.update({k: v for k, v in thread_env(n).items()
                       if k in THREAD_ENV_VARS or k in ("XLA_FLAGS", "JAX_PLATFORMS")})
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        done["numba"] = numba.get_num_threads()
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # only allowed before the first inter-op work
            pass
        done["torch"] = (torch.get_num_threads(), torch.get_num_interop_threads())
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        pass
    else:
        _limits = threadpool_limits(limits=n)
        done["blas"] = n
    if "jax" in sys.modules and n == 1 and XLA_ONE_THREAD not in os.environ.get("XLA_FLAGS", ""):
        done["jax"] = "imported before pinning: XLA threads not pinned"
    return done


def unpin():
    """Undo the threadpoolctl limits set by ``pin`` (environment is left as is)."""
    global _limits
    if _limits is not None:
        _limits.restore_original_limits()
        _limits = None
