"""The on-disk compile cache, on a temporary copy of the package, in fresh interpreters.

* NUMBA_CACHE_DIR unset: the first run compiles and writes the cache into the package's
  ``__pycache__``; the second loads it (cache hit, no compile) and computes the same.
* Editing a kernel source file (``activations.py``: the leaky-ReLU slope, a module
  constant numba freezes into the machine code, in a callee module, numba #1833) makes
  the next run recompile: it never runs the stale code.
* NUMBA_CACHE_DIR set: the cache goes there, not into the package.
* No writable cache folder anywhere: kernels still compile and compute correctly, with
  one warning at most.

Each run executes ``forward`` on a one-hidden-unit leaky-ReLU net and compares it with the
NumPy reference computed in the same run (which always reads the current source); the
folder tests use ``sgd_step`` (fastest to compile) against its own Python body.
"""

import json
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

import fastgeo

PACKAGE = os.path.dirname(os.path.abspath(fastgeo.__file__))
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False

PROBE = r"""
import json, os, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import numpy as np
    import fastgeo
    from fastgeo import kernels
    if sys.argv[1] == "forward":  # depends on activations.py
        kernel = kernels.forward_into  # the compiled function behind kernels.forward
        ws = [np.array([[1.0]]), np.array([[1.0]])]
        bs = [np.zeros(1), np.zeros(1)]
        X = np.array([[-2.0], [3.0], [-0.5]])
        fast = fastgeo.MLP.from_params(ws, bs, activation="leaky_relu").forward(X)
        slow = fastgeo.MLP.from_params(ws, bs, activation="leaky_relu",
                                       backend="numpy").forward(X)
    else:  # the cheapest kernel to compile
        kernel = kernels.sgd_step
        fast, slow = np.arange(4.0), np.arange(4.0)
        kernel(fast, np.ones(4), 0.5)
        kernel.py_func(slow, np.ones(4), 0.5)
stats = kernel.stats
print(json.dumps({
    "file": fastgeo.__file__,
    "cache_path": stats.cache_path,
    "fast": fast.ravel().tolist(),
    "slow": slow.ravel().tolist(),
    "hits": sum(stats.cache_hits.values()),
    "misses": sum(stats.cache_misses.values()),
    "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
}))
"""


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the fastgeo sources (no compiled cache) under tmp_path/src."""
    dest = tmp_path / "src" / "fastgeo"
    shutil.copytree(PACKAGE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def run_probe(package, tmp_path, cache_dir=None, kernel="sgd_step"):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NUMBA_") or k == "NUMBA_NUM_THREADS"}
    env["PYTHONPATH"] = str(package.parent)
    env["HOME"] = env["XDG_CACHE_HOME"] = str(tmp_path / "home")  # user-wide cache: ours
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    proc = subprocess.run([sys.executable, "-c", PROBE, kernel], env=env, cwd=tmp_path,
                          check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["file"] == str(package / "__init__.py")  # the copy, not the checkout
    assert out["fast"] == pytest.approx(out["slow"], rel=1e-12)  # never stale
    return out


def index_files(folder):
    return sorted(p.name for p in folder.rglob("*.nbi")) if folder.exists() else []


def test_unset_cache_dir_then_edit_a_kernel_source(package_copy, tmp_path):
    first = run_probe(package_copy, tmp_path, kernel="forward")
    assert first["misses"] >= 1 and first["hits"] == 0
    assert first["warnings"] == []
    assert any(name.startswith("kernels.forward_into-") for name in
               index_files(package_copy / "__pycache__"))

    second = run_probe(package_copy, tmp_path, kernel="forward")
    assert second["hits"] >= 1 and second["misses"] == 0, "the disk cache was not used"
    assert second["fast"] == first["fast"]

    source = package_copy / "activations.py"
    text, n = re.subn(r"(?m)^LEAKY_SLOPE = .*$", "LEAKY_SLOPE = 0.25", source.read_text())
    assert n == 1, "activations.py no longer defines LEAKY_SLOPE at top level"
    source.write_text(text)
    edited = run_probe(package_copy, tmp_path, kernel="forward")
    assert edited["misses"] >= 1 and edited["hits"] == 0, "stale cache entry was loaded"
    assert edited["fast"] != first["fast"]  # the new slope is in effect (and == reference)


def test_cache_dir_set(package_copy, tmp_path):
    cache = tmp_path / "numba-cache"
    first = run_probe(package_copy, tmp_path, cache_dir=cache)
    assert first["misses"] >= 1 and first["warnings"] == []
    assert index_files(cache), "nothing was written to NUMBA_CACHE_DIR"
    assert index_files(package_copy / "__pycache__") == []
    second = run_probe(package_copy, tmp_path, cache_dir=cache)
    assert second["hits"] >= 1 and second["misses"] == 0


def make_unwritable(folder):
    """A folder nothing can be written into. Permission bits do not stop root, so as root
    a plain file takes the folder's place (numba's locator then fails with the same
    OSError it gets from a read-only folder)."""
    if ROOT:
        if folder.is_dir():
            shutil.rmtree(folder)
        folder.write_text("not a folder")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)


def test_no_writable_cache_folder(package_copy, tmp_path):
    cache = tmp_path / "readonly-cache"
    for folder in (cache, package_copy / "__pycache__", tmp_path / "home"):
        make_unwritable(folder)
    if not ROOT:
        package_copy.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        # NUMBA_CACHE_DIR, then the package's __pycache__, then the user-wide cache are
        # tried in turn: all three are unwritable here
        out = run_probe(package_copy, tmp_path, cache_dir=cache)
        assert out["cache_path"] is None and out["hits"] == 0  # compiled, uncached
        assert len(out["warnings"]) <= 1, out["warnings"]
        assert all("cache" in w for w in out["warnings"]), out["warnings"]
    finally:
        package_copy.chmod(0o755)
        for folder in (cache, package_copy / "__pycache__", tmp_path / "home"):
            if folder.is_dir():
                folder.chmod(0o755)
