"""The reference MLP: plain NumPy, written as the textbook writes it.

This module is the ground truth every Numba kernel is tested against, so it is
boring on purpose: no fusion, no tricks, one line per equation.

Notation, for layers l = 1..L with weights W_l of shape (fan_in, fan_out):
    a_0 = X
    z_l = a_{l-1} W_l + b_l
    a_l = f(z_l)          for hidden layers (f from ``fastgeo.activations``)
    p   = h(z_L)          the output layer's head (``fastgeo.heads``: sigmoid by default)
    loss = the head's loss from the logits z_L; for sigmoid, the mean over batch x outputs
           of BCE(p, y) = max(z, 0) - z y + log(1 + exp(-|z|))
           + 0.5 alpha sum_l |W_l|^2 / n   (the L2 penalty, scikit-learn's scaling;
                                            n = sum of the sample weights)
"""

import numpy as np

from . import activations, heads, optimizers

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
    """Mean binary cross-entropy of sigmoid(z) against y, stable for any finite z: the
    sigmoid head's loss, max(z, 0) - z y + log(1 + exp(-|z|)) averaged."""
    return heads.get("sigmoid").loss(z, y)


def forward(weights, biases, X, activation="relu", head="sigmoid"):
    """Returns (zs, acts): zs[l-1] = z_l for l = 1..L; acts[l] = a_l for l = 0..L (acts[0] = X,
    acts[L] = h(z_L), the head's output: probabilities for sigmoid and softmax)."""
    f = activations.get(activation).value
    h = heads.get(head).output
    zs, acts = [], [X]
    for l, (W, b) in enumerate(zip(weights, biases)):
        z = acts[-1] @ W + b
        zs.append(z)
        acts.append(h(z) if l == len(weights) - 1 else f(z))
    return zs, acts


def predict_proba(weights, biases, X, activation="relu", head="sigmoid"):
    return forward(weights, biases, X, activation, head)[1][-1]


def _weight_total(n, sample_weight):
    return n if sample_weight is None else sample_weight.sum()


def l2_penalty(weights, alpha, total):
    """0.5 alpha sum_l |W_l|^2 / total: scikit-learn's penalty (weights, not biases)."""
    return 0.5 * alpha * sum(np.dot(W.ravel(), W.ravel()) for W in weights) / total


def loss(weights, biases, X, Y, activation="relu", head="sigmoid", alpha=0.0,
         sample_weight=None):
    zs, _ = forward(weights, biases, X, activation, head)
    value = heads.get(head).loss(zs[-1], Y, sample_weight)
    if alpha:
        value += l2_penalty(weights, alpha, _weight_total(X.shape[0], sample_weight))
    return value


def backward(weights, zs, acts, Y, activation="relu", head="sigmoid", alpha=0.0,
             sample_weight=None):
    """Gradients of the loss: returns (dWs, dbs), shaped as the weights and biases.

    delta_L = dL/dz_L (the head's: (p - Y) / Y.size for sigmoid)
    delta_l = (delta_{l+1} W_{l+1}^T) * f'(z_l)
    dW_l = a_{l-1}^T delta_l + alpha W_l / n;    db_l = sum over the batch of delta_l
    """
    df = activations.get(activation).derivative
    L = len(weights)
    delta = heads.get(head).delta(zs[-1], Y, sample_weight)
    decay = alpha / _weight_total(Y.shape[0], sample_weight) if alpha else 0.0
    dWs, dbs = [None] * L, [None] * L
    for l in reversed(range(L)):
        dWs[l] = acts[l].T @ delta
        if decay:
            dWs[l] += decay * weights[l]
        dbs[l] = delta.sum(axis=0)
        if l > 0:
            delta = (delta @ weights[l].T) * df(zs[l - 1], acts[l])
    return dWs, dbs


def gradients(weights, biases, X, Y, activation="relu", head="sigmoid", alpha=0.0,
              sample_weight=None):
    zs, acts = forward(weights, biases, X, activation, head)
    return backward(weights, zs, acts, Y, activation, head, alpha, sample_weight)


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


def epoch_order(n, epoch, state, permutations=None):
    """The sample order of one epoch and the shuffle state after it: permutations[epoch]
    if given; else a fresh minstd permutation if state is not None; else 0..n-1."""
    if permutations is not None:
        return permutations[epoch], state
    if state is not None:
        return permutation(n, state)
    return np.arange(n), state


def train_epoch(weights, biases, X, Y, order, batch_size, step, activation="relu",
                head="sigmoid", alpha=0.0, sample_weight=None):
    """One pass over the samples in ``order``, in consecutive batches of batch_size (the
    last may be shorter): each batch's loss, then ``step(params, grads)`` with params =
    weights + biases (``fastgeo.optimizers``; plain SGD is ``W -= lr dW``).

    Returns (losses, penalties, sizes): each batch's head loss measured before its update,
    its L2 penalty (the batch's loss is the sum of the two) and its number of samples.
    Stops after the first non-finite loss (that batch is not applied)."""
    losses, penalties, sizes = [], [], []
    for start in range(0, X.shape[0], batch_size):
        rows = order[start:start + batch_size]
        w = None if sample_weight is None else sample_weight[rows]
        zs, acts = forward(weights, biases, X[rows], activation, head)
        losses.append(heads.get(head).loss(zs[-1], Y[rows], w))
        penalties.append(l2_penalty(weights, alpha, _weight_total(len(rows), w)) if alpha
                         else 0.0)
        sizes.append(len(rows))
        if not np.isfinite(losses[-1] + penalties[-1]):
            break
        dWs, dbs = backward(weights, zs, acts, Y[rows], activation, head, alpha, w)
        step(weights + biases, dWs + dbs)
    return losses, penalties, sizes


def reported_loss(head, losses, penalties, sizes, n_outputs):
    """An epoch's loss as scikit-learn reports it (``loss_curve_``), from ``train_epoch``'s
    batches: their losses (``Head.sklearn_loss``) plus penalties, weighted by batch size."""
    batch = heads.get(head).sklearn_loss(np.asarray(losses), n_outputs) + penalties
    return np.dot(batch, sizes) / np.sum(sizes)


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
    return train(weights, biases, X, Y, epochs, optimizers.SGD(lr, momentum=0.0),
                 activation, batch_size=batch_size, shuffle_seed=shuffle_seed,
                 permutations=permutations)[0]


def train(weights, biases, X, Y, epochs, optimizer, activation="relu", head="sigmoid",
          alpha=0.0, sample_weight=None, batch_size=None, shuffle_seed=None,
          permutations=None):
    """``fit`` with any optimiser (``fastgeo.optimizers``, its state carried on), head, L2
    penalty and sample weights. Returns (history, reported): per epoch, the mean of the
    batch losses, and scikit-learn's ``loss_curve_`` entry (batch losses weighted by
    batch size; ``Head.sklearn_loss``). On a non-finite loss or parameters, the
    parameters and the optimiser are restored to the start of that epoch and
    FloatingPointError names it."""
    n = X.shape[0]
    batch_size = n if batch_size is None else batch_size
    state = None if shuffle_seed is None else shuffle_state(shuffle_seed)
    sizes = [W.shape[0] for W in weights] + [weights[-1].shape[1]]
    optimizer.start(sizes, weights[0].dtype)
    head = heads.get(head)
    history, reported = np.empty(epochs), np.empty(epochs)
    for epoch in range(epochs):
        saved = [p.copy() for p in weights + biases]
        saved_optimizer = (optimizer.state.copy(), optimizer.t, optimizer.learning_rate,
                           optimizer.samples_seen)
        order, state = epoch_order(n, epoch, state, permutations)
        losses, penalties, sizes_ = train_epoch(weights, biases, X, Y, order, batch_size,
                                                optimizer.step, activation, head.name, alpha,
                                                sample_weight)
        history[epoch] = np.mean(np.add(losses, penalties))
        reported[epoch] = reported_loss(head, losses, penalties, sizes_, Y.shape[1])
        optimizer.epoch_ends(optimizer.samples_seen + n)
        finite = all(np.isfinite(p).all() for p in weights + biases)
        if not (np.isfinite(history[epoch]) and finite):
            for p, p0 in zip(weights + biases, saved):
                p[...] = p0
            (optimizer.state[...], optimizer.t, optimizer.learning_rate,
             optimizer.samples_seen) = saved_optimizer
            raise FloatingPointError(
                f"fit: the loss or the parameters became non-finite in epoch {epoch}; "
                f"the parameters are left as they were at the start of epoch {epoch}"
            )
    return history, reported
