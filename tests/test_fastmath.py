"""The kernels' own math against NumPy over the whole float range, float32 and float64:
the scalar helpers (``fastgeo.activations``: exp_neg, log1p_unit, tanh_fast), the vector
activations (``fastgeo.vmath``: float32 lean within ``LEAN_MAX_ULP``, float64 accurate),
accuracy in ulps where the result is a normal number, exact limits (0, 1, +-1), flushed
denormals, NaN and infinities; and the float32 kernels really compute in float32."""

import math

import numba
import numpy as np
import pytest
from numba import njit

from fastgeo import _jit as fastgeo_jit
from fastgeo import activations, kernels, vmath
from fastgeo.activations import exp_neg, log1p_unit, tanh_fast
from fastgeo.simd import Vector, load1, store1

DTYPES = [np.float32, np.float64]


@njit
def _map_exp_neg(x, out):
    for i in range(x.shape[0]):
        out[i] = exp_neg(x[i])


@njit
def _map_log1p_unit(x, out):
    for i in range(x.shape[0]):
        out[i] = log1p_unit(x[i])


@njit
def _map_tanh(x, out):
    for i in range(x.shape[0]):
        out[i] = tanh_fast(x[i])


def apply(fn, x):
    out = np.empty_like(x)
    fn(x, out)
    return out


def ulps(actual, expected64, dtype):
    """|actual - expected| in units of the last place of expected rounded to dtype."""
    expected = expected64.astype(dtype)
    return np.abs(actual.astype(np.float64) - expected64) / np.spacing(np.abs(expected)).astype(
        np.float64)


def grid(lo, hi, dtype, n=200_001):
    """Uniform and log-spaced points of [lo, hi] (lo < 0 <= hi or so), in dtype."""
    x = np.concatenate([np.linspace(lo, hi, n), -np.logspace(-40, np.log10(max(-lo, 1e-30)), n),
                        np.logspace(-40, np.log10(max(hi, 1e-30)), n)])
    x = x[(x >= lo) & (x <= hi)]
    with np.errstate(under="ignore"):
        return x.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_neg_whole_range(dtype):
    tiny = np.finfo(dtype).tiny
    lo = -800.0 if dtype == np.float64 else -110.0
    x = grid(lo, 0.0, dtype)
    got = apply(_map_exp_neg, x)
    with np.errstate(under="ignore"):
        ref = np.exp(x.astype(np.float64))
    normal = ref >= tiny
    assert ulps(got[normal], ref[normal], dtype).max() <= 2
    # denormal results: within one denormal step of the correctly rounded value
    with np.errstate(under="ignore"):
        sub = ref[~normal].astype(dtype)
    step = np.finfo(dtype).smallest_subnormal
    assert np.abs(got[~normal].astype(np.float64) - sub.astype(np.float64)).max() <= step
    special = np.array([0.0, -0.0, -np.inf, np.nan, np.finfo(dtype).min], dtype=dtype)
    out = apply(_map_exp_neg, special)
    assert out[0] == 1 and out[1] == 1 and out[2] == 0 and np.isnan(out[3]) and out[4] == 0
    assert out.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_log1p_unit(dtype):
    e = grid(0.0, 1.0, dtype)
    e = np.concatenate([e, np.array([0.0, 1.0, np.finfo(dtype).smallest_subnormal], dtype)])
    got = apply(_map_log1p_unit, e)
    ref = np.log1p(e.astype(np.float64))
    nz = ref > 0
    assert ulps(got[nz], ref[nz], dtype).max() <= 4
    assert got[e == 0].max() == 0
    assert np.isnan(apply(_map_log1p_unit, np.array([np.nan], dtype)))[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_fast(dtype):
    big = 800.0 if dtype == np.float64 else 100.0
    x = grid(-big, big, dtype)
    got = apply(_map_tanh, x)
    ref = np.tanh(x.astype(np.float64))
    nz = np.abs(ref) >= np.finfo(dtype).tiny
    assert ulps(got[nz], ref[nz], dtype).max() <= 4
    special = np.array([0.0, np.inf, -np.inf, np.nan, 1e30, -1e30], dtype=dtype)
    out = apply(_map_tanh, special)
    assert out[0] == 0 and out[1] == 1 and out[2] == -1 and np.isnan(out[3])
    assert out[4] == 1 and out[5] == -1


def activation_rtol(dtype):
    """The documented accuracy of the compiled activations: float32 lean (vmath), float64
    accurate."""
    return (vmath.LEAN_MAX_ULP if dtype == np.float32 else 4) * np.finfo(dtype).eps


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code, name", [(a.code, a.name) for a in activations.ACTIVATIONS.values()])
def test_compiled_activations_match_numpy(code, name, dtype):
    """activations.activate (through a one-layer identity net's hidden layer) == the NumPy
    version over the whole float range, NaN in NaN out."""
    big = 1e300 if dtype == np.float64 else 1e30
    z = np.concatenate([grid(-big, big, dtype, 20_001), grid(-50, 50, dtype, 20_001),
                        np.array([0.0, -0.0, np.inf, -np.inf], dtype)])
    act = activations.ACTIVATIONS[name]
    sizes = np.array([1, 1, 1], dtype=np.int64)
    params = np.array([1.0, 0.0, 1.0, 0.0], dtype=dtype)  # W1 = 1, b1 = 0, W2 = 1, b2 = 0
    U = 2
    Z, A = np.empty((z.size, U), dtype), np.empty((z.size, U), dtype)
    kernels.forward_trace(params, sizes, code, z.reshape(-1, 1), Z, A)
    with np.errstate(over="ignore", invalid="ignore"):
        ref = act.value(z.astype(np.float64))
    got = A[:, 0].astype(np.float64)
    np.testing.assert_array_equal(Z[:, 0], z)
    finite = np.isfinite(ref)
    rtol = activation_rtol(dtype)
    atol = np.finfo(dtype).tiny
    if act.kind == "gated":
        # f(z) = z gate(u(z)) computes u in the net's dtype first: the contract is the
        # gate's accuracy times the condition number k = |z f'(z) / f(z)| (the rounding
        # of u propagated; k ~ 3 |u| for GELU's z << 0), and where the gate flushes to 0
        # (u < -87.33 in float32) the value is at most |z| times the smallest normal.
        z64 = z.astype(np.float64)[finite]
        with np.errstate(all="ignore"):
            cond = np.abs(z64 * act.derivative(z64, ref[finite]) / ref[finite])
        rtol = rtol * (1 + np.where(np.isfinite(cond), cond, 0.0))
        atol = atol * (1 + np.abs(z64))
        err = np.abs(got[finite] - ref[finite])
        bad = ~(err <= atol + rtol * np.abs(ref[finite]))
        assert not bad.any(), (z[finite][bad][:5], got[finite][bad][:5], ref[finite][bad][:5])
    else:
        np.testing.assert_allclose(got[finite], ref[finite], rtol=rtol, atol=atol)
    # +-inf stays +-inf where f does (NaN where f is NaN: gated f(-inf) = -inf * 0)
    assert np.array_equal(got[~finite], ref[~finite], equal_nan=True)
    nan_in = np.array([np.nan], dtype)
    kernels.forward_trace(params, sizes, code, nan_in.reshape(1, 1), Z[:1], A[:1])
    assert np.isnan(A[0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_output_sigmoid_matches_numpy(dtype):
    big = 1e300 if dtype == np.float64 else 1e30
    z = np.concatenate([grid(-big, big, dtype, 20_001), grid(-120, 120, dtype, 20_001)])
    params = np.array([1.0, 0.0], dtype=dtype)
    out = np.empty((z.size, 1), dtype)
    kernels.forward(params, np.array([1, 1], np.int64), 0, z.reshape(-1, 1), out)
    with np.errstate(over="ignore", under="ignore"):
        ref = activations.sigmoid(z.astype(np.float64))
    np.testing.assert_allclose(out[:, 0], ref, rtol=activation_rtol(dtype),
                               atol=np.finfo(dtype).tiny)


@pytest.mark.parametrize("name", ["activate", "derivative_times", "_dense_forward",
                                  "_dense_backward", "_weight_gradient"])
def test_float32_kernels_compute_in_float32(name):
    """No float64 arithmetic in the float32 stages: a float64 literal in a kernel (a
    bare 1.0 or 0.0 in scalar code) would silently run the float32 path in float64."""
    fn = getattr(kernels, name, None) or getattr(activations, name)
    if not hasattr(fn, "py_func"):
        pytest.skip("NUMBA_DISABLE_JIT")
    fresh = numba.njit(fn.py_func, fastmath=set(fastgeo_jit.FASTMATH), error_model="numpy")
    f32 = numba.types.Array(numba.types.float32, 2, "C")
    vec = numba.types.Array(numba.types.float32, 1, "C")
    v8 = Vector(numba.types.float32)
    i64 = numba.types.int64
    sig = {
        "activate": (i64, v8),
        "derivative_times": (i64, v8, v8, v8),
        "_dense_forward": (vec, i64, i64, i64, i64, i64, f32, i64, i64, i64, i64, i64),
        "_dense_backward": (vec, i64, i64, i64, i64, f32, i64, i64, i64, i64, i64, i64),
        "_weight_gradient": (f32, i64, i64, i64, i64, vec, i64, i64, i64),
    }[name]
    fresh.compile(sig)
    llvm = fresh.inspect_llvm(sig)
    doubles = [line.strip() for line in llvm.splitlines()
               if " double" in line and any(op in line for op in (
                   "fadd", "fsub", "fmul", "fdiv", "fpext", "fcmp", "call"))]
    assert doubles == [], "\n".join(doubles[:20])


@njit
def _ulp32(x):
    """The spacing of float32 at the normal float32 x (x > 0)."""
    _, e = math.frexp(x)
    return 2.0 ** (e - 24)


@njit(error_model="numpy")
def _lean_worst(kind, stride):
    """Over every stride-th float32 bit pattern: (largest ulp error of the float32
    sigmoid (kind 0) or tanh (kind 1) where the exact result is a normal float32, count
    of results that should be flushed to 0 but are not, count of NaN in -> not NaN out,
    count of results outside [0, 1] / [-1, 1])."""
    bits = np.empty(8, np.uint32)
    z = bits.view(np.float32)
    out = np.empty(8, np.float32)
    tiny = 1.1754943508222875e-38
    worst = 0.0
    not_flushed = 0
    lost_nan = 0
    out_of_range = 0
    for base in range(0, 2 ** 32, 8 * stride):
        for j in range(8):
            bits[j] = np.uint32(base + j * stride)
        if kind == 0:
            store1(out, 0, vmath.sigmoid(load1(z, 0)))
        else:
            store1(out, 0, vmath.tanh(load1(z, 0)))
        for j in range(8):
            x = np.float64(z[j])
            got = np.float64(out[j])
            if x != x:
                lost_nan += 0 if got != got else 1
                continue
            if kind == 0:
                ref = 1.0 / (1.0 + math.exp(-x)) if x > -745.0 else 0.0
                out_of_range += 0 if 0.0 <= got <= 1.0 else 1
            else:
                ref = math.tanh(x)
                out_of_range += 0 if -1.0 <= got <= 1.0 else 1
            if abs(ref) >= tiny:
                err = abs(got - ref) / _ulp32(abs(ref))
                worst = err if err > worst else worst
            elif kind == 0:
                not_flushed += 0 if got == 0.0 or got <= tiny else 1
    return worst, not_flushed, lost_nan, out_of_range


@pytest.mark.parametrize("kind, name", [(0, "sigmoid"), (1, "tanh")])
def test_lean_float32_activation_over_the_whole_range(kind, name):
    """The float32 contract of ``vmath``: within LEAN_MAX_ULP ulp of the exact value
    wherever that is a normal float32, over every 61st bit pattern of float32 (70 million
    inputs: every binade, both signs, denormals, infinities, NaN), results in range,
    below-normal sigmoids flushed, NaN kept."""
    worst, not_flushed, lost_nan, out_of_range = _lean_worst(kind, 61)
    assert worst <= vmath.LEAN_MAX_ULP, (name, worst)
    assert (not_flushed, lost_nan, out_of_range) == (0, 0, 0)


@njit
def _exp_nonpositive_of(z):
    out = np.empty_like(z)
    V = 32 // z.itemsize  # a vector's lanes
    for p in range(0, z.shape[0], V):
        store1(out, p, vmath.exp_nonpositive(load1(z, p)))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_nonpositive(dtype):
    """vmath.exp_nonpositive (the softmax's exp): within a few ulp of exp(z) for z <= 0
    wherever that is a normal number, about the smallest normal below, NaN kept."""
    tiny = np.finfo(dtype).tiny
    z = np.concatenate([-np.geomspace(1e-30, 800.0, 20_000), [0.0, -0.0, np.nan, -np.inf]])
    z = z[: z.size // 8 * 8].astype(dtype)
    got = _exp_nonpositive_of(z).astype(np.float64)
    ref = np.exp(z.astype(np.float64))
    normal = ref >= tiny
    ulp = np.spacing(ref[normal].astype(dtype)).astype(np.float64)
    worst = np.max(np.abs(got[normal] - ref[normal]) / ulp)
    assert worst <= (vmath.LEAN_MAX_ULP if dtype == np.float32 else 2), worst
    below = ~normal & ~np.isnan(z)
    assert np.all((got[below] >= 0) & (got[below] <= 1.01 * tiny))  # exp(-708.39) in float64
    assert np.all(np.isnan(got[np.isnan(z)]))


@njit(fastmath=set(fastgeo_jit.FASTMATH))
def _log1p_unit32_of(e):
    out = np.empty_like(e)
    for p in range(0, e.shape[0], 8):
        store1(out, p, vmath.log1p_unit32(load1(e, p)))
    return out


def test_log1p_unit32():
    """vmath.log1p_unit32 (the float32 sigmoid head's loss, under the kernels' fastmath
    flags): within 4 ulp of log1p(e) on every 61st float32 in [0, 1], 0 at 0, NaN kept."""
    e = np.arange(0, np.float32(1.0).view(np.uint32) + 1, 61, dtype=np.uint32).view(np.float32)
    e = np.concatenate([e, np.array([1.0, np.nan], np.float32)])
    e = np.concatenate([e, np.zeros(-e.size % 8, np.float32)])
    got = _log1p_unit32_of(e)
    ref = np.log1p(e.astype(np.float64))
    finite = ~np.isnan(e)
    positive = finite & (e > 0)
    assert ulps(got[positive], ref[positive], np.float32).max() <= 4
    assert np.all(got[finite & (e == 0)] == 0)
    assert np.isnan(got[np.isnan(e)]).all()


@njit(fastmath=set(fastgeo_jit.FASTMATH), error_model="numpy")
def _count_nonfinite_updates(params, grad, lr):
    bad = 0
    for p in range(params.shape[0]):
        bad += 0 if activations.is_finite(params[p] - lr * grad[p]) else 1
    return bad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_is_finite_of_computed_values_survives_fastmath(dtype):
    """With reassoc and nsz together LLVM folded ``math.isfinite(a - lr * b)`` to true;
    ``is_finite`` tests the exponent bits, so an overflow (or NaN) made in the same
    expression is still seen, in kernels compiled with fastgeo's fastmath flags."""
    big = np.finfo(dtype).max
    for value, expected in ((big, 1), (np.inf, 1), (np.nan, 1), (1.0, 0)):
        params = np.ones(19, dtype)
        grad = np.ones(19, dtype)
        grad[7] = value
        lr = dtype(1.0) if value == 1.0 or not np.isfinite(value) else dtype(4.0)
        assert _count_nonfinite_updates(params, grad, lr) == expected, value
    x = np.array([0.0, -0.0, 1e-45, big, -big, np.inf, -np.inf, np.nan], dtype)
    expected = [True] * 5 + [False] * 3
    assert [bool(_is_finite_scalar(v)) for v in x] == expected


@njit(fastmath=set(fastgeo_jit.FASTMATH), error_model="numpy")
def _is_finite_scalar(v):
    return activations.is_finite(v)
