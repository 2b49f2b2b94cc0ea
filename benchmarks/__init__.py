"""fastgeo's asv suite (https://asv.readthedocs.io): see docs/benchmarking.md,
"Tracking performance with asv".

Thread pools are pinned before numpy or numba is imported. asv.conf.json sets the same
variables through its matrix for asv's own environments; ``asv run --python=same`` ignores
the matrix, so they are also defaulted here (an explicit value in the environment wins).

numba's pool holds 2 threads (the CI machine's 2 cores), but every benchmark runs its
kernels on ONE (``numba.set_num_threads`` in ``common.Suite.setup``) unless it asks for
more through a ``threads`` parameter (``benchmarks/threads.py``); BLAS runs on one
thread. One thread per kernel is what keeps a number comparable from commit to commit on a
2-core machine that is doing anything else: a parallel region waits for its slowest
thread, and on this shared machine a 2-thread fit varied 2-12 s between identical runs
where a 1-thread fit varied by tens of percent.
"""

import os

#: The pool sizes while benchmarking.
THREAD_POOLS = {
    "NUMBA_NUM_THREADS": "2",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

for _var, _value in THREAD_POOLS.items():
    os.environ.setdefault(_var, _value)
