"""The article's companion notebook, transcribed literally in NumPy, once.

It is the witness for the two quirks fastgeo does not copy (``fastgeo reproduce
--notebook`` reports both) and the NumPy baseline of ``fastgeo bench``'s article row:

* the recorded loss is ``-mean(y log(p + 1e-9) + (1 - y) log(1 - p + 1e-9))``;
* the sigmoid's input is clipped to +-500.

The net is the notebook's: explicit z/a per layer, hand-written backprop, biases as
(1, units) rows, labels as an (n, 1) float column. It takes its data, weights and epoch
orders from ``fastgeo.article.protocol`` (the draws are checked against the literal
``np.random.seed`` calls in the tests) and nothing else from fastgeo.
"""

import numpy as np

from . import protocol


def notebook_data(data_seed=42):
    """The protocol's (X_train, X_test, y_train, y_test) with the labels as the notebook
    holds them: (n, 1) float columns."""
    X_train, X_test, y_train, y_test = protocol.load_data(data_seed)
    return (X_train, X_test, y_train.reshape(-1, 1).astype(float),
            y_test.reshape(-1, 1).astype(float))


class NotebookMLP:
    """The notebook's three-layer net (2-8-8-1), trained by plain mini-batch SGD.

    ``witness``: None, or a dict that training fills with what the two quirks change:
    ``max_abs_z`` (the largest |z| that reached a sigmoid) and ``stable_history`` (each
    epoch's mean of the same batches' BCE computed stably from the logits)."""

    def __init__(self, weights, biases, activation, witness=None):
        if activation not in ("sigmoid", "relu"):
            raise ValueError(f"the notebook has sigmoid and relu nets, not {activation!r}")
        if len(weights) != 3 or len(biases) != 3:
            raise ValueError("the notebook's net has three layers: give 3 weights, 3 biases")
        self.W1, self.W2, self.W3 = (np.array(W, dtype=float) for W in weights)
        self.b1, self.b2, self.b3 = (np.array(b, dtype=float).reshape(1, -1) for b in biases)
        self.activation = activation
        self.witness = witness
        if witness is not None:
            witness.setdefault("max_abs_z", 0.0)
            witness.setdefault("stable_history", [])

    def sigmoid(self, z):
        if self.witness is not None:
            self.witness["max_abs_z"] = max(self.witness["max_abs_z"], float(np.abs(z).max()))
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))

    def act(self, z):
        return self.sigmoid(z) if self.activation == "sigmoid" else np.maximum(0, z)

    def act_derivative(self, z, a):
        return a * (1 - a) if self.activation == "sigmoid" else (z > 0).astype(float)

    def forward(self, X):
        self.z1 = X @ self.W1 + self.b1
        self.a1 = self.act(self.z1)
        self.z2 = self.a1 @ self.W2 + self.b2
        self.a2 = self.act(self.z2)
        self.z3 = self.a2 @ self.W3 + self.b3
        self.a3 = self.sigmoid(self.z3)
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

    def train(self, X, y, perms, lr, batch):
        """One epoch per row of ``perms``; returns the recorded epoch losses."""
        history = []
        for perm in perms:
            Xs, ys = X[perm], y[perm]
            losses, stable = [], []
            for start in range(0, X.shape[0], batch):
                xb, yb = Xs[start:start + batch], ys[start:start + batch]
                losses.append(self.loss(yb, self.forward(xb)))
                if self.witness is not None:
                    z = self.z3
                    stable.append(np.mean(np.maximum(z, 0) - z * yb + np.log1p(np.exp(-np.abs(z)))))
                self.backward(xb, yb, lr)
            history.append(np.mean(losses))
            if self.witness is not None:
                self.witness["stable_history"].append(float(np.mean(stable)))
        return np.array(history)


def run_notebook(net_seed=42, data_seed=42, epochs=None, *, data=None, witness=True):
    """The protocol with the notebook's code, both nets.

    ``data``: the (X_train, X_test, y_train, y_test) of ``notebook_data`` (made from
    ``data_seed`` when None). Returns {activation: {"loss_history": the notebook's
    recorded losses, "test_accuracy", "weights": final [W1, W2, W3], "biases": final
    [b1, b2, b3] (1-D)}}, and with ``witness`` also "stable_history" and "max_abs_z"
    (see NotebookMLP), measured during training only."""
    epochs = protocol.PROTOCOL["epochs"] if epochs is None else epochs
    X_train, X_test, y_train, y_test = notebook_data(data_seed) if data is None else data
    params, perms = protocol.protocol_streams(net_seed, protocol.PROTOCOL["sizes"], epochs,
                                              X_train.shape[0])
    out = {}
    for act in protocol.ACTIVATIONS:
        seen = {} if witness else None
        net = NotebookMLP(*params[act], act, witness=seen)
        history = net.train(X_train, y_train, perms, protocol.PROTOCOL["lr"],
                            protocol.PROTOCOL["batch_size"])
        net.witness = None  # what the quirks change in training, not in evaluation
        res = {"loss_history": [float(v) for v in history],
               "test_accuracy": float(np.mean((net.forward(X_test) > 0.5) == y_test)),
               "weights": [net.W1, net.W2, net.W3],
               "biases": [b.ravel() for b in (net.b1, net.b2, net.b3)]}
        if witness:
            res.update(stable_history=seen["stable_history"], max_abs_z=seen["max_abs_z"])
        out[act] = res
    return out
