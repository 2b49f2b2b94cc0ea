"""Numerical stability: sigmoid and binary cross-entropy for |z| up to 1e6, float32 and
float64, NumPy reference and compiled kernels, with no warning of any kind."""

import warnings

import numpy as np
import pytest

import fastgeo
from fastgeo import activations, reference

DTYPES = [np.float32, np.float64]
BACKENDS = ["numba", "numpy"]
Z = np.array([-1e6, -1e4, -800.0, -100.0, -40.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 40.0, 100.0,
              800.0, 1e4, 1e6])


@pytest.fixture(autouse=True)
def all_warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def expected_bce(z, y):
    """BCE(sigmoid(z), y) in float64 with the asymptotes written out."""
    z = np.asarray(z, dtype=np.float64)
    return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_sigmoid(dtype):
    z = Z.astype(dtype)
    s = activations.sigmoid(z)
    assert s.dtype == dtype
    assert np.isfinite(s).all() and ((s >= 0) & (s <= 1)).all()
    assert (np.diff(s) >= 0).all()  # monotone
    assert s[0] == 0 and s[-1] == 1
    assert s[Z == 0][0] == 0.5
    np.testing.assert_allclose(s + activations.sigmoid(-z), 1, rtol=0, atol=np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("y", [0.0, 1.0])
def test_reference_bce(dtype, y):
    z = Z.astype(dtype)
    for zi in z:
        value = reference.bce_from_logits(np.array([[zi]]), np.array([[y]], dtype=dtype))
        assert np.isfinite(value)
        np.testing.assert_allclose(value, expected_bce(zi, y), rtol=1e-6, atol=1e-7)


def one_unit_net(w, dtype, backend, hidden=None):
    """x -> z = w * x (logit), or through one hidden unit with activation `hidden`."""
    if hidden is None:
        return fastgeo.MLP.from_params([np.array([[w]])], [np.zeros(1)], backend=backend,
                                       dtype=dtype)
    return fastgeo.MLP.from_params([np.array([[w]]), np.array([[1.0]])],
                                   [np.zeros(1), np.zeros(1)], activation=hidden,
                                   backend=backend, dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_output_sigmoid_loss_gradient_at_extreme_logits(dtype, backend):
    net = one_unit_net(1.0, dtype, backend)
    X = Z.reshape(-1, 1)
    p = net.forward(X)[:, 0]
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert p[0] == 0 and p[-1] == 1
    for y in (0.0, 1.0):
        Y = np.full((len(Z), 1), y)
        for i in range(len(Z)):  # one sample at a time: the loss of each logit
            value = net.loss(X[i:i + 1], Y[i:i + 1])
            np.testing.assert_allclose(value, expected_bce(Z[i], y), rtol=1e-6, atol=1e-7)
        dWs, dbs = net.gradients(X, Y)
        assert all(np.isfinite(g).all() for g in dWs + dbs)
        # d loss / d z = (sigmoid(z) - y) / n; dW = mean of x * that
        expected = np.mean((reference.sigmoid(Z) - y) * Z)
        np.testing.assert_allclose(dWs[0][0, 0], expected,
                                   rtol=1e-5 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", sorted(fastgeo.ACTIVATIONS))
def test_hidden_activations_at_extreme_inputs(hidden, dtype, backend):
    net = one_unit_net(1.0, dtype, backend, hidden=hidden)
    X = Z.reshape(-1, 1)
    p = net.forward(X)
    assert np.isfinite(p).all()
    Y = (Z > 0).astype(float).reshape(-1, 1)
    assert np.isfinite(net.loss(X, Y))
    dWs, dbs = net.gradients(X, Y)
    assert all(np.isfinite(g).all() for g in dWs + dbs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_training_on_saturated_logits_stays_finite(dtype, backend):
    """Confidently wrong labels at |z| = 1e6: the loss is ~1e6 but finite, one SGD step
    moves the weight by a finite amount, and a fit either stays finite or raises
    FloatingPointError (never a warning, never NaN parameters)."""
    net = one_unit_net(1.0, dtype, backend)
    X = np.array([[1e6], [-1e6]])
    Y = np.array([[0.0], [1.0]])
    loss = net.train_step(X, Y, 1e-3)
    np.testing.assert_allclose(loss, 1e6, rtol=1e-6)
    assert np.isfinite(net.params).all()
    try:
        history = net.fit(X, Y, 5, 1e-3)
    except FloatingPointError:
        pass
    else:
        assert np.isfinite(history).all()
    assert np.isfinite(net.params).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_classifier_probabilities_at_extreme_logits(dtype):
    from fastgeo import MLPClassifier

    X = np.array([[-1.0], [1.0]] * 5)
    y = np.array([0, 1] * 5)
    clf = MLPClassifier((), max_iter=1, dtype=dtype, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # ConvergenceWarning
        clf.fit(X, y)
    clf.coefs_[0][:] = 1e6
    clf.intercepts_[0][:] = 0.0  # scikit-learn's init draws the biases too
    proba = clf.predict_proba(Z.reshape(-1, 1) / 1e6 * 1.0)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert proba[0, 1] == 0 and proba[-1, 1] == 1
    log_proba = clf.predict_log_proba(Z.reshape(-1, 1) / 1e6)
    assert np.isfinite(log_proba).all()
    np.testing.assert_allclose(log_proba[0, 1], -1e6, rtol=1e-6)
    d = clf.decision_function(np.array([[-1.0], [1.0]]))
    np.testing.assert_allclose(d, [-1e6, 1e6])
