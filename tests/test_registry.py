"""The activation registry is the one place an activation is defined: every consumer
(kernels, reference, MLP, estimator, export, geometry, article protocol, sweep, plots,
fastgeo bench and its peers, asv) takes every entry. Adding an entry to
``fastgeo/activations.py`` and nothing else must pass this file."""

import importlib.util
import os
import pickle
import sys

import numpy as np
import pytest

import fastgeo
from fastgeo import activations, geometry, reference
from fastgeo.article import protocol
from fastgeo.bench import command, peers
from fastgeo.bench import workloads as wl

NAMES = sorted(activations.ACTIVATIONS)
every = pytest.mark.parametrize("name", NAMES)


def test_codes_are_distinct_and_unknown_codes_are_refused():
    codes = [a.code for a in activations.ACTIVATIONS.values()]
    assert len(set(codes)) == len(codes) and min(codes) >= 0
    assert activations.IDENTITY not in codes
    with pytest.raises(ValueError, match="activation must be one of"):
        activations.get("swish")


@every
def test_entry_is_complete(name):
    act = activations.get(name)
    assert act.name == name
    assert act.kind in activations.KINDS
    assert (act.saturated is not None) == (act.kind == "bounded")
    assert act.default_init in reference.INITS
    assert act.gain > 0
    assert pickle.loads(pickle.dumps(act)) is act
    mpl_colors = pytest.importorskip("matplotlib.colors")
    assert mpl_colors.is_color_like(act.color)


@every
def test_compiled_branches_exist(name):
    """Each code has its own compiled branches (an unknown code gives NaN, never another
    activation), and the kernels keep z exactly for entries whose derivative needs it."""
    if os.environ.get("NUMBA_DISABLE_JIT", "0") != "0":
        pytest.skip("compiled dispatch")
    act = activations.get(name)
    assert bool(_needs_z(act.code)) == act.derivative_needs_z
    z = np.linspace(-3, 3, 64)
    net = fastgeo.MLP((1, 3, 1), name, seed=2)
    zs, acts = net.forward_trace(z[:, None])  # the compiled f on the hidden layer's z
    np.testing.assert_allclose(acts[1], act.value(zs[0]), rtol=1e-10, atol=1e-300)


def _needs_z(code):
    from numba import njit

    @njit
    def probe(c):
        return activations.needs_z(c)

    return probe(code)


@every
def test_numpy_derivative_matches_finite_differences(name):
    act = activations.get(name)
    z = np.concatenate([np.linspace(-6, -0.05, 40), np.linspace(0.05, 6, 40)])
    h = 1e-6
    numeric = (act.value(z + h) - act.value(z - h)) / (2 * h)
    np.testing.assert_allclose(act.derivative(z, act.value(z)), numeric, rtol=1e-6,
                               atol=1e-9)


@every
def test_geometry_reports_by_kind(name):
    net = fastgeo.MLP((2, 6, 6, 1), name, seed=0)
    X = np.random.RandomState(0).randn(60, 2)
    y = (X[:, 0] > 0).astype(int)
    out = geometry.diagnose(net, X, y)
    kind = activations.get(name).kind
    for layer in out["layers"]:
        assert (layer["saturated_fraction"] is not None) == (kind == "bounded")
        assert (layer["dead_fraction"] is not None) == (kind in ("rectified", "gated"))
        assert (layer["inactive_fraction"] is not None) == (kind in ("rectified", "gated"))
        assert 0 <= layer["probe_accuracy"] <= 1


@every
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_fits_and_predicts(name):
    from sklearn.datasets import make_moons

    X, y = make_moons(120, noise=0.1, random_state=0)
    clf = fastgeo.MLPClassifier(hidden_layer_sizes=(8,), activation=name, max_iter=200,
                                random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (120, 2) and np.all(np.isfinite(proba))
    assert clf.score(X, y) > 0.75  # a linear boundary gets ~0.85 on these moons


@every
def test_onnx_export_runs_in_onnxruntime(name):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from fastgeo.export import to_onnx

    for dtype, atol in (("float32", 1e-6), ("float64", 1e-13)):
        net = fastgeo.MLP((3, 5, 4, 2), name, seed=1, dtype=dtype)
        X = np.random.RandomState(0).randn(40, 3).astype(dtype) * 2
        sess = ort.InferenceSession(to_onnx(net).SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(sess.run(None, {"X": X})[0], net.forward(X), rtol=0,
                                   atol=atol)


@every
def test_article_protocol_gain_and_streams(name):
    assert protocol.gain(name) == activations.get(name).gain
    params, _ = protocol.protocol_streams(42, [2, 8, 8, 1], 1, 300, activations=(name,))
    W1 = params[name][0][0]
    ref = np.random.RandomState(42).randn(2, 8) * np.sqrt(activations.get(name).gain / 2)
    np.testing.assert_array_equal(W1, ref)


@every
def test_sweep_and_its_figures(name, tmp_path):
    from fastgeo import sweep

    results = sweep.run_sweep([1], [name], [0], epochs=3, workers=1, probe=False)
    assert results[0]["activation"] == name
    assert (results[0]["saturated_or_dead"] is None) == (activations.get(name).kind == "linear")
    summary = sweep.summarize(results)
    assert name in sweep.format_tables(summary, [name], [1])
    pytest.importorskip("matplotlib")
    from fastgeo import plots

    assert plots.COLORS[name] == activations.get(name).color
    assert [os.path.basename(p) for p in plots.sweep_figures(summary, tmp_path)] == ["sweep.png"]


@every
def test_bench_plans_it_and_every_peer_has_it_or_says_not(name):
    import argparse

    sub = argparse.ArgumentParser().add_subparsers()
    command.add_parser(sub)
    args = sub.choices["bench"].parse_args(["--activations", name, "--workloads", "B-fwd-4096"])
    families, skipped = command.plan(args)
    planned = {impl: [t["activation"] for t in tasks if t["activation"]]  # not fma, peak
               for impl, tasks in families}
    assert planned["fastgeo"] == [name]
    assert planned["numpy"] == [name]
    act = activations.get(name)
    if importlib.util.find_spec("sklearn") and act.sklearn is not None:
        from sklearn.neural_network._base import ACTIVATIONS as SKLEARN

        assert act.sklearn in SKLEARN
    z = np.linspace(-4, 4, 41).astype(np.float32)
    for lib, spec in (("torch", act.torch), ("jax", act.jax)):
        if importlib.util.find_spec(lib) is None:
            continue
        fn = peers.library_function(spec)
        if lib == "torch":
            import torch

            got = fn(torch.from_numpy(z)).numpy()
        else:
            got = np.asarray(fn(z))
        np.testing.assert_allclose(got, act.value(z.astype(np.float64)), rtol=2e-6,
                                   atol=2e-6, err_msg=lib)


def test_asv_tracks_every_activation():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)
    try:
        from benchmarks.every_activation import EveryActivation
    finally:
        sys.path.remove(root)
    assert EveryActivation.params == [NAMES] or sorted(EveryActivation.params[0]) == NAMES
    assert set(wl.ACTIVATIONS) <= set(NAMES)
