"""The article package (fastgeo.article: protocol, notebook transcription, report;
``fastgeo reproduce``) and its figures."""

import json

import numpy as np
import pytest

from fastgeo import article as ex
from fastgeo import cli
from fastgeo._cli_args import parse_range
from fastgeo.article import notebook, protocol

SHORT = 12  # epochs of a short protocol run


@pytest.fixture(scope="module")
def short_runs():
    return {b: ex.run_protocol(epochs=SHORT, backend=b, geometry=False)
            for b in ("numba", "numpy")}


def test_private_stream_is_the_legacy_global_stream():
    saved = np.random.get_state()
    try:
        np.random.seed(42)
        sig = [np.random.randn(2, 8), np.random.randn(8, 8), np.random.randn(8, 1)]
        np.random.seed(42)
        relu = [np.random.randn(2, 8), np.random.randn(8, 8), np.random.randn(8, 1)]
        perms = [np.random.permutation(300) for _ in range(3)]
    finally:
        np.random.set_state(saved)
    params, ours = ex.protocol_streams(42, [2, 8, 8, 1], 3, 300)
    for W, W0, fan_in in zip(params["sigmoid"][0], sig, (2, 8, 8)):
        np.testing.assert_array_equal(W, W0 * np.sqrt(1 / fan_in))
    for W, W0, fan_in in zip(params["relu"][0], relu, (2, 8, 8)):
        np.testing.assert_array_equal(W, W0 * np.sqrt(2 / fan_in))
    np.testing.assert_array_equal(ours, np.stack(perms))
    assert all(not b.any() for b in params["relu"][1])


def test_protocol_leaves_the_global_random_state_alone():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    ex.run_protocol(epochs=2, geometry=False)
    ex.run_notebook(epochs=1)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_data_split_as_the_notebook():
    Xtr, Xte, _ytr, _yte = ex.load_data()
    assert Xtr.shape == (300, 2) and Xte.shape == (100, 2)
    X = np.vstack([Xtr, Xte])  # scaled on all 400 before the split
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(X.std(axis=0), 1, rtol=1e-12)


def test_short_run_numba_equals_numpy(short_runs):
    a, b = short_runs["numba"][0], short_runs["numpy"][0]
    for act in ex.ACTIVATIONS:
        np.testing.assert_allclose(a[act]["loss_history"], b[act]["loss_history"], rtol=1e-10)
        assert a[act]["test_accuracy"] == b[act]["test_accuracy"]
        np.testing.assert_allclose(a[act]["hidden_std"], b[act]["hidden_std"], rtol=1e-10)
        for key in ("class0", "class1"):
            np.testing.assert_allclose(a[act]["signal_trace"][key],
                                       b[act]["signal_trace"][key], rtol=1e-9)
    assert a["protocol"]["far_points"] == b["protocol"]["far_points"]


def test_short_run_matches_the_notebook_transcription(short_runs):
    results, nets, _ = short_runs["numpy"]
    nb = ex.run_notebook(epochs=SHORT)
    for act in ex.ACTIVATIONS:
        # same trajectory: the 1e-9 in the notebook's logs changes only the recorded loss
        np.testing.assert_allclose(nb[act]["stable_history"], results[act]["loss_history"],
                                   rtol=1e-12)
        gap = np.abs(np.subtract(nb[act]["loss_history"], results[act]["loss_history"]))
        assert gap.max() < 1e-8
        for W, W0 in zip(nets[act].weights, nb[act]["weights"]):
            np.testing.assert_allclose(W, W0, rtol=1e-12, atol=1e-14)
        assert nb[act]["max_abs_z"] < 500  # the notebook's clip never acts


def test_notebook_accuracy_and_biases_match_fastgeo(short_runs):
    results, nets, _ = short_runs["numpy"]
    nb = ex.run_notebook(epochs=SHORT, witness=False)
    for act in ex.ACTIVATIONS:
        assert set(nb[act]) == {"loss_history", "test_accuracy", "weights", "biases"}
        assert nb[act]["test_accuracy"] == results[act]["test_accuracy"]
        for b, b0 in zip(nets[act].biases, nb[act]["biases"]):
            np.testing.assert_allclose(b, b0, rtol=1e-12, atol=1e-14)


def test_notebook_witness_sees_the_quirks():
    """The witness is not vacuous: the 1e-9 in the logs moves the recorded loss by a
    positive amount below ~1e-8, and the largest |z| is the sigmoid net's logits'."""
    nb = ex.run_notebook(epochs=3)
    for act in ex.ACTIVATIONS:
        gap = np.subtract(nb[act]["loss_history"], nb[act]["stable_history"])
        assert 0 < np.abs(gap).max() < 1e-8
        assert 0 < nb[act]["max_abs_z"] < 500
    assert nb["relu"]["max_abs_z"] != nb["sigmoid"]["max_abs_z"]


def test_notebook_net_rejects_what_the_notebook_has_not():
    params, _ = ex.protocol_streams(42, [2, 8, 8, 1], 1, 300)
    with pytest.raises(ValueError, match="sigmoid and relu"):
        notebook.NotebookMLP(*params["relu"], "tanh")
    with pytest.raises(ValueError, match="three layers"):
        notebook.NotebookMLP(params["relu"][0][:2], params["relu"][1][:2], "relu")


def test_streams_without_nets_give_the_same_permutations():
    _, perms = ex.protocol_streams(7, [2, 8, 8, 8, 1], 4, 300)
    _, alone = ex.protocol_streams(7, [2, 8, 8, 8, 1], 4, 300, activations=())
    np.testing.assert_array_equal(perms, alone)
    with pytest.raises(ValueError, match="no weight gain"):
        ex.protocol_streams(7, [2, 8, 1], 1, 300, activations=("swish",))


def test_train_size_is_the_split_s():
    assert protocol.n_train() == ex.load_data()[0].shape[0] == 300


def test_experiment_module_is_an_alias_of_the_package():
    from fastgeo import experiment

    assert experiment.run_protocol is ex.run_protocol
    assert experiment.notebook_fit is ex.run_notebook
    assert experiment.ARTICLE is ex.ARTICLE and experiment.parse_range is parse_range


def test_full_protocol_reproduces_the_article():
    """The whole 800-epoch protocol (well under a second of training on numba)."""
    results, _, _ = ex.run_protocol(geometry=False)
    rows = ex.article_rows(results)
    assert [label for label, *_, ok in rows if ok is False] == []
    assert f"{results['sigmoid']['final_loss']:.4f}" == "0.2822"
    assert f"{results['relu']['final_loss']:.4f}" == "0.0353"
    assert results["protocol"]["far_points"] == {"class0": 102, "class1": 2}


def test_short_run_is_reported_as_not_reproduced(short_runs):
    text = ex.format_report(short_runs["numba"][0])
    assert "NOT reproduced" in text
    assert "article values reproduced" in text


def _check_contract(res, epochs):
    assert set(res) >= {"sigmoid", "relu", "protocol"}
    for act in ("sigmoid", "relu"):
        r = res[act]
        assert set(r) >= {"final_loss", "test_accuracy", "hidden_std", "signal_trace",
                          "loss_history"}
        assert isinstance(r["final_loss"], float) and isinstance(r["test_accuracy"], float)
        assert len(r["hidden_std"]) == 2
        assert set(r["signal_trace"]) == {"class0", "class1"}
        assert all(len(v) == 5 for v in r["signal_trace"].values())
        assert len(r["loss_history"]) == epochs
        assert all(isinstance(v, float) for v in r["loss_history"])
        assert r["final_loss"] == r["loss_history"][-1]
    p = res["protocol"]
    assert p["epochs"] == epochs and p["lr"] == 0.05 and p["batch_size"] == 64
    assert p["sizes"] == [2, 8, 8, 1] and p["net_seed"] == 42 and p["data_seed"] == 42


def test_json_contract(tmp_path, capsys):
    path = tmp_path / "r.json"
    assert cli.main(["reproduce", "--epochs", "4", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "NOT reproduced" in out and "geometry" in out
    res = json.loads(path.read_text())
    _check_contract(res, 4)
    g = res["relu"]["geometry"]
    assert [layer["layer"] for layer in g["layers"]] == [1, 2]


def test_seeds_summary(tmp_path, capsys):
    path = tmp_path / "s.json"
    assert cli.main(["reproduce", "--seeds", "0-1", "--data-seeds", "3", "--epochs", "3",
                     "--no-geometry", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mean +- std over 2 runs" in out and "/2" in out
    res = json.loads(path.read_text())
    assert len(res["runs"]) == 2
    assert [r["protocol"]["net_seed"] for r in res["runs"]] == [0, 1]
    assert all(r["protocol"]["data_seed"] == 3 for r in res["runs"])
    acc = res["summary"]["relu"]["test_accuracy"]
    vals = [r["relu"]["test_accuracy"] for r in res["runs"]]
    assert acc["n"] == 2 and acc["mean"] == pytest.approx(np.mean(vals))
    assert acc["std"] == pytest.approx(np.std(vals))


def test_notebook_flag(capsys):
    assert cli.main(["reproduce", "--epochs", "3", "--no-geometry", "--notebook"]) == 0
    out = capsys.readouterr().out
    assert "clip never acts" in out


@pytest.mark.parametrize("text,want", [("0-3", [0, 1, 2, 3]), ("5", [5]),
                                       ("1,3-4", [1, 3, 4])])
def test_parse_range(text, want):
    assert parse_range(text) == want


@pytest.mark.parametrize("text", ["", "3-1", "a", "-2"])
def test_parse_range_rejects(text):
    with pytest.raises(ValueError):
        parse_range(text)


def test_bad_arguments_exit_2(capsys):
    assert cli.main(["reproduce", "--seeds", "4-2"]) == 2
    assert cli.main(["reproduce", "--epochs", "0"]) == 2
    assert "fastgeo reproduce" in capsys.readouterr().err


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_figure_is_written(tmp_path, short_runs, capsys):
    pytest.importorskip("matplotlib")
    assert cli.main(["reproduce", "--epochs", "3", "--no-geometry",
                     "--plots", str(tmp_path / "figs")]) == 0
    names = {"dataset.png", "loss_curves.png", "decision_boundaries.png",
             "signal_traces.png", "hidden_space.png"}
    assert {p.name for p in (tmp_path / "figs").iterdir()} == names
    assert all(_is_png(tmp_path / "figs" / n) for n in names)
    from fastgeo import plots
    runs = [short_runs["numba"][0], short_runs["numpy"][0]]
    (_path,) = plots.seeds_figures(runs, str(tmp_path / "seeds"), "two runs")
    assert _is_png(tmp_path / "seeds" / "seeds_summary.png")


def test_plots_without_matplotlib(monkeypatch, capsys):
    import sys

    from fastgeo import plots
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"fastgeo\[plot\]"):
        plots.require_matplotlib()
    assert cli.main(["reproduce", "--epochs", "2", "--plots", "nowhere"]) == 2
    assert "pip install" in capsys.readouterr().err


def test_reproduce_with_another_optimizer(tmp_path, capsys):
    """--optimizer adam trains the same nets on the same data and orders with Adam, and
    says the article's numbers are not expected to match."""
    path = tmp_path / "adam.json"
    assert cli.main(["reproduce", "--optimizer", "adam", "--lr", "0.01", "--epochs", "5",
                     "--no-geometry", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "adam at lr 0.01" in out and "not expected to match" in out
    res = json.loads(path.read_text())
    assert res["protocol"]["optimizer"] == "adam" and res["protocol"]["lr"] == 0.01
    sgd, _, _ = ex.run_protocol(epochs=5, geometry=False)
    assert res["sigmoid"]["final_loss"] != sgd["sigmoid"]["final_loss"]
    assert cli.main(["reproduce", "--optimizer", "adam", "--lr", "-1"]) == 2
