"""``fastgeo.MLPClassifier`` and ``fastgeo.MLPRegressor``: drop-ins for scikit-learn's MLP
estimators, trained by fastgeo's compiled fit.

    from fastgeo import MLPClassifier, MLPRegressor
    clf = MLPClassifier(hidden_layer_sizes=(8, 8), random_state=0).fit(X, y)
    reg = MLPRegressor(hidden_layer_sizes=(64,), solver="sgd", momentum=0.9).fit(X, t)

Parameters take scikit-learn's names and defaults where the meaning is the same
(``solver`` "adam" or "sgd", ``alpha``, ``momentum``, ``nesterovs_momentum``, ``beta_1``,
``beta_2``, ``epsilon``, ``learning_rate`` "constant" / "invscaling" / "adaptive",
``power_t``, ``learning_rate_init``, ``batch_size``, ``max_iter``, ``shuffle``, ``tol``,
``n_iter_no_change``, ``early_stopping``, ``validation_fraction``, ``warm_start``), and so
do the fitted attributes (``coefs_``, ``intercepts_``, ``loss_curve_``, ``t_``,
``n_iter_``, ``best_loss_``, ``validation_scores_``, ``best_validation_score_``,
``out_activation_``, ...), ``fit(X, y, sample_weight)`` and ``partial_fit``. The
training maths is scikit-learn's (``fastgeo.solver``, ``fastgeo.optimizers``,
``fastgeo.heads``): started from the same weights on the same sample order, the loss
curve and the weights agree with scikit-learn's to 1e-7 (tests/test_sklearn_oracle.py).

The random draws are scikit-learn's too (initial weights, the validation split, each
epoch's shuffle, in its order), so a fit with an int ``random_state`` follows
scikit-learn's fit with the same one (``init`` "he" / "xavier" / "glorot" picks
fastgeo's normal draws instead). What differs: hidden activations are any of
``fastgeo.activations`` ("logistic" is accepted for "sigmoid"); the losses are computed
from the logits, so no probability is clipped; ``dtype`` picks float64 or float32.
Not implemented, and named in a ValueError: ``solver="lbfgs"``, ``loss="poisson"``,
multilabel targets.
"""

import numbers
import warnings
from itertools import pairwise

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import shuffle as sklearn_shuffle
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    check_random_state,
    column_or_1d,
    validate_data,
)

from . import _validate as check
from . import activations, heads, optimizers
from . import solver as stochastic
from ._version import __version__
from .mlp import MLP

#: Version of the pickled estimators' state; a state without it (fastgeo < 0.2, plain
#: SGD and one-vs-rest sigmoids) or with another is refused, never read as this model.
FORMAT_VERSION = 2

#: Upper bound on the elements of the per-chunk (rows x units) buffers used to compute
#: logits, so ``decision_function`` / ``predict_proba`` stream in bounded memory.
_TRACE_CHUNK_ELEMENTS = 1 << 20

#: scikit-learn's names for activations that fastgeo names otherwise ("logistic")
_ALIASES = {act.sklearn: act.name for act in activations.ACTIVATIONS.values()
            if act.sklearn not in (None, act.name)}


#: scikit-learn's finiteness check first sums the array, which warns ("invalid value
#: encountered in reduce") when it holds both +inf and -inf before raising its
#: ValueError, and its label-type check casts float labels such as 1e30 to int ("invalid
#: value encountered in cast"); only the ValueError should reach the user.
def _quiet():
    return np.errstate(invalid="ignore", over="ignore")


def _log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


def _boolean(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


class _BaseMLP(BaseEstimator):
    """The parameters, the checks and the training loop both estimators share."""

    _head = None  # set per fit by the subclass (_targets)

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 init=None, dtype="float64"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.init = init
        self.dtype = dtype

    # --- parameters -----------------------------------------------------------------

    def _checked_params(self):
        """Every parameter checked (TypeError / ValueError naming it) before any work."""
        if self.solver == "lbfgs":
            raise ValueError("solver='lbfgs' is not implemented by fastgeo (full-batch "
                             "L-BFGS); use solver='adam' or 'sgd'")
        if self.solver not in optimizers.SOLVERS:
            raise ValueError(f"solver must be one of {optimizers.SOLVERS}, got {self.solver!r}")
        if self.learning_rate not in optimizers.SCHEDULES:
            raise ValueError(f"learning_rate must be one of {optimizers.SCHEDULES}, got "
                             f"{self.learning_rate!r}")
        hidden = self.hidden_layer_sizes
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, (bool, np.bool_)):
            hidden = (hidden,)
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
            raise TypeError(f"hidden_layer_sizes must be an int or a sequence of ints, "
                            f"got {self.hidden_layer_sizes!r}")
        hidden = tuple(check.integer("each entry of hidden_layer_sizes", h, minimum=1)
                       for h in hidden)
        name = _ALIASES.get(self.activation, self.activation)
        activations.get(name)  # TypeError / ValueError naming the choices
        if self.init is not None and self.init not in ("he", "xavier", "glorot"):
            raise ValueError(f"init must be 'he', 'xavier', 'glorot' or None, got {self.init!r}")
        batch_size = self.batch_size
        if not (isinstance(batch_size, str) and batch_size == "auto"):
            batch_size = check.integer("batch_size", batch_size, minimum=1)
        tol = check.nonnegative_finite("tol", self.tol)
        vf = check.finite_float("validation_fraction", self.validation_fraction)
        if not 0 < vf < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {vf}")
        patience = self.n_iter_no_change
        if not (isinstance(patience, float) and patience == np.inf):
            patience = check.integer("n_iter_no_change", patience, minimum=1)
        # the optimiser checks its own settings (momentum, beta_1, beta_2, epsilon, ...)
        optimizer = optimizers.make(self.solver, self.learning_rate_init, self.learning_rate,
                                    self.momentum, self.nesterovs_momentum, self.power_t,
                                    self.beta_1, self.beta_2, self.epsilon)
        if self.power_t < 0:
            raise ValueError(f"power_t must be >= 0, got {self.power_t}")
        for flag in ("shuffle", "warm_start", "early_stopping", "nesterovs_momentum"):
            _boolean(flag, getattr(self, flag))
        return {
            "hidden": hidden,
            "activation": name,
            "alpha": check.nonnegative_finite("alpha", self.alpha),
            "batch_size": batch_size,
            "max_iter": check.integer("max_iter", self.max_iter, minimum=1),
            "tol": tol,
            "n_iter_no_change": patience,
            "dtype": check.dtype(self.dtype),
            "optimizer": optimizer,
        }

    # --- data -------------------------------------------------------------------------

    @staticmethod
    def _as_kernel_input(X, dt):
        # C-contiguous, writeable (a read-only array would compile a second kernel
        # specialisation), of the net's dtype; copies only when needed. X is finite here.
        if X.dtype.itemsize > dt.itemsize and X.size and np.abs(X).max() > np.finfo(dt).max:
            raise ValueError(f"X has values beyond the {dt.name} range")
        return np.require(X, dtype=dt, requirements=("C", "W"))

    def _validated_X(self, X):
        check_is_fitted(self)
        with _quiet():
            X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return self._as_kernel_input(X, self.net_.dtype)

    # --- fit ----------------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Train on (X, y) (from the current weights when ``warm_start``); returns self."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        p = self._checked_params()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "net_") or (not self.warm_start and not incremental)
        with _quiet():
            X, y = validate_data(self, X, y, reset=first_pass, multi_output=True,
                                 y_numeric=not self._is_classifier(),
                                 dtype=(np.float64, np.float32))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        dt = p["dtype"]
        Y = self._targets(y, first_pass, incremental, classes, dt)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=dt)
            sample_weight = check.sample_weight(sample_weight, X.shape[0], dt)
        X = self._as_kernel_input(X, dt)
        rng = check_random_state(self.random_state)
        if first_pass:
            self.net_ = self._initial_net((X.shape[1], *p["hidden"], Y.shape[1]),
                                          p["activation"], dt, rng)
            self.n_outputs_ = Y.shape[1]
            self.n_layers_ = len(p["hidden"]) + 2
            self.out_activation_ = heads.get(self._head).sklearn
            stochastic.start(self, self.early_stopping)
        elif (self.net_.sizes[0], self.net_.sizes[-1]) != (X.shape[1], Y.shape[1]):
            raise ValueError(f"the net has {self.net_.sizes[0]} inputs and "
                             f"{self.net_.sizes[-1]} outputs; this data needs {X.shape[1]} "
                             f"and {Y.shape[1]} (fit without warm_start to start over)")
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = p["optimizer"]
        X_val = Y_val = w_val = None
        if self.early_stopping:
            X, X_val, Y, Y_val, sample_weight, w_val = self._split(X, Y, sample_weight, rng)
        n = X.shape[0]
        batch_size = min(200, n) if p["batch_size"] == "auto" else min(p["batch_size"], n)
        net = self.net_
        order = np.arange(n)
        self.n_iter_ = 0
        for _ in range(p["max_iter"]):
            if self.shuffle:  # scikit-learn's draws: the same order for the same random_state
                order = sklearn_shuffle(order, random_state=rng)
            reported = net._fit(X, Y, 1, batch_size=batch_size,
                                permutations=order[None] if self.shuffle else None,
                                optimizer=self._optimizer, alpha=p["alpha"],
                                sample_weight=sample_weight)[1]
            stochastic.record(self, reported[0], n)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            score = self._score_on(X_val, Y_val, w_val) if self.early_stopping else None
            if stochastic.end_epoch(self, self._optimizer, p["tol"], p["n_iter_no_change"],
                                net.weights + net.biases, score):
                break
            if incremental:
                break
        else:
            if not incremental:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({p['max_iter']}) reached "
                    "and the optimization hasn't converged yet.", ConvergenceWarning,
                    stacklevel=3)
        if self.early_stopping and self._best_params is not None:
            for param, best in zip(net.weights + net.biases, self._best_params):
                param[...] = best
        return self

    def _initial_net(self, sizes, activation, dt, rng):
        """init None: scikit-learn's draws (Glorot uniform weights and biases, bound
        sqrt(6 / (fan_in + fan_out)), 2 instead of 6 for the logistic activation, from
        the random state in its order), so the same random_state starts from the same
        weights as scikit-learn's estimator. "he" / "xavier" / "glorot": ``fastgeo.MLP``'s
        normal draws, seeded from the random state."""
        if self.init is not None:
            seed = int(rng.randint(np.iinfo(np.int32).max))
            return MLP(sizes, activation, init=self.init, seed=seed, dtype=dt,
                       head=self._head)
        factor = 2.0 if activation == "sigmoid" else 6.0
        weights, biases = [], []
        for fan_in, fan_out in pairwise(sizes):
            bound = np.sqrt(factor / (fan_in + fan_out))
            weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
            biases.append(rng.uniform(-bound, bound, fan_out))
        return MLP.from_params(weights, biases, activation, dtype=dt, head=self._head)

    def _split(self, X, Y, sample_weight, rng):
        """scikit-learn's validation split (its draws; stratified for one output)."""
        n = X.shape[0]
        n_val = int(np.ceil(self.validation_fraction * n))
        if n_val < 2 or n_val >= n:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset "
                             f"({n} samples, validation_fraction={self.validation_fraction})")
        stratify = Y if self._is_classifier() and Y.shape[1] == 1 else None
        parts = [X, Y] + ([sample_weight] if sample_weight is not None else [])
        split = train_test_split(*parts, random_state=rng, test_size=self.validation_fraction,
                                 stratify=stratify)
        X_tr, X_val, Y_tr, Y_val = split[:4]
        w_tr, w_val = split[4:] if sample_weight is not None else (None, None)
        dt = X.dtype
        return (self._as_kernel_input(X_tr, dt), self._as_kernel_input(X_val, dt),
                np.ascontiguousarray(Y_tr), Y_val, w_tr, w_val)

    @property
    def loss_(self):
        check_is_fitted(self)
        return self.loss_curve_[-1] if self.loss_curve_ else None

    # --- fitted parameters ------------------------------------------------------------

    @property
    def coefs_(self):
        check_is_fitted(self)
        return self.net_.weights

    @coefs_.setter
    def coefs_(self, weights):
        check_is_fitted(self)
        self.net_.set_params(weights, self.net_.biases)

    @property
    def intercepts_(self):
        check_is_fitted(self)
        return self.net_.biases

    @intercepts_.setter
    def intercepts_(self, biases):
        check_is_fitted(self)
        self.net_.set_params(self.net_.weights, biases)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    # --- pickling ---------------------------------------------------------------------

    def __getstate__(self):
        state = super().__getstate__()
        state["_fastgeo_format"] = FORMAT_VERSION
        return state

    def __setstate__(self, state):
        found = state.get("_fastgeo_format")
        if found != FORMAT_VERSION:
            raise ValueError(
                f"this {type(self).__name__} was pickled by another fastgeo (state format "
                f"{found or 1}, this is fastgeo {__version__} with format {FORMAT_VERSION}: "
                "Adam by default, softmax for K classes); it cannot be read as this model. "
                "Refit it, or load it with the fastgeo version that wrote it.")
        state = dict(state)
        del state["_fastgeo_format"]
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Dense MLP classifier: scikit-learn's ``MLPClassifier`` parameters and behaviour
    (module docstring), fastgeo's compiled training.

    Two classes train one sigmoid output on the binary cross-entropy; K > 2 classes a
    softmax over K outputs on the categorical cross-entropy. ``predict`` is the most
    probable class, ``predict_proba`` the probabilities, ``decision_function`` the logits.

    Extra parameters: ``init`` ({"he", "xavier", "glorot"} or None: the activation's
    default) and ``dtype`` ("float64" or "float32").
    """

    def _is_classifier(self):
        return True

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch on (X, y), continuing from the current state; ``classes`` (every
        class of every call) is required on the first call."""
        if not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _targets(self, y, first_pass, incremental, classes, dt):
        kind = type_of_target(y)
        if kind in ("multilabel-indicator", "multiclass-multioutput", "binary-multioutput"):
            raise ValueError(f"multilabel / multi-output targets ({kind}) are not "
                             "implemented by fastgeo's MLPClassifier; pass one label per "
                             "sample")
        if y.ndim == 2:
            y = y[:, 0]
        with _quiet():
            check_classification_targets(y)
        if incremental and not hasattr(self, "classes_"):
            self.classes_ = np.unique(np.asarray(classes))
        elif first_pass:
            self.classes_ = np.unique(y)
        present = np.unique(y)
        if first_pass and not incremental and len(self.classes_) < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes in y, but "
                             f"the data contains only one class: {self.classes_[0]!r}")
        if len(self.classes_) < 2:
            raise ValueError(f"classes must hold at least 2 classes, got {self.classes_!r}")
        if self.warm_start and not first_pass and not incremental:
            if set(present) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {self.classes_}, `y` has {present}")
        elif len(np.setdiff1d(present, self.classes_)):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{self.classes_}. 'y' has {present}.")
        index = np.searchsorted(self.classes_, y)
        k = len(self.classes_)
        self._head = "sigmoid" if k == 2 else "softmax"
        if k == 2:
            return index.reshape(-1, 1).astype(dt)
        return (index[:, None] == np.arange(k)).astype(dt)

    def _score_on(self, X, Y, sample_weight):
        pred = self._index(X)
        truth = Y.argmax(axis=1) if Y.shape[1] > 1 else Y[:, 0].astype(np.intp)
        return accuracy_score(truth, pred, sample_weight=sample_weight)

    # --- prediction -----------------------------------------------------------------

    def _logits(self, X):
        """(n, n_outputs) float64 output logits, computed in row chunks so that memory
        stays bounded for any n."""
        net = self.net_
        units = sum(net.sizes[1:])
        step = max(1, _TRACE_CHUNK_ELEMENTS // units)
        out = np.empty((X.shape[0], net.sizes[-1]), dtype=np.float64)
        for start in range(0, X.shape[0], step):
            zs, _ = net.forward_trace(X[start:start + step])
            out[start:start + step] = zs[-1]
        return out

    def _index(self, X):
        z = self._logits(X)
        return (z[:, 0] > 0).astype(np.intp) if z.shape[1] == 1 else np.argmax(z, axis=1)

    def decision_function(self, X):
        """Output logits: shape (n,) for two classes (positive favours ``classes_[1]``),
        (n, n_classes) otherwise."""
        z = self._logits(self._validated_X(X))
        return z[:, 0] if z.shape[1] == 1 else z

    def predict_log_proba(self, X):
        """Logarithm of ``predict_proba``, computed from the logits in log space (finite
        wherever the logits are)."""
        z = self._logits(self._validated_X(X))
        if z.shape[1] == 1:
            return np.column_stack([_log_sigmoid(-z[:, 0]), _log_sigmoid(z[:, 0])])
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict_proba(self, X):
        """Class probabilities, shape (n, n_classes), rows summing to one."""
        proba = np.exp(self.predict_log_proba(X))
        proba /= proba.sum(axis=1, keepdims=True)  # exact normalisation after rounding
        return proba

    def predict(self, X):
        """The most probable class (two classes: ``classes_[1]`` iff logit > 0)."""
        index = self._index(self._validated_X(X))
        return self.classes_[index]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Dense MLP regressor: scikit-learn's ``MLPRegressor`` parameters and behaviour
    (module docstring), fastgeo's compiled training: identity output, squared error
    (``loss_curve_`` as scikit-learn reports it: 0.5 x the mean over samples and outputs,
    plus the L2 penalty). One or several targets.

    Extra parameters: ``init`` and ``dtype`` as ``MLPClassifier``.
    """

    _head = "identity"

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 init=None, dtype="float64"):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun, init=init,
            dtype=dtype)
        self.loss = loss

    def _is_classifier(self):
        return False

    def _checked_params(self):
        if self.loss != "squared_error":
            raise ValueError(f"loss={self.loss!r} is not implemented by fastgeo's "
                             "MLPRegressor; only 'squared_error'")
        return super()._checked_params()

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch on (X, y), continuing from the current state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _targets(self, y, first_pass, incremental, classes, dt):
        Y = np.asarray(y, dtype=np.float64)
        if not np.isfinite(Y).all():
            raise ValueError("y must be finite (no NaN or inf)")
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        if np.abs(Y).max(initial=0) > np.finfo(dt).max:
            raise ValueError(f"y has values beyond the {dt.name} range")
        return np.ascontiguousarray(Y, dtype=dt)

    def _score_on(self, X, Y, sample_weight):
        return r2_score(Y, self.net_.forward(X), sample_weight=sample_weight)

    def predict(self, X):
        """The predicted targets: (n,) for one target, else (n, n_targets)."""
        X = self._validated_X(X)
        out = self.net_.forward(X)
        return out[:, 0] if out.shape[1] == 1 else out
