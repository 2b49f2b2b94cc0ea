"""Hand-written Numba kernels for dense MLPs with a sigmoid output and mean BCE loss.

The kernels write into preallocated, C-contiguous outputs and do no validation:
``fastgeo.MLP`` checks and converts inputs once, then dispatches here. The hidden
activation is an integer ``code`` (``fastgeo.activations.ACTIVATIONS[name].code``).

Stages, each one compiled function a screen long (read top-down: a training step is
``_pack`` -> per tile ``_load_*`` -> ``_forward_tile`` -> ``_output_error`` ->
``_backward_tile`` -> ``sgd_step``; ``fit_into`` is the one epoch loop):

    _dense_forward    one layer, z = W^T a + b and f(z) fused on the accumulators
    _dense_backward   one layer's error, (W e) * f'(a) fused the same way
    _weight_gradient  dW and db of one layer (a row of ones in the tile makes db
                      the last row of the same blocks)
    _output_error     BCE and its error at the logits, one exp(-|z|) for both
    _narrow_forward   every layer of a narrow net (all layers <= NARROW units) a vector
                      of samples at a time, the units in registers (replaces the
                      per-layer passes of _forward_tile)

The njit-callable entry points (``forward_into``, ``trace_into``, ``loss_gradient_into``,
``fit_into``) are also the public kernel API for users' own ``@njit`` code (see
``KERNEL_API_VERSION``); the Python functions at the end (``forward``, ``loss``,
``loss_and_gradient``, ``train`` ...) bring the per-thread workspace and are what
``MLP`` calls.

Data layout
-----------
Parameters: one flat buffer ``params`` holding, layer by layer, W_l row-major
(fan_in x fan_out) then b_l (fan_out). W_l and b_l together are the (fan_in + 1) x fan_out
matrix [W_l; b_l]: the gradient stage treats the bias as row fan_in.

Packed weights (``packed``, rebuilt by ``_pack`` whenever params differ from the copy
kept at its end, ``_ensure_packed``): per layer, a
forward panel per block of 4 outputs, W[q, o:o + 4] for q = 0..fan_in - 1 (zero past
fan_out), the biases padded to a multiple of 4, and a backward panel per block of 4
inputs, W[q:q + 4, o] for o = 0..fan_out - 1 (zero past fan_in). Every dense block then
reads 4 contiguous weights per step and has no remainder case. Narrow nets also get
narrow panels (``_pack_narrow``): each layer's [W; b] padded to NARROW x NARROW, each
element REPLICAS (8) times, so a weight is a vector load.

Tiles (``tile``, ``tile_columns(sizes, dtype)`` sample columns, feature-major): rows hold
units, columns samples, so every vector load is 8 (float32) or 4 (float64) samples of one unit. Layer
l's activations take pad4(n_l + 1) rows: n_l units, a row of ones (the bias input of the
gradient) and zero rows; then each layer's error (pad4(n_l) rows, zero past n_l), then
the labels, then each hidden layer's z (pad4(n_l) rows; written in training, and only
for activations whose derivative needs z), then, in nets with a layer of PACK_MIN units
or more, the strip rows (``_strips``: a wide layer's inputs or errors copied strip by
strip, 3 vectors of columns each, into contiguous memory viewed as (strips x n, 3V) with
``rows_of``; the weight gradient's transposed error strip), then
SCRATCH_ROWS rows of per-sample scratch (the softmax's). A tile of m samples computes m
rounded up to a strip of 3 vectors.

Dense blocks: 4 units x 3 vectors (12 accumulators in registers across the whole
fan-in), weights broadcast from the panel, the input strip loaded once per step; the
bias, the activation (or the derivative) and the store happen once per block.
"""

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import typeof, types
from numba.extending import overload

from . import heads, vmath
from ._jit import INTERNAL_OPTIONS, kernel
from .activations import (
    ACTIVATIONS,
    IDENTITY,
    activate,
    activate8,
    activate8_inline,
    derivative_times,
    exp_neg,
    is_finite,
    log1p_unit,
    needs_z,
)
from .simd import (
    LANES,
    absolute,
    broadcast,
    broadcast_at,
    evens,
    fma,
    get,
    hsum,
    lanes,
    load,
    load1,
    odds,
    put,
    rows_of,
    store,
    store1,
    where,
)

#: Version of the njit-callable kernel API (the ``*_into`` functions, their arguments
#: and the params / packed / tile layouts). Bumped on any incompatible change.
KERNEL_API_VERSION = 6

#: Strips of 3 vectors per tile: 192 float32 / 96 float64 samples (``tile_columns``: twice
#: that for small nets)
TILE_STRIPS = 8
TILE = {np.dtype(dt): TILE_STRIPS * 3 * LANES[np.dtype(dt)] for dt in (np.float32, np.float64)}
#: The widest layer and the most inputs of a net whose tiles take twice TILE samples
SMALL_NET_UNITS, SMALL_NET_INPUTS = 64, 8
#: Dense layers summing over at least this many rows (inputs forward, errors backward)
#: read each strip of 3 vectors of them from a contiguous copy (``_strips``)
PACK_MIN = 128

# minstd shuffling; kept equal to fastgeo.reference
MINSTD_MODULUS = 2147483647
MINSTD_MULTIPLIER = 48271

#: ``forward_into``'s status codes
FORWARD_OK, FORWARD_BAD_X, FORWARD_BAD_PARAMS, FORWARD_OVERFLOW = range(4)
#: ``check_batch``'s status codes
BATCH_OK, BATCH_BAD_X, BATCH_BAD_Y = range(3)
SIGMOID = 0  # the output layer's activation for the sigmoid head
RELU = ACTIVATIONS["relu"].code  # the activations with a narrow loop of their own
HEAD_SIGMOID, HEAD_SOFTMAX, HEAD_IDENTITY = heads.SIGMOID, heads.SOFTMAX, heads.IDENTITY
#: ``fit_into``'s update rules: p -= lr g; (Nesterov) momentum; Adam
#: (``fastgeo.optimizers``, whose objects carry these codes)
SOLVER_PLAIN, SOLVER_MOMENTUM, SOLVER_ADAM = range(3)


# --- small kernels ----------------------------------------------------------------------


@kernel
def all_finite(x):
    """True when every element of the 1-D x is finite. Counts, with no early exit, in
    two vectors of float lanes (|v| < inf is false for NaN and inf; the vector compare
    carries no fastmath flag that could fold it away): 8 float32 per instruction instead
    of the 4 int64 lanes the scalar loop vectorized to, about 2x faster."""
    V = lanes(x)
    zero = broadcast(x.dtype.type(0.0))
    bad0 = bad1 = zero
    p = 0
    while p + 2 * V <= x.shape[0]:
        v = load1(x, p)
        bad0 = where(absolute(v) < math.inf, bad0, bad0 + 1.0)
        v = load1(x, p + V)
        bad1 = where(absolute(v) < math.inf, bad1, bad1 + 1.0)
        p += 2 * V
    bad = 0
    for q in range(p, x.shape[0]):
        bad += 0 if is_finite(x[q]) else 1
    return bad == 0 and hsum(bad0 + bad1) == 0.0


@kernel
def check_batch(x, y):
    """BATCH_OK when every element of x (1-D) is finite and every element of y (1-D) is 0
    or 1, else BATCH_BAD_X or BATCH_BAD_Y (x first): ``MLP``'s check of a training batch
    that needs no conversion."""
    if not all_finite(x):
        return BATCH_BAD_X
    bad = 0
    zero = y.dtype.type(0.0)
    one = y.dtype.type(1.0)
    for p in range(y.shape[0]):
        v = y[p]
        bad += 0 if (v == zero or v == one) else 1
    return BATCH_OK if bad == 0 else BATCH_BAD_Y


@kernel
def sgd_step(params, grad, lr):
    """params -= lr * grad, in place."""
    for p in range(params.shape[0]):
        params[p] -= lr * grad[p]


@kernel(fastmath=set())
def sgd_step_if_finite(params, grad, lr):
    """params -= lr * grad, in place, only if every updated value is finite; returns
    whether the step was taken. No fastmath: the value checked is the value stored."""
    bad = 0
    for p in range(params.shape[0]):
        bad += 0 if is_finite(params[p] - lr * grad[p]) else 1
    if bad > 0:
        return False
    for p in range(params.shape[0]):
        params[p] -= lr * grad[p]
    return True


@kernel(internal=True)
def _optimizer_step(solver, params, grad, lr, hyper, moments, t):
    """One update of params by ``solver`` (SOLVER_*), with state in moments (velocity;
    Adam's m then v) and t (Adam's step count, returned incremented). hyper = (momentum,
    nesterov (0/1), beta_1, beta_2, epsilon). scikit-learn's forms: see
    ``fastgeo.optimizers``."""
    P = params.shape[0]
    one = params.dtype.type(1.0)
    if solver == SOLVER_PLAIN:
        sgd_step(params, grad, lr)
        return t
    if solver == SOLVER_MOMENTUM:
        mu = params.dtype.type(hyper[0])
        velocity = moments[:P]
        if hyper[1] != 0.0:
            for p in range(P):
                v = mu * velocity[p] - lr * grad[p]
                velocity[p] = v
                params[p] += mu * v - lr * grad[p]
        else:
            for p in range(P):
                v = mu * velocity[p] - lr * grad[p]
                velocity[p] = v
                params[p] += v
        return t
    t += 1
    b1 = params.dtype.type(hyper[2])
    b2 = params.dtype.type(hyper[3])
    eps = params.dtype.type(hyper[4])
    step = params.dtype.type(lr * math.sqrt(1.0 - hyper[3] ** t) / (1.0 - hyper[2] ** t))
    m = moments[:P]
    v = moments[P:2 * P]
    for p in range(P):
        g = grad[p]
        m[p] = b1 * m[p] + (one - b1) * g
        v[p] = b2 * v[p] + (one - b2) * (g * g)
        params[p] -= step * m[p] / (math.sqrt(v[p]) + eps)
    return t


@kernel(internal=True)
def _l2_penalty(params, sizes, grad, alpha, total):
    """grad += alpha W / total for every layer's weights (not the biases); returns 0.5
    alpha sum W^2 / total (scikit-learn's penalty)."""
    squares = 0.0
    decay = params.dtype.type(alpha / total)
    for l in range(1, sizes.shape[0]):
        w = _weight_offset(sizes, l)
        for p in range(w, w + sizes[l - 1] * sizes[l]):  # get/put: it vectorizes
            x = get(params, p)
            squares += x * x
            put(grad, p, get(grad, p) + decay * x)
    return 0.5 * alpha * squares / total


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


# --- layout -----------------------------------------------------------------------------


@kernel(internal=True)
def _pad4(n):
    return (n + 3) // 4 * 4


@kernel(internal=True)
def _activation_rows(sizes, l):
    """First tile row of layer l's activations (l = 0: the inputs)."""
    r = 0
    for i in range(l):
        r += _pad4(sizes[i] + 1)
    return r


@kernel(internal=True)
def _error_rows(sizes, l):
    """First tile row of layer l's error (l >= 1)."""
    r = _activation_rows(sizes, sizes.shape[0])
    for i in range(1, l):
        r += _pad4(sizes[i])
    return r


@kernel(internal=True)
def _z_rows(sizes, l):
    """First tile row of hidden layer l's z (1 <= l < L), after the labels."""
    L = sizes.shape[0] - 1
    r = _error_rows(sizes, L) + _pad4(sizes[L]) + sizes[L]
    for i in range(1, l):
        r += _pad4(sizes[i])
    return r


@kernel(internal=True)
def _strip_row(sizes):
    """First tile row of the strip copies (``_strips``), after the z rows."""
    return _z_rows(sizes, sizes.shape[0] - 1)


@kernel(internal=True)
def _packed_layer(sizes, l):
    """(start of layer l's forward panels, of its padded biases, of its backward panels)."""
    f = 0
    for i in range(1, l):
        f += _pad4(sizes[i]) * (sizes[i - 1] + 1) + _pad4(sizes[i - 1]) * sizes[i]
    b = f + _pad4(sizes[l]) * sizes[l - 1]
    return f, b, b + _pad4(sizes[l])


@kernel(internal=True)
def _weight_offset(sizes, l):
    """Start of W_l in params."""
    w = 0
    for i in range(1, l):
        w += (sizes[i - 1] + 1) * sizes[i]
    return w


def packed_size(sizes):
    """Length of the packed-weights buffer for a net of these sizes: the panels, the
    narrow panels (narrow nets only), then a copy of the parameters they were packed from
    and a flag (1: backward panels too)."""
    sizes = [int(s) for s in sizes]
    panels = sum(-(-o // 4) * 4 * (i + 1) + -(-i // 4) * 4 * o
                 for i, o in zip(sizes[:-1], sizes[1:]))
    narrow = 0
    if max(sizes[1:]) <= NARROW:  # replicated, from a multiple of REPLICAS
        narrow = REPLICAS * (NARROW * (sizes[0] + 1) + (NARROW + 1) * NARROW * (len(sizes) - 2))
        narrow += -panels % REPLICAS
    return panels + narrow + sum((i + 1) * o for i, o in zip(sizes[:-1], sizes[1:])) + 1


#: Nets whose every layer after the input has at most NARROW units run forward with the
#: whole net in registers (``_narrow_forward``)
NARROW = 8

#: Copies of each weight in the narrow panels: a float32 vector's lanes, so the loop's
#: multiply-adds read a weight vector straight from memory (one instruction) instead of
#: broadcasting it first (two: the loop was bound by instruction issue)
REPLICAS = LANES[np.dtype(np.float32)]


@kernel(internal=True)
def _is_narrow(sizes):
    for l in range(1, sizes.shape[0]):
        if sizes[l] > NARROW:
            return False
    return True


@kernel(internal=True)
def _narrow_start(sizes):
    """Start of the narrow panels in packed: after the other panels, rounded up to a
    multiple of REPLICAS."""
    f = 0
    for l in range(1, sizes.shape[0]):
        f += _pad4(sizes[l]) * (sizes[l - 1] + 1) + _pad4(sizes[l - 1]) * sizes[l]
    return f + (REPLICAS - f % REPLICAS) % REPLICAS


#: Scratch rows at the end of a tile (the softmax head's per-sample max, sum, loss, weight)
SCRATCH_ROWS = 4


def tile_columns(sizes, dtype):
    """Samples per tile (the tile buffer's columns) for a net of these sizes: TILE[dtype],
    doubled for small nets (every layer <= SMALL_NET_UNITS units, <= SMALL_NET_INPUTS
    inputs), whose doubled tiles still sit in L2 and spread each tile's fixed costs (the
    weight gradient's lane sums, each layer's setup) over twice the samples: gradients of
    nets A and B 6-14% faster; wider layers or inputs (nets C, D) were 9-17% slower."""
    small = max(int(s) for s in sizes) <= SMALL_NET_UNITS and int(sizes[0]) <= SMALL_NET_INPUTS
    return TILE[np.dtype(dtype)] * (2 if small else 1)


def tile_rows(sizes):
    """Rows of the tile buffer for a net of these sizes."""
    sizes = [int(s) for s in sizes]
    widest = max(sizes)
    strip = widest if widest >= PACK_MIN else 0  # widest x width; the transposed strip: 3V
    return (sum(-(-(s + 1) // 4) * 4 for s in sizes) + sum(-(-s // 4) * 4 for s in sizes[1:])
            + sizes[-1] + sum(-(-s // 4) * 4 for s in sizes[1:-1]) + strip + SCRATCH_ROWS)


@kernel(internal=True)
def _pack(params, sizes, packed, backward):
    """The packed weights of every layer (see the module docstring); backward panels only
    when ``backward``. The padding stays 0 (``workspace`` zeroes the buffer). Elements
    through ``get``/``put`` (no negative-index wraparound): the loops vectorize, the
    digits net's packing 19.4 -> 4.9 us."""
    for l in range(1, sizes.shape[0]):
        n_in = sizes[l - 1]
        n_out = sizes[l]
        w = _weight_offset(sizes, l)
        f, b, g = _packed_layer(sizes, l)
        for o in range(0, n_out, 4):
            units = n_out - o if n_out - o < 4 else 4  # noqa: FURB136
            for q in range(n_in):
                dst = f + o * n_in + 4 * q
                src = w + q * n_out + o
                if units == 4:  # four statements: one 4-wide copy
                    put(packed, dst, get(params, src))
                    put(packed, dst + 1, get(params, src + 1))
                    put(packed, dst + 2, get(params, src + 2))
                    put(packed, dst + 3, get(params, src + 3))
                else:
                    for j in range(units):
                        put(packed, dst + j, get(params, src + j))
        for o in range(n_out):
            put(packed, b + o, get(params, w + n_in * n_out + o))
        if backward:
            for q in range(0, n_in, 4):
                units = n_in - q if n_in - q < 4 else 4  # noqa: FURB136
                src = w + q * n_out
                dst = g + q * n_out
                if units == 4:  # rows q..q + 3 of W interleaved, an element of each per o
                    for o in range(n_out):
                        put(packed, dst + 4 * o, get(params, src + o))
                        put(packed, dst + 4 * o + 1, get(params, src + n_out + o))
                        put(packed, dst + 4 * o + 2, get(params, src + 2 * n_out + o))
                        put(packed, dst + 4 * o + 3, get(params, src + 3 * n_out + o))
                else:
                    for i in range(units):
                        for o in range(n_out):
                            put(packed, dst + 4 * o + i, get(params, src + i * n_out + o))
    _narrow_panels(params, sizes, packed)
    P = params.shape[0]
    c = packed.shape[0] - P - 1  # the copy of params the panels come from, and the flag
    for p in range(P):
        put(packed, c + p, get(params, p))
    packed[c + P] = 1.0 if backward else 0.0


def _narrow_panels(params, sizes, packed):
    """``_pack_narrow`` for narrow float32 nets (those ``_narrow_path`` runs). Not even
    compiled for float64 (``fastgeo reproduce``'s cold compile)."""
    if params.itemsize == 4 and _is_narrow(sizes):
        _pack_narrow(params, sizes, packed)


@overload(_narrow_panels, jit_options=dict(INTERNAL_OPTIONS))
def _narrow_panels_compiled(params, sizes, packed):
    if params.dtype != types.float32:
        return lambda params, sizes, packed: None
    return _narrow_panels


@kernel(internal=True)
def _pack_narrow(params, sizes, packed):
    """The narrow panels: per layer, [W; b] padded to NARROW columns (zero past fan_out)
    and, after the first layer, to NARROW rows, each element REPLICAS times: W[i, j] at
    q0 + REPLICAS (e + NARROW i + j) for the layer's panel start e, the biases after the
    rows (``_narrow_weight``)."""
    q0 = _narrow_start(sizes)
    e = 0
    for l in range(1, sizes.shape[0]):
        n_in = sizes[l - 1]
        n_out = sizes[l]
        rows = n_in if l == 1 else NARROW
        w = _weight_offset(sizes, l)
        for i in range(rows + 1):
            for j in range(NARROW):
                inside = (i < n_in or i == rows) and j < n_out
                value = get(params, w + (n_in if i == rows else i) * n_out + j) if inside \
                    else params.dtype.type(0.0)
                store1(packed, q0 + REPLICAS * (e + NARROW * i + j), broadcast(value))
        e += NARROW * (rows + 1)


@kernel(internal=True)
def _ensure_packed(params, sizes, packed, backward):
    """_pack, unless packed already holds these very parameters (bit for bit), with
    backward panels if ``backward``: repeated calls with unchanged weights (inference,
    a net evaluated inside a loop) skip the packing, half of a one-sample forward pass."""
    P = params.shape[0]
    c = packed.shape[0] - P - 1
    if backward and packed[c + P] != 1.0:
        _pack(params, sizes, packed, backward)
        return
    if params.itemsize == 4:
        differ = _count_different(params.view(np.uint32), packed[c:c + P].view(np.uint32))
    else:
        differ = _count_different(params.view(np.uint64), packed[c:c + P].view(np.uint64))
    if differ > 0:
        _pack(params, sizes, packed, backward)


@kernel(internal=True)
def _count_different(a, b):
    """How many a[i] != b[i] (a counting loop: it vectorizes)."""
    differ = 0
    for i in range(a.shape[0]):
        differ += 0 if a[i] == b[i] else 1
    return differ


@kernel
def prepare_tile(sizes, tile):
    """Writes the rows of a tile buffer that no stage writes: each layer's row of ones and
    zero rows, the zero rows of the output error. Once per buffer (``workspace`` does)."""
    tile[:] = 0.0
    for l in range(sizes.shape[0]):
        tile[_activation_rows(sizes, l) + sizes[l]] = 1.0


# --- loading a tile ---------------------------------------------------------------------


@kernel(internal=True)
def _load_rows(X, order, gather, r0, m, tile, row, width):
    """tile[row + k, t] = X[i_t, k] for t < m, 0 up to width; i_t = order[r0 + t] when
    ``gather``, else r0 + t. In order, one or two features (labels; two-moons) go a
    vector at a time, two split from interleaved pairs."""
    zero = tile.dtype.type(0.0)
    d = X.shape[1]
    V = lanes(tile)
    start = 0
    if not gather and (d == 1 or d == 2):
        flat = X.reshape(X.shape[0] * d)
        while start + V <= m:
            if d == 1:
                store(tile, row, start, load1(flat, r0 + start))
            else:
                a = load1(flat, 2 * (r0 + start))
                b = load1(flat, 2 * (r0 + start) + V)
                store(tile, row, start, evens(a, b))
                store(tile, row + 1, start, odds(a, b))
            start += V
    start = _transposed_loads(X, order, gather, r0, start, m, tile, row)
    flat = X.reshape(X.shape[0] * d)
    for k in range(d):  # a tile row at a time; get/put: no index wraparound
        into = tile[row + k]
        for t in range(start, m):
            put(into, t, get(flat, (get(order, r0 + t) if gather else r0 + t) * d + k))
        for t in range(m, width):
            put(into, t, zero)


def _transposed_loads(X, order, gather, r0, start, m, tile, row):
    """_load_rows' samples from ``start`` on, 8 at a time (``_load_transposed``), for 8
    features or more; returns where it stopped. float32 only: not even compiled for
    float64 (``fastgeo reproduce``'s cold compile)."""
    if X.shape[1] < 8 or lanes(tile) != 8:  # the float32 layout (without the JIT too)
        return start
    while start + 8 <= m:
        _load_transposed(X, order, gather, r0 + start, tile, row, start)
        start += 8
    return start


@overload(_transposed_loads, jit_options=dict(INTERNAL_OPTIONS))
def _transposed_loads_compiled(X, order, gather, r0, start, m, tile, row):
    if tile.dtype != types.float32:
        return lambda X, order, gather, r0, start, m, tile, row: start
    return _transposed_loads


@kernel(internal=True, inline="always")
def _load_transposed(X, order, gather, r, tile, row, t):
    """tile[row + k, t:t + 8] = X[i_s, k] for s < 8, i_s = order[r + s] when ``gather``,
    else r + s; k < d: each 8 x 8 block loaded as 8 vectors of a sample's features and
    transposed in registers (three rounds of evens/odds), the last d % 8 features one
    by one."""
    d = X.shape[1]
    i0 = order[r] if gather else r
    i1 = order[r + 1] if gather else r + 1
    i2 = order[r + 2] if gather else r + 2
    i3 = order[r + 3] if gather else r + 3
    i4 = order[r + 4] if gather else r + 4
    i5 = order[r + 5] if gather else r + 5
    i6 = order[r + 6] if gather else r + 6
    i7 = order[r + 7] if gather else r + 7
    for k in range(0, d - 7, 8):
        x0, x1, x2, x3 = load(X, i0, k), load(X, i1, k), load(X, i2, k), load(X, i3, k)
        x4, x5, x6, x7 = load(X, i4, k), load(X, i5, k), load(X, i6, k), load(X, i7, k)
        for _ in range(3):  # row j of the block ends as column j
            x0, x1, x2, x3, x4, x5, x6, x7 = (
                evens(x0, x1), evens(x2, x3), evens(x4, x5), evens(x6, x7),
                odds(x0, x1), odds(x2, x3), odds(x4, x5), odds(x6, x7))
        store(tile, row + k, t, x0)
        store(tile, row + k + 1, t, x1)
        store(tile, row + k + 2, t, x2)
        store(tile, row + k + 3, t, x3)
        store(tile, row + k + 4, t, x4)
        store(tile, row + k + 5, t, x5)
        store(tile, row + k + 6, t, x6)
        store(tile, row + k + 7, t, x7)
    for k in range(d // 8 * 8, d):
        tile[row + k, t] = X[i0, k]
        tile[row + k, t + 1] = X[i1, k]
        tile[row + k, t + 2] = X[i2, k]
        tile[row + k, t + 3] = X[i3, k]
        tile[row + k, t + 4] = X[i4, k]
        tile[row + k, t + 5] = X[i5, k]
        tile[row + k, t + 6] = X[i6, k]
        tile[row + k, t + 7] = X[i7, k]


# --- the stages -------------------------------------------------------------------------


@kernel(internal=True, inline="always")
def _block(packed, p, n, IN, r, t, b0, b1, b2, b3):
    """The 4 x 3-vector block: b_j + sum over i < n of packed[p + 4 i + j] * IN[r + i,
    t + v V], for unit j < 4 and vector v < 3, in 12 registers."""
    V = lanes(IN)
    c00 = c01 = c02 = b0
    c10 = c11 = c12 = b1
    c20 = c21 = c22 = b2
    c30 = c31 = c32 = b3
    for i in range(n):
        x0 = load(IN, r + i, t)
        x1 = load(IN, r + i, t + V)
        x2 = load(IN, r + i, t + 2 * V)
        w = broadcast_at(packed, p)
        c00 = fma(w, x0, c00)
        c01 = fma(w, x1, c01)
        c02 = fma(w, x2, c02)
        w = broadcast_at(packed, p + 1)
        c10 = fma(w, x0, c10)
        c11 = fma(w, x1, c11)
        c12 = fma(w, x2, c12)
        w = broadcast_at(packed, p + 2)
        c20 = fma(w, x0, c20)
        c21 = fma(w, x1, c21)
        c22 = fma(w, x2, c22)
        w = broadcast_at(packed, p + 3)
        c30 = fma(w, x0, c30)
        c31 = fma(w, x1, c31)
        c32 = fma(w, x2, c32)
        p += 4
    return c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32


@kernel(internal=True, inline="always")
def _block1(packed, p, n, IN, r, t, b):
    """One unit of a block (the layer's last units when fewer than 4 are left): b + sum
    over i < n of packed[p + 4 i] * IN[r + i, t + v V] for v < 3; even and odd i in
    separate sums (6 independent chains instead of 3)."""
    V = lanes(IN)
    zero = broadcast(IN.dtype.type(0.0))
    c0 = c1 = c2 = b
    e0 = e1 = e2 = zero
    i = 0
    while i + 1 < n:
        w = broadcast_at(packed, p)
        c0 = fma(w, load(IN, r + i, t), c0)
        c1 = fma(w, load(IN, r + i, t + V), c1)
        c2 = fma(w, load(IN, r + i, t + 2 * V), c2)
        w = broadcast_at(packed, p + 4)
        e0 = fma(w, load(IN, r + i + 1, t), e0)
        e1 = fma(w, load(IN, r + i + 1, t + V), e1)
        e2 = fma(w, load(IN, r + i + 1, t + 2 * V), e2)
        p += 8
        i += 2
    if i < n:
        w = broadcast_at(packed, p)
        c0 = fma(w, load(IN, r + i, t), c0)
        c1 = fma(w, load(IN, r + i, t + V), c1)
        c2 = fma(w, load(IN, r + i, t + 2 * V), c2)
    return c0 + e0, c1 + e1, c2 + e2


@kernel(internal=True, inline="always")
def _store_block(OUT, r, t, rows, c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31,
                 c32):
    """OUT[r + j, t:t + 3V] = the accumulators of unit j, for j < rows (<= 4)."""
    V = lanes(OUT)
    store(OUT, r, t, c00)
    store(OUT, r, t + V, c01)
    store(OUT, r, t + 2 * V, c02)
    if rows > 1:
        store(OUT, r + 1, t, c10)
        store(OUT, r + 1, t + V, c11)
        store(OUT, r + 1, t + 2 * V, c12)
    if rows > 2:
        store(OUT, r + 2, t, c20)
        store(OUT, r + 2, t + V, c21)
        store(OUT, r + 2, t + 2 * V, c22)
    if rows > 3:
        store(OUT, r + 3, t, c30)
        store(OUT, r + 3, t + V, c31)
        store(OUT, r + 3, t + 2 * V, c32)


@kernel(internal=True, inline="always")
def _strips(tile, r_strip, r, n, width):
    """tile[r:r + n, :width] copied strip by strip (3 vectors of columns) into contiguous
    tile memory from row r_strip on, as a (strips x n, 3V) array: strip s's row i at row
    s n + i. A wide layer's blocks then read one stream per strip instead of n rows a
    tile row apart (which share few L1 sets): 512-wide layer 33 -> 45 GMAC/s."""
    V = lanes(tile)
    S = 3 * V
    strips = (width + S - 1) // S
    view = rows_of(tile, r_strip, strips * n, S)
    for k in range(strips):
        for i in range(n):
            store(view, k * n + i, 0, load(tile, r + i, k * S))
            store(view, k * n + i, V, load(tile, r + i, k * S + V))
            store(view, k * n + i, 2 * V, load(tile, r + i, k * S + 2 * V))
    return view


@kernel(internal=True)
def _dense_forward(packed, f, b, n_in, n_out, code, tile, r_in, r_out, r_z, width, r_strip):
    """tile[r_out + o] = f(z_o), z_o = b_o + sum_q W[q, o] tile[r_in + q], for o < n_out,
    columns < width (f: the activation ``code``; IDENTITY keeps the logits); z_o also
    into tile[r_z + o] when r_z >= 0. Block by block of units, each over every strip
    (its weights stay in L1); with r_strip >= 0, a layer of PACK_MIN inputs or more
    reads its inputs from strip copies (``_strips``)."""
    S = 3 * lanes(tile)
    wide = r_strip >= 0 and n_in >= PACK_MIN
    IN = _strips(tile, r_strip, r_in, n_in, width) if wide else tile
    # strip k's inputs: IN[r + k dr, u + k du:], in place (r_in, 0, S) or copied (0, n_in, 0)
    r, dr, du = (0, n_in, 0) if wide else (r_in, 0, S)
    for o in range(0, n_out, 4):
        for k in range((width + S - 1) // S):
            _dense_block(packed, f, b, n_in, n_out, IN, r + k * dr, k * du, tile, r_out, o,
                         k * S)
        if code != IDENTITY:  # the group's rows across the tile, still in L1
            rows = n_out - o if n_out - o < 4 else 4  # noqa: FURB136
            _activate_block(code, tile, r_out + o, rows, r_z + o if r_z >= 0 else -1, width)


@kernel(internal=True, inline="always")
def _dense_block(packed, f, b, n_in, n_out, IN, r_in, u, OUT, r_out, o, t):
    """_dense_forward's z of units o..o + 3 for the strip of 3 vectors at column t, its
    inputs read from IN[r_in:r_in + n_in, u:u + 3V]."""
    V = lanes(OUT)
    p = f + o * n_in
    rows = n_out - o if n_out - o < 4 else 4  # noqa: FURB136
    if rows < 4:  # the last 1-3 units: one at a time (4-unit blocks would be padding)
        for j in range(rows):
            c0, c1, c2 = _block1(packed, p + j, n_in, IN, r_in, u,
                                 broadcast_at(packed, b + o + j))
            store(OUT, r_out + o + j, t, c0)
            store(OUT, r_out + o + j, t + V, c1)
            store(OUT, r_out + o + j, t + 2 * V, c2)
        return
    c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32 = _block(
        packed, p, n_in, IN, r_in, u, broadcast_at(packed, b + o),
        broadcast_at(packed, b + o + 1), broadcast_at(packed, b + o + 2),
        broadcast_at(packed, b + o + 3))
    _store_block(OUT, r_out + o, t, rows, c00, c01, c02, c10, c11, c12, c20, c21, c22, c30,
                 c31, c32)


@kernel(internal=True, inline="always")
def _narrow_weight(packed, q0, e):
    """Element e of the narrow panels (``_pack_narrow``) in every lane."""
    return load1(packed, q0 + REPLICAS * e)


@kernel(internal=True)
def _unit8(packed, q0, p, h0, h1, h2, h3, h4, h5, h6, h7):
    """b + sum_i W[i] h_i for one unit of a narrow panel, W[i] = element p + NARROW i, b =
    element p + NARROW^2; two chains of 4 multiply-adds."""
    N = NARROW
    z = fma(_narrow_weight(packed, q0, p), h0, _narrow_weight(packed, q0, p + N * N))
    y = _narrow_weight(packed, q0, p + N) * h1
    z = fma(_narrow_weight(packed, q0, p + 2 * N), h2, z)
    y = fma(_narrow_weight(packed, q0, p + 3 * N), h3, y)
    z = fma(_narrow_weight(packed, q0, p + 4 * N), h4, z)
    y = fma(_narrow_weight(packed, q0, p + 5 * N), h5, y)
    z = fma(_narrow_weight(packed, q0, p + 6 * N), h6, z)
    y = fma(_narrow_weight(packed, q0, p + 7 * N), h7, y)
    return z + y


@kernel(internal=True)
def _narrow_forward(packed, sizes, code, out_code, tile, width, training):
    """``_forward_tile`` through a narrow net: one vector of samples at a time through
    every layer, the layers' NARROW units in registers; the output layer (``out_code``:
    SIGMOID or IDENTITY, the heads') goes to its tile rows, and in ``training`` the
    hidden layers' activations too (what backward reads). For ReLU and sigmoid only
    (``_narrow_applies``): each gets its own copy of the loop, the activation known
    inside it (a copy calling the generic ``activate8`` ran no faster than the tiles,
    and every copy costs compile time)."""
    if code == RELU:
        _narrow_strips(packed, sizes, RELU, out_code, tile, width, training)
    else:
        _narrow_strips(packed, sizes, SIGMOID, out_code, tile, width, training)


@kernel(internal=True)
def _narrow_applies(sizes, code, tile):
    """Whether ``_narrow_forward`` takes this net: a float32 tile, every layer after the
    input at most NARROW units, ReLU or sigmoid."""
    return tile.itemsize == 4 and _is_narrow(sizes) and (code == RELU or code == SIGMOID)


def _narrow_path(packed, sizes, code, out_code, tile, width, training):
    """``_narrow_forward`` where it applies (``_narrow_applies``); returns whether it ran.
    float64 keeps the tile path: its accurate sigmoid would gain less, and the narrow loop
    is not even compiled for it (a cold compile of float64 kernels, which ``fastgeo
    reproduce`` needs, stays as it was)."""
    if not _narrow_applies(sizes, code, tile):
        return False
    _narrow_forward(packed, sizes, code, out_code, tile, width, training)
    return True


@overload(_narrow_path, jit_options=dict(INTERNAL_OPTIONS))
def _narrow_path_compiled(packed, sizes, code, out_code, tile, width, training):
    if tile.dtype != types.float32:
        return lambda packed, sizes, code, out_code, tile, width, training: False
    return _narrow_path


@kernel(internal=True, inline="always")
def _narrow_strips(packed, sizes, code, out_code, tile, width, training):
    N = NARROW
    L = sizes.shape[0] - 1
    d = sizes[0]
    k = sizes[L]
    V = lanes(tile)
    q0 = _narrow_start(sizes)
    r_out = _activation_rows(sizes, L)
    r_a1 = _pad4(d + 1)  # layer 1's activation rows
    for t in range(0, width, V):
        r_a = r_a1
        b = N * d
        z0 = _narrow_weight(packed, q0, b)
        z1 = _narrow_weight(packed, q0, b + 1)
        z2 = _narrow_weight(packed, q0, b + 2)
        z3 = _narrow_weight(packed, q0, b + 3)
        z4 = _narrow_weight(packed, q0, b + 4)
        z5 = _narrow_weight(packed, q0, b + 5)
        z6 = _narrow_weight(packed, q0, b + 6)
        z7 = _narrow_weight(packed, q0, b + 7)
        for i in range(d):
            x = load(tile, i, t)
            p = N * i
            z0 = fma(_narrow_weight(packed, q0, p), x, z0)
            z1 = fma(_narrow_weight(packed, q0, p + 1), x, z1)
            z2 = fma(_narrow_weight(packed, q0, p + 2), x, z2)
            z3 = fma(_narrow_weight(packed, q0, p + 3), x, z3)
            z4 = fma(_narrow_weight(packed, q0, p + 4), x, z4)
            z5 = fma(_narrow_weight(packed, q0, p + 5), x, z5)
            z6 = fma(_narrow_weight(packed, q0, p + 6), x, z6)
            z7 = fma(_narrow_weight(packed, q0, p + 7), x, z7)
        p = b + N
        for l in range(2, L + 1):
            h0, h1, h2, h3, h4, h5, h6, h7 = activate8_inline(code, z0, z1, z2, z3, z4, z5,
                                                              z6, z7)
            if training:
                n = sizes[l - 1]
                _store8(tile, r_a, t, n, h0, h1, h2, h3, h4, h5, h6, h7)
                r_a += _pad4(n + 1)
            z0 = _unit8(packed, q0, p, h0, h1, h2, h3, h4, h5, h6, h7)
            if l < L or k > 1:
                z1 = _unit8(packed, q0, p + 1, h0, h1, h2, h3, h4, h5, h6, h7)
                z2 = _unit8(packed, q0, p + 2, h0, h1, h2, h3, h4, h5, h6, h7)
                z3 = _unit8(packed, q0, p + 3, h0, h1, h2, h3, h4, h5, h6, h7)
                z4 = _unit8(packed, q0, p + 4, h0, h1, h2, h3, h4, h5, h6, h7)
                z5 = _unit8(packed, q0, p + 5, h0, h1, h2, h3, h4, h5, h6, h7)
                z6 = _unit8(packed, q0, p + 6, h0, h1, h2, h3, h4, h5, h6, h7)
                z7 = _unit8(packed, q0, p + 7, h0, h1, h2, h3, h4, h5, h6, h7)
            p += N * (N + 1)
        if k == 1:
            store(tile, r_out, t, z0)
            continue
        a0, a1, a2, a3, a4, a5, a6, a7 = activate8(out_code, z0, z1, z2, z3, z4, z5, z6, z7)
        _store8(tile, r_out, t, k, a0, a1, a2, a3, a4, a5, a6, a7)
    if k == 1 and out_code == SIGMOID:  # a pass of its own: the constants stay in registers
        for t in range(0, width, V):
            store(tile, r_out, t, vmath.sigmoid(load(tile, r_out, t)))


@kernel(internal=True, inline="always")
def _store8(tile, r, t, n, v0, v1, v2, v3, v4, v5, v6, v7):
    """tile[r + j, t:t + V] = v_j for j < n (<= 8)."""
    store(tile, r, t, v0)
    if n > 1:
        store(tile, r + 1, t, v1)
    if n > 2:
        store(tile, r + 2, t, v2)
    if n > 3:
        store(tile, r + 3, t, v3)
    if n > 4:
        store(tile, r + 4, t, v4)
    if n > 5:
        store(tile, r + 5, t, v5)
    if n > 6:
        store(tile, r + 6, t, v6)
    if n > 7:
        store(tile, r + 7, t, v7)


@kernel(internal=True)
def _activate_block(code, OUT, r, rows, r_z, width):
    """OUT[r + j, :width] = f(OUT[r + j, :width]) for j < rows, the z kept in OUT[r_z + j]
    first if r_z >= 0: once per group of 4 units, after their z are stored across the
    tile (still in L1), the sigmoid inline. Per block of 3 vectors instead, the call and
    loop overheads cost digits' 64-unit layers 0.16 ns per ReLU and 0.57 per sigmoid.
    Sigmoid and ReLU are inline, the others behind ``activate``; the ReLU is
    ``activate``'s own expression, + 0.0 included (see "Masked stores" in
    activations.py: without it this loop became masked stores, 10x slower)."""
    V = lanes(OUT)
    if r_z >= 0:
        for j in range(rows):
            for u in range(0, width, V):
                store(OUT, r_z + j, u, load(OUT, r + j, u))
    if code == SIGMOID:  # a loop of its own per activation: nothing else in it
        for j in range(rows):
            for u in range(0, width, V):
                store(OUT, r + j, u, vmath.sigmoid(load(OUT, r + j, u)))
    elif code == RELU:
        for j in range(rows):
            for u in range(0, width, V):
                z = load(OUT, r + j, u)
                store(OUT, r + j, u, where(z <= 0.0, 0.0, z + 0.0))
    else:
        for j in range(rows):
            for u in range(0, width, V):
                store(OUT, r + j, u, activate(code, load(OUT, r + j, u)))


@kernel(internal=True)
def _dense_backward(packed, g, n_in, n_out, code, tile, r_err, r_act, r_z, r_prev, width,
                    r_strip):
    """The error of the layer below: tile[r_prev + q] = f'(z_q) * sum_o W[q, o]
    tile[r_err + o], f'(z_q) from the activations at tile[r_act + q] (and z at
    tile[r_z + q] when r_z >= 0); all pad4(n_in) rows (the padding rows come out 0:
    their weights are 0). A layer of PACK_MIN units or more reads its errors from strip
    copies, as in ``_dense_forward``."""
    S = 3 * lanes(tile)
    wide = r_strip >= 0 and n_out >= PACK_MIN
    ERR = _strips(tile, r_strip, r_err, n_out, width) if wide else tile
    r, dr, du = (0, n_out, 0) if wide else (r_err, 0, S)  # as in _dense_forward
    for q in range(0, n_in, 4):
        for k in range((width + S - 1) // S):
            _error_block(packed, g, n_out, code, ERR, r + k * dr, k * du, tile, r_act, r_z,
                         r_prev, q, k * S)


@kernel(internal=True, inline="always")
def _error_block(packed, g, n_out, code, ERR, r_err, u, tile, r_act, r_z, r_prev, q, t):
    """_dense_backward's units q..q + 3 for the strip of 3 vectors at column t, the
    errors read from ERR[r_err:r_err + n_out, u:u + 3V]."""
    V = lanes(tile)
    zero = broadcast(tile.dtype.type(0.0))
    c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32 = _block(
        packed, g + q * n_out, n_out, ERR, r_err, u, zero, zero, zero, zero)
    if r_z < 0:  # f'(z) from a, on the accumulators: one store, no re-read
        a = r_act + q
        c00 = _times_derivative(code, tile, a, t, c00)
        c01 = _times_derivative(code, tile, a, t + V, c01)
        c02 = _times_derivative(code, tile, a, t + 2 * V, c02)
        c10 = _times_derivative(code, tile, a + 1, t, c10)
        c11 = _times_derivative(code, tile, a + 1, t + V, c11)
        c12 = _times_derivative(code, tile, a + 1, t + 2 * V, c12)
        c20 = _times_derivative(code, tile, a + 2, t, c20)
        c21 = _times_derivative(code, tile, a + 2, t + V, c21)
        c22 = _times_derivative(code, tile, a + 2, t + 2 * V, c22)
        c30 = _times_derivative(code, tile, a + 3, t, c30)
        c31 = _times_derivative(code, tile, a + 3, t + V, c31)
        c32 = _times_derivative(code, tile, a + 3, t + 2 * V, c32)
    _store_block(tile, r_prev + q, t, 4, c00, c01, c02, c10, c11, c12, c20, c21, c22, c30,
                 c31, c32)
    if r_z < 0:
        return
    for j in range(4):  # while the block is in L1
        for w in range(t, t + 3 * V, V):
            a = load(tile, r_act + q + j, w)
            z = load(tile, r_z + q + j, w)
            store(tile, r_prev + q + j, w, derivative_times(
                code, a, z, load(tile, r_prev + q + j, w)))


@kernel(internal=True, inline="always")
def _times_derivative(code, tile, r, t, e):
    """e f'(z), f'(z) from a = tile[r, t:t + V] (activations whose derivative needs no z)."""
    a = load(tile, r, t)
    return derivative_times(code, a, a, e)


@kernel(internal=True)
def _weight_gradient(tile, r_act, n_in, r_err, n_out, grad, w, width, r_strip):
    """grad[w + q n_out + o] += sum_t tile[r_act + q, t] tile[r_err + o, t] for q <= n_in,
    o < n_out: dW, and (q = n_in, the row of ones) db. Blocks of 2 inputs x 4 outputs, 8
    vector sums over the tile's columns, added up lane by lane at the end; the outputs
    ``_outer_products`` takes (wide float32 layers) as outer products instead."""
    V = lanes(tile)
    zero = broadcast(tile.dtype.type(0.0))
    o0 = _outer_products(tile, r_act, n_in, r_err, n_out, grad, w, width, r_strip)
    full = o0 + (n_out - o0) // 4 * 4
    for o in range(full, n_out):  # the last 1-3 outputs: blocks of 4 inputs x 1 output
        d = r_err + o
        for q in range(0, n_in + 1, 4):
            s0 = s1 = s2 = s3 = zero
            for t in range(0, width, V):
                e = load(tile, d, t)
                s0 = fma(load(tile, r_act + q, t), e, s0)
                s1 = fma(load(tile, r_act + q + 1, t), e, s1)
                s2 = fma(load(tile, r_act + q + 2, t), e, s2)
                s3 = fma(load(tile, r_act + q + 3, t), e, s3)
            i = w + q * n_out + o
            grad[i] += hsum(s0)
            if q + 1 <= n_in:
                grad[i + n_out] += hsum(s1)
            if q + 2 <= n_in:
                grad[i + 2 * n_out] += hsum(s2)
            if q + 3 <= n_in:
                grad[i + 3 * n_out] += hsum(s3)
    for o in range(o0, full, 4):  # the 4 error rows stay in L1 while the inputs stream
        for q in range(0, n_in + 1, 2):
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            for t in range(0, width, V):
                a0 = load(tile, r_act + q, t)
                a1 = load(tile, r_act + q + 1, t)
                d = load(tile, r_err + o, t)
                s00 = fma(a0, d, s00)
                s10 = fma(a1, d, s10)
                d = load(tile, r_err + o + 1, t)
                s01 = fma(a0, d, s01)
                s11 = fma(a1, d, s11)
                d = load(tile, r_err + o + 2, t)
                s02 = fma(a0, d, s02)
                s12 = fma(a1, d, s12)
                d = load(tile, r_err + o + 3, t)
                s03 = fma(a0, d, s03)
                s13 = fma(a1, d, s13)
            _add_sums(grad, w + q * n_out + o, n_out - o, s00, s01, s02, s03)
            if q + 1 <= n_in:
                _add_sums(grad, w + (q + 1) * n_out + o, n_out - o, s10, s11, s12, s13)


def _outer_products(tile, r_act, n_in, r_err, n_out, grad, w, width, r_strip):
    """``_weight_gradient_outer`` for the outputs below the last multiple of 3V where it
    applies (r_strip >= 0, PACK_MIN inputs and units or more); returns that multiple, 0
    where it does not apply. float32 only: not even compiled for float64, whose cold
    compile (``fastgeo reproduce``'s) stays as it was."""
    if r_strip < 0 or n_in + 1 < PACK_MIN or n_out < PACK_MIN:
        return 0
    stop = n_out // (3 * lanes(tile)) * (3 * lanes(tile))
    _weight_gradient_outer(tile, r_act, n_in, r_err, n_out, stop, grad, w, width, r_strip)
    return stop


@overload(_outer_products, jit_options=dict(INTERNAL_OPTIONS))
def _outer_products_compiled(tile, r_act, n_in, r_err, n_out, grad, w, width, r_strip):
    if tile.dtype != types.float32:
        return lambda tile, r_act, n_in, r_err, n_out, grad, w, width, r_strip: 0
    return _outer_products


@kernel(internal=True)
def _weight_gradient_outer(tile, r_act, n_in, r_err, n_out, stop, grad, w, width, r_strip):
    """_weight_gradient's outputs o < stop (a multiple of 3V) as outer products: each
    strip of 3V errors transposed into a (width, 3V) copy, then every block of 4 inputs
    sums a[q + j, t] E^T[t] over the tile in 12 registers (``_block`` with the samples as
    the fan-in) and adds them to 3 vectors of each of its rows of grad: no lane sums."""
    V = lanes(tile)
    S = 3 * V
    zero = broadcast(tile.dtype.type(0.0))
    for o in range(0, stop, S):
        ET = rows_of(tile, r_strip, width, S)
        for t in range(width):
            for c in range(S):
                ET[t, c] = tile[r_err + o + c, t]
        for q in range(0, n_in + 1, 4):
            c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32 = _outer_block(
                tile, r_act + q, ET, width, zero)
            i = w + q * n_out + o
            _add_vectors(grad, i, c00, c01, c02)
            if q + 1 <= n_in:
                _add_vectors(grad, i + n_out, c10, c11, c12)
            if q + 2 <= n_in:
                _add_vectors(grad, i + 2 * n_out, c20, c21, c22)
            if q + 3 <= n_in:
                _add_vectors(grad, i + 3 * n_out, c30, c31, c32)


@kernel(internal=True, inline="always")
def _outer_block(tile, r, ET, n, zero):
    """sum over t < n of tile[r + j, t] * ET[t, vV:(v + 1)V], for j < 4 and v < 3, in 12
    registers (the weight gradient's ``_block``: the samples are the fan-in)."""
    V = lanes(tile)
    a0 = tile[r]
    a1 = tile[r + 1]
    a2 = tile[r + 2]
    a3 = tile[r + 3]
    c00 = c01 = c02 = c10 = c11 = c12 = c20 = c21 = c22 = c30 = c31 = c32 = zero
    for t in range(n):
        x0 = load(ET, t, 0)
        x1 = load(ET, t, V)
        x2 = load(ET, t, 2 * V)
        a = broadcast_at(a0, t)
        c00 = fma(a, x0, c00)
        c01 = fma(a, x1, c01)
        c02 = fma(a, x2, c02)
        a = broadcast_at(a1, t)
        c10 = fma(a, x0, c10)
        c11 = fma(a, x1, c11)
        c12 = fma(a, x2, c12)
        a = broadcast_at(a2, t)
        c20 = fma(a, x0, c20)
        c21 = fma(a, x1, c21)
        c22 = fma(a, x2, c22)
        a = broadcast_at(a3, t)
        c30 = fma(a, x0, c30)
        c31 = fma(a, x1, c31)
        c32 = fma(a, x2, c32)
    return c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32


@kernel(internal=True, inline="always")
def _add_vectors(grad, i, c0, c1, c2):
    """grad[i:i + 3V] += (c0, c1, c2)."""
    V = lanes(grad)
    store1(grad, i, load1(grad, i) + c0)
    store1(grad, i + V, load1(grad, i + V) + c1)
    store1(grad, i + 2 * V, load1(grad, i + 2 * V) + c2)


@kernel(internal=True, inline="always")
def _add_sums(grad, i, left, s0, s1, s2, s3):
    """grad[i + j] += the lane sum of s_j, for j < min(4, left)."""
    grad[i] += hsum(s0)
    if left > 1:
        grad[i + 1] += hsum(s1)
    if left > 2:
        grad[i + 2] += hsum(s2)
    if left > 3:
        grad[i + 3] += hsum(s3)


@kernel(internal=True, inline="always")
def _sample_weight(SW, order, gather, r0, t):
    """The weight of the tile's sample t (1 without sample weights)."""
    if SW.shape[0] == 0:
        return SW.dtype.type(1.0)
    return SW[order[r0 + t]] if gather else SW[r0 + t]


@kernel(internal=True, inline="always")
def _sigmoid_error_row(tile, rz, re, ry, stop, sc, start=0):
    """BCE of sigmoid(z) and its error (p - y) sc at the logits in tile row rz, columns
    [start, stop), into row re; returns the BCE summed (see ``_output_error``)."""
    zero = tile.dtype.type(0.0)
    one = tile.dtype.type(1.0)
    row_total = zero
    for t in range(start, stop):
        z = tile[rz, t]
        e = exp_neg(-abs(z))
        inv = one / (one + e)
        ei = e * inv
        pos = z >= zero
        y1 = tile[ry, t] == one
        s = -z if y1 else z
        row_total += (s if s > zero else zero) + log1p_unit(e)  # noqa: FURB136
        tile[re, t] = (-(ei if pos else inv) if y1 else (inv if pos else ei)) * sc
    return row_total


def _sigmoid_error_vectors(tile, rz, re, ry, stop, sc):
    """``_sigmoid_error_row`` a vector at a time over the whole vectors below ``stop``,
    for float32 tiles: returns (the BCE summed, where it stopped). float64 returns (0, 0)
    (its loop stays the scalar one LLVM vectorizes, with the accurate exp and log1p, and
    its cold compile as it was). Written out with the lean exp: 1.52 ns per sample on
    net A's tiles where LLVM's vectorization of the scalar row took 1.76; net A's fit
    2-3% faster."""
    if lanes(tile) != 8:
        return 0.0, 0
    one = broadcast(tile.dtype.type(1.0))
    total = broadcast(tile.dtype.type(0.0))
    end = stop // 8 * 8
    for t in range(0, end, 8):
        z = load(tile, rz, t)
        e = vmath.exp_nonpositive(-absolute(z))
        inv = one / (one + e)
        ei = e * inv
        y1 = load(tile, ry, t) > 0.5  # labels are 0 or 1
        s = where(y1, -z, z)
        total = total + (where(s > 0.0, s, 0.0) + vmath.log1p_unit32(e))
        pos = z >= 0.0
        store(tile, re, t, where(y1, -where(pos, ei, inv), where(pos, inv, ei)) * sc)
    return float(hsum(total)), end


@overload(_sigmoid_error_vectors, jit_options=dict(INTERNAL_OPTIONS))
def _sigmoid_error_vectors_compiled(tile, rz, re, ry, stop, sc):
    if tile.dtype != types.float32:
        return lambda tile, rz, re, ry, stop, sc: (0.0, 0)
    return _sigmoid_error_vectors


@kernel(internal=True)
def _output_error(tile, r_z, r_err, r_y, k, m, width, scale, head, SW, order, gather, r0):
    """From the logits z at tile[r_z + j]: the error of the head's loss at z, (p - y) w
    scale, into tile[r_err + j] (0 past m samples); returns the loss summed over the m
    samples (w-weighted; sigmoid: and its k outputs). w: the sample weights (1 without).

    Sigmoid: one exp(-|z|) serves both. BCE is softplus(s), s = z for y = 0 and s = -z
    for y = 1 (no z - z y for fastmath to cancel); p - y for y = 1 is -sigmoid(-z), which
    does not cancel either. Summed per row in the tile's precision (a float64 sum did not
    vectorize), then in float64. Softmax: log-sum-exp from the column's largest logit.
    Identity: 0.5 (z - y)^2."""
    zero = tile.dtype.type(0.0)
    sc = tile.dtype.type(scale)
    total = 0.0
    if head == HEAD_SIGMOID:
        for j in range(k):
            if SW.shape[0] == 0:  # its own loops: they vectorize
                row_total, start = _sigmoid_error_vectors(tile, r_z + j, r_err + j, r_y + j,
                                                          m, sc)
                total += row_total + _sigmoid_error_row(tile, r_z + j, r_err + j, r_y + j,
                                                        m, sc, start)
            else:
                for t in range(m):
                    w = _sample_weight(SW, order, gather, r0, t)
                    total += w * _sigmoid_error_row(tile, r_z + j, r_err + j, r_y + j, t + 1,
                                                    sc * w, t)
    elif head == HEAD_SOFTMAX:
        r_s = tile.shape[0] - SCRATCH_ROWS
        _softmax_exp(tile, r_z, r_err, k, m, r_s)
        one = tile.dtype.type(1.0)
        for t in range(m):  # per sample: log-sum-exp, 1 / sum, its weight x scale
            tile[r_s, t] = tile[r_s, t] + math.log(tile[r_s + 1, t])
            tile[r_s + 1, t] = one / tile[r_s + 1, t]
            tile[r_s + 2, t] = zero
            tile[r_s + 3, t] = sc * _sample_weight(SW, order, gather, r0, t)
        for j in range(k):  # row by row: these loops vectorize
            for t in range(m):
                y = tile[r_y + j, t]
                tile[r_s + 2, t] += y * (tile[r_s, t] - tile[r_z + j, t])
                tile[r_err + j, t] = (tile[r_err + j, t] * tile[r_s + 1, t] - y) * tile[
                    r_s + 3, t]
        for t in range(m):
            total += _sample_weight(SW, order, gather, r0, t) * tile[r_s + 2, t]
    else:
        half = tile.dtype.type(0.5)
        for j in range(k):
            row_total = zero
            for t in range(m):
                w = _sample_weight(SW, order, gather, r0, t)
                d = tile[r_z + j, t] - tile[r_y + j, t]
                row_total += w * (half * d * d)
                tile[r_err + j, t] = d * (sc * w)
            total += row_total
    for j in range(k):
        for t in range(m, width):
            tile[r_err + j, t] = zero
    return total


@kernel(internal=True, inline="always")
def _softmax_exp(tile, r_z, r_e, k, m, r_s):
    """For each sample t < m: tile[r_s, t] = max_j z_j, tile[r_e + j, t] = exp(z_j - max)
    and tile[r_s + 1, t] = their sum, z_j = tile[r_z + j, t] (r_e may be r_z). A vector
    of samples at a time, the running max and the sum in registers (a scalar loop keeping
    the max in the tile became masked stores, see "Masked stores" in activations.py);
    the last vector's columns past m are the tile's padding, computed and never read."""
    V = lanes(tile)
    for t in range(0, m, V):
        top = load(tile, r_z, t)
        for j in range(1, k):
            z = load(tile, r_z + j, t)
            top = where(z > top, z, top)
        total = broadcast(tile.dtype.type(0.0))
        for j in range(k):
            e = vmath.exp_nonpositive(load(tile, r_z + j, t) - top)
            store(tile, r_e + j, t, e)
            total = total + e
        store(tile, r_s, t, top)
        store(tile, r_s + 1, t, total)


@kernel(internal=True)
def _softmax_columns(tile, r, k, m):
    """tile[r:r + k, t] = softmax of that column, for t < m (scratch: the tile's last
    rows)."""
    r_s = tile.shape[0] - SCRATCH_ROWS
    _softmax_exp(tile, r, r, k, m, r_s)
    one = tile.dtype.type(1.0)
    for t in range(m):
        tile[r_s + 1, t] = one / tile[r_s + 1, t]
    for j in range(k):
        for t in range(m):
            tile[r + j, t] = tile[r + j, t] * tile[r_s + 1, t]


@kernel(internal=True)
def _forward_tile(packed, sizes, code, out_code, tile, width, training):
    """Every layer of the tile's samples, into the tile's activation rows; the output
    layer gets ``out_code`` (SIGMOID: probabilities, IDENTITY: logits). ``training``:
    the hidden layers' z too, into the tile's z rows, if the derivative needs them."""
    L = sizes.shape[0] - 1
    keep_z = training and needs_z(code)
    r_in = 0
    for l in range(1, L + 1):
        r_out = r_in + _pad4(sizes[l - 1] + 1)
        f, b, _ = _packed_layer(sizes, l)
        _dense_forward(packed, f, b, sizes[l - 1], sizes[l], code if l < L else out_code,
                       tile, r_in, r_out, _z_rows(sizes, l) if keep_z and l < L else -1,
                       width, _strip_row(sizes))
        r_in = r_out


@kernel(internal=True)
def _backward_tile(packed, sizes, code, tile, width, grad):
    """From the output error in the tile: every layer's error and grad += dW, db."""
    L = sizes.shape[0] - 1
    keep_z = needs_z(code)
    for l in range(L, 0, -1):
        r_act = _activation_rows(sizes, l - 1)
        r_err = _error_rows(sizes, l)
        _weight_gradient(tile, r_act, sizes[l - 1], r_err, sizes[l], grad,
                         _weight_offset(sizes, l), width, _strip_row(sizes))
        if l > 1:
            _, _, g = _packed_layer(sizes, l)
            _dense_backward(packed, g, sizes[l - 1], sizes[l], code, tile, r_err, r_act,
                            _z_rows(sizes, l - 1) if keep_z else -1,
                            _error_rows(sizes, l - 1), width, _strip_row(sizes))


@kernel(internal=True, inline="always")
def _batch(packed, sizes, code, head, X, Y, SW, order, gather, start, stop, grad, tile,
           scale, with_gradient):
    """scale * the summed loss of the head (sample weights SW, if not empty) over the
    samples i_s = order[s] (gather) or s, for s in [start, stop); with_gradient: grad =
    scale * its gradient (overwritten). The weights come packed (``_pack``)."""
    L = sizes.shape[0] - 1
    k = sizes[L]
    T = tile.shape[1]
    S = 3 * lanes(tile)
    r_z = _activation_rows(sizes, L)
    r_err = _error_rows(sizes, L)
    r_y = r_err + _pad4(k)
    if with_gradient:
        for p in range(grad.shape[0]):
            grad[p] = 0.0
    total = 0.0
    for r0 in range(start, stop, T):
        m = stop - r0 if stop - r0 < T else T  # noqa: FURB136
        width = (m + S - 1) // S * S
        _load_rows(X, order, gather, r0, m, tile, 0, width)
        _load_rows(Y, order, gather, r0, m, tile, r_y, width)
        if not _narrow_path(packed, sizes, code, IDENTITY, tile, width, with_gradient):
            _forward_tile(packed, sizes, code, IDENTITY, tile, width, with_gradient)
        total += _output_error(tile, r_z, r_err, r_y, k, m, width, scale, head, SW, order,
                               gather, r0)
        if with_gradient:
            _backward_tile(packed, sizes, code, tile, width, grad)
    return total * scale


# --- njit-callable entry points (the public kernel API) ---------------------------------


@kernel
def forward_into(params, sizes, code, X, out, packed, tile, head=HEAD_SIGMOID):
    """out (n, sizes[-1]) = the head's output for X (n, sizes[0]): probabilities for the
    sigmoid (default) and softmax heads, the logits for identity. Returns
    FORWARD_OK, FORWARD_BAD_X / FORWARD_BAD_PARAMS (NaN or inf found before anything was
    computed, out not written) or FORWARD_OVERFLOW (an output is not finite).
    packed, tile: ``workspace(sizes, dtype)`` (or buffers of ``packed_size(sizes)`` and
    (``tile_rows(sizes)``, ``tile_columns(sizes, dtype)``) elements, the tile prepared by
    ``prepare_tile``; any multiple of 3 vectors of columns computes the same)."""
    if not all_finite(X.reshape(X.size)):
        return FORWARD_BAD_X
    if not all_finite(params):
        return FORWARD_BAD_PARAMS
    n = X.shape[0]
    L = sizes.shape[0] - 1
    k = sizes[L]
    T = tile.shape[1]
    S = 3 * lanes(tile)
    _ensure_packed(params, sizes, packed, False)
    r_out = _activation_rows(sizes, L)
    V = lanes(tile)
    narrow = _narrow_applies(sizes, code, tile)
    n_bad = 0
    bad = broadcast(tile.dtype.type(0.0))
    for r0 in range(0, n, T):
        m = n - r0 if n - r0 < T else T  # noqa: FURB136
        step = V if narrow else S  # the narrow loop goes a vector at a time
        width = (m + step - 1) // step * step
        _load_rows(X, sizes, False, r0, m, tile, 0, width)  # in order: sizes, unread
        out_code = SIGMOID if head == HEAD_SIGMOID else IDENTITY
        if not _narrow_path(packed, sizes, code, out_code, tile, width, False):
            _forward_tile(packed, sizes, code, out_code, tile, width, False)
        if head == HEAD_SOFTMAX:
            _softmax_columns(tile, r_out, k, m)
        if k == 1:
            flat = out.reshape(n)
            vectors = m // V * V
            for t in range(0, vectors, V):  # non-finite values counted lane-wise
                v = load(tile, r_out, t)
                store1(flat, r0 + t, v)
                bad = where(absolute(v) < math.inf, bad, bad + 1.0)
            for t in range(vectors, m):
                v = tile[r_out, t]
                n_bad += 0 if is_finite(v) else 1
                flat[r0 + t] = v
        else:
            flat = out.reshape(n * k)
            for j in range(k):
                row = tile[r_out + j]
                for t in range(m):  # get/put: no index wraparound
                    v = get(row, t)
                    n_bad += 0 if is_finite(v) else 1
                    put(flat, (r0 + t) * k + j, v)
    return FORWARD_OK if n_bad == 0 and hsum(bad) == 0.0 else FORWARD_OVERFLOW


@kernel(internal=True, inline="always")
def trace_into(params, sizes, code, X, Z, A, packed, tile, head=HEAD_SIGMOID):
    """Z, A (n, sum(sizes[1:])) = every layer's z and a for X; layer l's columns start at
    sum(sizes[1:l]); the last layer's a is the head's output."""
    n = X.shape[0]
    L = sizes.shape[0] - 1
    T = tile.shape[1]
    S = 3 * lanes(tile)
    V = lanes(tile)
    _ensure_packed(params, sizes, packed, False)
    for r0 in range(0, n, T):
        m = n - r0 if n - r0 < T else T  # noqa: FURB136
        width = (m + S - 1) // S * S
        _load_rows(X, sizes, False, r0, m, tile, 0, width)  # in order: sizes, unread
        r_in = 0
        u = 0
        for l in range(1, L + 1):
            r_out = r_in + _pad4(sizes[l - 1] + 1)
            f, b, _ = _packed_layer(sizes, l)
            _dense_forward(packed, f, b, sizes[l - 1], sizes[l], IDENTITY, tile, r_in, r_out,
                           -1, width, _strip_row(sizes))
            act = code if l < L else (SIGMOID if head == HEAD_SIGMOID else IDENTITY)
            for j in range(sizes[l]):
                for t in range(m):
                    Z[r0 + t, u + j] = tile[r_out + j, t]
                if act != IDENTITY:
                    for t in range(0, width, V):
                        store(tile, r_out + j, t, activate(act, load(tile, r_out + j, t)))
            if l == L and head == HEAD_SOFTMAX:
                _softmax_columns(tile, r_out, sizes[l], m)
            for j in range(sizes[l]):
                for t in range(m):
                    A[r0 + t, u + j] = tile[r_out + j, t]
            u += sizes[l]
            r_in = r_out


@kernel(internal=True, inline="always")
def loss_gradient_into(params, sizes, code, X, Y, rows, grad, packed, tile, with_gradient,
                       head=HEAD_SIGMOID):
    """The head's loss (default: the mean BCE) of the samples X[rows], Y[rows] (all of X,
    Y when rows is empty), returned; with_gradient: its gradient into grad (like params,
    overwritten)."""
    gather = rows.shape[0] > 0
    n = rows.shape[0] if gather else X.shape[0]
    if n == 0:
        return math.nan
    _ensure_packed(params, sizes, packed, with_gradient)
    k = sizes[sizes.shape[0] - 1] if head == HEAD_SIGMOID else 1
    return _batch(packed, sizes, code, head, X, Y, np.empty(0, X.dtype), rows, gather, 0, n,
                  grad, tile, 1.0 / (n * k), with_gradient)


@kernel(internal=True, inline="always")
def _weight_sum(SW, order, gather, start, stop):
    """The sum of the sample weights of the batch [start, stop) (its size without)."""
    if SW.shape[0] == 0:
        return float(stop - start)
    total = 0.0
    for s in range(start, stop):
        total += SW[order[s]] if gather else SW[s]
    return total


@kernel(internal=True, inline="always")
def fit_into(params, sizes, code, head, X, Y, SW, epochs, rates, batch_size, state, perms,
             alpha, solver, hyper, moments, steps, history, reported, work, order, packed,
             tile):
    """Mini-batch training for ``epochs`` epochs: the head's loss (sample weights SW if
    not empty) plus the L2 penalty alpha (scikit-learn's scaling), updated by ``solver``
    (SOLVER_*, hyper and moments as ``_optimizer_step``; steps[0] Adam's step count, in
    and out) at rate rates[e] in epoch e. history[e] = the mean of the batch losses
    measured before each update (``MLP.fit``); reported[e] = scikit-learn's
    ``loss_curve_`` entry (batch losses weighted by batch size, the squared error over
    the outputs' mean).

    Sample order per epoch: perms[e] when perms has rows, else a minstd permutation when
    state > 0, else 0..n-1 (no gather). work: 2 P + moments.size scratch values (the
    gradient, the epoch's starting parameters and optimiser state); order: n int64
    scratch. Returns -1, or the epoch in which the loss or the parameters became
    non-finite (params, moments and steps are then restored to that epoch's start)."""
    n = X.shape[0]
    P = params.shape[0]
    M = moments.shape[0]
    k = sizes[sizes.shape[0] - 1]
    grad = work[:P]
    saved = work[P:2 * P]
    saved_moments = work[2 * P:2 * P + M]
    shuffled = perms.shape[0] > 0 or state > 0
    per_output = 1.0 / k if head == HEAD_IDENTITY else 1.0
    for epoch in range(epochs):
        for p in range(P):
            saved[p] = params[p]
        for p in range(M):
            saved_moments[p] = moments[p]
        saved_steps = steps[0]
        if perms.shape[0] > 0:
            for i in range(n):
                order[i] = perms[epoch, i]
        elif state > 0:
            state = minstd_permutation(order, state)
        lr = params.dtype.type(rates[epoch])
        total = 0.0
        weighted = 0.0
        n_batches = 0
        finite = True
        for start in range(0, n, batch_size):
            stop = start + batch_size if start + batch_size < n else n  # noqa: FURB136
            _pack(params, sizes, packed, True)
            weights = _weight_sum(SW, order, shuffled, start, stop)
            scale = 1.0 / (weights * k) if head == HEAD_SIGMOID else 1.0 / weights
            batch_loss = _batch(packed, sizes, code, head, X, Y, SW, order, shuffled, start,
                                stop, grad, tile, scale, True)
            penalty = _l2_penalty(params, sizes, grad, alpha, weights) if alpha > 0.0 else 0.0
            total += batch_loss + penalty
            weighted += (batch_loss * per_output + penalty) * (stop - start)
            n_batches += 1
            if not is_finite(batch_loss + penalty):
                finite = False
                break
            steps[0] = _optimizer_step(solver, params, grad, lr, hyper, moments, steps[0])
        history[epoch] = total / n_batches
        reported[epoch] = weighted / n
        if not (finite and all_finite(params)):
            for p in range(P):
                params[p] = saved[p]
            for p in range(M):
                moments[p] = saved_moments[p]
            steps[0] = saved_steps
            return epoch
    return -1


#: ``run``'s jobs
JOB_TRACE, JOB_LOSS, JOB_GRADIENT, JOB_FIT = range(4)


@kernel
def run(job, params, sizes, code, head, X, Y, SW, rows, out, Z, grad, packed, tile, rates,
        epochs, batch_size, state, perms, alpha, solver, hyper, moments, steps, history,
        reported, work):
    """The compiled entry point Python uses for everything but ``forward_into``: ``job``
    picks trace_into, loss_gradient_into or fit_into (numba-inlined here, so their
    stages are compiled into one module once, not once per entry point); arguments a job
    does not use are placeholders (never read). Returns the job's value as a float."""
    if job == JOB_TRACE:
        trace_into(params, sizes, code, X, Z, out, packed, tile, head)
        return 0.0
    if job == JOB_LOSS or job == JOB_GRADIENT:
        return loss_gradient_into(params, sizes, code, X, Y, rows, grad, packed, tile,
                                  job == JOB_GRADIENT, head)
    if job == JOB_FIT:
        return float(fit_into(params, sizes, code, head, X, Y, SW, epochs, rates, batch_size,
                              state, perms, alpha, solver, hyper, moments, steps, history,
                              reported, work, rows, packed, tile))
    return math.nan


# --- Python side: workspaces and the functions MLP calls ---------------------------------


class _PerThread(threading.local):
    def __init__(self):
        self.spaces = {}  # (dtype char, sizes bytes) -> (packed, tile)


_local = _PerThread()


def workspace_key(sizes, dtype):
    """What ``workspace`` files the buffers of a net of these sizes and dtype under (a
    caller that keeps it saves its recomputation on every call)."""
    return np.dtype(dtype).char, np.asarray(sizes, dtype=np.int64).tobytes()


#: Byte alignment of the buffers ``workspace`` and ``train`` allocate: a cache line.
ALIGNMENT = 64


def aligned_zeros(shape, dtype):
    """np.zeros(shape, dtype) starting on an ALIGNMENT-byte boundary (NumPy's own start
    only on 16): the kernels load whole 32-byte vectors from these buffers, and a vector
    that straddles two cache lines is two loads. With the packed weights 16 bytes off,
    net A's forward of 65536 samples took 4.9-5.1 instead of 3.8 ns per sample (ReLU;
    sigmoid 9.5 instead of 8.9), at random from one process to the next."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def workspace(sizes, dtype, key=None):
    """(packed, tile): the scratch buffers the ``*_into`` kernels take for a net of these
    sizes and dtype. Kept per thread and reused: allocating (and page-faulting) them per
    call cost more than a small forward pass."""
    if key is None:
        key = workspace_key(sizes, dtype)
    spaces = _local.spaces
    ws = spaces.get(key)
    if ws is None:
        sizes = np.asarray(sizes, dtype=np.int64)
        dtype = np.dtype(dtype)
        if len(spaces) > 16:
            spaces.clear()
        ws = (aligned_zeros(packed_size(sizes.tolist()), dtype),
              aligned_zeros((tile_rows(sizes), tile_columns(sizes, dtype)), dtype))
        prepare_tile(sizes, ws[1])
        spaces[key] = ws
    return ws


def _writable(a):
    """a, or a copy of it if it is read-only: a read-only array is another numba type,
    hence another (slow) compile, and one that cannot train."""
    return a if a.flags.writeable else a.copy()


_NO_ROWS = np.empty(0, np.int64)


_placeholders = {}


def _unused(dtype):
    found = _placeholders.get(dtype.char)
    if found is None:
        found = _placeholders[dtype.char] = (
            np.empty((0, 1), dtype), np.empty(0, dtype), np.empty((0, 0), np.int64),
            np.empty(0, np.float64), np.zeros(1, np.int64))
    return found


def _run(job, params, sizes, code, X, Y=None, rows=None, out=None, Z=None, grad=None,
         head=HEAD_SIGMOID):
    M2, G1, I2, H1, S1 = _unused(params.dtype)
    packed, tile = workspace(sizes, params.dtype)
    return run(job, params, sizes, code, head, X, M2 if Y is None else Y, G1,
               _NO_ROWS if rows is None else rows,
               M2 if out is None else out, M2 if Z is None else Z, G1 if grad is None else grad,
               packed, tile, H1, 0, 1, 0, I2, 0.0, SOLVER_PLAIN, H1, G1, S1, H1, H1, G1)


def compiled_entry(dispatcher, *args):
    """The machine code ``dispatcher`` runs for exactly these arguments' types, compiled
    (or loaded from the cache) now; under NUMBA_DISABLE_JIT the Python function itself.
    Calling it skips numba's per-call matching of argument types (0.2-0.3 us of a
    one-sample forward). Only for callers that pass arguments of the very same types
    every time: the entry point checks no more than the itemsize of each array."""
    if not hasattr(dispatcher, "overloads"):
        return dispatcher
    signature = tuple(typeof(a) for a in args)
    dispatcher.compile(signature)
    return dispatcher.overloads[signature].entry_point


def forward(params, sizes, code, X, out, head=HEAD_SIGMOID, key=None):
    """forward_into with this thread's workspace (``key``: ``workspace_key``'s, if kept)."""
    if not (params.flags.writeable and X.flags.writeable):
        params, X = _writable(params), _writable(X)
    return forward_into(params, sizes, code, X, out, *workspace(sizes, params.dtype, key), head)


def forward_trace(params, sizes, code, X, Z, A, head=HEAD_SIGMOID):
    _run(JOB_TRACE, _writable(params), sizes, code, _writable(X), out=A, Z=Z, head=head)


def loss(params, sizes, code, X, Y, head=HEAD_SIGMOID):
    return _run(JOB_LOSS, _writable(params), sizes, code, _writable(X), _writable(Y),
                head=head)


def loss_and_gradient(params, sizes, code, X, Y, rows, grad, head=HEAD_SIGMOID):
    """Mean BCE of the rows X[rows] (returned; rows None: all of X, in order) and its
    gradient (into grad, overwritten), a tile at a time: nothing of size n is stored."""
    if rows is not None:
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if rows.shape[0] == X.shape[0] > 0 and rows[0] == 0 and (np.diff(rows) == 1).all():
            rows = None  # in order: no gather
    if (X.shape[0] if rows is None else rows.shape[0]) == 0:
        grad[:] = 0
        return math.nan
    return _run(JOB_GRADIENT, _writable(params), sizes, code, _writable(X), _writable(Y),
                _NO_ROWS if rows is None else rows, grad=grad, head=head)


# --- parallel: the serial kernels on Python threads ---------------------------------------

_pool = None
_pool_lock = threading.Lock()


def _run_blocks(job, n_blocks):
    """job(0), ..., job(n_blocks - 1): block 0 on this thread, the others on a shared pool
    (the kernels release the GIL)."""
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


def _block_rows(c, n_blocks, n, tile):
    """Rows [start, stop) of block c when n rows are split in n_blocks blocks of whole
    tiles."""
    n_tiles = (n + tile - 1) // tile
    return (c * n_tiles // n_blocks * tile, min((c + 1) * n_tiles // n_blocks * tile, n))


def forward_parallel(params, sizes, code, X, out, n_chunks, head=HEAD_SIGMOID):
    """As ``forward`` (the same status); the tiles split into n_chunks contiguous blocks
    run in parallel."""
    X, params = _writable(X), _writable(params)
    n = X.shape[0]
    status = [FORWARD_OK] * n_chunks
    T = tile_columns(sizes, params.dtype)

    def job(c):
        start, stop = _block_rows(c, n_chunks, n, T)
        if stop > start:
            status[c] = forward(params, sizes, code, X[start:stop], out[start:stop], head)

    _run_blocks(job, n_chunks)
    for worst in (FORWARD_BAD_X, FORWARD_BAD_PARAMS, FORWARD_OVERFLOW):  # as serial reports
        if worst in status:
            return worst
    return FORWARD_OK


def loss_and_gradient_parallel(params, sizes, code, X, Y, rows, grad, partials,
                               head=HEAD_SIGMOID):
    """As ``loss_and_gradient`` (rows None: all of X, in order, without a gather); the
    rows split into partials.shape[0] blocks, each summed into its own row of partials
    (no two threads write the same memory), then added up in block order."""
    X, Y, params = _writable(X), _writable(Y), _writable(params)
    in_order = rows is None
    if not in_order:
        rows = np.ascontiguousarray(rows, dtype=np.int64)
    n_chunks = partials.shape[0]
    m = X.shape[0] if in_order else rows.shape[0]
    if m == 0:
        grad[:] = 0
        return math.nan
    losses = np.zeros(n_chunks)
    T = tile_columns(sizes, params.dtype)

    def job(c):
        start, stop = _block_rows(c, n_chunks, m, T)
        if stop > start:
            # each block's mean, weighted by its share of the rows
            share = (stop - start) / m
            if in_order:  # contiguous blocks of X: no gather
                value = _run(JOB_GRADIENT, params, sizes, code, X[start:stop], Y[start:stop],
                             _NO_ROWS, grad=partials[c], head=head)
            else:
                value = _run(JOB_GRADIENT, params, sizes, code, X, Y, rows[start:stop],
                             grad=partials[c], head=head)
            losses[c] = share * value
            partials[c] *= params.dtype.type(share)
        else:
            partials[c] = 0

    _run_blocks(job, n_chunks)
    grad[:] = partials[0]
    for c in range(1, n_chunks):
        grad += partials[c]
    return float(losses.sum())


def train(params, sizes, code, X, Y, epochs, lr, batch_size, shuffle_state, permutations,
          history, head=HEAD_SIGMOID, sample_weight=None, alpha=0.0, solver=SOLVER_PLAIN,
          hyper=None, moments=None, steps=None, reported=None):
    """Mini-batch training for ``epochs`` epochs in one compiled call (``fit_into``); lr a
    number or a per-epoch array of rates; returns -1, or the epoch in which the loss or
    the parameters became non-finite."""
    X, Y = _writable(X), _writable(Y)
    dt = params.dtype
    permutations = _writable(np.ascontiguousarray(permutations, dtype=np.int64))
    rates = np.broadcast_to(np.asarray(lr, dtype=np.float64), (epochs,)).copy()
    SW = np.empty(0, dt) if sample_weight is None else _writable(sample_weight)
    hyper = np.zeros(5) if hyper is None else np.asarray(hyper, dtype=np.float64)
    moments = np.empty(0, dt) if moments is None else moments
    steps = np.zeros(1, np.int64) if steps is None else steps
    reported = np.empty(epochs) if reported is None else reported
    work = aligned_zeros(2 * params.shape[0] + moments.shape[0], dt)
    order = np.empty(X.shape[0], dtype=np.int64)
    M2 = _unused(dt)[0]
    return int(run(JOB_FIT, params, sizes, code, head, X, Y, SW, order, M2, M2, params[:0],
                   *workspace(sizes, dt), rates, epochs, batch_size, shuffle_state,
                   permutations, float(alpha), solver, hyper, moments, steps, history,
                   reported, work))
