"""fastgeo.MLPClassifier: scikit-learn's estimator checks, Pipeline, GridSearchCV, labels,
early stopping."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs, make_moons
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastgeo
from fastgeo import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Every check passes; none is expected to fail. A small net keeps the battery fast.
# check_array_api_input is skipped here unless SCIPY_ARRAY_API=1 was set before scipy was
# imported; test_sklearn_array_api_check runs it in a fresh interpreter instead.
EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks(
    [MLPClassifier(hidden_layer_sizes=(16,), max_iter=200, learning_rate_init=0.01,
                   random_state=0),
     MLPRegressor(hidden_layer_sizes=(16,), max_iter=200, learning_rate_init=0.01,
                  random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


ARRAY_API_CHECK = """
from sklearn.utils.estimator_checks import check_array_api_input
from fastgeo import MLPClassifier, MLPRegressor
est = MLPClassifier(hidden_layer_sizes=(16,), max_iter=100, random_state=0)
check_array_api_input("MLPClassifier", est, array_namespace="numpy",
                      expect_only_array_outputs=False)
print("passed")
"""


def test_sklearn_array_api_check():
    """The one check the battery above skips: it needs SCIPY_ARRAY_API=1 before scipy is
    first imported, so it runs in a fresh interpreter."""
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    proc = subprocess.run([sys.executable, "-W", "ignore::UserWarning", "-c", ARRAY_API_CHECK],
                          env=env, check=False, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("passed")


@pytest.fixture(scope="module")
def moons():
    X, y = make_moons(300, noise=0.15, random_state=0)
    return X, y


def test_exported():
    assert fastgeo.MLPClassifier is MLPClassifier


@pytest.mark.parametrize("labels", [(0, 1), (-3, 7), ("no", "yes"), (True, False), (2.0, -1.0)])
def test_any_two_labels(moons, labels):
    X, y = moons
    y_named = np.where(y == 1, labels[1], labels[0])
    clf = MLPClassifier((16,), learning_rate_init=0.01, random_state=0).fit(X, y_named)
    assert set(clf.classes_) == set(labels)
    assert clf.predict(X).dtype == clf.classes_.dtype
    assert clf.score(X, y_named) > 0.85
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    d = clf.decision_function(X)
    assert d.shape == (len(X),)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(d > 0).astype(int)])
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])


def test_multiclass_softmax():
    X, y = make_blobs(300, centers=4, random_state=0)
    X = StandardScaler().fit_transform(X)
    y = np.array(["a", "b", "c", "d"])[y]
    clf = MLPClassifier((16,), learning_rate_init=0.01, random_state=0).fit(X, y)
    assert clf.n_outputs_ == 4
    assert clf.out_activation_ == "softmax" and clf.net_.head == "softmax"
    assert clf.score(X, y) > 0.85
    d = clf.decision_function(X)
    assert d.shape == (300, 4)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[d.argmax(axis=1)])
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(proba.argmax(axis=1), d.argmax(axis=1))


def test_predict_proba_extreme_logits():
    """The softmax must not give 0/0 when every logit is very negative."""
    X, y = make_blobs(60, centers=3, random_state=0)
    clf = MLPClassifier((), max_iter=5, random_state=0).fit(X, y)
    clf.net_.biases[-1][:] = -1e4
    proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1)


def test_pipeline_and_grid_search(moons):
    X, y = moons
    pipe = make_pipeline(StandardScaler(), MLPClassifier(random_state=0, max_iter=100,
                                                         learning_rate_init=0.01))
    grid = GridSearchCV(
        pipe,
        {"mlpclassifier__hidden_layer_sizes": [(4,), (16, 16)],
         "mlpclassifier__activation": ["relu", "tanh"]},
        cv=3,
    )
    grid.fit(X, y)
    assert set(grid.best_params_) == {"mlpclassifier__hidden_layer_sizes",
                                      "mlpclassifier__activation"}
    assert grid.best_score_ > 0.85
    assert grid.score(X, y) > 0.85
    assert len(grid.cv_results_["mean_test_score"]) == 4


def test_stops_on_training_loss_plateau(moons):
    X, y = moons
    clf = MLPClassifier((8,), tol=10.0, n_iter_no_change=3, max_iter=100, random_state=0)
    clf.fit(X, y)
    # as scikit-learn: epoch 1 improves on +inf; epochs 2..5 do not improve by tol=10 and
    # the count (4) then exceeds n_iter_no_change=3
    assert clf.n_iter_ == 5
    assert len(clf.loss_curve_) == 5
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None


def test_max_iter_warns(moons):
    X, y = moons
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        clf = MLPClassifier((8,), tol=0.0, max_iter=3, random_state=0).fit(X, y)
    assert clf.n_iter_ == 3


def test_early_stopping_keeps_best_validation_params(moons):
    X, y = moons
    clf = MLPClassifier((8,), early_stopping=True, validation_fraction=0.2,
                        learning_rate_init=0.01, n_iter_no_change=5, max_iter=300,
                        random_state=0).fit(X, y)
    assert clf.n_iter_ < 300
    assert clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.score(X, y) > 0.8


def test_random_state_reproducible_and_matters(moons):
    X, y = moons
    a = MLPClassifier((8,), max_iter=20, random_state=1).fit(X, y)
    b = MLPClassifier((8,), max_iter=20, random_state=1).fit(X, y)
    c = MLPClassifier((8,), max_iter=20, random_state=2).fit(X, y)
    np.testing.assert_array_equal(a.net_.params, b.net_.params)
    assert not np.array_equal(a.net_.params, c.net_.params)


def test_float32_and_unshuffled(moons):
    X, y = moons
    clf = MLPClassifier((16,), learning_rate_init=0.01, dtype="float32", shuffle=False,
                        random_state=0).fit(X, y)
    assert clf.net_.dtype == np.float32
    assert clf.score(X, y) > 0.85
    assert clf.predict_proba(X).dtype == np.float64


def test_float32_net_rejects_values_beyond_its_range(moons):
    X, y = moons
    clf = MLPClassifier((4,), dtype="float32", max_iter=2)
    with pytest.raises(ValueError, match="float32 range"):
        clf.fit(np.vstack([X, [[1e300, 0.0]]]), np.append(y, 1))


def test_pickle_round_trip(moons):
    X, y = moons
    clf = MLPClassifier((8,), max_iter=20, random_state=0).fit(X, y)
    clf2 = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clf.predict_proba(X), clf2.predict_proba(X))
    # the unpickled net's weights are still views of its flat parameter buffer
    assert np.shares_memory(clf2.coefs_[0], clf2.net_.params)


def test_unfitted_and_clone(moons):
    X, _ = moons
    clf = MLPClassifier((8,))
    with pytest.raises(NotFittedError):
        clf.predict(X)
    assert not hasattr(clf, "coefs_")
    assert clone(clf).get_params() == clf.get_params()


@pytest.mark.parametrize(
    "params, exc, match",
    [
        ({"hidden_layer_sizes": (4, 0)}, ValueError, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": "4"}, TypeError, "hidden_layer_sizes"),
        ({"activation": "softplus"}, ValueError, "activation"),
        ({"init": "orthogonal"}, ValueError, "init"),
        ({"learning_rate_init": 0.0}, ValueError, "learning_rate_init"),
        ({"learning_rate_init": float("nan")}, ValueError, "learning_rate_init"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": "big"}, TypeError, "batch_size"),
        ({"max_iter": 0}, ValueError, "max_iter"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"n_iter_no_change": 0}, ValueError, "n_iter_no_change"),
        ({"validation_fraction": 1.0}, ValueError, "validation_fraction"),
        ({"dtype": "float16"}, ValueError, "dtype"),
    ],
)
def test_bad_hyperparameters(moons, params, exc, match):
    X, y = moons
    with pytest.raises(exc, match=match):
        MLPClassifier(**params).fit(X, y)


def test_one_class_rejected():
    with pytest.raises(ValueError, match="at least 2 classes"):
        MLPClassifier().fit(np.zeros((5, 2)), np.ones(5))


def test_dataframe_feature_names(moons):
    pd = pytest.importorskip("pandas")
    X, y = moons
    df = pd.DataFrame(X, columns=["a", "b"])
    clf = MLPClassifier((8,), max_iter=20, random_state=0).fit(df, pd.Series(y))
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b"])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(clf.predict(df), clf.predict(X))
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(pd.DataFrame(X, columns=["b", "a"]))


# --- Training v2: scikit-learn's solvers, the regressor, the pickle format ------------


@pytest.mark.parametrize(
    "params, exc, match",
    [
        ({"solver": "lbfgs"}, ValueError, "lbfgs"),
        ({"solver": "rmsprop"}, ValueError, "solver"),
        ({"learning_rate": "cosine"}, ValueError, "cosine"),
        ({"momentum": 1.0, "solver": "sgd"}, ValueError, "momentum"),
        ({"beta_1": 1.0}, ValueError, "beta_1"),
        ({"beta_2": -0.1}, ValueError, "beta_2"),
        ({"epsilon": 0.0}, ValueError, "epsilon"),
        ({"alpha": -1e-3}, ValueError, "alpha"),
        ({"alpha": float("inf")}, ValueError, "alpha"),
        ({"power_t": -0.5}, ValueError, "power_t"),
        ({"shuffle": "yes"}, TypeError, "shuffle"),
    ],
)
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_bad_training_parameters(moons, cls, params, exc, match):
    X, y = moons
    with pytest.raises(exc, match=match):
        cls(**params).fit(X, y)


def test_regressor_bad_input():
    X = np.random.RandomState(0).randn(20, 3)
    with pytest.raises(ValueError, match="poisson"):
        MLPRegressor(loss="poisson").fit(X, X[:, 0])
    with pytest.raises(ValueError):
        MLPRegressor().fit(X, np.full(20, np.nan))
    with pytest.raises(ValueError, match="sample_weight"):
        MLPRegressor().fit(X, X[:, 0], sample_weight=-np.ones(20))


def test_classifier_rejects_multilabel_and_partial_fit_without_classes(moons):
    X, y = moons
    with pytest.raises(ValueError, match="multilabel"):
        MLPClassifier().fit(X, np.column_stack([y, 1 - y]))
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1])


def test_regressor_fits_and_predicts():
    rng = np.random.RandomState(0)
    X = rng.randn(400, 4)
    T = np.column_stack([X @ [1.0, -2.0, 0.5, 0.0], np.sin(X[:, 0])])
    reg = MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=300, random_state=0)
    reg.fit(X, T[:, 0])
    assert reg.predict(X).shape == (400,) and reg.score(X, T[:, 0]) > 0.95
    assert reg.out_activation_ == "identity" and reg.n_outputs_ == 1
    two = MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=300, random_state=0)
    assert two.fit(X, T).predict(X).shape == (400, 2) and two.score(X, T) > 0.9
    again = pickle.loads(pickle.dumps(two))
    np.testing.assert_array_equal(again.predict(X), two.predict(X))


def test_defaults_are_sklearns():
    from sklearn.neural_network import MLPClassifier as SkClassifier
    from sklearn.neural_network import MLPRegressor as SkRegressor
    for ours, theirs in ((MLPClassifier(), SkClassifier()), (MLPRegressor(), SkRegressor())):
        mine = ours.get_params()
        assert {k: mine[k] for k in theirs.get_params()} == theirs.get_params()
        assert set(mine) - set(theirs.get_params()) == {"init", "dtype"}


def test_pickle_from_before_the_format_is_refused(moons):
    X, y = moons
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    state = clf.__getstate__()
    assert state["_fastgeo_format"] == 2
    old = dict(state)
    del old["_fastgeo_format"]  # what fastgeo 0.1 pickled
    with pytest.raises(ValueError, match="pickled by another fastgeo"):
        MLPClassifier.__new__(MLPClassifier).__setstate__(old)
    assert fastgeo.__version__ == "0.2.0"


def test_warm_start_keeps_state_and_loss_curve(moons):
    X, y = moons
    clf = MLPClassifier((8,), warm_start=True, max_iter=5, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.n_iter_ == 5 and len(clf.loss_curve_) == 10 and clf.t_ == 10 * len(X)


def test_regressor_pipeline_and_grid_search():
    rng = np.random.RandomState(0)
    X = rng.randn(150, 3) * [1.0, 10.0, 0.1]
    t = X[:, 0] - 0.1 * X[:, 1] + 5.0 * X[:, 2]
    pipe = make_pipeline(StandardScaler(), MLPRegressor(random_state=0, max_iter=200,
                                                        learning_rate_init=0.01))
    grid = GridSearchCV(pipe, {"mlpregressor__hidden_layer_sizes": [(4,), (16,)],
                               "mlpregressor__alpha": [1e-4, 1e-2]}, cv=3)
    grid.fit(X, t)
    assert len(grid.cv_results_["mean_test_score"]) == 4
    assert grid.best_score_ > 0.9 and grid.score(X, t) > 0.9
    assert fastgeo.MLPRegressor is MLPRegressor
