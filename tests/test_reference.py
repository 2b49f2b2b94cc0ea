"""The reference itself against central finite differences, and its documented conventions."""

import numpy as np
import pytest
from helpers import ACTIVATIONS, data

import fastgeo
from fastgeo import reference


def numeric_gradient(weights, biases, X, Y, activation, eps=1e-6):
    grads = []
    for p in weights + biases:
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = reference.loss(weights, biases, X, Y, activation)
            p[idx] = old - eps
            down = reference.loss(weights, biases, X, Y, activation)
            p[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes", [(2, 5, 1), (3, 4, 4, 2), (2, 3, 3, 3, 1)], ids=str)
def test_gradients_match_finite_differences(sizes, activation):
    weights, biases = reference.init_params(sizes, activation, seed=1)
    for b in biases:  # non-zero biases, so their gradients are exercised off the origin
        b += np.random.RandomState(2).randn(*b.shape) * 0.1
    X, y = data(13, sizes[0], sizes[-1], seed=3)
    Y = y.reshape(13, -1)
    dWs, dbs = reference.gradients(weights, biases, X, Y, activation)
    numeric = numeric_gradient(weights, biases, X, Y, activation)
    for analytic, approx in zip(dWs + dbs, numeric):
        np.testing.assert_allclose(analytic, approx, rtol=1e-5, atol=1e-8)


def test_bce_from_logits_matches_the_textbook_formula():
    z = np.linspace(-20, 20, 41)
    y = (np.arange(41) % 2).astype(float)
    p = 1 / (1 + np.exp(-z))
    textbook = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert reference.bce_from_logits(z, y) == pytest.approx(textbook, rel=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_bce_are_stable_for_huge_logits(dtype):
    z = np.array([-1e6, -1e3, -50, 0, 50, 1e3, 1e6], dtype=dtype)
    s = reference.sigmoid(z)  # pytest turns any overflow RuntimeWarning into an error
    assert np.all(np.isfinite(s)) and s[0] == 0 and s[-1] == 1 and s[3] == 0.5
    y = np.array([0, 1, 0, 1, 1, 0, 1], dtype=dtype)
    loss = reference.bce_from_logits(z, y)
    assert np.isfinite(loss)
    # the two wrong-side logits (-1e3 with y=1, 1e3 with y=0) cost |z| each, z=0 costs log 2
    assert loss == pytest.approx((2e3 + np.log(2)) / 7, rel=1e-6)


def test_relu_derivative_at_zero_is_zero():
    z = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(fastgeo.activations.relu_derivative(z, z), [0, 0, 1])
    np.testing.assert_array_equal(fastgeo.activations.leaky_relu_derivative(z, z),
                                  [0.01, 0.01, 1])


@pytest.mark.parametrize("init, scale", [("he", lambda i, o: np.sqrt(2 / i)),
                                         ("xavier", lambda i, o: np.sqrt(1 / i)),
                                         ("glorot", lambda i, o: np.sqrt(2 / (i + o)))])
def test_init_draws_randn_layer_by_layer(init, scale):
    weights, biases = reference.init_params((2, 8, 8, 1), init=init, seed=42)
    rng = np.random.RandomState(42)
    for W, b, (i, o) in zip(weights, biases, [(2, 8), (8, 8), (8, 1)]):
        np.testing.assert_array_equal(W, rng.randn(i, o) * scale(i, o))
        np.testing.assert_array_equal(b, np.zeros(o))


@pytest.mark.parametrize("activation, init", [("relu", "he"), ("leaky_relu", "he"),
                                              ("sigmoid", "xavier"), ("tanh", "xavier")])
def test_default_init_per_activation(activation, init):
    a = fastgeo.MLP((2, 8, 1), activation, seed=5)
    b = fastgeo.MLP((2, 8, 1), activation, init=init, seed=5)
    np.testing.assert_array_equal(a.params, b.params)
    assert a.init == init


def test_minstd_permutation_is_a_permutation_and_depends_on_the_seed():
    p1, s1 = reference.permutation(100, reference.shuffle_state(1))
    p2, _ = reference.permutation(100, reference.shuffle_state(2))
    p3, _ = reference.permutation(100, s1)
    assert sorted(p1) == list(range(100))
    assert not np.array_equal(p1, p2) and not np.array_equal(p1, p3)
