"""What is measured: the nets, the workloads (issue 7's target table), their data and weights.

Every implementation of a workload starts from the same float32 weights
(``fastgeo.reference.init_params(sizes, activation, None, seed=0)``, the weights
``fastgeo.MLP(sizes, activation, seed=0, dtype="float32")`` holds) and the same data.
"""

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

#: Net A, B, C of the performance issue
NETS = {
    "A": (2, 8, 8, 1),
    "B": (2, 64, 64, 1),
    "C": (32, 512, 512, 1),
}

ACTIVATIONS = ("sigmoid", "relu")
PHASES = ("forward", "step", "fit", "article")

#: float32 throughout, except the article protocol (float64, like the notebook)
DTYPE = np.float32


def macs(sizes):
    """Multiply-adds of one sample's forward pass."""
    return sum(i * o for i, o in pairwise(sizes))


@dataclass(frozen=True)
class Target:
    """fastgeo numba must be at least ``value`` times ``against`` (an implementation name,
    "best" = the fastest peer), or reach ``value`` of the practical peak (against="peak"),
    or take at most ``value`` seconds (against="seconds")."""

    against: str
    value: float

    def text(self):
        if self.against == "peak":
            return f">={self.value:.0%} peak"
        if self.against == "seconds":
            return f"<={self.value:g}s"
        return f">={self.value:g}x {self.against}"


@dataclass(frozen=True)
class Workload:
    key: str  # e.g. "A-fwd-256"
    net: str  # "A" | "B" | "C" | "article"
    phase: str  # forward | step | fit | article
    batch: int  # rows per call; for fit the training-set size
    epochs: int = 1
    lr: float = 0.1
    targets: tuple = field(default=())
    title: str = ""

    @property
    def sizes(self):
        return NETS.get(self.net, (2, 8, 8, 1))

    @property
    def samples_per_call(self):
        """Sample passes per timed call: rows x epochs (article: 2 nets x 800 x 300)."""
        if self.phase == "article":
            return 2 * 800 * 300
        return self.batch * self.epochs

    @property
    def flops_per_call(self):
        """2 flops per multiply-add; a training step counts 3 matmul passes (forward,
        back-propagated error, weight gradient), the usual 6 x MACs convention."""
        per_sample = 2 * macs(self.sizes) * (1 if self.phase == "forward" else 3)
        return per_sample * self.samples_per_call

    def describe(self):
        if self.title:
            return self.title
        what = {"forward": "forward", "step": "SGD step", "fit": "fit"}[self.phase]
        extra = f", {self.epochs} epochs" if self.phase == "fit" else ""
        return f"{self.net} {what} batch {self.batch}{extra}"


WORKLOADS = {
    w.key: w
    for w in (
        Workload("A-fit", "A", "fit", 1000, epochs=2000, lr=0.5,
                 targets=(Target("jax", 5), Target("numpy", 10), Target("torch", 30),
                          Target("peak", 0.25)),
                 title="A fit moons 1000x2000ep"),
        Workload("A-fwd-256", "A", "forward", 256, targets=(Target("best", 2),)),
        Workload("A-fwd-65536", "A", "forward", 65536, targets=(Target("best", 3),)),
        Workload("A-step-4096", "A", "step", 4096, targets=(Target("best", 3),)),
        Workload("B-fwd-4096", "B", "forward", 4096, targets=(Target("best", 1.5),)),
        Workload("B-step-4096", "B", "step", 4096, targets=(Target("best", 1.5),)),
        Workload("C-fwd-4096", "C", "forward", 4096,
                 targets=(Target("best", 1.0), Target("peak", 0.6))),
        Workload("C-step-4096", "C", "step", 4096,
                 targets=(Target("best", 1.0), Target("peak", 0.6))),
        Workload("article", "article", "article", 300, epochs=800, lr=0.05,
                 targets=(Target("numpy", 20),),
                 title="article protocol (2 nets, 800ep, b64)"),
    )
}

#: cold compile of the kernels `fastgeo reproduce` needs, and first call from the cache
COMPILE_TARGETS = {"cold": Target("seconds", 5.0), "cached": Target("seconds", 0.3)}

#: epochs of the fit run by the correctness check (outside the timed region)
CHECK_EPOCHS = 20


def initial_params(sizes, activation, dtype=DTYPE, seed=0):
    """(weights, biases): the float weights every implementation starts from."""
    from fastgeo import reference

    return reference.init_params(tuple(sizes), activation, None, seed, np.dtype(dtype).type)


def moons(n=1000, dtype=DTYPE):
    """Standardized two-moons (noise 0.2, random_state 0), as ``fastgeo demo``."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n, noise=0.2, random_state=0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X.astype(dtype), y.astype(dtype).reshape(-1, 1)


def random_batch(n_in, batch, dtype=DTYPE, seed=1):
    """Standard-normal features and balanced random 0/1 labels (n, 1)."""
    rng = np.random.RandomState(seed)
    X = rng.randn(batch, n_in).astype(dtype)
    y = (rng.rand(batch, 1) < 0.5).astype(dtype)
    return X, y


def data(workload):
    """(X, Y) for a forward/step/fit workload."""
    if workload.phase == "fit":
        return moons(workload.batch)
    return random_batch(workload.sizes[0], workload.batch)


def select(keys=None, quick=False):
    """Workloads by key (None = all)."""
    if keys is None:
        return list(WORKLOADS.values())
    unknown = [k for k in keys if k not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    return [WORKLOADS[k] for k in keys]
