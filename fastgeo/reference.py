"""The reference MLP: plain NumPy, written as the textbook writes it.

This module is the ground truth every Numba kernel is tested against, so it is
boring on purpose: no fusion, no tricks, one line per equation.

Notation, for layers l = 1..L with weights W_l of shape (fan_in, fan_out):
    a_0 = X
    z_l = a_{l-1} W_l + b_l
    a_l = f(z_l)          for hidden layers (f from ``fastgeo.activations``)
    p   = sigmoid(z_L)    the output layer
    loss = mean over batch x outputs of BCE(p, y), computed from the logits z_L:
           max(z, 0) - z y + log(1 + exp(-|z|))
"""

import numpy as np

from . import activations

INITS = ("he", "xavier", "glorot")


def init_params(sizes, activation="relu", init=None, seed=0, dtype=np.float64):
    """Weights drawn as ``RandomState(seed).randn(fan_in, fan_out)`` layer by layer, times
    the init scale; biases zero.

    he: sqrt(2 / fan_in); xavier: sqrt(1 / fan_in) (the article's name for it);
    glorot: sqrt(2 / (fan_in + fan_out)); None: the activation's default.
    """
    if init is None:
        init = activations.get(activation).default_init
    rng = np.random.RandomState(seed)
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        scale = {
            "he": np.sqrt(2.0 / fan_in),
            "xavier": np.sqrt(1.0 / fan_in),
            "glorot": np.sqrt(2.0 / (fan_in + fan_out)),
        }[init]
        weights.append((rng.randn(fan_in, fan_out) * scale).astype(dtype))
        biases.append(np.zeros(fan_out, dtype=dtype))
    return weights, biases


def sigmoid(z):
    return activations.sigmoid(z)


def bce_from_logits(z, y):
    """Mean binary cross-entropy of sigmoid(z) against y, stable for any finite z."""
    return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))


def forward(weights, biases, X, activation="relu"):
    """Returns (zs, acts): zs[l-1] = z_l for l = 1..L; acts[l] = a_l for l = 0..L (acts[0] = X,
    acts[L] = sigmoid(z_L), the output probabilities)."""
    f = activations.get(activation).value
    zs, acts = [], [X]
    for l, (W, b) in enumerate(zip(weights, biases)):
        z = acts[-1] @ W + b
        zs.append(z)
        acts.append(sigmoid(z) if l == len(weights) - 1 else f(z))
    return zs, acts


def predict_proba(weights, biases, X, activation="relu"):
    return forward(weights, biases, X, activation)[1][-1]


def loss(weights, biases, X, Y, activation="relu"):
    zs, _ = forward(weights, biases, X, activation)
    return bce_from_logits(zs[-1], Y)


def backward(weights, zs, acts, Y, activation="relu"):
    """Gradients of the mean BCE: returns (dWs, dbs), shaped as the weights and biases.

    delta_L = (p - Y) / Y.size;  delta_l = (delta_{l+1} W_{l+1}^T) * f'(z_l)
    dW_l = a_{l-1}^T delta_l;    db_l = sum over the batch of delta_l

    For Y = 1, p - 1 is computed as -sigmoid(-z_L): the same number, without the
    cancellation that would cost float32 most of its digits when p is near 1.
    """
    df = activations.get(activation).derivative
    L = len(weights)
    delta = np.where(Y == 1, -sigmoid(-zs[-1]), acts[-1]) / Y.size
    dWs, dbs = [None] * L, [None] * L
    for l in reversed(range(L)):
        dWs[l] = acts[l].T @ delta
        dbs[l] = delta.sum(axis=0)
        if l > 0:
            delta = (delta @ weights[l].T) * df(zs[l - 1], acts[l])
    return dWs, dbs


def gradients(weights, biases, X, Y, activation="relu"):
    zs, acts = forward(weights, biases, X, activation)
    return backward(weights, zs, acts, Y, activation)


def sgd_step(weights, biases, dWs, dbs, lr):
    """In place: W -= lr dW, b -= lr db."""
    for W, b, dW, db in zip(weights, biases, dWs, dbs):
        W -= lr * dW
        b -= lr * db


# Shuffling: a Park-Miller "minimal standard" generator, so that the compiled fit
# can draw exactly the same permutations inside one compiled call.
MINSTD_MODULUS = 2147483647
MINSTD_MULTIPLIER = 48271


def shuffle_state(seed):
    """The generator state for a seed (any int >= 0): a value in [1, 2**31 - 2]."""
    return seed % (MINSTD_MODULUS - 1) + 1


def permutation(n, state):
    """Fisher-Yates on arange(n) with minstd draws; returns (perm, new state)."""
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        state = state * MINSTD_MULTIPLIER % MINSTD_MODULUS
        j = state % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm, state


def fit(weights, biases, X, Y, epochs, lr, activation="relu", batch_size=None,
        shuffle_seed=None, permutations=None):
    """Mini-batch SGD, in place. Returns the epoch losses, each the mean of the mini-batch
    losses measured before each update.

    Order of the samples in epoch e: permutations[e] if given; else a fresh minstd
    permutation per epoch if shuffle_seed is not None; else 0..n-1. Batches are
    consecutive runs of batch_size in that order (the last one may be shorter);
    batch_size None means the whole set.

    If a loss turns non-finite, the parameters are restored to what they were at the
    start of that epoch and FloatingPointError is raised naming the epoch.
    """
    n = X.shape[0]
    batch_size = n if batch_size is None else batch_size
    state = None if shuffle_seed is None else shuffle_state(shuffle_seed)
    history = np.empty(epochs)
    for epoch in range(epochs):
        saved = [W.copy() for W in weights], [b.copy() for b in biases]
        if permutations is not None:
            order = permutations[epoch]
        elif state is not None:
            order, state = permutation(n, state)
        else:
            order = np.arange(n)
        batch_losses = []
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            zs, acts = forward(weights, biases, X[rows], activation)
            batch_losses.append(bce_from_logits(zs[-1], Y[rows]))
            if not np.isfinite(batch_losses[-1]):
                break
            dWs, dbs = backward(weights, zs, acts, Y[rows], activation)
            sgd_step(weights, biases, dWs, dbs, lr)
        history[epoch] = np.mean(batch_losses)
        finite = all(np.isfinite(p).all() for p in weights + biases)
        if not (np.isfinite(history[epoch]) and finite):
            for p, p0 in zip(weights + biases, saved[0] + saved[1]):
                p[...] = p0
            raise FloatingPointError(
                f"fit: the loss or the parameters became non-finite in epoch {epoch}; "
                f"the parameters are left as they were at the start of epoch {epoch}"
            )
    return history
