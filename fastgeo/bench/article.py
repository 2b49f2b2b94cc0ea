"""The article's protocol end to end, twice: a NumPy transcription of the article's
companion notebook (the baseline of issue 7's "article protocol" row) and fastgeo.

Protocol (issue 3): two-moons (400 samples, noise 0.18, random_state 42), StandardScaler
fit on all 400 points before a 75/25 split (random_state 42); 2-8-8-1 nets, sigmoid net
randn * sqrt(1/fan_in), ReLU net randn * sqrt(2/fan_in), each drawn after seeding the
legacy generator with 42; 800 epochs of mini-batch SGD (lr 0.05, batch 64), one
permutation per epoch drawn from the generator right after the ReLU weights, the same
order for both nets; test accuracy at 0.5.

The timed region is everything after the data arrays exist: the legacy weight draws,
the 800 permutations, training both nets, and their test accuracy. Both sides run in
float64, as the notebook does.
"""

from itertools import pairwise

import numpy as np

SIZES = (2, 8, 8, 1)
EPOCHS = 800
BATCH = 64
LR = 0.05
SEED = 42
SCALES = {"sigmoid": 1.0, "relu": 2.0}  # randn * sqrt(scale / fan_in)


def protocol_data():
    """(X_train, X_test, y_train, y_test) as the notebook builds them, y as (n, 1) floats."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = make_moons(n_samples=400, noise=0.18, random_state=42)
    X = StandardScaler().fit_transform(X)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=42)
    return X_train, X_test, y_train.reshape(-1, 1).astype(float), y_test.reshape(-1, 1).astype(float)


def legacy_draws(n_train, epochs=EPOCHS):
    """({activation: (weights, biases)}, permutations) from the legacy seed-42 stream."""
    params = {}
    for activation in ("sigmoid", "relu"):
        rng = np.random.RandomState(SEED)  # np.random.seed(42) in the notebook
        Ws = [rng.randn(i, o) * np.sqrt(SCALES[activation] / i)
              for i, o in pairwise(SIZES)]
        params[activation] = (Ws, [np.zeros((1, o)) for o in SIZES[1:]])
    perms = np.array([rng.permutation(n_train) for _ in range(epochs)])
    return params, perms


# --- the notebook, transcribed ------------------------------------------------------


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


class NotebookMLP:
    """The notebook's three-layer net: explicit z/a per layer, hand-written backprop."""

    def __init__(self, weights, biases, activation):
        self.W1, self.W2, self.W3 = (W.copy() for W in weights)
        self.b1, self.b2, self.b3 = (b.copy() for b in biases)
        self.activation = activation

    def act(self, z):
        return _sigmoid(z) if self.activation == "sigmoid" else np.maximum(0, z)

    def act_derivative(self, z, a):
        return a * (1 - a) if self.activation == "sigmoid" else (z > 0).astype(float)

    def forward(self, X):
        self.z1 = X @ self.W1 + self.b1
        self.a1 = self.act(self.z1)
        self.z2 = self.a1 @ self.W2 + self.b2
        self.a2 = self.act(self.z2)
        self.z3 = self.a2 @ self.W3 + self.b3
        self.a3 = _sigmoid(self.z3)
        return self.a3

    @staticmethod
    def loss(y, p):
        return -np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9))

    def backward(self, X, y, lr):
        m = X.shape[0]
        dz3 = self.a3 - y
        dW3 = self.a2.T @ dz3 / m
        db3 = np.sum(dz3, axis=0, keepdims=True) / m
        dz2 = (dz3 @ self.W3.T) * self.act_derivative(self.z2, self.a2)
        dW2 = self.a1.T @ dz2 / m
        db2 = np.sum(dz2, axis=0, keepdims=True) / m
        dz1 = (dz2 @ self.W2.T) * self.act_derivative(self.z1, self.a1)
        dW1 = X.T @ dz1 / m
        db1 = np.sum(dz1, axis=0, keepdims=True) / m
        self.W3 -= lr * dW3
        self.b3 -= lr * db3
        self.W2 -= lr * dW2
        self.b2 -= lr * db2
        self.W1 -= lr * dW1
        self.b1 -= lr * db1

    def train(self, X, y, perms, lr=LR, batch=BATCH):
        history = []
        for perm in perms:
            Xs, ys = X[perm], y[perm]
            losses = []
            for start in range(0, X.shape[0], batch):
                xb, yb = Xs[start:start + batch], ys[start:start + batch]
                losses.append(self.loss(yb, self.forward(xb)))
                self.backward(xb, yb, lr)
            history.append(np.mean(losses))
        return np.array(history)


def run_notebook(data, epochs=EPOCHS):
    """The protocol with the notebook's code: {activation: (loss history, test accuracy)}."""
    X_train, X_test, y_train, y_test = data
    params, perms = legacy_draws(X_train.shape[0], epochs)
    out = {}
    for activation in ("sigmoid", "relu"):
        net = NotebookMLP(*params[activation], activation)
        history = net.train(X_train, y_train, perms)
        accuracy = np.mean((net.forward(X_test) > 0.5) == y_test)
        out[activation] = (history, float(accuracy))
    return out


def run_fastgeo(data, epochs=EPOCHS, backend="numba"):
    """The same protocol on fastgeo.MLP: {activation: (loss history, test accuracy)}."""
    import fastgeo

    X_train, X_test, y_train, y_test = data
    params, perms = legacy_draws(X_train.shape[0], epochs)
    out = {}
    for activation in ("sigmoid", "relu"):
        Ws, bs = params[activation]
        net = fastgeo.MLP.from_params(Ws, [b.ravel() for b in bs], activation, backend=backend)
        history = net.fit(X_train, y_train, epochs, LR, batch_size=BATCH, permutations=perms)
        out[activation] = (history, net.score(X_test, y_test))
    return out
