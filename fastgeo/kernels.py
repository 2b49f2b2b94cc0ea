"""Hand-written Numba kernels for dense MLPs with a sigmoid output and mean BCE loss.

Every kernel is a plain compiled function that writes into preallocated,
C-contiguous outputs and does no validation: ``fastgeo.MLP`` checks and converts
inputs once, then dispatches here. float32 and float64 each compile once; the
hidden activation is an integer ``code`` (``fastgeo.activations.ACTIVATIONS[name].code``),
so one compiled kernel serves every activation.

Parameter layout: one flat, contiguous buffer ``params`` holding, layer by layer,
W_l row-major (fan_in x fan_out) then b_l (fan_out); ``layer_offsets(sizes)`` gives
where each layer starts. ``fastgeo.MLP.weights`` are views into ``params``.

Batch layout: samples are processed in tiles of up to TILE rows, stored feature-major:
row r of a tile buffer (S, TILE), S = sum(sizes), holds unit r for each sample of the
tile, units numbered layer after layer from the inputs (``unit_offsets``). Every inner
loop then runs along a contiguous row of samples, so it vectorizes whatever the layer
widths are, and a tile's activations stay in cache from forward to backward.

Shapes: X (n, sizes[0]); Y and probabilities (n, sizes[-1]); grad like params;
``rows`` an int64 index array choosing (and ordering) the samples of a batch.
"""

import math

import numpy as np
from numba import prange

from ._jit import kernel
from .activations import activate_row, multiply_derivative_row, scalar_sigmoid

#: Samples per tile.
TILE = 64

# minstd shuffling; kept equal to fastgeo.reference
MINSTD_MODULUS = 2147483647
MINSTD_MULTIPLIER = 48271


@kernel
def layer_offsets(sizes):
    """Start of layer l's W in params (its b follows at woff[l] + fan_in * fan_out)."""
    L = sizes.shape[0] - 1
    woff = np.empty(L, dtype=np.int64)
    w = 0
    for l in range(L):
        woff[l] = w
        w += sizes[l] * sizes[l + 1] + sizes[l + 1]
    return woff


@kernel
def unit_offsets(sizes):
    """Row of unit 0 of layer l (l = 0 is the input) in a tile buffer; the last entry is S."""
    off = np.empty(sizes.shape[0] + 1, dtype=np.int64)
    off[0] = 0
    for l in range(sizes.shape[0]):
        off[l + 1] = off[l] + sizes[l]
    return off


@kernel
def _load_tile(X, rows, r0, m, A):
    """A[k, t] = X[rows[r0 + t], k] for the tile's m samples (the input units)."""
    for t in range(m):
        i = rows[r0 + t]
        for k in range(X.shape[1]):
            A[k, t] = X[i, k]


@kernel
def _load_tile_range(X, i0, m, A):
    for t in range(m):
        for k in range(X.shape[1]):
            A[k, t] = X[i0 + t, k]


@kernel
def _tile_forward(params, sizes, woff, off, code, m, Z, A):
    """Forward pass of a tile whose inputs are in A[:sizes[0], :m]; fills Z and A for every
    layer. The output units of A hold sigmoid(z_L)."""
    L = sizes.shape[0] - 1
    for l in range(1, L + 1):
        nin = sizes[l - 1]
        nout = sizes[l]
        w = woff[l - 1]
        b = w + nin * nout
        cp = off[l - 1]
        c = off[l]
        for j in range(nout):
            bj = params[b + j]
            for t in range(m):
                Z[c + j, t] = bj
            for k in range(nin):
                wkj = params[w + k * nout + j]
                for t in range(m):
                    Z[c + j, t] += wkj * A[cp + k, t]
            if l < L:
                activate_row(code, Z, A, c + j, m)
            else:
                for t in range(m):
                    A[c + j, t] = scalar_sigmoid(Z[c + j, t])


@kernel
def _tile_loss(Z, Y, rows, r0, m, c_out):
    """Sum over the tile's samples and outputs of BCE(sigmoid(z), y), in float64.

    For 0/1 labels max(z, 0) - z y + log(1 + exp(-|z|)) is softplus(t) with t = z for
    y = 0 and t = -z for y = 1; written that way there is no z - z for fastmath's
    reassociation to turn into a cancellation."""
    total = 0.0
    for j in range(Y.shape[1]):
        for t in range(m):
            z = Z[c_out + j, t]
            s = -z if Y[rows[r0 + t], j] == 1 else z
            total += max(s, 0.0) + math.log1p(math.exp(-abs(s)))
    return total


@kernel
def _tile_backward(params, sizes, woff, off, code, Y, rows, r0, m, Z, A, D, scale, grad):
    """Adds the tile's gradient (times scale) to grad; D is scratch shaped like Z."""
    L = sizes.shape[0] - 1
    c_out = off[L]
    for j in range(sizes[L]):
        # p - y; for y = 1 as -sigmoid(-z), which does not cancel (see reference.backward)
        for t in range(m):
            if Y[rows[r0 + t], j] == 1:
                D[c_out + j, t] = -scalar_sigmoid(-Z[c_out + j, t]) * scale
            else:
                D[c_out + j, t] = A[c_out + j, t] * scale
    for l in range(L, 0, -1):
        nin = sizes[l - 1]
        nout = sizes[l]
        w = woff[l - 1]
        b = w + nin * nout
        cp = off[l - 1]
        c = off[l]
        for j in range(nout):
            s = 0.0
            for t in range(m):
                s += D[c + j, t]
            grad[b + j] += s
        for k in range(nin):
            for j in range(nout):
                s = 0.0
                for t in range(m):
                    s += A[cp + k, t] * D[c + j, t]
                grad[w + k * nout + j] += s
        if l > 1:
            for k in range(nin):
                for t in range(m):
                    D[cp + k, t] = 0.0
                for j in range(nout):
                    wkj = params[w + k * nout + j]
                    for t in range(m):
                        D[cp + k, t] += wkj * D[c + j, t]
                multiply_derivative_row(code, Z, A, D, cp + k, m)


@kernel
def _forward_range(params, sizes, code, X, out, i_start, i_stop):
    woff = layer_offsets(sizes)
    off = unit_offsets(sizes)
    L = sizes.shape[0] - 1
    Z = np.empty((off[-1], TILE), dtype=params.dtype)
    A = np.empty((off[-1], TILE), dtype=params.dtype)
    for i0 in range(i_start, i_stop, TILE):
        m = min(TILE, i_stop - i0)
        _load_tile_range(X, i0, m, A)
        _tile_forward(params, sizes, woff, off, code, m, Z, A)
        for t in range(m):
            for j in range(sizes[L]):
                out[i0 + t, j] = A[off[L] + j, t]


@kernel
def forward(params, sizes, code, X, out):
    """Output probabilities of every row of X into out (n, sizes[-1]). Serial."""
    _forward_range(params, sizes, code, X, out, 0, X.shape[0])


@kernel(parallel=True)
def forward_parallel(params, sizes, code, X, out, n_chunks):
    """As ``forward``; the tiles split into n_chunks contiguous blocks run in parallel."""
    n_tiles = (X.shape[0] + TILE - 1) // TILE
    for c in prange(n_chunks):
        start = c * n_tiles // n_chunks * TILE
        stop = min((c + 1) * n_tiles // n_chunks * TILE, X.shape[0])
        _forward_range(params, sizes, code, X, out, start, stop)


@kernel
def forward_trace(params, sizes, code, X, Z, A):
    """Forward pass keeping every layer: Z and A are (n, U), U = sum(sizes[1:]); layer l's
    z_l and a_l are the columns sum(sizes[1:l]) ... + sizes[l] (the last layer's a is the
    probability)."""
    woff = layer_offsets(sizes)
    off = unit_offsets(sizes)
    n_in = sizes[0]
    U = off[-1] - n_in
    tz = np.empty((off[-1], TILE), dtype=params.dtype)
    ta = np.empty((off[-1], TILE), dtype=params.dtype)
    for i0 in range(0, X.shape[0], TILE):
        m = min(TILE, X.shape[0] - i0)
        _load_tile_range(X, i0, m, ta)
        _tile_forward(params, sizes, woff, off, code, m, tz, ta)
        for t in range(m):
            for u in range(U):
                Z[i0 + t, u] = tz[n_in + u, t]
                A[i0 + t, u] = ta[n_in + u, t]


@kernel
def loss(params, sizes, code, X, Y):
    """Mean BCE over all elements of Y."""
    woff = layer_offsets(sizes)
    off = unit_offsets(sizes)
    L = sizes.shape[0] - 1
    Z = np.empty((off[-1], TILE), dtype=params.dtype)
    A = np.empty((off[-1], TILE), dtype=params.dtype)
    rows = np.arange(X.shape[0])
    total = 0.0
    for i0 in range(0, X.shape[0], TILE):
        m = min(TILE, X.shape[0] - i0)
        _load_tile_range(X, i0, m, A)
        _tile_forward(params, sizes, woff, off, code, m, Z, A)
        total += _tile_loss(Z, Y, rows, i0, m, off[L])
    return total / Y.size


@kernel
def backward(params, sizes, code, X, Y, Z, A, grad):
    """Gradient of the mean BCE into grad (overwritten), from a ``forward_trace``'s Z, A."""
    woff = layer_offsets(sizes)
    off = unit_offsets(sizes)
    n_in = sizes[0]
    U = off[-1] - n_in
    tz = np.empty((off[-1], TILE), dtype=params.dtype)
    ta = np.empty((off[-1], TILE), dtype=params.dtype)
    td = np.empty((off[-1], TILE), dtype=params.dtype)
    rows = np.arange(X.shape[0])
    grad[:] = 0
    scale = 1.0 / Y.size
    for i0 in range(0, X.shape[0], TILE):
        m = min(TILE, X.shape[0] - i0)
        _load_tile_range(X, i0, m, ta)
        for t in range(m):
            for u in range(U):
                tz[n_in + u, t] = Z[i0 + t, u]
                ta[n_in + u, t] = A[i0 + t, u]
        _tile_backward(params, sizes, woff, off, code, Y, rows, i0, m, tz, ta, td, scale, grad)


@kernel
def _loss_and_gradient_rows(params, sizes, code, X, Y, rows, r_start, r_stop, scale, grad):
    """Adds the gradient of rows[r_start:r_stop] (times scale) to grad; returns their
    summed loss."""
    woff = layer_offsets(sizes)
    off = unit_offsets(sizes)
    L = sizes.shape[0] - 1
    Z = np.empty((off[-1], TILE), dtype=params.dtype)
    A = np.empty((off[-1], TILE), dtype=params.dtype)
    D = np.empty((off[-1], TILE), dtype=params.dtype)
    total = 0.0
    for r0 in range(r_start, r_stop, TILE):
        m = min(TILE, r_stop - r0)
        _load_tile(X, rows, r0, m, A)
        _tile_forward(params, sizes, woff, off, code, m, Z, A)
        total += _tile_loss(Z, Y, rows, r0, m, off[L])
        _tile_backward(params, sizes, woff, off, code, Y, rows, r0, m, Z, A, D, scale, grad)
    return total


@kernel
def loss_and_gradient(params, sizes, code, X, Y, rows, grad):
    """Mean BCE of the rows X[rows] (returned) and its gradient (into grad, overwritten),
    a tile at a time: nothing of size n is stored."""
    grad[:] = 0
    scale = 1.0 / (rows.shape[0] * sizes[-1])
    total = _loss_and_gradient_rows(params, sizes, code, X, Y, rows, 0, rows.shape[0],
                                    scale, grad)
    return total * scale


@kernel(parallel=True)
def loss_and_gradient_parallel(params, sizes, code, X, Y, rows, grad, partials):
    """As ``loss_and_gradient``; the tiles split into partials.shape[0] blocks, each summed
    into its own row of partials (no two threads write the same memory), then added up
    in block order."""
    n_chunks = partials.shape[0]
    m = rows.shape[0]
    n_tiles = (m + TILE - 1) // TILE
    scale = 1.0 / (m * sizes[-1])
    losses = np.zeros(n_chunks)
    for c in prange(n_chunks):
        partials[c, :] = 0
        start = c * n_tiles // n_chunks * TILE
        stop = min((c + 1) * n_tiles // n_chunks * TILE, m)
        losses[c] = _loss_and_gradient_rows(params, sizes, code, X, Y, rows, start, stop,
                                            scale, partials[c])
    grad[:] = partials[0]
    for c in range(1, n_chunks):
        grad += partials[c]
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
    a minstd permutation when shuffle_state > 0, else 0..n-1. When n_chunks > 1,
    batches of at least 2 * n_chunks tiles use ``loss_and_gradient_parallel``. Returns
    -1, or the epoch in which the loss or the parameters became non-finite (params are
    then restored to that epoch's start).
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
            if n_chunks > 1 and rows.shape[0] >= 2 * n_chunks * TILE:
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
