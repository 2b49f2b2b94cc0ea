"""Bad input raises a clear ValueError/TypeError naming the argument before any kernel runs;
legal but awkward input is converted."""

import numpy as np
import pytest
from helpers import data

import fastgeo


@pytest.fixture(params=fastgeo.BACKENDS)
def net(request):
    return fastgeo.MLP((2, 8, 8, 1), "relu", seed=0, backend=request.param)


X, y = data(20, 2)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(sizes=(2,)), ValueError, "sizes"),
    (dict(sizes=(2, 0, 1)), ValueError, "sizes"),
    (dict(sizes=(2, -3, 1)), ValueError, "sizes"),
    (dict(sizes=(2, 2.5, 1)), TypeError, "sizes"),
    (dict(sizes="2,8,1"), TypeError, "sizes"),
    (dict(sizes=5), TypeError, "sizes"),
    (dict(activation="softplus"), ValueError, "activation"),
    (dict(activation=None), TypeError, "activation"),
    (dict(init="lecun"), ValueError, "init"),
    (dict(backend="cuda"), ValueError, "backend"),
    (dict(dtype="float16"), ValueError, "dtype"),
    (dict(dtype="int64"), ValueError, "dtype"),
    (dict(dtype=object()), TypeError, "dtype"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=1.5), TypeError, "seed"),
])
def test_constructor_rejects(kwargs, error, words):
    args = dict(sizes=(2, 8, 1))
    args.update(kwargs)
    with pytest.raises(error, match=words):
        fastgeo.MLP(**args)


@pytest.mark.parametrize("bad_X, error, words", [
    (np.ones(5), ValueError, "2-D"),
    (np.ones((4, 2, 1)), ValueError, "2-D"),
    (np.ones((4, 3)), ValueError, "features"),
    (np.array([[1.0, np.nan]]), ValueError, "NaN or inf"),
    (np.array([[1.0, np.inf]]), ValueError, "NaN or inf"),
    (np.array([["a", "b"]]), TypeError, "real numbers"),
    (np.array([[1 + 1j, 2]]), TypeError, "real numbers"),
    (np.array([[None, 1]], dtype=object), TypeError, "real numbers"),
    ([[1.0, 2.0], [3.0]], ValueError, "array"),
])
def test_bad_X(net, bad_X, error, words):
    for call in (net.forward, net.predict, lambda X: net.loss(X, np.zeros(len(X))),
                 lambda X: net.fit(X, np.zeros(len(X)), 1, 0.1)):
        with pytest.raises(error, match=words):
            call(bad_X)


@pytest.mark.parametrize("bad_y, error, words", [
    (np.zeros(19), ValueError, "samples"),
    (np.full(20, 2.0), ValueError, "0 and 1"),
    (np.full(20, -1), ValueError, "0 and 1"),
    (np.full(20, np.nan), ValueError, "0 and 1"),
    (np.zeros((20, 2)), ValueError, "shape"),
    (np.array(["a"] * 20), TypeError, "y"),
])
def test_bad_y(net, bad_y, error, words):
    for call in (net.loss, net.gradients, net.score, lambda X, y: net.fit(X, y, 1, 0.1),
                 lambda X, y: net.train_step(X, y, 0.1)):
        with pytest.raises(error, match=words):
            call(X, bad_y)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(epochs=-1), ValueError, "epochs"),
    (dict(epochs=2.0), TypeError, "epochs"),
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr=-0.1), ValueError, "lr"),
    (dict(lr=np.nan), ValueError, "lr"),
    (dict(lr=np.inf), ValueError, "lr"),
    (dict(lr="0.1"), TypeError, "lr"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=1.5), TypeError, "batch_size"),
    (dict(shuffle_seed=-2), ValueError, "shuffle_seed"),
    (dict(permutations=np.zeros((3, 20), dtype=int)), ValueError, "permutation"),
    (dict(permutations=np.tile(np.arange(20), (2, 1))), ValueError, "shape"),
    (dict(permutations=np.tile(np.arange(20.0), (3, 1))), TypeError, "integer"),
    (dict(permutations=np.tile(np.arange(20) + 1, (3, 1))), ValueError, "permutation"),
])
def test_bad_fit_arguments(net, kwargs, error, words):
    args = dict(epochs=3, lr=0.1)
    args.update(kwargs)
    before = net.params.copy()
    with pytest.raises(error, match=words):
        net.fit(X, y, **args)
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("weights, biases, error, words", [
    ([np.ones((2, 3))], [np.ones(4)], ValueError, "biases"),
    ([np.ones((2, 3)), np.ones((4, 1))], [np.ones(3), np.ones(1)], ValueError, "fan_in"),
    ([np.ones((2, 3))], [np.ones(3), np.ones(1)], ValueError, "equal length"),
    ([], [], ValueError, "non-empty"),
    ([np.ones(3)], [np.ones(3)], ValueError, "2-D"),
    ([np.array([[np.nan, 1.0]])], [np.ones(2)], ValueError, "weights"),
    ([np.ones((2, 1))], [np.array([np.inf])], ValueError, "biases"),
    (np.ones((2, 1)), [np.ones(1)], TypeError, "lists"),
])
def test_bad_parameters(weights, biases, error, words):
    with pytest.raises(error, match=words):
        fastgeo.MLP.from_params(weights, biases)


def test_non_finite_parameters_are_caught_before_the_kernel(net):
    net.weights[1][0, 0] = np.nan
    with pytest.raises(ValueError, match="parameters"):
        net.forward(X)
    with pytest.raises(ValueError, match="parameters"):
        net.fit(X, y, 1, 0.1)


def test_float64_values_beyond_float32_are_rejected_not_cast_to_inf():
    net = fastgeo.MLP((2, 3, 1), dtype="float32")
    with pytest.raises(ValueError, match="float32 range"):
        net.forward(np.array([[1e39, 0.0]]))


def test_awkward_but_legal_input_is_converted(net):
    expected = net.forward(X)
    fortran = np.asfortranarray(X)
    strided = np.repeat(X, 2, axis=0)[::2]
    as_list = X.tolist()
    as_int = np.round(X * 100).astype(np.int32)
    for variant in (fortran, strided, as_list, X.astype(np.float32)):
        np.testing.assert_allclose(net.forward(variant), expected, rtol=1e-6)
    assert np.isfinite(net.forward(as_int)).all()
    assert net.score(X, y.astype(bool)) == net.score(X, y.tolist())
    assert net.fit(X, y.astype(np.int8), 2, 0.1).shape == (2,)


def test_float32_input_into_float64_net_keeps_the_net_dtype():
    net = fastgeo.MLP((2, 4, 1), dtype="float64")
    assert net.forward(X.astype(np.float32)).dtype == np.float64
    net32 = fastgeo.MLP((2, 4, 1), dtype="float32")
    assert net32.forward(X).dtype == np.float32


def test_zero_epochs_and_empty_input(net):
    before = net.params.copy()
    assert net.fit(X, y, 0, 0.1).shape == (0,)
    np.testing.assert_array_equal(net.params, before)
    assert net.forward(np.empty((0, 2))).shape == (0, 1)
    with pytest.raises(ValueError, match="at least one sample"):
        net.fit(np.empty((0, 2)), np.empty(0), 1, 0.1)


@pytest.mark.parametrize("backend", fastgeo.BACKENDS)
def test_diverging_fit_raises_and_keeps_last_finite_parameters(backend):
    net = fastgeo.MLP((2, 16, 16, 1), "leaky_relu", seed=0, dtype="float32", backend=backend)
    replay = net.copy()
    X_big = X * 50
    with pytest.raises(FloatingPointError, match=r"epoch \d+") as info:
        net.fit(X_big, y, 200, 1e10)
    assert np.isfinite(net.params).all()
    failed_epoch = int(str(info.value).split("epoch ")[1].split(";")[0])
    replay.fit(X_big, y, failed_epoch, 1e10)  # the epochs before the failing one
    np.testing.assert_array_equal(net.params, replay.params)


def test_forward_that_overflows_raises_instead_of_returning_nan():
    # z2 overflows to inf in float32, and inf * 0 in the output layer is NaN
    weights = [np.full((2, 4), 1e30), np.full((4, 4), 1e30), np.zeros((4, 1))]
    biases = [np.zeros(4), np.zeros(4), np.zeros(1)]
    net = fastgeo.MLP.from_params(weights, biases, "relu", dtype="float32")
    with pytest.raises(FloatingPointError, match="non-finite"):
        net.forward(np.ones((3, 2)))
