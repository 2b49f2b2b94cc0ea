"""Optimisers in scikit-learn's form (``sklearn/neural_network/_stochastic_optimizers.py``
is the specification).

    SGD    v <- momentum v - lr g;  p <- p + v                (momentum 0: p <- p - lr g)
           Nesterov: p <- p + (momentum v - lr g), with the v just updated
    Adam   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  t <- t + 1
           p <- p - lr_t m / (sqrt(v) + eps),  lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)
           (bias correction folded into the step size, eps outside the square root)

Learning-rate schedules (SGD only, as in scikit-learn): "constant"; "invscaling", lr =
learning_rate_init / (t + 1)^power_t after each epoch, t the samples seen so far;
"adaptive", lr / 5 each time the stopping rule fires, until lr <= 1e-6. The epoch loop
calls ``epoch_ends(samples_seen)`` after every epoch and ``plateau()`` when the stopping
rule fires; ``plateau`` returns True when training should stop.

An optimiser object holds its hyperparameters and its state: ``state`` is one flat
(buffers, n_params) array laid out as a net's ``params`` (``start`` allocates it), so the
compiled fit (``fastgeo.kernels.fit_into``) and the NumPy ``step`` (on per-layer views)
update the same numbers, and training can go on across calls (``MLP.fit`` epoch by
epoch, ``warm_start``). The L2 penalty is not the optimiser's: it is part of the
gradient (``fastgeo.reference``).
"""

import math

import numpy as np

from . import _validate as check
from .layout import Layout

SOLVERS = ("sgd", "adam")
SCHEDULES = ("constant", "invscaling", "adaptive")
#: "adaptive" stops once the learning rate is at or below this (scikit-learn's value).
MIN_ADAPTIVE_LR = 1e-6
#: The compiled fit's codes for the update rules (``fastgeo.kernels.SOLVER_*``)
PLAIN, MOMENTUM, ADAM = range(3)


def _unit_interval(name, value):
    value = check.finite_float(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


class Optimizer:
    """What SGD and Adam share: the learning rate, the state buffers, the schedule hooks."""

    name = None
    n_buffers = 0

    def __init__(self, learning_rate_init):
        self.learning_rate_init = check.positive_finite("learning_rate_init",
                                                        learning_rate_init)
        self.learning_rate = self.learning_rate_init
        self.t = 0
        self.samples_seen = 0
        self.layout = None
        self.state = None
        self._views = []

    def start(self, layout, dtype):
        """Allocate zero state for a net of this layout and dtype, unless it holds state
        for exactly that already (then training carries on from it)."""
        layout = layout if isinstance(layout, Layout) else Layout(layout)
        dtype = np.dtype(dtype)
        if self.state is not None and self.layout == layout and self.state.dtype == dtype:
            return
        if self.state is not None:
            raise ValueError(
                f"this {self.name} optimiser holds the state of a net of sizes "
                f"{self.layout.sizes} ({self.state.dtype}); call reset() to use it for "
                f"sizes {layout.sizes} ({dtype})")
        self.layout = layout
        self.state = np.zeros((self.n_buffers, layout.n_params), dtype=dtype)
        self._views = [[*Ws, *bs] for Ws, bs in map(layout.views, self.state)]

    def reset(self):
        """Forget the state: the next ``start`` begins from zero, at learning_rate_init."""
        self.__init__(**self.get_params())

    def get_params(self):
        raise NotImplementedError

    @property
    def code(self):
        """The compiled fit's update rule."""
        raise NotImplementedError

    def hyper(self):
        """(momentum, nesterov, beta_1, beta_2, epsilon) as the compiled fit takes them."""
        raise NotImplementedError

    def epoch_ends(self, samples_seen):
        self.samples_seen = samples_seen

    def plateau(self):
        return True

    def rates(self, epochs, n):
        """The learning rate of each of the next ``epochs`` epochs of n samples, the
        schedule advanced past them (for the compiled fit, which takes them up front)."""
        out = np.empty(epochs)
        for e in range(epochs):
            out[e] = self.learning_rate
            self.epoch_ends(self.samples_seen + n)
        return out

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum and a learning-rate schedule;
    momentum 0 is plain SGD, ``p -= lr g`` exactly."""

    name = "sgd"
    n_buffers = 1

    def __init__(self, learning_rate_init=0.1, momentum=0.9, nesterov=True,
                 schedule="constant", power_t=0.5):
        super().__init__(learning_rate_init)
        self.momentum = _unit_interval("momentum", momentum)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__}")
        self.nesterov = bool(nesterov)
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {schedule!r}; fastgeo "
                             f"implements {', '.join(SCHEDULES)}")
        self.schedule = schedule
        self.power_t = check.finite_float("power_t", power_t)
        if self.momentum == 0.0:
            self.n_buffers = 0  # plain SGD keeps no state

    def get_params(self):
        return {"learning_rate_init": self.learning_rate_init, "momentum": self.momentum,
                "nesterov": self.nesterov, "schedule": self.schedule, "power_t": self.power_t}

    @property
    def code(self):
        return PLAIN if self.momentum == 0.0 else MOMENTUM

    def hyper(self):
        return np.array([self.momentum, float(self.nesterov), 0.0, 0.0, 0.0])

    def step(self, params, grads):
        """One update of every parameter array (weights + biases), in place."""
        lr, mu = self.learning_rate, self.momentum
        if mu == 0.0:
            for p, g in zip(params, grads):
                p -= lr * g
            return
        for p, v, g in zip(params, self._views[0], grads):
            v[...] = mu * v - lr * g
            p += mu * v - lr * g if self.nesterov else v

    def epoch_ends(self, samples_seen):
        self.samples_seen = samples_seen
        if self.schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (samples_seen + 1) ** self.power_t

    def plateau(self):
        if self.schedule != "adaptive" or self.learning_rate <= MIN_ADAPTIVE_LR:
            return True
        self.learning_rate /= 5.0
        return False


class Adam(Optimizer):
    """Adam (Kingma & Ba 2014) as scikit-learn writes it."""

    name = "adam"
    n_buffers = 2

    def __init__(self, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        super().__init__(learning_rate_init)
        self.beta_1 = _unit_interval("beta_1", beta_1)
        self.beta_2 = _unit_interval("beta_2", beta_2)
        self.epsilon = check.positive_finite("epsilon", epsilon)

    def get_params(self):
        return {"learning_rate_init": self.learning_rate_init, "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon}

    code = ADAM

    def hyper(self):
        return np.array([0.0, 0.0, self.beta_1, self.beta_2, self.epsilon])

    def step(self, params, grads):
        b1, b2 = self.beta_1, self.beta_2
        self.t += 1
        step = self.learning_rate * math.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        for p, m, v, g in zip(params, self._views[0], self._views[1], grads):
            m[...] = b1 * m + (1 - b1) * g
            v[...] = b2 * v + (1 - b2) * g ** 2
            p -= step * m / (np.sqrt(v) + self.epsilon)


def make(solver, learning_rate_init, schedule="constant", momentum=0.9, nesterov=True,
         power_t=0.5, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """The optimiser called ``solver`` ("sgd" or "adam"), with fresh state."""
    if solver == "sgd":
        return SGD(learning_rate_init, momentum, nesterov, schedule, power_t)
    if solver == "adam":
        return Adam(learning_rate_init, beta_1, beta_2, epsilon)
    raise ValueError(f"unknown solver {solver!r}; fastgeo implements {', '.join(SOLVERS)}")
