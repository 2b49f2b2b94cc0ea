"""scikit-learn as the oracle of the training maths: started from the same weights
(``warm_start`` with ``coefs_``/``intercepts_`` set) on the same sample order
(``shuffle=False``), fastgeo's reference solver (``fastgeo.solver`` over
``fastgeo.reference``, ``fastgeo.heads`` and ``fastgeo.optimizers``) and ``MLP.fit`` on
both backends give scikit-learn's ``MLPClassifier``/``MLPRegressor`` loss curve and final
weights to 1e-7 relative, for every solver x schedule x alpha x head; and fastgeo's
estimators, given scikit-learn's parameters and random_state, fit what scikit-learn's
fit (shuffling, early stopping, sample weights, warm_start and partial_fit included).

The data keep every probability well inside scikit-learn's clip [eps, 1 - eps] (small
weights, standardised inputs, 16 epochs), where its clipped loss equals fastgeo's loss
from logits.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

from fastgeo import MLP, heads, optimizers, reference
from fastgeo.solver import StochasticSolver

EPOCHS = 16
RTOL = 1e-7

#: scikit-learn's activation names for fastgeo's
SKLEARN_NAME = {"sigmoid": "logistic", "tanh": "tanh", "relu": "relu", "identity": "identity"}

#: (solver, schedule, momentum, nesterov): every update rule and schedule
OPTIMISERS = [
    ("sgd", "constant", 0.0, False),
    ("sgd", "constant", 0.9, False),
    ("sgd", "constant", 0.9, True),
    ("sgd", "invscaling", 0.9, True),
    ("sgd", "adaptive", 0.5, True),
    ("adam", "constant", 0.9, True),
]


def _data(task, n=48, features=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, features)
    score = X @ rng.randn(features, 3)
    if task == "binary":
        return X, (score[:, 0] > 0).astype(int), 1
    if task == "multiclass":
        return X, score.argmax(axis=1), 3
    if task == "regression":
        return X, score[:, 0] + 0.1 * rng.randn(n), 1
    return X, score[:, :2] + 0.1 * rng.randn(n, 2), 2  # two regression targets


def _targets(task, y, outputs):
    if task == "multiclass":
        return np.eye(outputs)[y]
    return y.reshape(len(y), -1).astype(float)


HEAD = {"binary": "sigmoid", "multiclass": "softmax", "regression": "identity",
        "regression2": "identity"}


def _sklearn(task, activation, solver, schedule, momentum, nesterov, alpha, batch_size,
             tol, n_iter_no_change, lr, weights, biases, X, y, sample_weight):
    cls = MLPClassifier if task in ("binary", "multiclass") else MLPRegressor
    model = cls(hidden_layer_sizes=tuple(W.shape[1] for W in weights[:-1]),
                activation=SKLEARN_NAME[activation], solver=solver, alpha=alpha,
                batch_size=batch_size, learning_rate=schedule, learning_rate_init=lr,
                momentum=momentum, nesterovs_momentum=nesterov, max_iter=1, shuffle=False,
                tol=tol, n_iter_no_change=n_iter_no_change, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y, sample_weight=sample_weight)  # builds the state, then start over:
        model.coefs_ = [W.copy() for W in weights]
        model.intercepts_ = [b.copy() for b in biases]
        model.loss_curve_, model.t_ = [], 0
        model.best_loss_, model._no_improvement_count = np.inf, 0
        model.set_params(max_iter=EPOCHS)
        model.fit(X, y, sample_weight=sample_weight)
    return model


def _fastgeo(task, activation, solver, schedule, momentum, nesterov, alpha, batch_size, tol,
             n_iter_no_change, lr, weights, biases, X, y, sample_weight, outputs,
             backend=None):
    """The reference solver (backend None), or ``MLP._fit`` one epoch per call on a
    backend, with the solver keeping scikit-learn's stopping state."""
    Ws, bs = [W.copy() for W in weights], [b.copy() for b in biases]
    optimizer = optimizers.make(solver, lr, schedule, momentum, nesterov)
    run = StochasticSolver(optimizer, tol, n_iter_no_change)
    Y = _targets(task, y, outputs)
    if backend is None:
        run.fit(Ws, bs, X, Y, EPOCHS, batch_size, activation, HEAD[task], alpha,
                sample_weight)
        return run, Ws, bs
    net = MLP.from_params(Ws, bs, activation, backend, head=HEAD[task])
    for _ in range(EPOCHS):
        reported = net._fit(X, Y, 1, batch_size=batch_size, optimizer=optimizer, alpha=alpha,
                            sample_weight=sample_weight)[1]
        run.record(reported[0], X.shape[0])
        if run.end_epoch(net.weights + net.biases):
            break
    return run, net.weights, net.biases


def _compare(task, activation, solver, schedule, momentum, nesterov, alpha, batch_size=16,
             sample_weight=None, hidden=(5, 4), backend=None):
    X, y, outputs = _data(task)
    sizes = (X.shape[1], *hidden, outputs)
    weights, biases = reference.init_params(sizes, activation, "glorot", seed=3)
    biases = [np.random.RandomState(4).uniform(-0.1, 0.1, b.shape) for b in biases]
    # adaptive: every epoch counts as no improvement (tol 10), so the rate drops every
    # third epoch; otherwise the stopping rule never fires within EPOCHS
    tol, patience = (10.0, 2) if schedule == "adaptive" else (0.0, 100)
    lr = 0.01 if solver == "adam" else 0.1
    args = (task, activation, solver, schedule, momentum, nesterov, alpha, batch_size, tol,
            patience, lr, weights, biases, X, y, sample_weight)
    model = _sklearn(*args)
    run, Ws, bs = _fastgeo(*args, outputs, backend)
    assert model.n_iter_ == run.n_iter_ == EPOCHS
    assert model.t_ == run.t_
    np.testing.assert_allclose(run.loss_curve_, model.loss_curve_, rtol=RTOL)
    for ours, theirs in zip(Ws + bs, model.coefs_ + model.intercepts_):
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=RTOL * np.abs(theirs).max())
    if schedule == "adaptive":
        assert run.optimizer.learning_rate == pytest.approx(model._optimizer.learning_rate)
        assert run.optimizer.learning_rate < lr / 5 ** 4  # the schedule did act
    return run, model


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression", "regression2"])
@pytest.mark.parametrize("solver,schedule,momentum,nesterov", OPTIMISERS)
@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_reference_solver_equals_sklearn(task, solver, schedule, momentum, nesterov, alpha):
    _compare(task, "tanh", solver, schedule, momentum, nesterov, alpha)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression", "regression2"])
@pytest.mark.parametrize("solver,schedule,momentum,nesterov", OPTIMISERS)
@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_mlp_fit_equals_sklearn(backend, task, solver, schedule, momentum, nesterov, alpha):
    """The compiled fit (and the numpy backend's) with the optimiser's state carried from
    call to call: scikit-learn's trajectory."""
    _compare(task, "tanh", solver, schedule, momentum, nesterov, alpha, backend=backend)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression2"])
def test_mlp_fit_sample_weight_equals_sklearn(task):
    weights = np.random.RandomState(7).uniform(0.2, 3.0, 48)
    _compare(task, "relu", "adam", "constant", 0.9, True, 0.05, sample_weight=weights,
             batch_size=20, backend="numba")


@pytest.mark.parametrize("activation", sorted(SKLEARN_NAME))
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_every_shared_activation(activation, task):
    _compare(task, activation, "adam", "constant", 0.9, True, 1e-3)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression2"])
def test_sample_weight(task):
    weights = np.random.RandomState(7).uniform(0.2, 3.0, 48)
    _compare(task, "tanh", "sgd", "constant", 0.9, True, 0.05, sample_weight=weights)


def test_last_batch_shorter_and_full_batch():
    _compare("multiclass", "relu", "adam", "constant", 0.9, True, 0.0, batch_size=20)
    _compare("binary", "sigmoid", "sgd", "constant", 0.9, True, 0.0, batch_size=48)


def test_plain_sgd_is_the_reference_fit_exactly():
    """momentum 0 is plain SGD bit for bit: the solver's trajectory is reference.fit's."""
    X, y, _ = _data("binary")
    Y = _targets("binary", y, 1)
    weights, biases = reference.init_params((3, 6, 1), "relu", seed=1)
    Ws, bs = [W.copy() for W in weights], [b.copy() for b in biases]
    history = reference.fit(weights, biases, X, Y, 10, 0.05, "relu", batch_size=10)
    run = StochasticSolver(optimizers.make("sgd", 0.05, momentum=0.0), 0.0, 100)
    run.fit(Ws, bs, X, Y, 10, 10, "relu")
    for ours, theirs in zip(Ws + bs, weights + biases):
        np.testing.assert_array_equal(ours, theirs)
    assert history.shape == (10,)


@pytest.mark.parametrize("name", sorted(heads.HEADS))
def test_head_delta_is_the_loss_gradient(name):
    """Each head's delta against central differences of its loss (float64)."""
    rng = np.random.RandomState(0)
    z = rng.randn(5, 3)
    Y = np.eye(3)[rng.randint(0, 3, 5)] if name != "identity" else rng.randn(5, 3)
    w = rng.uniform(0.5, 2.0, 5)
    head = heads.get(name)
    for sample_weight in (None, w):
        delta = head.delta(z, Y, sample_weight)
        numeric = np.empty_like(z)
        for idx in np.ndindex(*z.shape):
            step = np.zeros_like(z)
            step[idx] = 1e-6
            numeric[idx] = (head.loss(z + step, Y, sample_weight)
                            - head.loss(z - step, Y, sample_weight)) / 2e-6
        np.testing.assert_allclose(delta, numeric, rtol=1e-6, atol=1e-9)


def test_softmax_loss_is_stable_for_huge_logits():
    z = np.array([[1000.0, -1000.0, 0.0], [-1e5, 1e5, 3.0]])
    Y = np.eye(3)[[0, 1]]
    assert heads.get("softmax").loss(z, Y) == 0.0
    np.testing.assert_allclose(heads.softmax(z).sum(axis=1), 1.0)
    assert heads.get("softmax").loss(z, np.eye(3)[[1, 0]]) == pytest.approx((2000 + 2e5) / 2)


def test_unknown_head_and_solver_are_named():
    with pytest.raises(ValueError, match="poisson"):
        heads.get("poisson")
    with pytest.raises(ValueError, match="lbfgs"):
        optimizers.make("lbfgs", 0.1)


# --- the estimators: the same random_state gives scikit-learn's fit ------------------
#
# fastgeo's estimators draw their initial weights, validation split and per-epoch
# shuffles from the random state exactly as scikit-learn does, so no weights need to be
# set: the same parameters and random_state give the same trajectory.

from fastgeo.estimator import MLPClassifier as FastClassifier
from fastgeo.estimator import MLPRegressor as FastRegressor

ESTIMATOR_SETTINGS = [
    {"solver": "adam"},
    {"solver": "adam", "early_stopping": True, "validation_fraction": 0.25},
    {"solver": "sgd", "learning_rate_init": 0.05},
    {"solver": "sgd", "nesterovs_momentum": False, "learning_rate": "invscaling",
     "learning_rate_init": 0.2},
    {"solver": "sgd", "learning_rate": "adaptive", "tol": 10.0, "n_iter_no_change": 2},
    {"solver": "sgd", "momentum": 0.0, "learning_rate_init": 0.1, "shuffle": False},
    {"solver": "adam", "alpha": 0.0, "batch_size": 7, "activation": "logistic"},
    {"solver": "adam", "early_stopping": True, "activation": "tanh", "alpha": 0.01},
    {"solver": "sgd", "activation": "identity", "learning_rate_init": 0.01},
]


def _estimators(task, settings):
    base = {"hidden_layer_sizes": (6, 5), "max_iter": 18, "random_state": 3,
            "n_iter_no_change": 100, "tol": 0.0}
    base.update(settings)
    if task in ("binary", "multiclass"):
        return FastClassifier(**base), MLPClassifier(**base)
    return FastRegressor(**base), MLPRegressor(**base)


def _fit_both(task, settings, sample_weight=None):
    X, y, _ = _data(task, n=60)
    ours, theirs = _estimators(task, settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y, sample_weight=sample_weight)
        theirs.fit(X, y, sample_weight=sample_weight)
    return X, ours, theirs


def _assert_same(ours, theirs):
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=RTOL)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * np.abs(b).max())
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=RTOL) \
        if theirs.best_loss_ is not None else ours.best_loss_ is None
    if theirs.validation_scores_ is not None:
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_,
                                   rtol=RTOL)


@pytest.mark.parametrize("settings", ESTIMATOR_SETTINGS, ids=lambda s: ",".join(
    f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression", "regression2"])
def test_estimator_equals_sklearn(task, settings):
    X, ours, theirs = _fit_both(task, settings)
    _assert_same(ours, theirs)
    if task in ("binary", "multiclass"):
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-6)
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    else:
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6, atol=1e-9)
    y = _data(task, n=60)[1]
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=1e-6)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression2"])
def test_estimator_sample_weight_equals_sklearn(task):
    w = np.random.RandomState(9).uniform(0.1, 3.0, 60)
    _, ours, theirs = _fit_both(task, {"solver": "adam", "batch_size": 16}, sample_weight=w)
    _assert_same(ours, theirs)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_warm_start_and_partial_fit_equal_sklearn(task):
    """Fitting on from the kept state (a new optimiser on each fit, as scikit-learn), and
    partial_fit epoch by epoch (the optimiser kept)."""
    X, y, _ = _data(task, n=60)
    ours, theirs = _estimators(task, {"warm_start": True, "max_iter": 6})
    extra = {"classes": np.unique(y)} if task == "multiclass" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for model in (ours, theirs):
            model.fit(X, y)
            model.fit(X[::-1], y[::-1])
    _assert_same(ours, theirs)
    ours, theirs = _estimators(task, {})
    for _ in range(5):
        ours.partial_fit(X, y, **extra)
        theirs.partial_fit(X, y, **extra)
    _assert_same(ours, theirs)
    assert ours.t_ == 5 * 60
