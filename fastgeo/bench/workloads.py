"""What is measured, once for every instrument: the nets, the data and inputs, and the
workloads of the performance targets.

``fastgeo bench`` (fastgeo/bench), the pytest-benchmark groups (tests/bench) and the
asv suite (benchmarks/) all take their nets and data from here, so a number in one means
the same work as in the others. The asv suite also runs against commits older than this
module; ``benchmarks/_fallback.py`` holds the same definitions for those, and
``tests/test_asv_suite.py`` checks that the two agree value for value, so that asv's
results stay comparable across commits.

Every implementation of a workload starts from the same weights
(``fastgeo.reference.init_params(sizes, activation, None, seed=0)``, the weights
``fastgeo.MLP(sizes, activation, seed=0, dtype=...)`` holds) and the same data.
"""

from dataclasses import dataclass, field

import numpy as np

from ..article import protocol
from ..layout import Layout

#: Net A, B, C of the performance issue; D: scikit-learn's digits (64 features, 10
#: classes) with a softmax head
NETS = {
    "A": (2, 8, 8, 1),
    "B": (2, 64, 64, 1),
    "C": (32, 512, 512, 1),
    "D": (64, 64, 64, 10),
}

#: The hidden activations timed by default and in asv (any registry name can be asked for)
ACTIVATIONS = ("sigmoid", "relu")
PHASES = ("forward", "step", "fit", "article")

#: float32 throughout, except the article protocol (float64, like the notebook)
DTYPE = np.float32


def arch(sizes):
    """"2-8-8-1" from (2, 8, 8, 1): how the asv suite names a net in its parameters."""
    return "-".join(str(int(w)) for w in sizes)


def sizes_of(name):
    """(2, 8, 8, 1) from "2-8-8-1" (ValueError on anything else)."""
    try:
        out = tuple(int(w) for w in str(name).split("-"))
    except ValueError:
        raise ValueError(f"a net is written as widths joined by '-', e.g. 2-8-8-1; got "
                         f"{name!r}") from None
    if len(out) < 2 or min(out) < 1:
        raise ValueError(f"a net needs at least two positive widths; got {name!r}")
    return out


#: The nets as the asv suite names them, A, B, C in order.
ARCHS = [arch(NETS[k]) for k in ("A", "B", "C")]


def macs(sizes):
    """Multiply-adds of one sample's forward pass."""
    return Layout(sizes).macs_per_sample


# --- data ------------------------------------------------------------------------------


def features(n, n_features, dtype, seed=0):
    """Standard-normal inputs, (n, n_features), C-contiguous, of the given dtype."""
    return np.random.RandomState(seed).randn(n, n_features).astype(dtype)


def moons(n, dtype, noise=0.2, seed=0):
    """Two-moons as ``fastgeo demo`` makes them: X standardized, y 0/1 of ``dtype``, 1-D."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X.astype(dtype), y.astype(dtype)


def random_batch(n_in, batch, dtype=DTYPE, seed=1):
    """Standard-normal features (``features(batch, n_in, dtype, seed)``) and balanced
    random 0/1 labels (batch, 1) drawn from the same stream after them."""
    rng = np.random.RandomState(seed)
    X = rng.randn(batch, n_in).astype(dtype)
    y = (rng.rand(batch, 1) < 0.5).astype(dtype)
    return X, y


def initial_params(sizes, activation, dtype=DTYPE, seed=0):
    """(weights, biases): the float weights every implementation starts from."""
    from .. import reference

    return reference.init_params(tuple(sizes), activation, None, seed, np.dtype(dtype).type)


# --- the workloads of the performance targets -------------------------------------------


@dataclass(frozen=True)
class Target:
    """fastgeo must be at least ``value`` times ``against`` (an implementation name;
    "best" = the fastest peer), or reach the fraction ``value`` of the FMA limit
    (against="fma", ``fastgeo.bench.peak.fma_limit_gflops``), or take at most ``value``
    seconds (against="seconds"). ``activation``: the target holds for that hidden
    activation only (None: for every one)."""

    against: str
    value: float
    activation: str = None

    def text(self):
        if self.against == "fma":
            what = f">={self.value:.0%} FMA limit"
        elif self.against == "seconds":
            what = f"<={self.value:g}s"
        else:
            what = f">={self.value:g}x {self.against}"
        return what + (f" ({self.activation})" if self.activation else "")

    def applies(self, activation):
        return self.activation is None or self.activation == activation


@dataclass(frozen=True)
class Workload:
    key: str  # e.g. "A-fwd-256"
    net: str  # "A" | "B" | "C" | "D" | "article"
    phase: str  # forward | step | fit | article
    batch: int  # rows per call; for fit the training-set size
    epochs: int = 1
    lr: float = 0.1
    targets: tuple = field(default=())
    title: str = ""
    optimizer: str = "sgd"  # fit: "sgd" (plain) or "adam" (scikit-learn's form)
    head: str = "sigmoid"  # the output head (fastgeo.heads)
    batch_size: int = None  # fit: mini-batch size, in order (None: the whole set)

    @property
    def training(self):
        """The keyword arguments an implementation's fit takes beyond the plain SGD ones."""
        return {"optimizer": self.optimizer, "head": self.head, "batch_size": self.batch_size}

    @property
    def sizes(self):
        return NETS[self.net] if self.net in NETS else tuple(protocol.PROTOCOL["sizes"])

    @property
    def samples_per_call(self):
        """Sample passes per timed call: rows x epochs (article: both nets' epochs over
        the training rows)."""
        if self.phase == "article":
            return len(protocol.ACTIVATIONS) * self.batch * self.epochs
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


#: The rows of the performance targets (issue 11's "Targets" table, `--threads 1`).
WORKLOADS = {
    w.key: w
    for w in (
        Workload("A-fit", "A", "fit", 1000, epochs=2000, lr=0.5,
                 targets=(Target("jax", 5), Target("torch", 30), Target("numpy", 10),
                          Target("fma", 0.30, activation="relu")),
                 title="A fit moons 1000x2000ep"),
        # one sample through MLP.forward: the online-inference latency
        Workload("A-fwd-1", "A", "forward", 1, targets=(Target("best", 3),)),
        Workload("A-fwd-256", "A", "forward", 256, targets=(Target("best", 2),)),
        Workload("A-fwd-65536", "A", "forward", 65536, targets=(Target("best", 3),)),
        Workload("A-step-4096", "A", "step", 4096, targets=(Target("best", 3),)),
        Workload("B-fwd-4096", "B", "forward", 4096, targets=(Target("best", 1.5),)),
        Workload("B-step-4096", "B", "step", 4096, targets=(Target("best", 1.5),)),
        Workload("C-fwd-4096", "C", "forward", 4096, targets=(Target("best", 1.0),)),
        Workload("C-step-4096", "C", "step", 4096, targets=(Target("best", 1.0),)),
        Workload("A-fit-adam", "A", "fit", 1000, epochs=2000, lr=0.01, optimizer="adam",
                 targets=(Target("jax", 5), Target("torch", 30), Target("sklearn", 10)),
                 title="A fit moons 1000x2000ep, Adam"),
        # scikit-learn's digits, 64-64-64-10 softmax: a real multi-class workload
        Workload("D-fwd", "D", "forward", 1797, head="softmax",
                 targets=(Target("best", 1.0),), title="digits forward 1797, softmax"),
        Workload("D-fit", "D", "fit", 1797, epochs=50, lr=0.001, optimizer="adam",
                 head="softmax", batch_size=200, targets=(Target("best", 1.0),),
                 title="digits fit 50ep, Adam, batch 200"),
        Workload("article", "article", "article", protocol.n_train(),
                 epochs=protocol.PROTOCOL["epochs"], lr=protocol.PROTOCOL["lr"],
                 targets=(Target("numpy", 20),),
                 title="article protocol (2 nets, 800ep, b64)"),
    )
}

#: cold compile of the kernels `fastgeo reproduce` needs, and first call from the cache
COMPILE_TARGETS = {"cold": Target("seconds", 5.0), "cached": Target("seconds", 0.3)}

#: epochs of the fit run by the correctness check (outside the timed region)
CHECK_EPOCHS = 20


def digits(dtype=DTYPE):
    """scikit-learn's digits: X (1797, 64) scaled to [0, 1], Y one-hot (1797, 10)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(dtype), np.eye(10, dtype=dtype)[y]


def data(workload):
    """(X, Y) for a forward/step/fit workload, Y as an (n, outputs) array."""
    if workload.net == "D":
        return digits()
    if workload.phase == "fit":
        X, y = moons(workload.batch, DTYPE)
        return X, y.reshape(-1, 1)
    return random_batch(workload.sizes[0], workload.batch)


def inputs(workload, activation):
    """(weights, biases, X, Y) every implementation of ``workload`` starts from; all None
    for the article protocol, which makes its own (``fastgeo.article``)."""
    if workload.phase == "article":
        return None, None, None, None
    weights, biases = initial_params(workload.sizes, activation)
    X, Y = data(workload)
    return weights, biases, X, Y


def select(keys=None):
    """Workloads by key (None = all)."""
    if keys is None:
        return list(WORKLOADS.values())
    unknown = [k for k in keys if k not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    return [WORKLOADS[k] for k in keys]
