"""``fastgeo.MLP``: the public network object. It validates, converts, and delegates the
maths to its backend (``fastgeo.backends``: "numba", the kernels, or "numpy", the
reference)."""

import numpy as np

from . import _validate as check
from . import activations, errors, heads, optimizers, reference
from .backends import BACKENDS as _BACKENDS
from .layout import Layout

#: The backends' names (``MLP(backend=...)``).
BACKENDS = tuple(_BACKENDS)

#: the largest finite value of each dtype (``_lr``: np.finfo and dtype.name cost
#: microseconds a call)
_LARGEST = {np.dtype(name): float(np.finfo(name).max) for name in check.DTYPES}

#: Attributes rebuilt from the others rather than pickled: views into params, and the
#: backend object with its bound methods.
_DERIVED = ("weights", "biases", "_layout", "_backend", "_forward", "_batch", "_check_params")


class MLP:
    """A dense network sizes[0] -> ... -> sizes[-1] with one hidden activation and an
    output head (``fastgeo.heads``): "sigmoid" (default; the mean binary cross-entropy),
    "softmax" (categorical cross-entropy on one-hot targets) or "identity" (squared
    error, regression).

    The parameters live in one flat buffer ``params`` (layer by layer: W row-major
    (fan_in, fan_out), then b); ``weights`` and ``biases`` are views into it.
    """

    def __init__(self, sizes, activation="relu", init=None, seed=0, dtype="float64",
                 backend="numba", head="sigmoid"):
        sizes = check.sizes(sizes)
        act = activations.get(activation)
        head = _head(head, sizes)
        if init is not None and init not in reference.INITS:
            raise ValueError(f"init must be one of {reference.INITS} or None, got {init!r}")
        seed = check.integer("seed", seed, minimum=0)
        dt = check.dtype(dtype)
        weights, biases = reference.init_params(sizes, act.name, init, seed, dt)
        self._setup(sizes, act, dt, backend, weights, biases, head)
        self.init = init or act.default_init

    @classmethod
    def from_params(cls, weights, biases, activation="relu", backend="numba", dtype=None,
                    head="sigmoid"):
        """A net holding copies of the given weights [(fan_in, fan_out)] and biases
        [(fan_out,)]; dtype defaults to the weights' float dtype."""
        act = activations.get(activation)
        if dtype is not None:
            dtype = check.dtype(dtype)
        sizes, Ws, bs, dt = check.parameters(weights, biases, dtype)
        head = _head(head, sizes)
        net = cls.__new__(cls)
        net._setup(sizes, act, np.dtype(dt), backend, Ws, bs, head)
        net.init = None
        return net

    def _setup(self, sizes, act, dt, backend, weights, biases, head):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.sizes = sizes
        self._act = act
        self._head = head
        self.dtype = dt
        self.backend = backend
        self._sizes = np.array(sizes, dtype=np.int64)  # as the kernels take them
        self.params = np.empty(Layout(sizes).n_params, dtype=dt)
        self._bind()
        for W, W0, b, b0 in zip(self.weights, weights, self.biases, biases):
            W[...] = W0
            b[...] = b0

    def _bind(self):
        """The layout, the weights/biases views of params, the backend object and its
        methods the hot paths call (bound once: no lookups per call)."""
        self._layout = Layout(self.sizes)
        self._macs = self._layout.macs_per_sample
        self.weights, self.biases = self._layout.views(self.params)
        self._backend = _BACKENDS[self.backend](self._layout, self._act, self.params,
                                                self.weights, self.biases, self._head)
        self._forward = self._backend.forward
        self._batch = self._backend.batch
        self._check_params = self._backend.check_params

    # --- introspection -------------------------------------------------------------

    @property
    def activation(self):
        return self._act.name

    @property
    def head(self):
        return self._head.name

    @property
    def n_params(self):
        return self.params.size

    @property
    def macs_per_sample(self):
        """Multiply-adds of one forward pass of one sample."""
        return self._macs

    def __repr__(self):
        head = "" if self.head == "sigmoid" else f", head={self.head!r}"
        return (f"MLP(sizes={self.sizes}, activation={self.activation!r}, "
                f"dtype={self.dtype.name!r}, backend={self.backend!r}{head})")

    def __getstate__(self):
        # weights/biases are views into params: pickle (and deepcopy) params once and
        # rebuild the views, or the copies would no longer share memory with params; the
        # backend is rebuilt from its name (the state is what it has always been).
        return {k: v for k, v in self.__dict__.items() if k not in _DERIVED}

    def __setstate__(self, state):
        state.setdefault("_head", heads.HEADS["sigmoid"])  # pickled before heads existed
        self.__dict__.update(state)
        self._bind()

    def copy(self, backend=None):
        """An independent net with the same parameters (optionally another backend)."""
        net = MLP.from_params(self.weights, self.biases, self.activation,
                              backend or self.backend, self.dtype, self.head)
        net.init = self.init
        return net

    def set_params(self, weights, biases):
        """Overwrite the parameters in place (shapes must match the net's)."""
        sizes, Ws, bs, _ = check.parameters(weights, biases, self.dtype)
        if sizes != self.sizes:
            raise ValueError(f"parameters describe sizes {sizes}, the net has {self.sizes}")
        for W, W0, b, b0 in zip(self.weights, Ws, self.biases, bs):
            W[...] = W0
            b[...] = b0

    # --- input checks -------------------------------------------------------------

    def _X(self, X):
        return check.features(X, self.sizes[0], self.dtype)

    def _XY(self, X, y):
        ready = self._batch(X, y)  # the backend's fast path, if it has one
        if ready is not None:
            return ready
        X = self._X(X)
        return X, check.targets(y, X.shape[0], self.sizes[-1], self.dtype, self.head)

    def _lr(self, lr):
        """lr checked: finite, > 0, and representable in the net's dtype (the kernels
        take it in that dtype)."""
        lr = check.positive_finite("lr", lr)
        if lr > _LARGEST[self.dtype]:
            raise ValueError(f"lr must fit the net's {self.dtype.name}, got {lr}")
        return lr

    # --- maths ----------------------------------------------------------------------

    def forward(self, X):
        """The head's output, shape (n, sizes[-1]): probabilities (sigmoid, softmax) or
        the predicted values (identity)."""
        return self._forward(X)

    predict_proba = forward

    def forward_trace(self, X):
        """(zs, acts) as ``fastgeo.reference.forward``: zs[l-1] = z_l, acts[l] = a_l,
        acts[0] = X, acts[-1] = output probabilities."""
        X = self._X(X)
        self._check_params()
        zs, acts = self._backend.forward_trace(X)
        errors.finite("forward_trace", zs[-1])
        return zs, acts

    def loss(self, X, y):
        """The head's loss (sigmoid: the mean binary cross-entropy over all elements)."""
        X, Y = self._XY(X, y)
        if X.shape[0] == 0:
            raise ValueError("X must have at least one sample to compute the loss")
        self._check_params()
        return float(errors.finite("loss", self._backend.loss(X, Y)))

    def gradients(self, X, y):
        """(dWs, dbs): gradients of the loss, shaped as weights and biases."""
        X, Y = self._XY(X, y)
        if X.shape[0] == 0:
            raise ValueError("X must have at least one sample to take gradients")
        self._check_params()
        dWs, dbs = self._backend.gradients(X, Y)
        for g in dWs + dbs:
            errors.finite("gradients", g)
        return dWs, dbs

    def train_step(self, X, y, lr):
        """One SGD step on the batch (X, y); returns the loss measured before the update."""
        lr = self._lr(lr)
        X, Y = self._XY(X, y)
        if X.shape[0] == 0:
            raise ValueError("X must have at least one sample to train on")
        self._check_params()
        return float(self._backend.train_step(X, Y, lr))

    def fit(self, X, y, epochs, lr=None, batch_size=None, shuffle_seed=None,
            permutations=None, optimizer=None, alpha=0.0, sample_weight=None):
        """Mini-batch training in place; returns the (epochs,) array of epoch losses, each
        the mean of the batch losses measured before each update.

        The update is plain SGD at ``lr``, or ``optimizer`` (a ``fastgeo.optimizers``
        object such as ``Adam(0.001)`` or ``SGD(0.1, momentum=0.9)``, or the name "sgd" /
        "adam" for one with scikit-learn's defaults): its state carries over from call to
        call, so fitting epoch by epoch is fitting at once. ``alpha``: L2 penalty 0.5
        alpha sum |W|^2 / n on the weights (scikit-learn's scaling). ``sample_weight``:
        per-sample loss weights (n,).

        batch_size None = full batch. Sample order per epoch: ``permutations[e]`` (an
        (epochs, n) int array) if given; else a fresh permutation per epoch drawn from a
        minstd generator seeded with ``shuffle_seed`` (the same on both backends); else
        0..n-1. If the loss or the parameters turn non-finite, the net (and the
        optimiser) are left as they were at the start of that epoch and
        FloatingPointError names it.
        """
        return self._fit(X, y, epochs, lr, batch_size, shuffle_seed, permutations, optimizer,
                         alpha, sample_weight)[0]

    def _fit(self, X, y, epochs, lr=None, batch_size=None, shuffle_seed=None,
             permutations=None, optimizer=None, alpha=0.0, sample_weight=None):
        """``fit``, returning (history, reported): reported[e] is scikit-learn's
        ``loss_curve_`` entry (batch losses weighted by batch size)."""
        epochs = check.integer("epochs", epochs, minimum=0)
        optimizer = self._optimizer(lr, optimizer)
        alpha = check.nonnegative_finite("alpha", alpha)
        X, Y = self._XY(X, y)
        n = X.shape[0]
        if n == 0:
            raise ValueError("X must have at least one sample to fit")
        if sample_weight is not None:
            sample_weight = check.sample_weight(sample_weight, n, self.dtype)
        batch_size = check.integer("batch_size", batch_size, minimum=1, allow_none=True)
        batch_size = n if batch_size is None else min(batch_size, n)
        shuffle_seed = check.integer("shuffle_seed", shuffle_seed, minimum=0, allow_none=True)
        if permutations is not None:
            permutations = check.permutations(permutations, epochs, n)
        self._check_params()
        optimizer.start(self._layout, self.dtype)
        return self._backend.fit(X, Y, epochs, optimizer, batch_size, shuffle_seed,
                                 permutations, alpha, sample_weight)

    def _optimizer(self, lr, optimizer):
        """The optimiser of a fit: plain SGD at lr, or the one given (by name: fresh)."""
        if optimizer is None:
            if lr is None:
                raise TypeError("fit needs lr (plain SGD) or an optimizer")
            return optimizers.SGD(self._lr(lr), momentum=0.0)
        if lr is not None:
            raise TypeError("fit takes lr or an optimizer, not both (the optimizer's "
                            "learning_rate_init is its rate)")
        if isinstance(optimizer, str):
            return optimizers.make(optimizer, 0.1 if optimizer == "sgd" else 0.001)
        if not isinstance(optimizer, optimizers.Optimizer):
            raise TypeError("optimizer must be a fastgeo.optimizers object or 'sgd'/'adam', "
                            f"got {type(optimizer).__name__}")
        self._lr(optimizer.learning_rate_init)
        return optimizer

    def predict(self, X):
        """sigmoid: 0/1 labels at threshold 0.5, shape (n,) for one output, else (n,
        outputs); softmax: the index of the most probable class, (n,); identity: the
        predicted values, (n,) for one output, else (n, outputs)."""
        p = self.forward(X)
        if self.head == "softmax":
            return p.argmax(axis=1)
        out = p if self.head == "identity" else (p >= 0.5).astype(np.int64)
        return out[:, 0] if self.sizes[-1] == 1 else out

    def score(self, X, y):
        """Accuracy (the fraction of labels predicted right; softmax: of rows), or for the
        identity head the coefficient of determination R^2 (scikit-learn's, averaged
        uniformly over outputs)."""
        X, Y = self._XY(X, y)
        if X.shape[0] == 0:
            raise ValueError("X must have at least one sample to score")
        if self.head == "softmax":
            return float(np.mean(self.predict(X) == Y.argmax(axis=1)))
        pred = self.predict(X).reshape(Y.shape)
        if self.head == "identity":
            residual = ((Y - pred) ** 2).sum(axis=0)
            spread = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
            r2 = np.where(spread > 0, 1 - residual / np.where(spread > 0, spread, 1),
                          np.where(residual > 0, 0.0, 1.0))
            return float(r2.mean())
        return float(np.mean(pred == Y))


def _head(name, sizes):
    """The head checked against the net's outputs (softmax needs two or more)."""
    head = heads.get(name)
    if sizes[-1] < head.min_outputs:
        raise ValueError(f"the {head.name} head needs at least {head.min_outputs} outputs, "
                         f"sizes end in {sizes[-1]}")
    return head
