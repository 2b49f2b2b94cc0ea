"""fastgeo.sweep: the depth x activation x seed grid, on tiny epochs."""

import io
import json

import numpy as np
import pytest

from fastgeo import article as ex
from fastgeo import cli
from fastgeo import sweep as sw

GRID = {"depths": [1, 2], "activations": ["sigmoid", "relu"], "seeds": [0, 1], "epochs": 4}


@pytest.fixture(scope="module")
def threaded():
    return sw.run_sweep(**GRID, workers=2, probe=False)


def test_grid_order_and_contents(threaded):
    keys = [(r["activation"], r["depth"], r["seed"]) for r in threaded]
    assert keys == [(a, d, s) for a in GRID["activations"] for d in GRID["depths"]
                    for s in GRID["seeds"]]
    for r in threaded:
        assert not r["diverged"]
        assert r["sizes"] == [2] + [8] * r["depth"] + [1]
        assert 0 <= r["test_accuracy"] <= 1 and r["final_loss"] > 0
        assert len(r["geometry"]["layers"]) == r["depth"]
        assert r["last_probe_accuracy"] is None


def test_threads_give_the_serial_results(threaded):
    serial = sw.run_sweep(**GRID, workers=1, probe=False)
    for a, b in zip(threaded, serial):
        for m in ("test_accuracy", "final_loss", "last_effective_rank", "saturated_or_dead"):
            assert a[m] == b[m]


def test_depth_2_seed_42_is_the_reproduce_protocol():
    runs = sw.run_sweep([2], ["sigmoid", "relu"], [42], epochs=5, workers=1, probe=False)
    results, _, _ = ex.run_protocol(epochs=5, geometry=False)
    for r in runs:
        assert r["final_loss"] == results[r["activation"]]["final_loss"]
        assert r["test_accuracy"] == results[r["activation"]]["test_accuracy"]


def test_summary(threaded):
    s = sw.summarize(threaded)
    assert set(s) == {"sigmoid", "relu"} and set(s["relu"]) == {"1", "2"}
    cell = s["relu"]["2"]["test_accuracy"]
    vals = [r["test_accuracy"] for r in threaded if r["activation"] == "relu"
            and r["depth"] == 2]
    assert cell["n"] == 2 and cell["diverged"] == 0
    assert cell["mean"] == pytest.approx(np.mean(vals))
    assert cell["std"] == pytest.approx(np.std(vals))
    text = sw.format_tables(s, ["sigmoid", "relu"], [1, 2])
    assert "test accuracy" in text and "effective rank" in text


def test_diverged_run_is_recorded():
    data = ex.load_data()
    perms = sw.permutations_for(0, (2, 8, 8, 8, 1), 3, 300)
    r = sw.train_one("relu", 3, 0, 8, data, perms, 3, 1e300, 64, False)
    assert r["diverged"] and r["test_accuracy"] is None and "non-finite" in r["error"]
    s = sw.summarize([r])
    assert s["relu"]["3"]["test_accuracy"] == {"mean": None, "std": None, "n": 0,
                                               "diverged": 1}
    assert "diverged" in sw.format_tables(s, ["relu"], [3])


def test_progress_bar_text():
    out = io.StringIO()
    bar = sw.ProgressBar(4, stream=out)
    for _ in range(4):
        bar.update()
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("sweep [" + "#" * 30 + "] 4/4")
    silent = io.StringIO()
    sw.ProgressBar(2, stream=silent, enabled=False).update()
    assert silent.getvalue() == ""


def test_cli_json_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "sweep.json"
    assert cli.main(["sweep", "--depths", "1-2", "--seeds", "0", "--epochs", "3",
                     "--activations", "tanh,leaky_relu", "--json", str(path),
                     "--plots", str(tmp_path / "figs")]) == 0
    captured = capsys.readouterr()
    assert "2/4" in captured.err or "4/4" in captured.err  # the progress bar, on stderr
    assert "linear-probe accuracy" in captured.out
    res = json.loads(path.read_text())
    assert len(res["runs"]) == 4 and res["config"]["depths"] == [1, 2]
    assert res["summary"]["tanh"]["2"]["last_probe_accuracy"]["n"] == 1
    png = (tmp_path / "figs" / "sweep.png").read_bytes()
    assert len(png) > 1000 and png[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv", [["--depths", "0-2"], ["--activations", "swish"],
                                  ["--width", "0"], ["--seeds", "x"], ["--workers", "0"],
                                  ["--optimizers", "rmsprop"], ["--optimizers", "adam@-1"],
                                  ["--optimizers", ","]])
def test_bad_arguments_exit_2(argv, capsys):
    assert cli.main(["sweep", *argv]) == 2
    assert "fastgeo sweep" in capsys.readouterr().err


def test_optimizers_axis(tmp_path, capsys):
    """--optimizers: one column per activation x optimiser setting; the sgd column is the
    article's recipe (the same runs as a plain sweep), the others train differently."""
    path = tmp_path / "opt.json"
    assert cli.main(["sweep", "--depths", "1", "--seeds", "0-1", "--epochs", "5",
                     "--activations", "sigmoid,relu", "--optimizers", "sgd,adam@0.01,momentum",
                     "--no-probe", "--no-progress", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sigmoid adam@0.01" in out and "relu momentum@0.05" in out
    res = json.loads(path.read_text())
    assert [c["name"] for c in res["config"]["optimizers"]] == ["sgd", "adam", "momentum"]
    assert len(res["runs"]) == 12
    plain = sw.run_sweep([1], ["sigmoid", "relu"], [0, 1], epochs=5, workers=1, probe=False)
    by_label = {(r["label"], r["seed"]): r for r in res["runs"]}
    for r in plain:
        assert by_label[(r["activation"] + " sgd@0.05", r["seed"])]["final_loss"] == \
            r["final_loss"]
        assert by_label[(r["activation"] + " adam@0.01", r["seed"])]["final_loss"] != \
            r["final_loss"]


def test_parse_optimizers():
    assert ex.parse_optimizers("sgd,adam@0.01,momentum") == [
        ("sgd", 0.05), ("adam", 0.01), ("momentum", 0.05)]
    assert ex.parse_optimizers("adam", lr=0.003) == [("adam", 0.003)]
    with pytest.raises(ValueError, match="unknown optimizer"):
        ex.parse_optimizers("lbfgs")
