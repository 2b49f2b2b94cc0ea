"""Training: one SGD step, the fused whole-fit kernel on two-moons (plain SGD and Adam),
the article protocol's 800-epoch run (time, final loss, test error), the peak memory of a
large-batch fit, and scikit-learn's digits on a softmax net."""

import numpy as np

import fastgeo

from .common import (
    ACTIVATIONS,
    ARCHS,
    BACKENDS,
    DTYPES,
    PROTOCOL,
    Suite,
    article_setup,
    best_seconds,
    features,
    moons,
    restore,
    sizes,
    start_weights,
)


class TrainStep(Suite):
    """One ``net.train_step(X, y, lr)`` (forward, loss, gradient, update) on each net of
    the performance targets: A = 2-8-8-1, B = 2-64-64-1, C = 32-512-512-1.

    Pruned to the performance target's rows where the rest adds little but time: C only
    at batch 4096 and float32 (a float64 C step took 0.23 s on numba and 0.33 s on numpy
    per call, 1 thread, on the 2-core development machine); A only at batch 4096 (at
    256 its time is mostly per-call overhead, which ``Forward`` at batch 256 tracks)."""

    params = [ACTIVATIONS, BACKENDS, ARCHS, [256, 4096], DTYPES]
    param_names = ["activation", "backend", "arch", "batch", "dtype"]
    lr = 0.01

    def pruned(self, activation, backend, arch, batch, dtype):
        if arch == "32-512-512-1" and (batch != 4096 or dtype != "float32"):
            return "pruned: 32-512-512-1 is tracked at its target's row (4096, float32)"
        if arch == "2-8-8-1" and batch != 4096:
            return "pruned: a 2-8-8-1 step at batch 256 is mostly per-call overhead"
        return None

    def build(self, activation, backend, arch, batch, dtype):
        dims = sizes(arch)
        net = fastgeo.MLP(dims, activation, seed=0, dtype=dtype, backend=backend)
        if dims[0] == 2:
            X, y = moons(batch, dtype)
        else:
            X = features(batch, dims[0], dtype)
            y = (X[:, 0] > 0).astype(dtype)
        p0 = start_weights(net)
        net.train_step(X, y, self.lr)  # compiles the step's kernels (same path as timed)
        return {"net": net, "X": X, "y": y, "p0": p0}

    def reset(self):
        restore(self.net, self.p0)

    def time_train_step(self, activation, backend, arch, batch, dtype):
        self.net.train_step(self.X, self.y, self.lr)

    def track_ns_per_sample(self, activation, backend, arch, batch, dtype):
        seconds = best_seconds(lambda: self.net.train_step(self.X, self.y, self.lr))
        return seconds / batch * 1e9

    track_ns_per_sample.unit = "ns/sample"


class Fit(Suite):
    """``net.fit`` on two-moons: 1000 samples, 2000 full-batch epochs, lr 0.5, 2-8-8-1
    (``fastgeo demo``'s workload, in float64; the performance target's row is float32; on
    numba one call of the fused ``train`` kernel)."""

    params = [ACTIVATIONS, BACKENDS, DTYPES]
    param_names = ["activation", "backend", "dtype"]
    n, epochs, lr = 1000, 2000, 0.5
    repeat = (1, 5, 5.0)  # numpy: 1-3 s a call

    def build(self, activation, backend, dtype):
        net = fastgeo.MLP((2, 8, 8, 1), activation, seed=0, dtype=dtype, backend=backend)
        X, y = moons(self.n, dtype)
        p0 = start_weights(net)
        net.fit(X, y, 1, self.lr)
        return {"net": net, "X": X, "y": y, "p0": p0}

    def reset(self):
        restore(self.net, self.p0)

    def _fit(self):
        self.net.fit(self.X, self.y, self.epochs, self.lr)

    def time_fit(self, activation, backend, dtype):
        self._fit()

    def track_ns_per_sample_epoch(self, activation, backend, dtype):
        """Nanoseconds per sample per epoch: fit seconds / (epochs x samples)."""

        def fit():
            self.reset()
            self._fit()

        return best_seconds(fit, min_calls=3, min_time=0) / (self.epochs * self.n) * 1e9

    track_ns_per_sample_epoch.unit = "ns/sample/epoch"


class Article(Suite):
    """The article's protocol: 2-8-8-1 on two-moons (300 train / 100 test), lr 0.05,
    batch 64, 800 epochs on the article's weights and epoch permutations.

    The time of the run, and its final loss and test error: a change in the numerics shows
    here as a tracked change even when the parity tests' tolerances let it through."""

    params = [ACTIVATIONS, BACKENDS]
    param_names = ["activation", "backend"]
    epochs = PROTOCOL["epochs"]
    repeat = (1, 5, 5.0)  # numpy: 1-3 s a call

    def build(self, activation, backend):
        (Xtr, Xte, ytr, yte), params, perms = article_setup()
        net = fastgeo.MLP.from_params(*params[activation], activation=activation,
                                      backend=backend)
        p0 = start_weights(net)
        net.fit(Xtr, ytr, 1, PROTOCOL["lr"], batch_size=PROTOCOL["batch_size"],
                permutations=perms[:1])
        return {"net": net, "p0": p0, "Xtr": Xtr, "Xte": Xte, "ytr": ytr, "yte": yte,
                "perms": perms}

    def reset(self):
        restore(self.net, self.p0)

    def _fit(self):
        return self.net.fit(self.Xtr, self.ytr, self.epochs, PROTOCOL["lr"],
                            batch_size=PROTOCOL["batch_size"],
                            permutations=self.perms[:self.epochs])

    def time_fit(self, activation, backend):
        self._fit()

    def track_final_loss(self, activation, backend):
        self.reset()
        return float(self._fit()[-1])

    track_final_loss.unit = "BCE"

    def track_test_error(self, activation, backend):
        self.reset()
        self._fit()
        return round(1.0 - self.net.score(self.Xte, self.yte), 9)

    track_test_error.unit = "fraction"


class FitMemory(Suite):
    """Peak resident memory of a large-batch fit: 2-64-64-1, 65536 samples, full batch,
    2 epochs. The NumPy reference keeps every layer's activations for the whole batch;
    the numba kernels keep one tile's (96 float64 samples). (asv's figure is the
    process's peak, so it includes Python, numpy and numba themselves.)"""

    params = [BACKENDS]
    param_names = ["backend"]
    n, epochs, lr = 65536, 2, 0.01

    def build(self, backend):
        net = fastgeo.MLP((2, 64, 64, 1), "relu", seed=0, backend=backend)
        X, y = moons(self.n, "float64")
        # Warm up (the fit is one serial compiled call at any size), so no compilation
        # happens inside the measured call.
        net.fit(X[:4096], y[:4096], 1, self.lr)
        return {"net": net, "X": X, "y": y}

    def peakmem_fit(self, backend):
        self.net.fit(self.X, self.y, self.epochs, self.lr)


def _training_v2():
    """``fastgeo.optimizers``, or NotImplementedError (asv: skipped) on commits before it."""
    try:
        from fastgeo import optimizers
    except ImportError:
        raise NotImplementedError("fastgeo before Training v2 (no optimizers)") from None
    return optimizers


class AdamFit(Suite):
    """``net.fit`` with scikit-learn's Adam (lr 0.01) on two-moons: 1000 samples, 2000
    full-batch epochs, 2-8-8-1, float32 (``fastgeo bench``'s A-fit-adam row)."""

    params = [ACTIVATIONS, BACKENDS]
    param_names = ["activation", "backend"]
    n, epochs, lr = 1000, 2000, 0.01
    repeat = (1, 5, 5.0)  # numpy: 1-3 s a call

    def build(self, activation, backend):
        optimizers = _training_v2()
        net = fastgeo.MLP((2, 8, 8, 1), activation, seed=0, dtype="float32", backend=backend)
        X, y = moons(self.n, "float32")
        net.fit(X, y, 1, optimizer=optimizers.Adam(self.lr))
        return {"net": net, "X": X, "y": y, "p0": start_weights(net),
                "optimizers": optimizers}

    def reset(self):
        restore(self.net, self.p0)

    def _fit(self):
        self.net.fit(self.X, self.y, self.epochs, optimizer=self.optimizers.Adam(self.lr))

    def time_fit(self, activation, backend):
        self._fit()

    def track_ns_per_sample_epoch(self, activation, backend):
        def fit():
            self.reset()
            self._fit()

        return best_seconds(fit, min_calls=3, min_time=0) / (self.epochs * self.n) * 1e9

    track_ns_per_sample_epoch.unit = "ns/sample/epoch"


class Digits(Suite):
    """scikit-learn's digits (1797 x 64, 10 classes) on a 64-64-64-10 softmax net, float32:
    the forward pass of the whole set, and 10 epochs of Adam (lr 0.001, batch 200, in
    order) with its final training loss (``fastgeo bench``'s D-fwd and D-fit rows)."""

    params = [ACTIVATIONS, BACKENDS]
    param_names = ["activation", "backend"]
    epochs, lr, batch_size = 10, 0.001, 200

    def build(self, activation, backend):
        from sklearn.datasets import load_digits

        optimizers = _training_v2()
        X, labels = load_digits(return_X_y=True)
        X = (X / 16.0).astype("float32")
        Y = np.eye(10, dtype="float32")[labels]
        net = fastgeo.MLP((64, 64, 64, 10), activation, seed=0, dtype="float32",
                          backend=backend, head="softmax")
        net.forward(X)
        net.fit(X, Y, 1, optimizer=optimizers.Adam(self.lr), batch_size=self.batch_size)
        return {"net": net, "X": X, "Y": Y, "p0": start_weights(net),
                "optimizers": optimizers}

    def reset(self):
        restore(self.net, self.p0)

    def _fit(self):
        return self.net.fit(self.X, self.Y, self.epochs, batch_size=self.batch_size,
                            optimizer=self.optimizers.Adam(self.lr))

    def time_forward(self, activation, backend):
        self.net.forward(self.X)

    def time_fit(self, activation, backend):
        self._fit()

    def track_final_loss(self, activation, backend):
        self.reset()
        return float(self._fit()[-1])

    track_final_loss.unit = "loss"
