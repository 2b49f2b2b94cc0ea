"""Hand-written Numba kernels for dense MLPs with a sigmoid output and mean BCE loss.

Every kernel is a plain compiled function that writes into preallocated,
C-contiguous outputs and does no validation: ``fastgeo.MLP`` checks and converts
inputs once, then dispatches here. float32 and float64 each compile once; the
hidden activation is an integer ``code`` (``fastgeo.activations.ACTIVATIONS[name].code``),
so one compiled kernel serves every activation.

Parameter layout: one flat, contiguous buffer ``params`` holding, layer by layer,
W_l row-major (fan_in x fan_out) then b_l (fan_out). ``layer_offsets(sizes)`` gives
where each layer starts. Per-sample activations are laid out the same way: one row of
U = sum(sizes[1:]) units, layer after layer (``coff``). ``fastgeo.MLP.weights`` are
views into ``params``.

Shapes: X (n, sizes[0]); Y and probabilities (n, sizes[-1]); grad like params.
"""

import math

import numpy as np
from numba import prange

from ._jit import kernel
from .activations import activate, activate_derivative, scalar_sigmoid

# minstd shuffling; kept equal to fastgeo.reference
MINSTD_MODULUS = 2147483647
MINSTD_MULTIPLIER = 48271


@kernel
def layer_offsets(sizes):
    """(woff, coff): start of layer l's W in params (its b follows at woff + fan_in*fan_out),
    and start of layer l's units in a per-sample row of U units."""
    L = sizes.shape[0] - 1
    woff = np.empty(L, dtype=np.int64)
    coff = np.empty(L, dtype=np.int64)
    w = 0
    c = 0
    for l in range(L):
        woff[l] = w
        coff[l] = c
        w += sizes[l] * sizes[l + 1] + sizes[l + 1]
        c += sizes[l + 1]
    return woff, coff


@kernel(inline="always")
def _sample_forward(params, sizes, woff, coff, code, x, z, a):
    """Forward pass of one sample x: fills z and a (rows of U units); the output units of a
    hold sigmoid(z_L)."""
    L = sizes.shape[0] - 1
    for l in range(L):
        nin = sizes[l]
        nout = sizes[l + 1]
        w = woff[l]
        c = coff[l]
        b = w + nin * nout
        for j in range(nout):
            z[c + j] = params[b + j]
        for k in range(nin):
            hk = x[k] if l == 0 else a[coff[l - 1] + k]
            base = w + k * nout
            for j in range(nout):
                z[c + j] += hk * params[base + j]
        if l < L - 1:
            for j in range(nout):
                a[c + j] = activate(code, z[c + j])
        else:
            for j in range(nout):
                a[c + j] = scalar_sigmoid(z[c + j])


@kernel(inline="always")
def _sample_loss(z, y, c_out):
    """Sum over outputs of BCE(sigmoid(z), y) from the logits, in float64.

    For 0/1 labels max(z, 0) - z y + log(1 + exp(-|z|)) is softplus(t) with t = z for
    y = 0 and t = -z for y = 1; written that way there is no z - z for fastmath's
    reassociation to turn into a cancellation."""
    total = 0.0
    for j in range(y.shape[0]):
        t = -z[c_out + j] if y[j] == 1 else z[c_out + j]
        total += max(t, 0.0) + math.log1p(math.exp(-abs(t)))
    return total


@kernel(inline="always")
def _sample_backward(params, sizes, woff, coff, code, x, y, z, a, d, scale, grad):
    """Adds this sample's gradient (times scale) to grad; d is scratch of U units."""
    L = sizes.shape[0] - 1
    c_out = coff[L - 1]
    for j in range(sizes[L]):
        # p - y; for y = 1 as -sigmoid(-z), which does not cancel (see reference.backward)
        if y[j] == 1:
            d[c_out + j] = -scalar_sigmoid(-z[c_out + j]) * scale
        else:
            d[c_out + j] = a[c_out + j] * scale
    for l in range(L - 1, -1, -1):
        nin = sizes[l]
        nout = sizes[l + 1]
        w = woff[l]
        c = coff[l]
        b = w + nin * nout
        for k in range(nin):
            hk = x[k] if l == 0 else a[coff[l - 1] + k]
            base = w + k * nout
            for j in range(nout):
                grad[base + j] += hk * d[c + j]
        for j in range(nout):
            grad[b + j] += d[c + j]
        if l > 0:
            cp = coff[l - 1]
            for k in range(nin):
                base = w + k * nout
                s = 0.0
                for j in range(nout):
                    s += params[base + j] * d[c + j]
                d[cp + k] = s * activate_derivative(code, z[cp + k], a[cp + k])


@kernel
def forward(params, sizes, code, X, out):
    """Output probabilities of every row of X into out (n, sizes[-1]). Serial."""
    woff, coff = layer_offsets(sizes)
    U = coff[-1] + sizes[-1]
    c_out = coff[-1]
    z = np.empty(U, dtype=params.dtype)
    a = np.empty(U, dtype=params.dtype)
    for i in range(X.shape[0]):
        _sample_forward(params, sizes, woff, coff, code, X[i], z, a)
        for j in range(out.shape[1]):
            out[i, j] = a[c_out + j]


@kernel(parallel=True)
def forward_parallel(params, sizes, code, X, out, n_chunks):
    """As ``forward``, the rows split into n_chunks contiguous blocks run in parallel."""
    woff, coff = layer_offsets(sizes)
    U = coff[-1] + sizes[-1]
    c_out = coff[-1]
    n = X.shape[0]
    for t in prange(n_chunks):
        z = np.empty(U, dtype=params.dtype)
        a = np.empty(U, dtype=params.dtype)
        for i in range(t * n // n_chunks, (t + 1) * n // n_chunks):
            _sample_forward(params, sizes, woff, coff, code, X[i], z, a)
            for j in range(out.shape[1]):
                out[i, j] = a[c_out + j]


@kernel
def forward_trace(params, sizes, code, X, Z, A):
    """Forward pass keeping every layer: Z and A are (n, U); layer l's z_l and a_l are the
    columns coff[l]:coff[l] + sizes[l + 1] (the last layer's a is the probability)."""
    woff, coff = layer_offsets(sizes)
    for i in range(X.shape[0]):
        _sample_forward(params, sizes, woff, coff, code, X[i], Z[i], A[i])


@kernel
def loss(params, sizes, code, X, Y):
    """Mean BCE over all elements of Y."""
    woff, coff = layer_offsets(sizes)
    U = coff[-1] + sizes[-1]
    z = np.empty(U, dtype=params.dtype)
    a = np.empty(U, dtype=params.dtype)
    total = 0.0
    for i in range(X.shape[0]):
        _sample_forward(params, sizes, woff, coff, code, X[i], z, a)
        total += _sample_loss(z, Y[i], coff[-1])
    return total / Y.size


@kernel
def backward(params, sizes, code, X, Y, Z, A, grad):
    """Gradient of the mean BCE into grad (overwritten), from a ``forward_trace``."""
    woff, coff = layer_offsets(sizes)
    d = np.empty(Z.shape[1], dtype=params.dtype)
    grad[:] = 0
    scale = 1.0 / Y.size
    for i in range(X.shape[0]):
        _sample_backward(params, sizes, woff, coff, code, X[i], Y[i], Z[i], A[i], d, scale, grad)


@kernel
def loss_and_gradient(params, sizes, code, X, Y, rows, grad):
    """Mean BCE of the rows X[rows] (returned) and its gradient (into grad, overwritten),
    one sample at a time: nothing of size n is stored."""
    woff, coff = layer_offsets(sizes)
    U = coff[-1] + sizes[-1]
    z = np.empty(U, dtype=params.dtype)
    a = np.empty(U, dtype=params.dtype)
    d = np.empty(U, dtype=params.dtype)
    grad[:] = 0
    m = rows.shape[0]
    scale = 1.0 / (m * sizes[-1])
    total = 0.0
    for r in range(m):
        i = rows[r]
        _sample_forward(params, sizes, woff, coff, code, X[i], z, a)
        total += _sample_loss(z, Y[i], coff[-1])
        _sample_backward(params, sizes, woff, coff, code, X[i], Y[i], z, a, d, scale, grad)
    return total * scale


@kernel(parallel=True)
def loss_and_gradient_parallel(params, sizes, code, X, Y, rows, grad, partials):
    """As ``loss_and_gradient``; the rows split into partials.shape[0] blocks, each summed
    into its own row of partials (no two threads write the same memory), then added up
    in block order."""
    woff, coff = layer_offsets(sizes)
    U = coff[-1] + sizes[-1]
    n_chunks = partials.shape[0]
    m = rows.shape[0]
    scale = 1.0 / (m * sizes[-1])
    losses = np.zeros(n_chunks)
    for t in prange(n_chunks):
        z = np.empty(U, dtype=params.dtype)
        a = np.empty(U, dtype=params.dtype)
        d = np.empty(U, dtype=params.dtype)
        g = partials[t]
        g[:] = 0
        total = 0.0
        for r in range(t * m // n_chunks, (t + 1) * m // n_chunks):
            i = rows[r]
            _sample_forward(params, sizes, woff, coff, code, X[i], z, a)
            total += _sample_loss(z, Y[i], coff[-1])
            _sample_backward(params, sizes, woff, coff, code, X[i], Y[i], z, a, d, scale, g)
        losses[t] = total
    grad[:] = partials[0]
    for t in range(1, n_chunks):
        grad += partials[t]
    return losses.sum() * scale


@kernel
def sgd_step(params, grad, lr):
    """params -= lr * grad, in place."""
    for p in range(params.shape[0]):
        params[p] -= lr * grad[p]


@kernel
def minstd_permutation(order, state):
    """Fisher-Yates shuffle of order = 0..n-1 with minstd draws (as fastgeo.reference);
    returns the new state."""
    n = order.shape[0]
    for i in range(n):
        order[i] = i
    for i in range(n - 1, 0, -1):
        state = state * MINSTD_MULTIPLIER % MINSTD_MODULUS
        j = state % (i + 1)
        tmp = order[i]
        order[i] = order[j]
        order[j] = tmp
    return state


@kernel
def all_finite(x):
    for p in range(x.shape[0]):
        if not math.isfinite(x[p]):
            return False
    return True


@kernel
def train(params, sizes, code, X, Y, epochs, lr, batch_size, shuffle_state, permutations,
          history, n_chunks):
    """Mini-batch SGD for ``epochs`` epochs in one call; history[e] = mean of the batch
    losses measured before each update in epoch e.

    Sample order per epoch: permutations[e] when permutations has a row per epoch, else
    a minstd permutation when shuffle_state > 0, else 0..n-1. Batches with at least
    two blocks' worth of rows use ``loss_and_gradient_parallel`` over n_chunks blocks
    when n_chunks > 1. Returns -1, or the epoch in which the loss or the parameters
    became non-finite (params are then restored to that epoch's start).
    """
    n = X.shape[0]
    P = params.shape[0]
    grad = np.empty(P, dtype=params.dtype)
    partials = np.empty((max(n_chunks, 1), P), dtype=params.dtype)
    saved = np.empty(P, dtype=params.dtype)
    order = np.arange(n)
    state = shuffle_state
    for epoch in range(epochs):
        saved[:] = params
        if permutations.shape[0] > 0:
            order[:] = permutations[epoch]
        elif state > 0:
            state = minstd_permutation(order, state)
        total = 0.0
        n_batches = 0
        finite = True
        for start in range(0, n, batch_size):
            rows = order[start:min(start + batch_size, n)]
            if n_chunks > 1 and rows.shape[0] >= 2 * n_chunks:
                batch_loss = loss_and_gradient_parallel(params, sizes, code, X, Y, rows, grad,
                                                        partials)
            else:
                batch_loss = loss_and_gradient(params, sizes, code, X, Y, rows, grad)
            total += batch_loss
            n_batches += 1
            if not math.isfinite(batch_loss):
                finite = False
                break
            sgd_step(params, grad, lr)
        history[epoch] = total / n_batches
        if not (finite and all_finite(params)):
            params[:] = saved
            return epoch
    return -1
