"""fastgeo's asv suite (https://asv.readthedocs.io): see README, "Tracking performance with asv".

Thread pools are pinned before numpy or numba is imported. asv.conf.json sets the same
variables through its matrix for asv's own environments; ``asv run --python=same`` ignores
the matrix, so they are also defaulted here (an explicit value in the environment wins).
"""

import os

#: Threads every pool gets while benchmarking: the 2 cores of the CI machine.
THREADS = "2"
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "MKL_NUM_THREADS")

for _var in THREAD_VARS:
    os.environ.setdefault(_var, THREADS)
