"""Every registered hidden activation: forward and one SGD step of net B (2-64-64-1,
batch 4096, float32, numba), the shape where the activation's cost shows most.

The parameter list is the benchmarked commit's registry (``fastgeo.activations``), so an
activation added there is tracked from its first commit on; commits before the registry
had these fields track sigmoid and relu only."""

import fastgeo

from .common import Suite, moons, restore, start_weights

try:
    from fastgeo.activations import ACTIVATIONS as _REGISTRY

    NAMES = list(_REGISTRY)
except ImportError:  # pragma: no cover - commits before the registry module
    NAMES = ["sigmoid", "relu"]


class EveryActivation(Suite):
    """Seconds per ``net.forward(X)`` and per ``net.train_step(X, y, lr)``."""

    params = [NAMES]
    param_names = ["activation"]
    arch, batch, lr = (2, 64, 64, 1), 4096, 0.01

    def build(self, activation):
        net = fastgeo.MLP(self.arch, activation, seed=0, dtype="float32", backend="numba")
        X, y = moons(self.batch, "float32")
        p0 = start_weights(net)
        net.forward(X)  # compiles (or loads) the kernels timed below
        net.train_step(X, y, self.lr)
        return {"net": net, "X": X, "y": y, "p0": p0}

    def reset(self):
        restore(self.net, self.p0)

    def time_forward(self, activation):
        self.net.forward(self.X)

    def time_train_step(self, activation):
        self.net.train_step(self.X, self.y, self.lr)
