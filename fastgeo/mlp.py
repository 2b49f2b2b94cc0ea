"""``fastgeo.MLP``: the public network object. It validates, converts, and delegates the
maths to its backend (``fastgeo.backends``: "numba", the kernels, or "numpy", the
reference)."""

import numpy as np

from . import _validate as check
from . import activations, errors, reference
from .backends import BACKENDS as _BACKENDS
from .layout import Layout

#: The backends' names (``MLP(backend=...)``).
BACKENDS = tuple(_BACKENDS)

#: Attributes rebuilt from the others rather than pickled: views into params, and the
#: backend object with its bound methods.
_DERIVED = ("weights", "biases", "_layout", "_backend", "_forward", "_batch", "_check_params")


class MLP:
    """A dense network sizes[0] -> ... -> sizes[-1] with one hidden activation, a sigmoid
    output and the mean binary cross-entropy loss.

    The parameters live in one flat buffer ``params`` (layer by layer: W row-major
    (fan_in, fan_out), then b); ``weights`` and ``biases`` are views into it.
    """

    def __init__(self, sizes, activation="relu", init=None, seed=0, dtype="float64",
                 backend="numba"):
        sizes = check.sizes(sizes)
        act = activations.get(activation)
        if init is not None and init not in reference.INITS:
            raise ValueError(f"init must be one of {reference.INITS} or None, got {init!r}")
        seed = check.integer("seed", seed, minimum=0)
        dt = check.dtype(dtype)
        weights, biases = reference.init_params(sizes, act.name, init, seed, dt)
        self._setup(sizes, act, dt, backend, weights, biases)
        self.init = init or act.default_init

    @classmethod
    def from_params(cls, weights, biases, activation="relu", backend="numba", dtype=None):
        """A net holding copies of the given weights [(fan_in, fan_out)] and biases
        [(fan_out,)]; dtype defaults to the weights' float dtype."""
        act = activations.get(activation)
        if dtype is not None:
            dtype = check.dtype(dtype)
        sizes, Ws, bs, dt = check.parameters(weights, biases, dtype)
        net = cls.__new__(cls)
        net._setup(sizes, act, np.dtype(dt), backend, Ws, bs)
        net.init = None
        return net

    def _setup(self, sizes, act, dt, backend, weights, biases):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.sizes = sizes
        self._act = act
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
                                                self.weights, self.biases)
        self._forward = self._backend.forward
        self._batch = self._backend.batch
        self._check_params = self._backend.check_params

    # --- introspection -------------------------------------------------------------

    @property
    def activation(self):
        return self._act.name

    @property
    def n_params(self):
        return self.params.size

    @property
    def macs_per_sample(self):
        """Multiply-adds of one forward pass of one sample."""
        return self._macs

    def __repr__(self):
        return (f"MLP(sizes={self.sizes}, activation={self.activation!r}, "
                f"dtype={self.dtype.name!r}, backend={self.backend!r})")

    def __getstate__(self):
        # weights/biases are views into params: pickle (and deepcopy) params once and
        # rebuild the views, or the copies would no longer share memory with params; the
        # backend is rebuilt from its name (the state is what it has always been).
        return {k: v for k, v in self.__dict__.items() if k not in _DERIVED}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._bind()

    def copy(self, backend=None):
        """An independent net with the same parameters (optionally another backend)."""
        net = MLP.from_params(self.weights, self.biases, self.activation,
                              backend or self.backend, self.dtype)
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
        return X, check.labels(y, X.shape[0], self.sizes[-1], self.dtype)

    def _lr(self, lr):
        """lr checked: finite, > 0, and representable in the net's dtype (the kernels
        take it in that dtype)."""
        lr = check.positive_finite("lr", lr)
        if lr > float(np.finfo(self.dtype).max):
            raise ValueError(f"lr must fit the net's {self.dtype.name}, got {lr}")
        return lr

    # --- maths ----------------------------------------------------------------------

    def forward(self, X):
        """Output probabilities, shape (n, sizes[-1])."""
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
        """Mean binary cross-entropy over all elements."""
        X, Y = self._XY(X, y)
        if X.shape[0] == 0:
            raise ValueError("X must have at least one sample to compute the loss")
        self._check_params()
        return float(errors.finite("loss", self._backend.loss(X, Y)))

    def gradients(self, X, y):
        """(dWs, dbs): gradients of the mean BCE, shaped as weights and biases."""
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

    def fit(self, X, y, epochs, lr, batch_size=None, shuffle_seed=None, permutations=None):
        """Mini-batch SGD in place; returns the (epochs,) array of epoch losses, each the mean
        of the batch losses measured before each update.

        batch_size None = full batch. Sample order per epoch: ``permutations[e]`` (an
        (epochs, n) int array) if given; else a fresh permutation per epoch drawn from a
        minstd generator seeded with ``shuffle_seed`` (the same on both backends); else
        0..n-1. If the loss or the parameters turn non-finite, the net is left at the
        parameters it had at the start of that epoch and FloatingPointError names it.
        """
        epochs = check.integer("epochs", epochs, minimum=0)
        lr = self._lr(lr)
        X, Y = self._XY(X, y)
        n = X.shape[0]
        if n == 0:
            raise ValueError("X must have at least one sample to fit")
        batch_size = check.integer("batch_size", batch_size, minimum=1, allow_none=True)
        batch_size = n if batch_size is None else min(batch_size, n)
        shuffle_seed = check.integer("shuffle_seed", shuffle_seed, minimum=0, allow_none=True)
        if permutations is not None:
            permutations = check.permutations(permutations, epochs, n)
        self._check_params()
        return self._backend.fit(X, Y, epochs, lr, batch_size, shuffle_seed, permutations)

    def predict(self, X):
        """0/1 labels at threshold 0.5: shape (n,) for one output, else (n, outputs)."""
        p = self.forward(X)
        labels = (p >= 0.5).astype(np.int64)
        return labels[:, 0] if self.sizes[-1] == 1 else labels

    def score(self, X, y):
        """Accuracy: the fraction of labels predicted right."""
        X, Y = self._XY(X, y)
        if X.shape[0] == 0:
            raise ValueError("X must have at least one sample to score")
        pred = self.predict(X).reshape(Y.shape)
        return float(np.mean(pred == Y))
