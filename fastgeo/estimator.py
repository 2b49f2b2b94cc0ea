"""``fastgeo.MLPClassifier``: a scikit-learn estimator over fastgeo's compiled kernels.

    from fastgeo import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(8, 8), activation="relu", random_state=0)
    clf.fit(X, y).score(X, y)

Any labels scikit-learn accepts for classification (ints, strings, ...). Two classes
train one sigmoid output; K > 2 classes train K sigmoid outputs on one-hot targets
(one-vs-rest sharing the hidden layers), with ``predict_proba`` the per-class sigmoids
normalised to sum to one and ``predict`` the class of the largest logit.

Training is plain mini-batch SGD (``fastgeo.MLP.fit``, one compiled call per epoch) on
the mean binary cross-entropy, without momentum or L2 penalty. Stopping follows
scikit-learn's ``MLPClassifier``: with ``early_stopping=False`` training stops once the
training loss has not improved by at least ``tol`` for more than ``n_iter_no_change``
consecutive epochs; with ``early_stopping=True`` a stratified ``validation_fraction`` of
the data is held out, the same rule is applied to its accuracy, and the parameters of
the best validation epoch are kept. Reaching ``max_iter`` first emits a
``ConvergenceWarning``.
"""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from . import _validate as check
from . import activations
from .mlp import MLP

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


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Dense MLP classifier trained with fastgeo's Numba SGD kernels.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(100,)
        Widths of the hidden layers; ``()`` gives logistic regression.
    activation : str, default="relu"
        Hidden activation: any name in ``fastgeo.activations.ACTIVATIONS`` ("sigmoid",
        "relu", "tanh", "leaky_relu", ...; ``"logistic"`` is accepted for ``"sigmoid"``).
    init : {"he", "xavier", "glorot"} or None, default=None
        Weight initialisation (``fastgeo.MLP``); None picks the activation's default.
    learning_rate_init : float, default=0.1
        Constant SGD step size.
    batch_size : int or "auto", default="auto"
        Mini-batch size; "auto" is ``min(200, n_samples)``.
    max_iter : int, default=200
        Maximum number of epochs.
    tol : float, default=1e-4
        Minimum improvement of the monitored quantity (training loss, or validation
        accuracy with early stopping).
    n_iter_no_change : int, default=10
        Stop after more than this many consecutive epochs without a ``tol`` improvement.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop on its accuracy.
    validation_fraction : float, default=0.1
        Share of the training data held out when ``early_stopping`` is on.
    shuffle : bool, default=True
        Shuffle the samples every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffling and the validation split.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the parameters and of the computation.

    Attributes
    ----------
    classes_, n_features_in_, feature_names_in_ (when X has column names), net_ (the
    trained ``fastgeo.MLP``), coefs_ / intercepts_ (views of its weights and biases),
    n_iter_, loss_curve_, best_loss_, validation_scores_ and best_validation_score_
    (None without early stopping), n_outputs_, n_layers_, out_activation_.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", init=None,
                 learning_rate_init=0.1, batch_size="auto", max_iter=200, tol=1e-4,
                 n_iter_no_change=10, early_stopping=False, validation_fraction=0.1,
                 shuffle=True, random_state=None, dtype="float64"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.init = init
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.random_state = random_state
        self.dtype = dtype

    # --- parameters -----------------------------------------------------------------

    def _checked_params(self):
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
        batch_size = self.batch_size
        if not (isinstance(batch_size, str) and batch_size == "auto"):
            batch_size = check.integer("batch_size", batch_size, minimum=1)
        tol = self.tol
        if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, numbers.Real):
            raise TypeError(f"tol must be a real number, got {type(tol).__name__}")
        if not (np.isfinite(tol) and tol >= 0):
            raise ValueError(f"tol must be finite and >= 0, got {tol}")
        vf = self.validation_fraction
        if isinstance(vf, (bool, np.bool_)) or not isinstance(vf, numbers.Real):
            raise TypeError(f"validation_fraction must be a real number, got {type(vf).__name__}")
        if not 0 < vf < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {vf}")
        return {
            "hidden": hidden,
            "activation": name,
            "lr": check.positive_finite("learning_rate_init", self.learning_rate_init),
            "batch_size": batch_size,
            "max_iter": check.integer("max_iter", self.max_iter, minimum=1),
            "tol": float(tol),
            "n_iter_no_change": check.integer("n_iter_no_change", self.n_iter_no_change,
                                              minimum=1),
            "dtype": check.dtype(self.dtype),
        }

    # --- data -------------------------------------------------------------------------

    @staticmethod
    def _as_kernel_input(X, dt):
        # C-contiguous, writeable (a read-only array would compile a second kernel
        # specialisation), of the net's dtype; copies only when needed. X is finite here.
        if X.dtype.itemsize > dt.itemsize and X.size and np.abs(X).max() > np.finfo(dt).max:
            raise ValueError(f"X has values beyond the {dt.name} range")
        return np.require(X, dtype=dt, requirements=("C", "W"))

    def _encode(self, y_idx, n_out, dt):
        if n_out == 1:
            return y_idx.reshape(-1, 1).astype(dt)
        return (y_idx[:, None] == np.arange(n_out)).astype(dt)

    # --- fit ----------------------------------------------------------------------------

    def fit(self, X, y):
        """Train from scratch on (X, y); returns self."""
        p = self._checked_params()
        with _quiet():
            X, y = validate_data(self, X, y, dtype=(np.float64, np.float32))
            check_classification_targets(y)  # casts float labels to int to test them
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        y_idx = y_idx.reshape(-1)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes in y, but "
                             f"the data contains only one class: {self.classes_[0]!r}")
        dt = p["dtype"]
        X = self._as_kernel_input(X, dt)
        n_out = 1 if n_classes == 2 else n_classes
        rng = check_random_state(self.random_state)

        if self.early_stopping:
            X_tr, X_val, y_tr, y_val = self._split(X, y_idx, n_classes, rng)
        else:
            X_tr, y_tr, X_val, y_val = X, y_idx, None, None
        Y_tr = self._encode(y_tr, n_out, dt)
        n = X_tr.shape[0]
        batch_size = min(200, n) if p["batch_size"] == "auto" else min(p["batch_size"], n)

        seed = int(rng.randint(np.iinfo(np.int32).max))
        net = MLP((X.shape[1], *p["hidden"], n_out), activation=p["activation"],
                  init=self.init, seed=seed, dtype=dt)
        self.net_ = net
        self.n_outputs_ = n_out
        self.n_layers_ = len(p["hidden"]) + 2
        self.out_activation_ = "logistic"
        self.loss_curve_ = []
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_loss_ = np.inf if not self.early_stopping else None
        self.best_validation_score_ = -np.inf if self.early_stopping else None
        best_params = None
        no_improvement = 0
        tol, patience = p["tol"], p["n_iter_no_change"]
        self.n_iter_ = 0
        for _ in range(p["max_iter"]):
            shuffle_seed = int(rng.randint(np.iinfo(np.int32).max)) if self.shuffle else None
            loss = float(net.fit(X_tr, Y_tr, 1, p["lr"], batch_size=batch_size,
                                 shuffle_seed=shuffle_seed)[0])
            self.n_iter_ += 1
            self.loss_curve_.append(loss)
            if self.early_stopping:
                score = float(np.mean(self._predict_index(X_val) == y_val))
                self.validation_scores_.append(score)
                if score < self.best_validation_score_ + tol:
                    no_improvement += 1
                else:
                    no_improvement = 0
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_params = net.params.copy()
            else:
                if loss > self.best_loss_ - tol:
                    no_improvement += 1
                else:
                    no_improvement = 0
                self.best_loss_ = min(self.best_loss_, loss)
            if no_improvement > patience:
                break
        else:
            warnings.warn(
                f"MLPClassifier: maximum iterations ({p['max_iter']}) reached and the "
                f"optimization hasn't converged yet.", ConvergenceWarning, stacklevel=2)
        if best_params is not None:
            net.params[:] = best_params
        return self

    def _split(self, X, y_idx, n_classes, rng):
        n = X.shape[0]
        n_val = int(np.ceil(self.validation_fraction * n))
        if n < 2 or n_val >= n:
            raise ValueError(f"early_stopping needs a validation split that leaves samples "
                             f"to train on; got {n} samples and validation_fraction="
                             f"{self.validation_fraction}")
        counts = np.bincount(y_idx, minlength=n_classes)
        stratify = y_idx if counts.min() >= 2 and n_classes <= n_val <= n - n_classes else None
        X_tr, X_val, y_tr, y_val = train_test_split(
            X, y_idx, test_size=n_val, random_state=rng, stratify=stratify)
        return (self._as_kernel_input(X_tr, X.dtype), self._as_kernel_input(X_val, X.dtype),
                y_tr, y_val)

    # --- prediction -----------------------------------------------------------------

    def _validated_X(self, X):
        check_is_fitted(self)
        with _quiet():
            X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return self._as_kernel_input(X, self.net_.dtype)

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

    def _predict_index(self, X):
        z = self._logits(X)
        return (z[:, 0] > 0).astype(np.intp) if z.shape[1] == 1 else np.argmax(z, axis=1)

    def decision_function(self, X):
        """Output logits: shape (n,) for two classes (positive favours ``classes_[1]``),
        (n, n_classes) otherwise."""
        z = self._logits(self._validated_X(X))
        return z[:, 0] if z.shape[1] == 1 else z

    def predict_log_proba(self, X):
        """Logarithm of ``predict_proba``, computed in log space (finite wherever the
        logits are)."""
        z = self._logits(self._validated_X(X))
        if z.shape[1] == 1:
            log_p = np.column_stack([_log_sigmoid(-z[:, 0]), _log_sigmoid(z[:, 0])])
        else:  # per-class sigmoids, normalised (in log space, so nothing underflows to 0/0)
            log_p = _log_sigmoid(z)
        log_p -= log_p.max(axis=1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
        return log_p

    def predict_proba(self, X):
        """Class probabilities, shape (n, n_classes), rows summing to one."""
        proba = np.exp(self.predict_log_proba(X))
        proba /= proba.sum(axis=1, keepdims=True)  # exact normalisation after rounding
        return proba

    def predict(self, X):
        """The class of the largest logit (two classes: ``classes_[1]`` iff logit > 0)."""
        index = self._predict_index(self._validated_X(X))
        return self.classes_[index]

    # --- fitted parameters ------------------------------------------------------------

    @property
    def coefs_(self):
        check_is_fitted(self)
        return self.net_.weights

    @property
    def intercepts_(self):
        check_is_fitted(self)
        return self.net_.biases

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags
