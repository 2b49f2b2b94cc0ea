"""Hand-written Numba kernels for dense MLPs with a sigmoid output and mean BCE loss.

The kernels write into preallocated, C-contiguous outputs and do no validation:
``fastgeo.MLP`` checks and converts inputs once, then dispatches here. The hidden
activation is an integer ``code`` (``fastgeo.activations.ACTIVATIONS[name].code``), so
one compiled kernel serves every activation.

One compiled function does all the work: ``_engine``, with a ``mode`` argument. The
public kernels (``forward``, ``forward_trace``, ``loss``, ``backward``,
``loss_and_gradient``, ``train`` and their ``_parallel`` variants) are thin Python
functions that call it. Numba compiles (and caches) every top-level compiled function
with all of its callees, so each extra top-level kernel would compile the whole tile
machinery again: one engine compiles once per dtype (a few seconds), instead of once per
kernel and dtype (a minute on a loaded 2-core machine). The parallel variants run the
same serial engine on Python threads over blocks of tiles (``nogil``), each block into
its own output rows or its own partial gradient, summed in block order: no
``parallel=True`` kernel to compile, and no numba threading layer to share between
user threads.

Parameter layout: one flat, contiguous buffer ``params`` holding, layer by layer,
W_l row-major (fan_in x fan_out) then b_l (fan_out); ``layer_offsets(sizes)`` gives
where each layer starts. ``fastgeo.MLP.weights`` are views into ``params``.

Batch layout: samples are processed in tiles of up to TILE samples, stored
feature-major: row r of a tile buffer holds unit r for each sample of the tile, units
numbered layer after layer from the inputs, each layer's rows padded with zero rows to a
multiple of 4. Every inner loop runs along a contiguous row of samples, so it vectorizes
whatever the layer widths are, and a tile's activations stay in cache from forward to
backward. A tile of m samples computes m rounded up to 8 columns; the extra columns
hold zero inputs, their outputs are never written, and their loss and error terms are
multiplied by 0. Dense layers are register-blocked: 4 outputs x 4 inputs per pass over
a tile row (forward, and the back-propagated error), 2 x 4 sums per pass for the weight
gradient; the zero padding rows complete the blocks, so there are no remainder loops
over inputs. The tile buffers live in a per-thread workspace kept between calls.

Shapes: X (n, sizes[0]); Y and probabilities (n, sizes[-1]); grad like params;
``rows`` an int64 index array choosing (and ordering) the samples of a batch.

Compile time is a feature here: kernel bodies use ternaries rather than min/max and
explicit loops rather than slice assignment (each of those is an overload numba compiles
separately; a slice assignment of arrays even compiles its error-message formatting),
and helpers are ``internal`` (no Python entry point to generate).
"""

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._jit import kernel
from .activations import (
    activate_row,
    exp_neg,
    is_finite,
    log1p_unit,
    multiply_derivative_row,
)

#: Samples per tile.
TILE = 256
#: Spare columns per workspace row, so that tile rows do not start at multiples of 4 KiB
#: apart (loads and stores 4 KiB apart falsely alias in the store buffer).
ROW_PAD = 16

# minstd shuffling; kept equal to fastgeo.reference
MINSTD_MODULUS = 2147483647
MINSTD_MULTIPLIER = 48271

# _engine modes
M_FORWARD, M_TRACE, M_LOSS, M_BACKWARD, M_GRAD, M_TRAIN = range(6)
#: ``forward``'s status codes (``_engine`` returns them, as floats, in M_FORWARD)
FORWARD_OK, FORWARD_BAD_X, FORWARD_BAD_PARAMS, FORWARD_OVERFLOW = range(4)


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
def sgd_step(params, grad, lr):
    """params -= lr * grad, in place."""
    for p in range(params.shape[0]):
        params[p] -= lr * grad[p]


#: ``check_batch``'s status codes
BATCH_OK, BATCH_BAD_X, BATCH_BAD_Y = range(3)


@kernel
def check_batch(x, y):
    """BATCH_OK when every element of x (1-D) is finite and every element of y (1-D) is 0
    or 1, else BATCH_BAD_X or BATCH_BAD_Y (x first). Counting loops with no early exit
    (they vectorize): ``MLP``'s check of a training batch that needs no conversion."""
    if not all_finite(x):
        return BATCH_BAD_X
    bad = 0
    zero = y.dtype.type(0.0)
    one = y.dtype.type(1.0)
    for p in range(y.shape[0]):
        v = y[p]
        bad += 0 if (v == zero or v == one) else 1
    return BATCH_OK if bad == 0 else BATCH_BAD_Y


@kernel(fastmath=set())
def sgd_step_if_finite(params, grad, lr):
    """params -= lr * grad, in place, only if every updated value is finite; returns
    whether the step was taken (a counting pass, then the update: no temporary).

    No fastmath: the update is computed as NumPy's reference computes it (multiply, then
    subtract), and the value checked is the value stored."""
    bad = 0
    for p in range(params.shape[0]):
        bad += 0 if is_finite(params[p] - lr * grad[p]) else 1
    if bad > 0:
        return False
    for p in range(params.shape[0]):
        params[p] -= lr * grad[p]
    return True


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
    """True when every element of the 1-D x is finite. Counts, with no early exit: that
    loop vectorizes (``is_finite`` tests bits, which fastmath cannot fold away)."""
    bad = 0
    for p in range(x.shape[0]):
        bad += 0 if is_finite(x[p]) else 1
    return bad == 0


# --- tile building blocks ------------------------------------------------------------


@kernel(internal=True)
def _dense(params, w, so, sq, b, n_out, n_in, IN, cin, OUT, cout, mt):
    """OUT[cout + o, :] = bias_o + sum_q params[w + o * so + q * sq] * IN[cin + q, :] for
    o < n_out, q < n_in; bias_o = params[b + o], or 0 when b < 0.

    The forward pass is (so, sq) = (1, fan_out); the back-propagated error, W times the
    layer's error, is (so, sq) = (fan_out, 1). Blocks of 4 outputs x 4 inputs: each pass
    over a row loads 4 input rows and updates 4 output rows with 16 multiply-adds; the
    first pass writes bias + products, the others add. Inputs are taken 4 at a time: the
    IN rows past n_in (up to the next multiple of 4) are the layout's zero padding, and
    their weights are taken as 0."""
    zero = params.dtype.type(0.0)
    o = 0
    while o < n_out:
        r = cout + o
        if n_out - o >= 4:
            if b >= 0:
                b0 = params[b + o]
                b1 = params[b + o + 1]
                b2 = params[b + o + 2]
                b3 = params[b + o + 3]
            else:
                b0 = b1 = b2 = b3 = zero
            for q in range(0, n_in, 4):
                p = w + o * so + q * sq
                w00 = w01 = w02 = w03 = w10 = w11 = w12 = w13 = zero
                w20 = w21 = w22 = w23 = w30 = w31 = w32 = w33 = zero
                w00 = params[p]
                w10 = params[p + so]
                w20 = params[p + 2 * so]
                w30 = params[p + 3 * so]
                if q + 1 < n_in:
                    p += sq
                    w01 = params[p]
                    w11 = params[p + so]
                    w21 = params[p + 2 * so]
                    w31 = params[p + 3 * so]
                if q + 2 < n_in:
                    p += sq
                    w02 = params[p]
                    w12 = params[p + so]
                    w22 = params[p + 2 * so]
                    w32 = params[p + 3 * so]
                if q + 3 < n_in:
                    p += sq
                    w03 = params[p]
                    w13 = params[p + so]
                    w23 = params[p + 2 * so]
                    w33 = params[p + 3 * so]
                i = cin + q
                first = q == 0
                for t in range(mt):
                    a0 = IN[i, t]
                    a1 = IN[i + 1, t]
                    a2 = IN[i + 2, t]
                    a3 = IN[i + 3, t]
                    z0 = b0 if first else OUT[r, t]
                    z1 = b1 if first else OUT[r + 1, t]
                    z2 = b2 if first else OUT[r + 2, t]
                    z3 = b3 if first else OUT[r + 3, t]
                    OUT[r, t] = z0 + (w00 * a0 + w01 * a1 + w02 * a2 + w03 * a3)
                    OUT[r + 1, t] = z1 + (w10 * a0 + w11 * a1 + w12 * a2 + w13 * a3)
                    OUT[r + 2, t] = z2 + (w20 * a0 + w21 * a1 + w22 * a2 + w23 * a3)
                    OUT[r + 3, t] = z3 + (w30 * a0 + w31 * a1 + w32 * a2 + w33 * a3)
            o += 4
        else:
            b0 = params[b + o] if b >= 0 else zero
            for q in range(0, n_in, 4):
                p = w + o * so + q * sq
                w0 = params[p]
                w1 = params[p + sq] if q + 1 < n_in else zero
                w2 = params[p + 2 * sq] if q + 2 < n_in else zero
                w3 = params[p + 3 * sq] if q + 3 < n_in else zero
                i = cin + q
                first = q == 0
                for t in range(mt):
                    z0 = b0 if first else OUT[r, t]
                    OUT[r, t] = z0 + (w0 * IN[i, t] + w1 * IN[i + 1, t] + w2 * IN[i + 2, t]
                                      + w3 * IN[i + 3, t])
            o += 1


@kernel(internal=True)
def _weight_gradient(A, cp, n_in, D, c, n_out, grad, w, b, mt):
    """grad[b + j] += sum_t D[c + j, t]; grad[w + k n_out + j] += sum_t A[cp + k, t]
    D[c + j, t]. Blocks of 2 inputs x 4 outputs, 8 running sums per pass over the
    tile; the padding rows (zeros) complete the blocks, and their sums are dropped."""
    zero = A.dtype.type(0.0)
    for j in range(n_out):
        s = zero
        for t in range(mt):
            s += D[c + j, t]
        grad[b + j] += s
    for k in range(0, n_in, 2):
        i = cp + k
        g = w + k * n_out
        two = k + 1 < n_in
        for j in range(0, n_out, 4):
            d = c + j
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            for t in range(mt):
                a0 = A[i, t]
                a1 = A[i + 1, t]
                d0 = D[d, t]
                d1 = D[d + 1, t]
                d2 = D[d + 2, t]
                d3 = D[d + 3, t]
                s00 += a0 * d0
                s01 += a0 * d1
                s02 += a0 * d2
                s03 += a0 * d3
                s10 += a1 * d0
                s11 += a1 * d1
                s12 += a1 * d2
                s13 += a1 * d3
            grad[g + j] += s00
            if j + 1 < n_out:
                grad[g + j + 1] += s01
            if j + 2 < n_out:
                grad[g + j + 2] += s02
            if j + 3 < n_out:
                grad[g + j + 3] += s03
            if two:
                grad[g + n_out + j] += s10
                if j + 1 < n_out:
                    grad[g + n_out + j + 1] += s11
                if j + 2 < n_out:
                    grad[g + n_out + j + 2] += s12
                if j + 3 < n_out:
                    grad[g + n_out + j + 3] += s13


@kernel(internal=True)
def _tile_output(Z, A, D, Yt, weight, c, k, scale, mt):
    """Output layer of a training tile: A = sigmoid(z), D = (A - y) * scale * weight[t];
    returns sum_t weight[t] * BCE(sigmoid(z), y) (summed per tile row in the tile's
    precision, then in float64).

    One exp(-|z|) serves all three. BCE is softplus(s), s = z for y = 0 and s = -z for
    y = 1 (no z - z y for fastmath to cancel); p - y for y = 1 is -sigmoid(-z), which does
    not cancel either."""
    zero = Z.dtype.type(0.0)
    one = Z.dtype.type(1.0)
    sc = Z.dtype.type(scale)
    total = 0.0
    for j in range(k):
        r = c + j
        row_total = zero  # in the tile's precision: a float64 sum here did not vectorize
        for t in range(mt):
            z = Z[r, t]
            e = exp_neg(-abs(z))
            inv = one / (one + e)
            ei = e * inv
            pos = z >= zero
            p = inv if pos else ei
            q = ei if pos else inv
            y1 = Yt[j, t] == one
            s = -z if y1 else z
            wt = weight[t]
            row_total += wt * ((s if s > zero else zero) + log1p_unit(e))  # noqa: FURB136
            A[r, t] = p
            D[r, t] = (-q if y1 else p) * (sc * wt)
        total += row_total
    return total


@kernel(internal=True)
def _load_tile(X, Y, rows, r0, m, A, Yt, weight, mt, labels):
    """The tile's inputs A[k, t] = X[i_t, k] and, when ``labels``, Yt[j, t] = Y[i_t, j]
    and weight[t] = 1, for t < m; 0 for m <= t < mt. i_t = rows[r0 + t], or r0 + t when
    rows is empty. Feature by feature, so each loop writes one contiguous tile row."""
    zero = A.dtype.type(0.0)
    one = A.dtype.type(1.0)
    gather = rows.shape[0] > 0
    for k in range(X.shape[1]):
        if gather:
            for t in range(m):
                A[k, t] = X[rows[r0 + t], k]
        else:
            for t in range(m):
                A[k, t] = X[r0 + t, k]
        for t in range(m, mt):
            A[k, t] = zero
    if labels:
        for j in range(Y.shape[1]):
            if gather:
                for t in range(m):
                    Yt[j, t] = Y[rows[r0 + t], j]
            else:
                for t in range(m):
                    Yt[j, t] = Y[r0 + t, j]
            for t in range(m, mt):
                Yt[j, t] = zero
        for t in range(mt):
            weight[t] = one if t < m else zero


@kernel
def _engine(mode, params, sizes, code, X, Y, rows, out, Zt, At, grad, scale, lr, epochs,
            batch_size, state, perms, history, ws):
    """Every kernel in one compiled function (see the module docstring); ``mode``:

    M_FORWARD  out = probabilities of X; returns a FORWARD_* status, X and params
               checked before anything is computed, the outputs after (the caller
               raises; one pass instead of three NumPy calls, which cost more than a
               256-sample forward pass)
    M_TRACE    Zt, At = every layer's z and a for X (n, U), U = sum(sizes[1:])
    M_LOSS     returns the mean BCE of (X, Y) (scale = 1 / Y.size)
    M_BACKWARD grad = the gradient of the mean BCE from a trace (Zt, At) of X
    M_GRAD     grad = the gradient of the loss of X[rows], Y[rows] times scale; returns
               that loss times scale
    M_TRAIN    ``train``: rows = 0..n-1 (permuted in place), grad has room for 2 P
               values (the gradient, then the epoch's starting parameters); returns the
               failed epoch or -1

    ws is the tile workspace, ``_workspace``: (4, >= S, TILE), S the padded unit count.

    Tile rows: layer l's units start at row sum(pad(sizes[:l])), pad(s) = s rounded up
    to a multiple of 4; the padding rows stay 0 (the dense blocks read them).
    Helpers get no integer constants as arguments (np.int64(1), not 1): numba would
    compile a separate copy of the helper for each literal value.
    """
    L = sizes.shape[0] - 1
    S = 0
    for l in range(L + 1):
        S += (sizes[l] + 3) // 4 * 4
    n_in = sizes[0]
    k = sizes[L]
    c_out = S - (k + 3) // 4 * 4
    P = params.shape[0]
    unit = np.int64(1)
    no_bias = np.int64(-1)
    zero = params.dtype.type(0)
    # ws (4, >= S, TILE): Z, A, D, and the labels Yt (rows < k) and weights (row S - 1,
    # free as k < S) of a tile. Only the padding rows must be 0 (nothing else is read
    # before it is written in the same tile): clear them, ws may come from another net.
    if mode == M_FORWARD:
        if not all_finite(X.reshape(X.size)):
            return float(FORWARD_BAD_X)
        if not all_finite(params):
            return float(FORWARD_BAD_PARAMS)
    n_bad = 0  # M_FORWARD: outputs that are not finite
    training = mode == M_TRAIN
    if training:
        n = X.shape[0]
        n_epochs = epochs
        batch = batch_size
    else:
        n = rows.shape[0] if mode == M_GRAD else X.shape[0]
        n_epochs = 1
        batch = n if n > 0 else 1
    widest = batch if batch < TILE else TILE  # noqa: FURB136 (widest tile)
    c = 0
    for l in range(L + 1):
        for u in range(c + sizes[l], c + (sizes[l] + 3) // 4 * 4):
            for a in range(3):
                for t in range((widest + 7) // 8 * 8):
                    ws[a, u, t] = zero
        c += (sizes[l] + 3) // 4 * 4
    Z = ws[0]
    A = ws[1]
    D = ws[2]
    Yt = ws[3]
    weight = ws[3, S - 1]
    order = rows  # M_TRAIN: 0..n-1, permuted in place; M_GRAD: the rows; else empty
    for epoch in range(n_epochs):
        if training:
            for p in range(P):  # grad[P:] keeps the epoch's starting parameters
                grad[P + p] = params[p]
            if perms.shape[0] > 0:
                for i in range(n):
                    order[i] = perms[epoch, i]
            elif state > 0:
                state = minstd_permutation(order, state)
        epoch_total = 0.0
        n_batches = 0
        finite = True
        for start in range(0, n, batch):
            stop = start + batch if start + batch < n else n  # noqa: FURB136
            if training:
                scale = 1.0 / ((stop - start) * k)
            if mode >= M_BACKWARD:
                for p in range(P):
                    grad[p] = zero
            total = 0.0
            for r0 in range(start, stop, TILE):
                m = stop - r0 if stop - r0 < TILE else TILE  # noqa: FURB136
                mt = (m + 7) // 8 * 8  # columns computed: m rounded up to a vector
                _load_tile(X, Y, order, r0, m, A, Yt, weight, mt, mode >= M_LOSS)
                if mode == M_BACKWARD:  # z and a from the trace
                    u = 0
                    c = (n_in + 3) // 4 * 4
                    for l in range(1, L + 1):
                        for j in range(sizes[l]):
                            for t in range(mt):
                                Z[c + j, t] = Zt[r0 + t, u + j] if t < m else zero
                                A[c + j, t] = At[r0 + t, u + j] if t < m else zero
                        u += sizes[l]
                        c += (sizes[l] + 3) // 4 * 4
                else:  # forward pass
                    w = np.int64(0)  # not 0: a literal would compile another _dense
                    cp = np.int64(0)
                    for l in range(1, L + 1):
                        nin = sizes[l - 1]
                        nout = sizes[l]
                        c = cp + (nin + 3) // 4 * 4
                        _dense(params, w, unit, nout, w + nin * nout, nout, nin, A, cp, Z, c, mt)
                        act = code if l < L else 0  # sigmoid output
                        for j in range(nout):
                            activate_row(act, Z, A, c + j, mt)
                        w += nin * nout + nout
                        cp = c
                if mode == M_FORWARD:
                    for j in range(k):
                        for t in range(m):
                            n_bad += 0 if is_finite(A[c_out + j, t]) else 1
                    if k == 1:
                        for t in range(m):
                            out[r0 + t, 0] = A[c_out, t]
                    else:
                        for t in range(m):
                            for j in range(k):
                                out[r0 + t, j] = A[c_out + j, t]
                    continue
                if mode == M_TRACE:
                    u = 0
                    c = (n_in + 3) // 4 * 4
                    for l in range(1, L + 1):
                        for j in range(sizes[l]):
                            for t in range(m):
                                Zt[r0 + t, u + j] = Z[c + j, t]
                                At[r0 + t, u + j] = A[c + j, t]
                        u += sizes[l]
                        c += (sizes[l] + 3) // 4 * 4
                    continue
                total += _tile_output(Z, A, D, Yt, weight, c_out, k, scale, mt)
                if mode == M_LOSS:
                    continue
                # backward pass: D's output rows hold the scaled output error
                w = P
                c = c_out
                for l in range(L, 0, -1):
                    nin = sizes[l - 1]
                    nout = sizes[l]
                    w -= nin * nout + nout
                    cp = c - (nin + 3) // 4 * 4
                    _weight_gradient(A, cp, nin, D, c, nout, grad, w, w + nin * nout, mt)
                    if l > 1:
                        _dense(params, w, nout, unit, no_bias, nin, nout, D, c, D, cp, mt)
                        for j in range(nin):
                            multiply_derivative_row(code, Z, A, D, cp + j, mt)
                    c = cp
            if mode == M_FORWARD:
                return float(FORWARD_OK if n_bad == 0 else FORWARD_OVERFLOW)
            if not training:
                return total * scale
            batch_loss = total * scale
            epoch_total += batch_loss
            n_batches += 1
            if not is_finite(batch_loss):
                finite = False
                break
            sgd_step(params, grad, lr)
        if not training:
            return 0.0  # no rows
        history[epoch] = epoch_total / n_batches
        if not (finite and all_finite(params)):
            for p in range(P):
                params[p] = grad[P + p]
            return epoch + 0.0
    return -1.0


# --- the public kernels -----------------------------------------------------------------

class _PerThread(threading.local):
    def __init__(self):
        self.spaces = {}  # dtype char -> tile workspace
        self.buffers = {}  # scratch arrays of the wide path, see _buffer


_local = _PerThread()
_shapes = {}  # sizes.tobytes() -> (padded unit count S, most weights in one layer)
_dummies = {}


def _shape(sizes):
    """(S, widest) of a net: its padded tile rows and its largest fan_in * fan_out."""
    key = sizes.tobytes()
    info = _shapes.get(key)
    if info is None:
        widths = [int(s) for s in sizes]
        info = _shapes[key] = (sum((s + 3) // 4 * 4 for s in widths),
                               max(a * b for a, b in zip(widths[:-1], widths[1:])))
    return info


def _workspace(dtype, sizes):
    """This thread's tile workspace for dtype, with room for the padded units of sizes.
    Kept between calls: allocating (and page-faulting) it per call cost more than a
    small forward pass."""
    S = _shape(sizes)[0]
    ws = _local.spaces.get(dtype.char)
    if ws is None or ws.shape[1] < S:
        ws = _local.spaces[dtype.char] = np.empty((4, S, TILE + ROW_PAD), dtype=dtype)
    return ws


def _placeholders(dtype):
    """(2-D, rows, 1-D, permutations, history, lr) placeholders of dtype for the engine
    arguments a mode does not use (never written)."""
    found = _dummies.get(dtype.char)
    if found is None:
        dt = np.dtype(dtype)
        found = _dummies[dtype.char] = (
            np.empty((0, 1), dt), np.empty(0, np.int64), np.empty(0, dt),
            np.empty((0, 0), np.int64), np.empty(0, np.float64), dt.type(0))
    return found


def _writable(a):
    """a, or a copy of it if it is read-only: a read-only array is another numba type,
    hence another (slow) compile of the engine, and one that cannot train."""
    return a if a.flags.writeable else a.copy()


def _run(mode, params, sizes, code, X, Y=None, rows=None, out=None, Zt=None, At=None,
         grad=None, scale=0.0):
    """The engine in a non-training mode, placeholders for what the mode does not use."""
    M2, I1, G1, I2, H1, lr0 = _placeholders(params.dtype)
    return _engine(mode, _writable(params), sizes, code, _writable(X),
                   M2 if Y is None else _writable(Y), I1 if rows is None else rows,
                   M2 if out is None else out, M2 if Zt is None else Zt,
                   M2 if At is None else At, G1 if grad is None else grad, scale, lr0, 0, 1,
                   0, I2, H1, _workspace(params.dtype, sizes))


def forward(params, sizes, code, X, out):
    """Output probabilities of every row of X into out (n, sizes[-1]); returns a status:
    FORWARD_OK, or FORWARD_BAD_X / FORWARD_BAD_PARAMS (NaN or inf found before anything
    was computed, out left unwritten) or FORWARD_OVERFLOW (an output is not finite).
    Serial (BLAS may use its threads for wide layers)."""
    if _is_wide(sizes, X.shape[0]):
        if not np.isfinite(X).all():
            return FORWARD_BAD_X
        if not np.isfinite(params).all():
            return FORWARD_BAD_PARAMS
        out[...] = _wide_forward(params, sizes, code, X)[-1][1]
        return FORWARD_OK if np.isfinite(out).all() else FORWARD_OVERFLOW
    # spelled out, not _run: the latency of small calls matters here
    dtype = params.dtype
    M2, I1, G1, I2, H1, lr0 = _placeholders(dtype)
    if not (params.flags.writeable and X.flags.writeable):
        params, X = _writable(params), _writable(X)
    return int(_engine(M_FORWARD, params, sizes, code, X, M2, I1, out, M2, M2, G1, 0.0, lr0,
                       0, 1, 0, I2, H1, _workspace(dtype, sizes)))


def forward_trace(params, sizes, code, X, Z, A):
    """Forward pass keeping every layer: Z and A are (n, U), U = sum(sizes[1:]); layer l's
    z_l and a_l are the columns sum(sizes[1:l]) ... + sizes[l] (the last layer's a is the
    probability)."""
    _run(M_TRACE, params, sizes, code, X, Zt=Z, At=A)


def loss(params, sizes, code, X, Y):
    """Mean BCE over all elements of Y."""
    return _run(M_LOSS, params, sizes, code, X, Y, scale=1.0 / Y.size)


def backward(params, sizes, code, X, Y, Z, A, grad):
    """Gradient of the mean BCE into grad (overwritten), from a ``forward_trace``'s Z, A."""
    _run(M_BACKWARD, params, sizes, code, X, Y, Zt=_writable(Z), At=_writable(A), grad=grad,
         scale=1.0 / Y.size)


def loss_and_gradient(params, sizes, code, X, Y, rows, grad):
    """Mean BCE of the rows X[rows] (returned) and its gradient (into grad, overwritten),
    a tile at a time: nothing of size n is stored."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if rows.shape[0] == 0:
        grad[:] = 0
        return math.nan
    scale = 1.0 / (rows.shape[0] * sizes[-1])
    if _is_wide(sizes, rows.shape[0]):
        return _wide_gradient(params, sizes, code, X[rows], Y[rows], grad, scale)
    return _run(M_GRAD, params, sizes, code, X, Y, rows, grad=grad, scale=scale)


# --- wide layers: BLAS matmuls, compiled element-wise passes -----------------------------

#: Nets with a layer of at least this many weights (fan_in * fan_out) run ``forward``,
#: ``loss_and_gradient`` and ``train`` on batches of at least WIDE_MIN_ROWS rows as
#: NumPy matmuls (BLAS) over the whole batch, sample-major, with compiled element-wise
#: passes for bias, activation, loss and derivative. Measured on 2-core AMD EPYC, float32,
#: 1 thread: the tiles reach 14-25 GMAC/s, BLAS 40 GMAC/s on 512 x 512 layers.
WIDE_MIN_WEIGHTS = 128 * 128
WIDE_MIN_ROWS = 128


def _is_wide(sizes, n_rows):
    return n_rows >= WIDE_MIN_ROWS and _shape(sizes)[1] >= WIDE_MIN_WEIGHTS


@kernel
def _wide_activate(Z, b, code, A):
    """Z (n, m) += b, then A = f(Z) row by row (code: the activation; 0 = sigmoid)."""
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            Z[i, j] += b[j]
        activate_row(code, Z, A, i, Z.shape[1])


@kernel
def _wide_output(Zt, At, Dt, Yt, weight, scale):
    """The output layer, feature-major (k, n): At = sigmoid(Zt), Dt = (At - Yt) * scale;
    returns the summed BCE (``_tile_output`` over all n columns)."""
    k = Zt.shape[0]
    return _tile_output(Zt, At, Dt, Yt, weight, np.int64(0), k, scale, Zt.shape[1])


@kernel
def _wide_derivative(code, Z, A, D):
    """D *= f'(Z) row by row, given A = f(Z)."""
    for i in range(Z.shape[0]):
        multiply_derivative_row(code, Z, A, D, i, Z.shape[1])


def _layers(params, sizes):
    """[(W view (fan_in, fan_out), b view, offset of W)] for each layer."""
    out, w = [], 0
    for l in range(len(sizes) - 1):
        nin, nout = int(sizes[l]), int(sizes[l + 1])
        out.append((params[w:w + nin * nout].reshape(nin, nout),
                    params[w + nin * nout:w + nin * nout + nout], w))
        w += nin * nout + nout
    return out


def _buffer(name, shape, dtype):
    """A per-thread scratch array, reused between calls (fresh multi-megabyte arrays cost
    page faults on every call)."""
    key = (name, shape, dtype.char)
    buf = _local.buffers.get(key)
    if buf is None:
        if len(_local.buffers) > 64:
            _local.buffers.clear()
        buf = _local.buffers[key] = np.empty(shape, dtype=dtype)
    return buf


def _wide_forward(params, sizes, code, X):
    """[(Z_l, A_l)] for every layer, (n, fan_out) each, in this thread's scratch buffers
    (valid until its next call); A_L = probabilities."""
    layers = _layers(params, sizes)
    A = X
    trace = []
    with np.errstate(all="ignore"):  # like the compiled kernels: non-finite flows through
        for l, (W, b, _) in enumerate(layers):
            shape = (X.shape[0], W.shape[1])
            Z = np.matmul(A, W, out=_buffer(("Z", l), shape, params.dtype))
            A = _buffer(("A", l), shape, params.dtype)
            _wide_activate(Z, b, code if l < len(layers) - 1 else 0, A)
            trace.append((Z, A))
    return trace


def _wide_gradient(params, sizes, code, X, Y, grad, scale):
    """grad = gradient of the loss of (X, Y) times scale; returns that loss times scale."""
    trace = _wide_forward(params, sizes, code, X)
    ZL, _ = trace[-1]
    k = ZL.shape[1]
    Zt = np.ascontiguousarray(ZL.T)
    At, Dt = np.empty_like(Zt), np.empty_like(Zt)
    weight = np.ones(Zt.shape[1], dtype=params.dtype)
    total = _wide_output(Zt, At, Dt, np.ascontiguousarray(Y.T), weight, scale)
    D = np.ascontiguousarray(Dt.T) if k > 1 else Dt.reshape(-1, 1)
    layers = _layers(params, sizes)
    gviews = _layers(grad, sizes)
    with np.errstate(all="ignore"):
        for l in range(len(layers) - 1, -1, -1):
            W = layers[l][0]
            gW, gb, _ = gviews[l]
            A_prev = trace[l - 1][1] if l > 0 else X
            np.matmul(A_prev.T, D, out=gW)
            np.sum(D, axis=0, out=gb)
            if l > 0:
                D = np.matmul(D, W.T, out=_buffer(("D", l), (D.shape[0], W.shape[0]),
                                                   params.dtype))
                _wide_derivative(code, trace[l - 1][0], trace[l - 1][1], D)
    return total * scale


# --- parallel: the serial engine on Python threads ------------------------------------

_pool = None
_pool_lock = threading.Lock()


def _run_blocks(job, n_blocks):
    """job(0), ..., job(n_blocks - 1): block 0 on this thread, the others on a shared pool
    (the engine releases the GIL)."""
    global _pool
    if n_blocks <= 1:
        job(0)
        return
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2),
                                           thread_name_prefix="fastgeo")
    futures = [_pool.submit(job, c) for c in range(1, n_blocks)]
    try:
        job(0)
    finally:
        for f in futures:
            f.result()


def _block(c, n_blocks, n):
    """Rows [start, stop) of block c when n rows are split in n_blocks blocks of whole
    tiles."""
    n_tiles = (n + TILE - 1) // TILE
    return (c * n_tiles // n_blocks * TILE,
            min((c + 1) * n_tiles // n_blocks * TILE, n))


def forward_parallel(params, sizes, code, X, out, n_chunks):
    """As ``forward`` (the same status); the tiles split into n_chunks contiguous blocks
    run in parallel (wide layers: one BLAS call over the batch, which uses BLAS's
    threads)."""
    X = _writable(X)
    n = X.shape[0]
    if _is_wide(sizes, n):
        return forward(params, sizes, code, X, out)
    status = [FORWARD_OK] * n_chunks

    def job(c):
        start, stop = _block(c, n_chunks, n)
        if stop > start:
            status[c] = forward(params, sizes, code, X[start:stop], out[start:stop])

    _run_blocks(job, n_chunks)
    for worst in (FORWARD_BAD_X, FORWARD_BAD_PARAMS, FORWARD_OVERFLOW):  # as serial reports
        if worst in status:
            return worst
    return FORWARD_OK


def loss_and_gradient_parallel(params, sizes, code, X, Y, rows, grad, partials):
    """As ``loss_and_gradient``; the tiles split into partials.shape[0] blocks, each summed
    into its own row of partials (no two threads write the same memory), then added up
    in block order."""
    X, Y = _writable(X), _writable(Y)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    n_chunks = partials.shape[0]
    m = rows.shape[0]
    if m == 0:
        grad[:] = 0
        return math.nan
    scale = 1.0 / (m * sizes[-1])
    if _is_wide(sizes, m):  # one BLAS call over the batch (BLAS's threads)
        return _wide_gradient(params, sizes, code, X[rows], Y[rows], grad, scale)
    losses = np.zeros(n_chunks)

    def job(c):
        start, stop = _block(c, n_chunks, m)
        if stop > start:
            losses[c] = _run(M_GRAD, params, sizes, code, X, Y, rows[start:stop],
                             grad=partials[c], scale=scale)
        else:
            partials[c] = 0

    _run_blocks(job, n_chunks)
    grad[:] = partials[0]
    for c in range(1, n_chunks):
        grad += partials[c]
    return float(losses.sum())


def train(params, sizes, code, X, Y, epochs, lr, batch_size, shuffle_state, permutations,
          history, n_chunks):
    """Mini-batch SGD for ``epochs`` epochs in one call; history[e] = mean of the batch
    losses measured before each update in epoch e.

    Sample order per epoch: permutations[e] when permutations has a row per epoch, else
    a minstd permutation when shuffle_state > 0, else 0..n-1. The whole run is one
    engine call, except when n_chunks > 1 and batches hold at least 2 * n_chunks tiles
    (those use ``loss_and_gradient_parallel``), or for wide layers (BLAS, see
    WIDE_MIN_WEIGHTS): the epoch loop then runs in Python, a call per batch, which only
    pays for large batches. Returns -1, or the epoch in which the loss or the parameters
    became non-finite (params are then restored to that epoch's start).
    """
    X, Y = _writable(X), _writable(Y)
    permutations = _writable(np.ascontiguousarray(permutations, dtype=np.int64))
    lr = params.dtype.type(lr)
    n = X.shape[0]
    threaded = n_chunks > 1 and batch_size >= 2 * n_chunks * TILE
    if not threaded and not _is_wide(sizes, min(batch_size, n)):
        M2 = _placeholders(params.dtype)[0]
        work = np.empty(2 * params.shape[0], dtype=params.dtype)  # gradient, saved params
        return int(_engine(M_TRAIN, params, sizes, code, X, Y, np.arange(n), M2, M2, M2, work,
                           0.0, lr, epochs, batch_size, shuffle_state, permutations, history,
                           _workspace(params.dtype, sizes)))
    grad = np.empty_like(params)
    partials = np.empty((n_chunks, params.shape[0]), dtype=params.dtype)
    order = np.arange(n)
    state = shuffle_state
    for epoch in range(epochs):
        saved = params.copy()
        if permutations.shape[0] > 0:
            order[:] = permutations[epoch]
        elif state > 0:
            state = minstd_permutation(order, state)
        total = 0.0
        n_batches = 0
        finite = True
        for start in range(0, n, batch_size):
            rows = order[start:min(start + batch_size, n)]
            if rows.shape[0] >= 2 * n_chunks * TILE:
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
