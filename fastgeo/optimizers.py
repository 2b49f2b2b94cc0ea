"""Optimisers in scikit-learn's form (``sklearn/neural_network/_stochastic_optimizers.py``
is the specification), on lists of NumPy parameter arrays updated in place.

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

The L2 penalty is not the optimiser's: it is part of the gradient (``fastgeo.reference``).
"""

import numpy as np

SOLVERS = ("sgd", "adam")
SCHEDULES = ("constant", "invscaling", "adaptive")
#: "adaptive" stops once the learning rate is at or below this (scikit-learn's value).
MIN_ADAPTIVE_LR = 1e-6


class SGD:
    """Stochastic gradient descent with (Nesterov) momentum and a learning-rate schedule."""

    name = "sgd"

    def __init__(self, params, learning_rate_init=0.1, schedule="constant", momentum=0.9,
                 nesterov=True, power_t=0.5):
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)
        self.schedule = schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocities = [np.zeros_like(p) for p in params]

    def step(self, params, grads):
        """One update of every parameter array, in place."""
        lr, mu = self.learning_rate, self.momentum
        for p, v, g in zip(params, self.velocities, grads):
            v[...] = mu * v - lr * g
            p += mu * v - lr * g if self.nesterov else v

    def epoch_ends(self, samples_seen):
        if self.schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (samples_seen + 1) ** self.power_t

    def plateau(self):
        if self.schedule != "adaptive" or self.learning_rate <= MIN_ADAPTIVE_LR:
            return True
        self.learning_rate /= 5.0
        return False


class Adam:
    """Adam (Kingma & Ba 2014) as scikit-learn writes it."""

    name = "adam"

    def __init__(self, params, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8):
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def step(self, params, grads):
        b1, b2 = self.beta_1, self.beta_2
        self.t += 1
        self.learning_rate = (self.learning_rate_init * np.sqrt(1 - b2 ** self.t)
                              / (1 - b1 ** self.t))
        for p, m, v, g in zip(params, self.ms, self.vs, grads):
            m[...] = b1 * m + (1 - b1) * g
            v[...] = b2 * v + (1 - b2) * g ** 2
            p -= self.learning_rate * m / (np.sqrt(v) + self.epsilon)

    def epoch_ends(self, samples_seen):
        pass

    def plateau(self):
        return True


def make(solver, params, learning_rate_init, schedule="constant", momentum=0.9,
         nesterov=True, power_t=0.5, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """The optimiser called ``solver`` ("sgd" or "adam") over ``params``, with fresh state."""
    if solver == "sgd":
        return SGD(params, learning_rate_init, schedule, momentum, nesterov, power_t)
    if solver == "adam":
        return Adam(params, learning_rate_init, beta_1, beta_2, epsilon)
    raise ValueError(f"unknown solver {solver!r}; fastgeo implements {', '.join(SOLVERS)}")
