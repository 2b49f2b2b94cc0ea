"""exp, sigmoid and tanh on ``simd`` Vectors: the activations' numerics.

float32 is *lean*: few vector operations (16 per sigmoid: a clamped argument,
magic-bias range reduction, a degree-5 minimax polynomial for exp, 2**n from the
rounded value's bits, one division, a select), about 0.3 ns per element on one core.
Accuracy contract, tested over every 61st float32 in tests/test_fastmath.py: sigmoid and tanh
within ``LEAN_MAX_ULP`` ulp of the correctly rounded value wherever that value is a
normal float32; sigmoid(z) is 0 for z < -87.33 (values below the smallest normal are
flushed), 1 for z > 17 (as the float32 rounding of 1 - tiny).

float64 is *accurate*: degree-12 Taylor exp with Cody-Waite reduction, true divisions: a
few ulp wherever the result is a normal float64, so float64 parity holds at rtol 1e-10
(sigmoid(z) for z < -708.39, below the smallest normal, is flushed to 0).

Each function has one body per dtype, chosen at compile time by its overload; the same
bodies run as NumPy code when the JIT is disabled. NaN in gives NaN out.
"""

import numpy as np
from numba import types
from numba.extending import overload, register_jitable

from .simd import absolute, exponent_from_bits, fma, pow2, rint, where

#: Largest error of the float32 sigmoid and tanh in ulp, over all float32 inputs whose
#: result is a normal float32 (measured by tests/test_fastmath.py).
LEAN_MAX_ULP = 4

_LOG2E = 1.4426950408889634
# exp(r) ~ 1 + r (c1 + r (c2 + r (c3 + r (c4 + r c5)))) on |r| <= ln2 / 2: XNNPACK's
# minimax coefficients for f32 exp (rr2-p5)
_C1 = float.fromhex("0x1.FFFFF6p-1")
_C2 = float.fromhex("0x1.FFFDC6p-2")
_C3 = float.fromhex("0x1.555A80p-3")
_C4 = float.fromhex("0x1.573A1Ap-5")
_C5 = float.fromhex("0x1.0F9F9Cp-7")
# ln 2 split so that n * _LN2_HI is exact for |n| <= 2**9 (float32) / 2**11 (float64)
_LN2_HI32 = 0.693359375
_LN2_LO32 = -2.12194440e-4
_LN2_HI64 = 0.6931471803691238
_LN2_LO64 = 1.9082149292705877e-10

_MAGIC32 = 1.5 * 2**23 + 127
#: float64: exp(x) >= the smallest normal float64 for x >= _EXP_MIN64
_EXP_MIN64 = -708.39
#: float32: exp(x) for |x| <= _EXP_LIMIT32 is a normal float32
_EXP_LIMIT32 = 87.33654  # -ln(smallest normal float32)


@register_jitable
def _exp32(x):
    """exp(x) for float32 lanes with |x| <= 87.33 (normal results only). n = round(x /
    ln 2) by the magic bias: t = x log2(e) + 1.5 * 2**23 + 127 is rounded to an integer,
    whose low bits are n + 127, the exponent field of 2**n. The vector operations carry
    no ``reassoc`` flag, so (t - bias) is never folded back to x log2(e)."""
    t = fma(x, _LOG2E, _MAGIC32)
    n = t - _MAGIC32
    r = fma(n, -_LN2_HI32, x)
    r = fma(n, -_LN2_LO32, r)
    p = fma(r, _C5, _C4)
    p = fma(p, r, _C3)
    p = fma(p, r, _C2)
    p = fma(p, r, _C1)
    p = fma(p, r, 1.0)
    return p * exponent_from_bits(t)


@register_jitable
def _exp64(x):
    """exp(x) for float64 lanes with x <= 0 (NaN -> NaN), to 1 ulp down to the smallest
    normal, exp(-708.39); below, the result is that smallest normal (callers use it where
    such values are negligible: sigmoid's e, tanh's exp(-2|z|) for |z| > 354). The
    degree-12 Taylor polynomial mostly by Estrin's scheme: 6 steps deep instead of
    Horner's 12, so the vectors of a dense block overlap (1.35x faster per element in
    a block-shaped loop; sigmoid within 3.3 ulp, Horner's 3.15)."""
    y = where(x < _EXP_MIN64, _EXP_MIN64, x)
    n = rint(y * _LOG2E)
    r = fma(n, -_LN2_HI64, y)
    r = fma(n, -_LN2_LO64, r)
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    # p = 1 + r + r^2 Q(r), Q = c_2 + c_3 r + ... + c_12 r^10 (c_k = 1 / k!) by Estrin:
    # pairs c_2k + c_2k+1 r, combined with r^2, r^4, r^8; the 1 + r added last, so the
    # rounding of the tail is scaled by r^2 (as accurate as Horner's order)
    q1 = fma(r, 0.16666666666666666, 0.5)
    q2 = fma(r, 0.008333333333333333, 0.041666666666666664)
    q3 = fma(r, 0.0001984126984126984, 0.001388888888888889)
    q4 = fma(r, 2.7557319223985893e-06, 2.48015873015873e-05)
    q5 = fma(r, 2.505210838544172e-08, 2.755731922398589e-07)
    q = fma(fma(r2, 2.08767569878681e-09, q5), r8, fma(fma(q4, r2, q3), r4, fma(q2, r2, q1)))
    p = fma(r2, q, r) + 1.0
    return p * pow2(n)


@register_jitable
def _sigmoid32(z):
    """1 / (1 + exp(-z)): ``_exp32`` written for -z without negating z (n from
    -z log2(e), r' = z + n ln 2 = -r, and the polynomial in r' with its odd coefficients
    negated: every rounding the same, bit for bit), and clamped only where the argument
    would leave the exponent range below (z > 87.33); z < -87.33 gives 0 by the last
    select whatever the exp computed. Comparisons are false for NaN: NaN stays NaN."""
    x = where(z > _EXP_LIMIT32, _EXP_LIMIT32, z)
    t = fma(x, -_LOG2E, _MAGIC32)
    n = t - _MAGIC32
    r = fma(n, _LN2_HI32, x)
    r = fma(n, _LN2_LO32, r)
    p = fma(r, -_C5, _C4)
    p = fma(p, r, -_C3)
    p = fma(p, r, _C2)
    p = fma(p, r, -_C1)
    p = fma(p, r, 1.0)
    s = 1.0 / (p * exponent_from_bits(t) + 1.0)
    return where(z < -_EXP_LIMIT32, 0.0, s)


@register_jitable
def _sigmoid64(z):
    e = _exp64(-absolute(z))
    s = 1.0 / (e + 1.0)
    return where(z >= 0.0, s, where(z < _EXP_MIN64, 0.0, e * s))


@register_jitable
def _tanh32(z):
    a = absolute(z)
    e = _exp32(where(a > 43.0, -86.0, a * -2.0))  # tanh(43) rounds to 1
    big = (1.0 - e) / (e + 1.0)
    v = z * z
    p = fma(v, -5.70498872745e-3, 2.06390887954e-2)
    p = fma(p, v, -5.37397155531e-2)
    p = fma(p, v, 1.33314422036e-1)
    p = fma(p, v, -3.33332819422e-1)
    small = fma(a * v, p, a)
    t = where(a >= 0.625, big, small)
    return where(z < 0.0, -t, t)


@register_jitable
def _tanh64(z):
    a = absolute(z)
    e = _exp64(a * -2.0)
    big = (1.0 - e) / (e + 1.0)
    v = z * z
    num = fma(fma(v, -9.64399179425052238628e-1, -9.92877231001918586564e1), v,
              -1.61468768441708447952e3)
    den = fma(fma(v + 1.12811678491632931402e2, v, 2.23548839060100448583e3), v,
              4.84406305325125486048e3)
    small = fma(a * v, num / den, a)
    t = where(a >= 0.625, big, small)
    return where(z < 0.0, -t, t)


@register_jitable
def _exp_nonpositive32(z):
    return _exp32(where(z < -_EXP_LIMIT32, -_EXP_LIMIT32, z))


@register_jitable
def _exp_nonpositive64(z):
    return _exp64(z)


@register_jitable
def _log1p_unit32(e):
    # log1p(e) = 2 atanh(u), u = e / (2 + e) in [0, 1/3]: 2u (1 + v/3 + ... + v^7/15),
    # v = u^2 <= 1/9, truncated below an ulp (``activations.log1p_unit``'s float32 body)
    u = e / (2.0 + e)
    v = u * u
    s = fma(v, 1.0 / 15.0, 1.0 / 13.0)
    s = fma(s, v, 1.0 / 11.0)
    s = fma(s, v, 1.0 / 9.0)
    s = fma(s, v, 1.0 / 7.0)
    s = fma(s, v, 1.0 / 5.0)
    s = fma(s, v, 1.0 / 3.0)
    s = fma(s, v, 1.0)
    return (u + u) * s


def exp_nonpositive(z):
    """exp(z) lane-wise for z <= 0 (NaN -> NaN), float32 lean, float64 accurate; below
    the smallest normal the result is that smallest normal (a softmax's terms: the sum
    they join is at least 1)."""
    return _exp_nonpositive32(z) if z.dtype == np.float32 else _exp_nonpositive64(z)


def sigmoid(z):
    """1 / (1 + exp(-z)) lane-wise (float32 lean, float64 accurate)."""
    return _sigmoid32(z) if z.dtype == np.float32 else _sigmoid64(z)


def log1p_unit32(e):
    """log(1 + e) lane-wise for float32 0 <= e <= 1 (NaN -> NaN), to a few ulp (float32
    only: the loss of a float32 sigmoid head, ``kernels``)."""
    return _log1p_unit32(e)


def tanh(z):
    """tanh(z) lane-wise (float32 lean, float64 accurate)."""
    return _tanh32(z) if z.dtype == np.float32 else _tanh64(z)


def _by_dtype(single, double):
    def choose(z):
        return single if z.dtype == types.float32 else double

    return choose


overload(exp_nonpositive)(_by_dtype(_exp_nonpositive32, _exp_nonpositive64))
overload(sigmoid)(_by_dtype(_sigmoid32, _sigmoid64))
overload(tanh)(_by_dtype(_tanh32, _tanh64))
overload(log1p_unit32)(lambda e: _log1p_unit32)
