"""Start-up costs, each measured in a fresh interpreter (asv ``timeraw_``): importing
fastgeo, the first call of the kernels compiled from scratch (empty numba cache), and the
same first call loading them from numba's on-disk cache.

The timed statement is the first call only: the interpreter start, ``import numpy,
numba, fastgeo`` and the data are in the untimed setup string (except for
``timeraw_import``). ``NUMBA_CACHE_DIR`` points at a folder of this benchmark's own, so
the user's cache is neither used nor touched.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

#: The first call of each phase. "forward": the serial forward kernel (float64).
#: "fit": ``MLP.fit`` -> ``kernels.train``, one compiled call of ``fit_into``, which
#: compiles every stage it calls (the packing, the tile loads, the forward and backward
#: tiles, the output error, the SGD step).
FIRST_CALL = {
    "forward": "net.forward(X)",
    "fit": "net.fit(X, y, 1, 0.1, batch_size=16)",
}

SETUP_TEMPLATE = """
import os
os.environ["NUMBA_CACHE_DIR"] = {cache_dir}
import numpy as np
import fastgeo
X = np.random.RandomState(0).randn(64, 2)
y = (X[:, 0] > 0).astype(np.float64)
net = fastgeo.MLP((2, 8, 8, 1), "sigmoid", seed=0)
"""


def _setup_code(cache_dir=None, fresh_under=None):
    """The untimed setup: numba's cache in cache_dir, or in a new empty folder made under
    fresh_under by the timed interpreter itself."""
    if fresh_under is not None:
        where = f"__import__('tempfile').mkdtemp(dir={fresh_under!r})"
    else:
        where = repr(cache_dir)
    return textwrap.dedent(SETUP_TEMPLATE.format(cache_dir=where))


class _Raw:
    # Each sample is a fresh interpreter; a cold "fit" compile takes 40-55 s on a loaded
    # 2-core machine, so: no warm-up sample, one process, 1-3 samples in ~15 s.
    number = 1
    warmup_time = 0
    rounds = 1
    repeat = (1, 3, 15.0)
    timeout = 900


class ColdCompile(_Raw):
    """Seconds of the first call with an empty numba cache (compilation from scratch)."""

    params = [list(FIRST_CALL)]
    param_names = ["phase"]

    def setup(self, phase):
        self.root = tempfile.mkdtemp(prefix="fastgeo-asv-cold-")

    def teardown(self, phase):
        shutil.rmtree(self.root, ignore_errors=True)

    def timeraw_first_call(self, phase):
        # A new, empty cache folder for every sample (each sample is a new interpreter).
        return FIRST_CALL[phase], _setup_code(fresh_under=self.root)


class CachedLoad(_Raw):
    """Seconds of the first call when numba's cache already holds the kernels."""

    params = [list(FIRST_CALL)]
    param_names = ["phase"]

    def setup_cache(self):
        # Runs once per run of this class, in a folder asv keeps for the class's benchmarks.
        cache_dir = os.path.abspath("numba-cache")
        code = _setup_code(cache_dir) + "\n".join(FIRST_CALL.values()) + "\n"
        subprocess.run([sys.executable, "-c", code], check=True)
        return cache_dir

    def timeraw_first_call(self, cache_dir, phase):
        return FIRST_CALL[phase], _setup_code(cache_dir)


def timeraw_import():
    """Seconds of ``import fastgeo`` in a fresh interpreter (numpy imported beforehand)."""
    return "import fastgeo", "import numpy"


timeraw_import.number = 1
timeraw_import.warmup_time = 0
timeraw_import.rounds = 1
timeraw_import.repeat = (3, 5, 10.0)
