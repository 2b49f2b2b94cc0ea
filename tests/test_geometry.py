"""fastgeo.geometry on inputs whose answers can be worked out by hand."""

import math

import numpy as np
import pytest

import fastgeo
from fastgeo import geometry as geo


def test_effective_rank_of_equal_singular_values_is_their_count():
    H = np.array([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
    assert geo.effective_rank(H) == pytest.approx(3.0)
    assert geo.effective_rank(H[:4, :2]) == pytest.approx(2.0)


def test_effective_rank_known_spectrum():
    # centred columns with singular values 3 and 1: p = (3/4, 1/4)
    H = np.array([[3.0, 0], [-3, 0], [0, 1], [0, -1]]) / math.sqrt(2)
    want = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert geo.effective_rank(H) == pytest.approx(want)


def test_effective_rank_degenerate():
    assert geo.effective_rank(np.outer(np.arange(5.0), [1.0, 2.0, -1.0])) == pytest.approx(1.0)
    assert geo.effective_rank(np.zeros((4, 3))) == 0.0
    const = np.ones((4, 3))
    assert geo.effective_rank(const) == 0.0  # centred: no spread
    assert geo.effective_rank(const, center=False) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        geo.effective_rank(np.ones(3))


def test_saturated_fraction():
    a = np.array([[0.01, 0.5], [0.97, 0.96]])
    assert geo.saturated_fraction(a, "sigmoid") == 0.75
    assert geo.saturated_fraction(np.array([-0.99, 0.0, 0.5, 0.951]), "tanh") == 0.5
    assert geo.saturated_fraction(a, "relu") is None


def test_dead_fraction():
    z = np.array([[-1.0, 1.0, 0.0], [-2.0, 0.0, 0.0]])
    assert geo.dead_fraction(z, "relu") == pytest.approx(2 / 3)  # z <= 0 everywhere: dead
    assert geo.dead_fraction(z, "leaky_relu") == pytest.approx(2 / 3)
    assert geo.dead_fraction(z, "sigmoid") is None


def test_probe_accuracy():
    H = np.array([[0.0, 1], [0.1, 2], [1.0, 0], [1.1, 3]])
    y = np.array([0, 0, 1, 1])
    assert geo.probe_accuracy(H, y) == 1.0
    # XOR is not linearly separable: a linear probe cannot get all four
    X = np.array([[0.0, 0], [1, 1], [0, 1], [1, 0]])
    assert geo.probe_accuracy(X, np.array([0, 0, 1, 1])) < 1.0
    assert geo.probe_accuracy(H, np.zeros(4), H, np.array([0, 0, 0, 1])) == 0.75


@pytest.mark.parametrize("backend", fastgeo.BACKENDS)
def test_diagnose_hand_built_relu_net(backend):
    # 2-2-1 with W1 = I, b1 = 0: z1 = X, a1 = relu(X)
    net = fastgeo.MLP.from_params([np.eye(2), np.ones((2, 1))], [np.zeros(2), np.zeros(1)],
                                  activation="relu", backend=backend)
    X = np.array([[1.0, -1.0], [2.0, -3.0], [3.0, -0.5], [0.5, -2.0]])
    y = np.array([0, 1, 1, 0])
    d = geo.diagnose(net, X, y)
    assert d["activation"] == "relu" and d["n_samples"] == 4
    (layer,) = d["layers"]
    assert layer["layer"] == 1
    assert layer["z_std"] == pytest.approx(X.std())
    assert layer["z_range"] == [-3.0, 3.0]
    assert layer["a_std"] == pytest.approx(np.maximum(X, 0).std())
    assert layer["a_range"] == [0.0, 3.0]
    assert layer["dead_fraction"] == 0.5  # unit 2 never fires
    assert layer["inactive_fraction"] == 0.5
    assert layer["saturated_fraction"] is None
    assert layer["effective_rank"] == pytest.approx(1.0)  # one live unit
    assert 0 <= layer["probe_accuracy"] <= 1
    assert d["input_effective_rank"] == pytest.approx(geo.effective_rank(X))


def test_diagnose_sigmoid_net_and_test_split():
    net = fastgeo.MLP((2, 4, 3, 1), "sigmoid", seed=1)
    rng = np.random.RandomState(0)
    X, Xt = rng.randn(40, 2), rng.randn(20, 2)
    y, yt = (X[:, 0] > 0).astype(int), (Xt[:, 0] > 0).astype(int)
    d = geo.diagnose(net, X, y, Xt, yt)
    assert [layer["layer"] for layer in d["layers"]] == [1, 2]
    _zs, acts = net.forward_trace(Xt)
    for l, layer in enumerate(d["layers"], start=1):
        assert layer["a_std"] == pytest.approx(acts[l].std())
        assert layer["saturated_fraction"] == pytest.approx(
            np.mean((acts[l] < 0.05) | (acts[l] > 0.95)))
        assert layer["dead_fraction"] is None
        assert 0 < layer["effective_rank"] <= 4
    assert geo.diagnose(net, X)["layers"][0]["probe_accuracy"] is None
    with pytest.raises(ValueError):
        geo.diagnose(net, X, y, Xt)


def test_diagnose_probe_last_only():
    net = fastgeo.MLP((2, 4, 4, 4, 1), "tanh", seed=2)
    X = np.random.RandomState(1).randn(30, 2)
    y = (X.sum(axis=1) > 0).astype(int)
    d = geo.diagnose(net, X, y, probe="last")
    assert [layer["probe_accuracy"] is None for layer in d["layers"]] == [True, True, False]
    assert d["input_probe_accuracy"] is None
    full = geo.diagnose(net, X, y)
    assert full["layers"][-1]["probe_accuracy"] == d["layers"][-1]["probe_accuracy"]
    with pytest.raises(ValueError):
        geo.diagnose(net, X, y, probe="first")
