"""The backends as objects behind one interface: ``MLP`` has no backend branches, both
backends implement the same methods, and nets pickled with the state ``MLP`` has always
had still load (the backend object is rebuilt, never pickled)."""

import ast
import copy
import inspect
import os
import pickle

import numpy as np
import pytest

import fastgeo
from fastgeo import backends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _names(node):
    return {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node)
            if isinstance(n, (ast.Name, ast.Attribute))}


def test_mlp_has_no_backend_branches():
    """No comparison or test of the backend's name in mlp.py (only the check that the
    name is a known one), and no direct call into either backend's module."""
    with open(os.path.join(ROOT, "fastgeo", "mlp.py")) as f:
        tree = ast.parse(f.read())
    branches = []
    for node in ast.walk(tree):
        tests = [node.test] if isinstance(node, (ast.If, ast.IfExp, ast.While)) else []
        tests += [node] if isinstance(node, ast.Compare) else []
        for test in tests:
            known_name = (isinstance(test, ast.Compare) and isinstance(test.ops[0], ast.NotIn)
                          and _names(test.comparators[0]) == {"BACKENDS"})
            if "backend" in _names(test) and not known_name:
                branches.append(f"line {test.lineno}: {ast.unparse(test)}")
    assert branches == []
    used = {(n.value.id, n.attr) for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    assert not {m for m, _ in used} & {"kernels", "numba"}
    assert {a for m, a in used if m == "reference"} <= {"INITS", "init_params"}


def _public_methods(cls):
    return {name for name, _ in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


def test_backends_implement_the_whole_interface():
    interface = _public_methods(backends.Backend)
    assert set(backends.BACKENDS) == set(fastgeo.BACKENDS) == {"numba", "numpy"}
    assert tuple(backends.BACKENDS) == fastgeo.BACKENDS
    for name, cls in backends.BACKENDS.items():
        assert issubclass(cls, backends.Backend) and cls.name == name
        assert _public_methods(cls) == interface
        for method in interface:
            # every abstract method is overridden, with the interface's signature
            if getattr(backends.Backend, method) is not getattr(cls, method):
                assert (inspect.signature(getattr(cls, method))
                        == inspect.signature(getattr(backends.Backend, method))), method
            source = inspect.getsource(getattr(cls, method))
            assert "NotImplementedError" not in source, (name, method)


@pytest.mark.parametrize("backend", fastgeo.BACKENDS)
def test_pickle_and_deepcopy_rebuild_the_backend(backend):
    net = fastgeo.MLP((2, 5, 1), "tanh", seed=3, backend=backend)
    X = np.random.RandomState(0).randn(7, 2)
    y = (X[:, 0] > 0).astype(float)
    for other in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert other.backend == backend and type(other._backend) is type(net._backend)
        np.testing.assert_array_equal(other.forward(X), net.forward(X))
        other.train_step(X, y, 0.5)  # trains its own buffer, through its own views
        assert not np.array_equal(other.params, net.params)
        for W in other.weights + other.biases:
            assert np.shares_memory(W, other.params)


@pytest.mark.parametrize("backend", fastgeo.BACKENDS)
def test_a_pickle_of_the_state_mlp_always_had_loads(backend):
    """The state before backends were objects: these keys, no backend object (heads came
    later: a state without one is a sigmoid net)."""
    net = fastgeo.MLP((2, 4, 1), seed=2, backend=backend)
    state = {"sizes": net.sizes, "_act": net._act, "dtype": net.dtype, "backend": backend,
             "_sizes": np.array(net.sizes, dtype=np.int64), "_macs": net.macs_per_sample,
             "params": net.params.copy(), "init": net.init}
    assert net.__getstate__().keys() == state.keys() | {"_head"}
    old = fastgeo.MLP.__new__(fastgeo.MLP)
    old.__setstate__(state)
    X = np.random.RandomState(1).randn(5, 2)
    np.testing.assert_array_equal(old.forward(X), net.forward(X))
    assert old.head == "sigmoid"
    assert old.weights[0].base is not None and np.shares_memory(old.weights[0], old.params)
