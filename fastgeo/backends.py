"""The backends ``MLP`` delegates its maths to, behind one interface (``Backend``):
``NumbaBackend`` (``fastgeo.kernels``) and ``NumpyBackend`` (``fastgeo.reference``).

A backend object belongs to one net: it is built on the net's layout, activation and
flat ``params`` buffer (with the ``weights``/``biases`` views of it) and computes on them
in place. ``MLP`` checks the arguments both backends share (shapes, labels, lr, the empty
batch) and the results' finiteness; a backend does the rest: ``forward`` takes X as the
user gave it (the numba backend's NaN/inf checks run in the kernel's own pass),
``batch`` is the fast path of the (X, y) checks, and the other methods take checked,
converted arrays. ``BACKENDS`` maps each backend's name (``MLP.backend``) to its class.
"""

import math

import numba
import numpy as np

from . import _validate as check
from . import errors, heads, kernels, reference

#: Multiply-adds per call (rows x MACs per row) from which the parallel paths are used:
#: ~200 us of serial float32 work (the tiles run at ~20 GMAC/s); handing blocks to the
#: thread pool and joining them cost 50-100 us per call on a 2-core machine.
PARALLEL_MIN_MACS = 4_000_000
#: Rows per parallel block: at least one whole tile of any net (blocks are made of whole
#: tiles; small nets' tiles are twice TILE, ``kernels.tile_columns``).
PARALLEL_MIN_ROWS = 2 * max(kernels.TILE.values())


def n_chunks(n_rows, macs_per_row):
    """How many parallel blocks a call over n_rows should use (1 = serial)."""
    if n_rows * macs_per_row < PARALLEL_MIN_MACS:
        return 1  # before asking numba: get_num_threads() costs microseconds
    threads = numba.get_num_threads()
    if threads < 2:
        return 1
    return int(max(1, min(threads, n_rows // PARALLEL_MIN_ROWS)))


class Backend:
    """The interface. X and Y below are checked, C-contiguous arrays of the net's dtype,
    Y of shape (n, outputs), n > 0; lr a float that fits the dtype."""

    name = None

    def __init__(self, layout, activation, params, weights, biases, head=heads.HEADS["sigmoid"]):
        self.layout = layout
        self.act = activation
        self.head = head
        self.params = params
        self.weights, self.biases = weights, biases
        self.dtype = params.dtype

    def batch(self, X, y):
        """(X, Y) when X and y need no conversion and are valid, checked in one pass;
        None (this default) when the generic checks of ``fastgeo._validate`` must run."""

    def params_finite(self):
        raise NotImplementedError

    def check_params(self):
        """ValueError if the parameters hold NaN or inf."""
        if not self.params_finite():
            raise ValueError(errors.PARAMS_NOT_FINITE)

    def forward(self, X):
        """Output probabilities (n, outputs) of X as given by the user: checks X (NaN and
        inf too) and the parameters, and the output for overflow."""
        raise NotImplementedError

    def forward_trace(self, X):
        """(zs, acts) as ``reference.forward`` (finiteness unchecked)."""
        raise NotImplementedError

    def loss(self, X, Y):
        """The mean BCE (finiteness unchecked)."""
        raise NotImplementedError

    def gradients(self, X, Y):
        """(dWs, dbs) shaped as weights and biases (finiteness unchecked)."""
        raise NotImplementedError

    def train_step(self, X, Y, lr):
        """One SGD step in place; the loss before it. Raises FloatingPointError, leaving
        the parameters unchanged, if the loss or the update is non-finite."""
        raise NotImplementedError

    def fit(self, X, Y, epochs, optimizer, batch_size, shuffle_seed, permutations, alpha=0.0,
            sample_weight=None):
        """``MLP.fit`` on checked arguments (batch_size an int <= n; permutations None or
        checked; optimizer a ``fastgeo.optimizers`` object, started on this net); returns
        (history, reported) as ``fastgeo.reference.train``."""
        raise NotImplementedError


def _quiet():
    """The numpy backend checks its results for non-finite values itself (and raises
    FloatingPointError), so NumPy's overflow warnings are silenced around it."""
    return np.errstate(over="ignore", invalid="ignore")


class NumpyBackend(Backend):
    """``fastgeo.reference``, the NumPy oracle, on the net's weights and biases views."""

    name = "numpy"

    def params_finite(self):
        return bool(np.isfinite(self.params).all())

    def forward(self, X):
        X = check.features(X, self.layout.sizes[0], self.dtype)
        self.check_params()
        with _quiet():
            out = reference.predict_proba(self.weights, self.biases, X, self.act.name,
                                          self.head.name)
        return errors.finite("forward", out)

    def forward_trace(self, X):
        with _quiet():
            return reference.forward(self.weights, self.biases, X, self.act.name,
                                     self.head.name)

    def loss(self, X, Y):
        with _quiet():
            return reference.loss(self.weights, self.biases, X, Y, self.act.name,
                                  self.head.name)

    def gradients(self, X, Y):
        with _quiet():
            return reference.gradients(self.weights, self.biases, X, Y, self.act.name,
                                       self.head.name)

    def train_step(self, X, Y, lr):
        with _quiet():
            zs, acts = reference.forward(self.weights, self.biases, X, self.act.name,
                                         self.head.name)
            value = self.head.loss(zs[-1], Y)
            dWs, dbs = reference.backward(self.weights, zs, acts, Y, self.act.name,
                                          self.head.name)
        errors.finite("train_step loss", value)
        with _quiet():
            for p, g in zip(self.weights + self.biases, dWs + dbs):
                errors.finite("train_step update", p - lr * g)
        reference.sgd_step(self.weights, self.biases, dWs, dbs, lr)
        return value

    def fit(self, X, Y, epochs, optimizer, batch_size, shuffle_seed, permutations, alpha=0.0,
            sample_weight=None):
        with _quiet():
            return reference.train(self.weights, self.biases, X, Y, epochs, optimizer,
                                   self.act.name, self.head.name, alpha, sample_weight,
                                   batch_size, shuffle_seed, permutations)


class NumbaBackend(Backend):
    """``fastgeo.kernels`` on the flat ``params`` buffer."""

    name = "numba"

    def __init__(self, layout, activation, params, weights, biases, head=heads.HEADS["sigmoid"]):
        super().__init__(layout, activation, params, weights, biases, head)
        self.head_code = head.code
        self.sizes = np.array(layout.sizes, dtype=np.int64)  # as the kernels take them
        self.code = activation.code
        self.n_in, self.n_out = layout.sizes[0], layout.sizes[-1]
        self.macs = layout.macs_per_sample
        self.workspace_key = kernels.workspace_key(self.sizes, self.dtype)
        self._forward_entry = None  # kernels.compiled_entry of forward_into, on first use

    def batch(self, X, y):
        k = self.n_out
        if self.head.name == "sigmoid" and (check.ready(X, self.n_in, self.dtype)
                and type(y) is np.ndarray and y.dtype == self.dtype and y.flags.c_contiguous
                and y.shape[0] == X.shape[0]
                and (y.shape[1:] == (k,) or (y.ndim == 1 and k == 1))):
            # nothing to convert: one compiled pass checks both (small training steps
            # spent more time in NumPy's checks than in the kernel)
            error = errors.batch_error(kernels.check_batch(X.reshape(-1), y.reshape(-1)))
            if error is not None:
                raise error
            return X, y.reshape(X.shape[0], k)
        return None

    def params_finite(self):
        return kernels.all_finite(self.params)

    def forward(self, X):
        # latency matters here (a 256-row call computes in a few microseconds): the NaN/inf
        # checks of X, the parameters and the output run in the kernel's own pass, X's
        # and the parameters' before anything is computed
        direct = (type(X) is np.ndarray and X.ndim == 2 and X.dtype == self.dtype
                  and X.shape[1] == self.n_in)
        if direct:
            flags = X.flags
            direct = flags.c_contiguous and flags.writeable
        if not direct:
            X = check.features(X, self.n_in, self.dtype, finite=False)
        n = X.shape[0]
        out = np.empty((n, self.n_out), dtype=self.dtype)
        chunks = n_chunks(n, self.macs)
        if chunks > 1:
            status = kernels.forward_parallel(self.params, self.sizes, self.code, X, out,
                                              chunks, self.head_code)
        elif direct:
            # X needs no conversion: forward_into's machine code for these exact types,
            # without numba's per-call type matching (a third of a one-sample call)
            packed, tile = kernels.workspace(self.sizes, self.dtype, self.workspace_key)
            if self._forward_entry is None:
                self._forward_entry = kernels.compiled_entry(
                    kernels.forward_into, self.params, self.sizes, self.code, X, out,
                    packed, tile, self.head_code)
            status = self._forward_entry(self.params, self.sizes, self.code, X, out, packed,
                                         tile, self.head_code)
        else:
            status = kernels.forward(self.params, self.sizes, self.code, X, out,
                                     self.head_code, self.workspace_key)
        if status:  # not FORWARD_OK (0)
            raise errors.forward_error(status, self.dtype)
        return out

    def forward_trace(self, X):
        Z = np.empty((X.shape[0], self.layout.n_units), dtype=self.dtype)
        A = np.empty_like(Z)
        kernels.forward_trace(self.params, self.sizes, self.code, X, Z, A, self.head_code)
        return self.layout.split_units(Z), [X] + self.layout.split_units(A)

    def loss(self, X, Y):
        return kernels.loss(self.params, self.sizes, self.code, X, Y, self.head_code)

    def _loss_and_gradient(self, X, Y):
        """(loss, flat gradient laid out as params)."""
        grad = np.empty_like(self.params)
        rows = None  # all of X, in order
        chunks = n_chunks(X.shape[0], 3 * self.macs)
        if chunks > 1:
            partials = np.empty((chunks, self.params.size), dtype=self.dtype)
            value = kernels.loss_and_gradient_parallel(
                self.params, self.sizes, self.code, X, Y, rows, grad, partials, self.head_code)
        else:
            value = kernels.loss_and_gradient(
                self.params, self.sizes, self.code, X, Y, rows, grad, self.head_code)
        return value, grad

    def gradients(self, X, Y):
        return self.layout.views(self._loss_and_gradient(X, Y)[1])

    def train_step(self, X, Y, lr):
        value, grad = self._loss_and_gradient(X, Y)
        if not math.isfinite(value):
            errors.finite("train_step loss", value)
        if not kernels.sgd_step_if_finite(self.params, grad, self.dtype.type(lr)):
            raise errors.update_overflow(self.dtype)
        return value

    def fit(self, X, Y, epochs, optimizer, batch_size, shuffle_seed, permutations, alpha=0.0,
            sample_weight=None):
        history, reported = np.empty(epochs), np.empty(epochs)
        perms = permutations if permutations is not None else np.empty((0, X.shape[0]),
                                                                       np.int64)
        state = 0 if shuffle_seed is None else reference.shuffle_state(shuffle_seed)
        schedule = (optimizer.learning_rate, optimizer.samples_seen)
        rates = optimizer.rates(epochs, X.shape[0])
        steps = np.array([optimizer.t], dtype=np.int64)
        failed = kernels.train(self.params, self.sizes, self.code, X, Y, epochs, rates,
                               batch_size, state, perms, history, self.head_code,
                               sample_weight, alpha, optimizer.code, optimizer.hyper(),
                               optimizer.state.reshape(-1), steps, reported)
        optimizer.t = int(steps[0])
        if failed >= 0:
            optimizer.learning_rate, optimizer.samples_seen = schedule
            optimizer.rates(failed, X.shape[0])  # the schedule as at the failed epoch's start
            raise errors.fit_diverged(failed)
        return history, reported


#: The backends by name (``MLP(backend=...)``).
BACKENDS = {backend.name: backend for backend in (NumbaBackend, NumpyBackend)}
