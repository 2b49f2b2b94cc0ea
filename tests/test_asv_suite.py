"""The asv suite (benchmarks/) runs: every benchmark class is set up and every benchmark
method called once, on a small parameter subset with the workloads shrunk, so a broken
benchmark fails ``make test`` in seconds rather than a nightly ``asv run``. No timings are
checked. ``asv check`` (in CI) checks the suite's structure on top of this."""

import importlib
import inspect
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import fastgeo.activations

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# benchmarks/__init__.py pins thread pools through os.environ: keep that out of the rest
# of the test session (and its subprocesses).
_environ = dict(os.environ)
from benchmarks import common

os.environ.clear()
os.environ.update(_environ)

MODULES = ("benchmarks.inference", "benchmarks.training", "benchmarks.threads",
           "benchmarks.compile", "benchmarks.every_activation")
PREFIXES = ("time_", "track_", "peakmem_", "timeraw_", "mem_")

#: Per class: the parameter combinations to run, and attributes to shrink the workload.
SUBSET = {
    "Forward": ([("sigmoid", "numba", 256, "2-8-8-1", "float64"),
                 ("relu", "numpy", 256, "2-8-8-1", "float32")], {}),
    "ForwardBatch1": ([("relu", "numba", "float32"), ("sigmoid", "numpy", "float64")], {}),
    "ForwardPerSample": ([("sigmoid", "numba", "2-8-8-1", "float32"),
                          ("relu", "numpy", "2-8-8-1", "float64")], {"batch": 64}),
    "TrainStep": ([("sigmoid", "numba", "2-64-64-1", 256, "float64"),
                   ("relu", "numpy", "2-64-64-1", 256, "float32"),
                   ("relu", "numba", "32-512-512-1", 4096, "float32")], {}),
    "Fit": ([("sigmoid", "numba", "float32"), ("relu", "numpy", "float64")],
            {"n": 100, "epochs": 5}),
    "Article": ([("sigmoid", "numba"), ("relu", "numpy")], {"epochs": 20}),
    "FitMemory": ([("numba",), ("numpy",)], {"n": 512}),
    "Threads": ([("relu", "train_step", 1), ("sigmoid", "fit", 2)], {}),
    "EveryActivation": ([(name,) for name in fastgeo.activations.ACTIVATIONS], {"batch": 64}),
    "AdamFit": ([("sigmoid", "numba"), ("relu", "numpy")], {"n": 100, "epochs": 5}),
    "Digits": ([("relu", "numba"), ("sigmoid", "numpy")], {"epochs": 2}),
    # timeraw_: the methods only return code; test_timeraw_code compiles and runs it.
    "ColdCompile": ([("forward",), ("fit",)], {}),
    "CachedLoad": ([("forward",), ("fit",)], {}),
}


@pytest.fixture(autouse=True)
def _numba_threads():
    # Suite.setup calls numba.set_num_threads: give the session its thread count back.
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


def _classes():
    for modname in MODULES:
        mod = importlib.import_module(modname)
        for name, obj in vars(mod).items():
            if (inspect.isclass(obj) and obj.__module__ == modname
                    and any(m.startswith(PREFIXES) for m in dir(obj))):
                yield name, obj


def _methods(cls):
    return [m for m in dir(cls) if m.startswith(PREFIXES)]


def test_every_benchmark_class_is_exercised():
    names = {name for name, _ in _classes()}
    assert names == set(SUBSET), "add new benchmark classes to SUBSET (or remove stale ones)"


def test_subset_values_are_real_parameters():
    for name, cls in _classes():
        for combo in SUBSET[name][0]:
            assert len(combo) == len(cls.params) == len(cls.param_names), name
            for value, values in zip(combo, cls.params):
                assert value in values, (name, value)


@pytest.mark.parametrize("name", [n for n in SUBSET if n not in ("ColdCompile", "CachedLoad")])
def test_benchmark_runs(name, monkeypatch):
    monkeypatch.setattr(common, "_BUILT", {})
    cls = dict(_classes())[name]
    combos, shrink = SUBSET[name]
    for combo in combos:
        bench = cls()
        for attr, value in shrink.items():
            setattr(bench, attr, value)
        if bench.threads_for(*combo) > numba.config.NUMBA_NUM_THREADS:
            continue  # a 1-core machine: asv skips it the same way (NotImplementedError)
        bench.setup(*combo)
        assert numba.get_num_threads() == bench.threads_for(*combo)
        for method in _methods(cls):
            bench.setup(*combo)  # asv re-runs setup before every sample
            result = getattr(bench, method)(*combo)
            if method.startswith("track_"):
                assert np.isfinite(result) and result >= 0, (name, method, combo, result)
        if hasattr(bench, "teardown"):
            bench.teardown(*combo)


def test_pruned_combinations_are_skipped_the_asv_way():
    from benchmarks.inference import Forward
    from benchmarks.training import TrainStep

    with pytest.raises(NotImplementedError, match="pruned"):
        Forward().setup("relu", "numba", 65536, "32-512-512-1", "float64")
    for combo in (("relu", "numba", "32-512-512-1", 4096, "float64"),
                  ("relu", "numba", "32-512-512-1", 256, "float32"),
                  ("sigmoid", "numpy", "2-8-8-1", 256, "float32")):
        with pytest.raises(NotImplementedError, match="pruned"):
            TrainStep().setup(*combo)


def test_training_benchmarks_restart_from_the_same_weights(monkeypatch):
    from benchmarks.training import TrainStep

    monkeypatch.setattr(common, "_BUILT", {})
    bench = TrainStep()
    combo = ("relu", "numba", "2-64-64-1", 256, "float64")
    bench.setup(*combo)
    first = bench.net.params.copy()
    bench.time_train_step(*combo)
    assert not np.array_equal(bench.net.params, first)
    bench.setup(*combo)
    np.testing.assert_array_equal(bench.net.params, first)


def test_the_suite_takes_the_shared_definitions():
    """On this commit the suite's nets, data and protocol come from fastgeo itself (the
    fallback copy is for older commits only)."""
    assert common.WORKLOADS_SOURCE.__name__ == "fastgeo.bench.workloads"
    assert common.ARTICLE_SOURCE.__name__ == "fastgeo.article.protocol"


def test_fallback_copy_agrees_with_the_shared_workloads():
    """benchmarks/_fallback.py (used for commits before the shared modules) gives the
    same parameters and data value for value: asv's results stay comparable."""
    from benchmarks import _fallback
    from fastgeo.bench import workloads as wl

    assert list(_fallback.ACTIVATIONS) == list(wl.ACTIVATIONS) == common.ACTIVATIONS
    assert _fallback.ARCHS == wl.ARCHS == common.ARCHS
    assert common.ARCHS == ["2-8-8-1", "2-64-64-1", "32-512-512-1"]  # asv's parameter values
    for arch in common.ARCHS:
        assert _fallback.sizes_of(arch) == wl.sizes_of(arch)
    for args in ((5, 3, "float32"), (4, 32, "float64", 7)):
        np.testing.assert_array_equal(_fallback.features(*args), wl.features(*args))
    for args in ((64, "float64"), (50, "float32")):
        for a, b in zip(_fallback.moons(*args), wl.moons(*args)):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_fallback_copy_agrees_with_the_article_protocol():
    from benchmarks import _fallback
    from fastgeo.article import protocol

    for key, value in _fallback.PROTOCOL.items():
        assert protocol.PROTOCOL[key] == value, key
    for act in ("sigmoid", "relu"):
        assert _fallback.GAINS[act] == protocol.GAINS[act]
    data, params, perms = common.article_setup()
    data0 = _fallback.load_data(42)
    params0, perms0 = _fallback.protocol_streams(42, [2, 8, 8, 1], 800, 300, ("sigmoid", "relu"))
    for a, b in zip(data, data0):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(perms, perms0)
    assert perms.shape == (800, 300)
    for act in ("sigmoid", "relu"):
        for a, b in zip(params[act][0] + params[act][1], params0[act][0] + params0[act][1]):
            np.testing.assert_array_equal(a, b)


def _run_code(setup, stmt, extra=""):
    # NUMBA_DISABLE_JIT: the code paths run as plain Python in a second, not compiled.
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    subprocess.run([sys.executable, "-c", setup + "\n" + stmt + "\n" + extra], check=True,
                   env=env, timeout=300)


def test_timeraw_code(tmp_path):
    """The code each timeraw_ benchmark hands asv runs in a fresh interpreter and uses the
    numba cache folder it means to (compiled for real only by asv: tens of seconds)."""
    from benchmarks import compile as bc

    cold = bc.ColdCompile()
    cold.setup("forward")
    try:
        for phase in bc.FIRST_CALL:
            stmt, setup = cold.timeraw_first_call(phase)
            _run_code(setup, stmt, "assert os.path.dirname(os.environ['NUMBA_CACHE_DIR']) == "
                      + repr(cold.root))
    finally:
        cold.teardown("forward")
    assert not os.path.exists(cold.root)

    for phase in bc.FIRST_CALL:
        stmt, setup = bc.CachedLoad().timeraw_first_call(str(tmp_path), phase)
        _run_code(setup, stmt, "assert os.environ['NUMBA_CACHE_DIR'] == " + repr(str(tmp_path)))

    _run_code(*reversed(bc.timeraw_import()))
