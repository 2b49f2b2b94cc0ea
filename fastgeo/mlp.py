"""``fastgeo.MLP``: the public network object. It validates, converts, and dispatches to
``fastgeo.kernels`` (backend "numba") or ``fastgeo.reference`` (backend "numpy")."""

import functools
import math

import numba
import numpy as np

from . import _validate as check
from . import activations, kernels, reference

BACKENDS = ("numba", "numpy")

#: Multiply-adds per call (rows x MACs per row) from which the parallel paths are used:
#: ~200 us of serial float32 work (the tiles run at ~20 GMAC/s); handing blocks to the
#: thread pool and joining them cost 50-100 us per call on a 2-core machine.
PARALLEL_MIN_MACS = 4_000_000
#: Rows per parallel block: at least one whole tile (blocks are made of whole tiles).
PARALLEL_MIN_ROWS = max(kernels.TILE.values())

#: The numpy backend checks its results for non-finite values itself and raises
#: FloatingPointError, so NumPy's overflow warnings are silenced around it.
def _quiet():
    return np.errstate(over="ignore", invalid="ignore")


@functools.lru_cache(maxsize=256)
def _macs(sizes):
    """Multiply-adds of one sample's forward pass (cached: read on every dispatch)."""
    return sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))


def _n_chunks(n_rows, macs_per_row):
    """How many parallel blocks a call over n_rows should use (1 = serial)."""
    if n_rows * macs_per_row < PARALLEL_MIN_MACS:
        return 1  # before asking numba: get_num_threads() costs microseconds
    threads = numba.get_num_threads()
    if threads < 2:
        return 1
    return int(max(1, min(threads, n_rows // PARALLEL_MIN_ROWS)))


X_NOT_FINITE = "X contains NaN or inf"
PARAMS_NOT_FINITE = "the net's parameters contain NaN or inf"


def _overflow(name, dtype):
    return FloatingPointError(f"{name} overflowed to a non-finite value (inputs or weights "
                              f"too large for {np.dtype(dtype).name})")


def forward_error(status, dtype):
    """The exception for a ``kernels.forward`` status (None for FORWARD_OK)."""
    if status == kernels.FORWARD_BAD_X:
        return ValueError(X_NOT_FINITE)
    if status == kernels.FORWARD_BAD_PARAMS:
        return ValueError(PARAMS_NOT_FINITE)
    if status == kernels.FORWARD_OVERFLOW:
        return _overflow("forward", dtype)
    return None


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
        self._sizes = np.array(sizes, dtype=np.int64)
        self._macs = _macs(sizes)
        n_params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
        self.params = np.empty(n_params, dtype=dt)
        self.weights, self.biases = [], []
        p = 0
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            self.weights.append(self.params[p:p + fan_in * fan_out].reshape(fan_in, fan_out))
            p += fan_in * fan_out
            self.biases.append(self.params[p:p + fan_out])
            p += fan_out
        for W, W0, b, b0 in zip(self.weights, weights, self.biases, biases):
            W[...] = W0
            b[...] = b0

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
        # rebuild the views, or the copies would no longer share memory with params.
        state = self.__dict__.copy()
        del state["weights"], state["biases"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.weights, self.biases = self._unflatten(self.params)

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
        k = self.sizes[-1]
        if (self.backend == "numba" and check.ready(X, self.sizes[0], self.dtype)
                and type(y) is np.ndarray and y.dtype == self.dtype and y.flags.c_contiguous
                and y.shape[0] == X.shape[0]
                and (y.shape[1:] == (k,) or (y.ndim == 1 and k == 1))):
            # nothing to convert: one compiled pass checks both (small training steps
            # spent more time in NumPy's checks than in the kernel)
            status = kernels.check_batch(X.reshape(-1), y.reshape(-1))
            if status == kernels.BATCH_BAD_X:
                raise ValueError(X_NOT_FINITE)
            if status == kernels.BATCH_BAD_Y:
                raise ValueError("y must contain only 0 and 1 labels")
            return X, y.reshape(X.shape[0], k)
        X = self._X(X)
        return X, check.labels(y, X.shape[0], self.sizes[-1], self.dtype)

    def _check_params(self):
        finite = (kernels.all_finite(self.params) if self.backend == "numba"
                  else np.isfinite(self.params).all())
        if not finite:
            raise ValueError(PARAMS_NOT_FINITE)

    def _lr(self, lr):
        """lr checked: finite, > 0, and representable in the net's dtype (the kernels
        take it in that dtype)."""
        lr = check.positive_finite("lr", lr)
        if lr > float(np.finfo(self.dtype).max):
            raise ValueError(f"lr must fit the net's {self.dtype.name}, got {lr}")
        return lr

    @staticmethod
    def _finite(name, value):
        if not np.all(np.isfinite(value)):
            raise _overflow(name, np.asarray(value).dtype)
        return value

    # --- maths ----------------------------------------------------------------------

    def forward(self, X):
        """Output probabilities, shape (n, sizes[-1])."""
        if self.backend == "numpy":
            X = self._X(X)
            self._check_params()
            with _quiet():
                out = reference.predict_proba(self.weights, self.biases, X, self.activation)
            return self._finite("forward", out)
        # latency matters here (a 256-row call computes in a few microseconds): the NaN/inf
        # checks of X, the parameters and the output run in the kernel's own pass, X's
        # and the parameters' before anything is computed
        X = check.features(X, self.sizes[0], self.dtype, finite=False)
        out = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        n = X.shape[0]
        if n * self._macs < PARALLEL_MIN_MACS:
            status = kernels.forward(self.params, self._sizes, self._act.code, X, out)
        else:
            status = kernels.forward_parallel(self.params, self._sizes, self._act.code, X,
                                              out, _n_chunks(n, self._macs))
        error = forward_error(status, self.dtype)
        if error is not None:
            raise error
        return out

    predict_proba = forward

    def forward_trace(self, X):
        """(zs, acts) as ``fastgeo.reference.forward``: zs[l-1] = z_l, acts[l] = a_l,
        acts[0] = X, acts[-1] = output probabilities."""
        X = self._X(X)
        self._check_params()
        if self.backend == "numpy":
            with _quiet():
                zs, acts = reference.forward(self.weights, self.biases, X, self.activation)
        else:
            U = sum(self.sizes[1:])
            Z = np.empty((X.shape[0], U), dtype=self.dtype)
            A = np.empty_like(Z)
            kernels.forward_trace(self.params, self._sizes, self._act.code, X, Z, A)
            bounds = np.cumsum((0,) + self.sizes[1:])
            zs = [Z[:, s:e] for s, e in zip(bounds[:-1], bounds[1:])]
            acts = [X] + [A[:, s:e] for s, e in zip(bounds[:-1], bounds[1:])]
        self._finite("forward_trace", zs[-1])
        return zs, acts

    def loss(self, X, y):
        """Mean binary cross-entropy over all elements."""
        X, Y = self._XY(X, y)
        if X.shape[0] == 0:
            raise ValueError("X must have at least one sample to compute the loss")
        self._check_params()
        if self.backend == "numpy":
            with _quiet():
                value = reference.loss(self.weights, self.biases, X, Y, self.activation)
        else:
            value = kernels.loss(self.params, self._sizes, self._act.code, X, Y)
        return float(self._finite("loss", value))

    def _loss_and_gradient(self, X, Y):
        """(loss, flat gradient) for validated X, Y, on the numba backend."""
        grad = np.empty_like(self.params)
        rows = np.arange(X.shape[0])
        chunks = _n_chunks(X.shape[0], 3 * self.macs_per_sample)
        if chunks > 1:
            partials = np.empty((chunks, self.params.size), dtype=self.dtype)
            value = kernels.loss_and_gradient_parallel(
                self.params, self._sizes, self._act.code, X, Y, rows, grad, partials)
        else:
            value = kernels.loss_and_gradient(
                self.params, self._sizes, self._act.code, X, Y, rows, grad)
        return value, grad

    def _unflatten(self, flat):
        dWs, dbs, p = [], [], 0
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            dWs.append(flat[p:p + fan_in * fan_out].reshape(fan_in, fan_out))
            p += fan_in * fan_out
            dbs.append(flat[p:p + fan_out])
            p += fan_out
        return dWs, dbs

    def gradients(self, X, y):
        """(dWs, dbs): gradients of the mean BCE, shaped as weights and biases."""
        X, Y = self._XY(X, y)
        if X.shape[0] == 0:
            raise ValueError("X must have at least one sample to take gradients")
        self._check_params()
        if self.backend == "numpy":
            with _quiet():
                dWs, dbs = reference.gradients(self.weights, self.biases, X, Y, self.activation)
        else:
            _, grad = self._loss_and_gradient(X, Y)
            dWs, dbs = self._unflatten(grad)
        for g in dWs + dbs:
            self._finite("gradients", g)
        return dWs, dbs

    def train_step(self, X, y, lr):
        """One SGD step on the batch (X, y); returns the loss measured before the update."""
        lr = self._lr(lr)
        X, Y = self._XY(X, y)
        if X.shape[0] == 0:
            raise ValueError("X must have at least one sample to train on")
        self._check_params()
        if self.backend == "numba":
            value, grad = self._loss_and_gradient(X, Y)
            if not math.isfinite(value):
                self._finite("train_step loss", value)
            if not kernels.sgd_step_if_finite(self.params, grad, self.dtype.type(lr)):
                raise FloatingPointError(
                    f"train_step update overflowed to a non-finite value (inputs, weights or "
                    f"lr too large for {self.dtype.name}); the parameters are unchanged")
            return float(value)
        with _quiet():
            zs, acts = reference.forward(self.weights, self.biases, X, self.activation)
            value = reference.bce_from_logits(zs[-1], Y)
            dWs, dbs = reference.backward(self.weights, zs, acts, Y, self.activation)
        self._finite("train_step loss", value)
        with _quiet():
            for p, g in zip(self.weights + self.biases, dWs + dbs):
                self._finite("train_step update", p - lr * g)
        reference.sgd_step(self.weights, self.biases, dWs, dbs, lr)
        return float(value)

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
        # read-only X or y would compile (and cache) another specialisation of the train
        # kernel, which is slow to compile (~1 min on a loaded 2-core box): copy instead
        X = np.require(X, requirements="W")
        Y = np.require(Y, requirements="W")
        n = X.shape[0]
        if n == 0:
            raise ValueError("X must have at least one sample to fit")
        batch_size = check.integer("batch_size", batch_size, minimum=1, allow_none=True)
        batch_size = n if batch_size is None else min(batch_size, n)
        shuffle_seed = check.integer("shuffle_seed", shuffle_seed, minimum=0, allow_none=True)
        if permutations is not None:
            permutations = check.permutations(permutations, epochs, n)
        self._check_params()
        if self.backend == "numpy":
            with _quiet():
                return reference.fit(self.weights, self.biases, X, Y, epochs, lr,
                                     self.activation, batch_size, shuffle_seed, permutations)
        history = np.empty(epochs)
        perms = (np.require(permutations, requirements="W") if permutations is not None
                 else np.empty((0, n), np.int64))
        state = 0 if shuffle_seed is None else reference.shuffle_state(shuffle_seed)
        failed = kernels.train(self.params, self._sizes, self._act.code, X, Y, epochs,
                               self.dtype.type(lr), batch_size, state, perms, history)
        if failed >= 0:
            raise FloatingPointError(
                f"fit: the loss or the parameters became non-finite in epoch {failed}; "
                f"the parameters are left as they were at the start of epoch {failed}")
        return history

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
