"""The one registry of hidden-layer activations: everything keyed by an activation's name.

Each activation is written twice, side by side: a NumPy version on arrays, used by
``fastgeo.reference``, and a compiled version on SIMD vectors used by the Numba kernels
(``activate`` / ``derivative_times``, selected by an integer code so one compiled kernel
serves every activation). Its ``Activation`` entry carries the rest: default init, the
article protocol's gain, its kind for the geometry diagnostics, its ONNX form, its name
in each peer library, its plot colour. Adding an activation is a change to this file
only: a NumPy pair, a branch in each compiled function, an entry in ``ACTIVATIONS``
(tests/test_registry.py runs every consumer on every entry).

Conventions: ReLU'(0) = 0 and leaky ReLU'(0) = LEAKY_SLOPE (the derivative at 0 is
the left one). Sigmoid is evaluated as exp(-|z|) based, so it never overflows. GELU is
the tanh form, 0.5 z (1 + tanh(u / 2)) = z sigmoid(u) with u = 2 sqrt(2 / pi) (z +
0.044715 z^3), computed as the latter (no cancellation in 1 + tanh for z << 0).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from . import vmath
from ._jit import kernel
from .simd import where

LEAKY_SLOPE = 0.01
#: Width of a bounded activation's flat tails for the geometry diagnostics: sigmoid a <
#: 0.05 or a > 0.95 (|z| > 2.94, where sigmoid' < 0.048, a fifth of its peak); tanh |a| >
#: 0.95.
SATURATION = 0.05
#: GELU (tanh form): z sigmoid(z (GELU_A + GELU_B z^2)), GELU_A = 2 sqrt(2 / pi),
#: GELU_B = 0.044715 GELU_A
GELU_A = 2.0 * math.sqrt(2.0 / math.pi)
GELU_B = 0.044715 * GELU_A
#: |z| beyond which GELU's derivative term z sigmoid'(u) u' is computed at the clamp: the
#: term has underflowed there (|u| > 600) and z u' may overflow (0 * inf).
GELU_CLAMP = 20.0


# --- NumPy versions (arrays), used by the reference -------------------------------


def sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def sigmoid_derivative(z, a):
    return a * (1 - a)


def relu(z):
    return np.maximum(z, 0)


def relu_derivative(z, a):
    return (z > 0).astype(z.dtype)


def tanh(z):
    return np.tanh(z)


def tanh_derivative(z, a):
    return 1 - a * a


def leaky_relu(z):
    return np.where(z > 0, z, z * z.dtype.type(LEAKY_SLOPE))


def leaky_relu_derivative(z, a):
    return np.where(z > 0, 1, LEAKY_SLOPE).astype(z.dtype)


def gelu(z):
    return z * sigmoid(z * (GELU_A + GELU_B * z * z))


def gelu_derivative(z, a):
    # s + z s (1 - s) u'(z), s = sigmoid(u); z u' at the clamp beyond |z| = GELU_CLAMP
    s = sigmoid(z * (GELU_A + GELU_B * z * z))
    zc = np.clip(z, -GELU_CLAMP, GELU_CLAMP)
    return s + s * (1 - s) * zc * (GELU_A + 3 * GELU_B * zc * zc)


def silu(z):
    return z * sigmoid(z)


def identity(z):
    return z


def identity_derivative(z, a):
    return np.ones_like(z)


def silu_derivative(z, a):
    s = sigmoid(z)
    return s * (1 + z * (1 - s))


# --- ONNX forms: (helper, src, dst, tag) -> (nodes, {constant name: value}) ---------------


def _onnx_op(op):
    def nodes(helper, src, dst, tag):
        return [helper.make_node(op, [src], [dst])], {}

    return nodes


def _onnx_leaky_relu(helper, src, dst, tag):
    # PRelu with a slope tensor of the net's dtype: exact in float64
    return [helper.make_node("PRelu", [src, "leaky_slope"], [dst])], {"leaky_slope": LEAKY_SLOPE}


def _onnx_gelu(helper, src, dst, tag):
    # z * Sigmoid(z * (GELU_A + GELU_B * z * z)): opset 17 has no Gelu (opset 20 does)
    t = f"{src}_gelu"
    return [helper.make_node("Mul", [src, src], [f"{t}_zz"]),
            helper.make_node("Mul", [f"{t}_zz", "gelu_b"], [f"{t}_bzz"]),
            helper.make_node("Add", [f"{t}_bzz", "gelu_a"], [f"{t}_slope"]),
            helper.make_node("Mul", [src, f"{t}_slope"], [f"{t}_u"]),
            helper.make_node("Sigmoid", [f"{t}_u"], [f"{t}_s"]),
            helper.make_node("Mul", [src, f"{t}_s"], [dst])], {"gelu_a": GELU_A,
                                                               "gelu_b": GELU_B}


def _onnx_silu(helper, src, dst, tag):
    return [helper.make_node("Sigmoid", [src], [f"{src}_s"]),
            helper.make_node("Mul", [src, f"{src}_s"], [dst])], {}


@dataclass(frozen=True)
class Activation:
    """One hidden activation and everything keyed by its name."""

    name: str
    code: int  # its branch in ``activate`` / ``derivative_times``
    value: Callable  # a = f(z), NumPy
    derivative: Callable  # f'(z) from z and a = f(z), NumPy
    default_init: str  # init used when MLP(init=None)
    gain: float  # article protocol: weights randn * sqrt(gain / fan_in)
    kind: str  # "bounded" (saturated fraction), "rectified" or "gated" (dead fraction),
    #            "linear" (neither)
    onnx: Callable  # its ONNX nodes (see _onnx_op), opset 17
    torch: tuple  # (function, keyword arguments) in torch
    jax: tuple  # (function, keyword arguments) in jax
    sklearn: str | None  # scikit-learn's MLP name for it; None: scikit-learn has none
    color: str  # matplotlib colour in every plot
    derivative_needs_z: bool = False  # True: the kernels keep z for backward (else f' from a)
    saturated: Callable | None = field(default=None)  # bounded: mask of a in the flat tails

    def __reduce__(self):  # pickled by name: the entry holds functions
        return get, (self.name,)


ACTIVATIONS = {
    act.name: act
    for act in (
        Activation("sigmoid", 0, sigmoid, sigmoid_derivative, "xavier", 1.0, "bounded",
                   _onnx_op("Sigmoid"), ("torch.sigmoid", {}), ("jax.nn.sigmoid", {}),
                   "logistic", "tab:blue",
                   saturated=lambda a: (a < SATURATION) | (a > 1 - SATURATION)),
        Activation("relu", 1, relu, relu_derivative, "he", 2.0, "rectified",
                   _onnx_op("Relu"), ("torch.relu", {}), ("jax.nn.relu", {}), "relu",
                   "tab:red"),
        Activation("tanh", 2, tanh, tanh_derivative, "xavier", 1.0, "bounded",
                   _onnx_op("Tanh"), ("torch.tanh", {}), ("jax.numpy.tanh", {}), "tanh",
                   "tab:green", saturated=lambda a: np.abs(a) > 1 - SATURATION),
        Activation("leaky_relu", 3, leaky_relu, leaky_relu_derivative, "he", 2.0, "rectified",
                   _onnx_leaky_relu,
                   ("torch.nn.functional.leaky_relu", {"negative_slope": LEAKY_SLOPE}),
                   ("jax.nn.leaky_relu", {"negative_slope": LEAKY_SLOPE}), None,
                   "tab:orange"),
        Activation("gelu", 4, gelu, gelu_derivative, "he", 2.0, "gated", _onnx_gelu,
                   ("torch.nn.functional.gelu", {"approximate": "tanh"}),
                   ("jax.nn.gelu", {"approximate": True}), None, "tab:purple",
                   derivative_needs_z=True),
        Activation("silu", 5, silu, silu_derivative, "he", 2.0, "gated", _onnx_silu,
                   ("torch.nn.functional.silu", {}), ("jax.nn.silu", {}), None, "tab:brown",
                   derivative_needs_z=True),
        # no activation: the net is linear (scikit-learn's "identity"), a baseline
        Activation("identity", 6, identity, identity_derivative, "xavier", 1.0, "linear",
                   _onnx_op("Identity"), ("torch.positive", {}), ("jax.numpy.positive", {}),
                   "identity", "tab:gray"),
    )
}

#: The kinds ``Activation.kind`` takes
KINDS = ("bounded", "rectified", "gated", "linear")


def get(name):
    """The registered activation called ``name``; ValueError naming the choices otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a str, got {type(name).__name__}")
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}"
        ) from None


# --- Compiled scalar helpers, used by the kernels' scalar loops ----------------------
# Precision: every constant is typed as the argument's float type (np.float32(...) in the
# float32 bodies). A bare Python literal is a float64 to numba, and ``1 - a`` on a float32
# ``a`` would silently run the float32 kernels in float64.
#
# No SVML with the PyPI llvmlite: ``math.exp`` in a loop is a scalar libm call (~3-5 ns).
# ``exp_neg`` (exp of x <= 0) and ``log1p_unit`` (log1p on [0, 1]) are written out as
# branch-free polynomials that LLVM vectorizes (~0.6 ns float32, ~1.8 ns float64); their
# accuracy against NumPy over the whole float range is tested in tests/test_fastmath.py.

#: fastmath flags of the helpers below: FMA contraction only. Reassociation would undo
#: the Cody-Waite range reduction (x - n ln2_hi - n ln2_lo).
_HELPER_OPTIONS = {"fastmath": {"contract"}, "error_model": "numpy", "nogil": True}


#: bitcast pairs: same bits, the other type
_BITCAST = {
    types.int32: (types.float32, ir.FloatType()),
    types.int64: (types.float64, ir.DoubleType()),
    types.float32: (types.int32, ir.IntType(32)),
    types.float64: (types.int64, ir.IntType(64)),
}


@intrinsic
def _bitcast(typingctx, x):
    """x's IEEE bits as the other type: int32 <-> float32, int64 <-> float64."""
    if x not in _BITCAST:
        return None
    ty, llty = _BITCAST[x]

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llty)

    return ty(x), codegen


def is_finite(x):
    """x is neither NaN nor +-inf. Compiled, it tests the exponent bits: an integer test
    no fastmath flag can fold (with reassoc and nsz together, LLVM folded
    ``math.isfinite`` of a computed value to true)."""
    return math.isfinite(x)


@overload(is_finite, jit_options=_HELPER_OPTIONS)
def _is_finite(x):
    if x == types.float32:
        def impl(x):
            return (_bitcast(x) & np.int32(0x7F800000)) != np.int32(0x7F800000)
        return impl
    if x == types.float64:
        def impl(x):
            return ((_bitcast(x) & np.int64(0x7FF0000000000000))
                    != np.int64(0x7FF0000000000000))
        return impl
    return None


def exp_neg(x):
    """exp(x) for x <= 0 (and NaN -> NaN); accurate to 2 ulp, denormals included."""
    return np.exp(x)


@overload(exp_neg, jit_options=_HELPER_OPTIONS)
def _exp_neg(x):
    # exp(x) = p(r) * 2**n, n = round(x / ln 2), r = x - n ln 2 (|r| <= ln2 / 2), p a
    # Taylor polynomial (degree 12 / 7: truncation below half an ulp). 2**n is built from
    # its bits in two halves, so that results down to the smallest denormal are exact
    # scalings of p; x is clamped first so that n stays in range (the result is 0 there).
    if x == types.float64:
        def impl(x):
            y = x if x > -1400.0 else -1400.0  # noqa: FURB136
            nf = np.floor(y * 1.4426950408889634 + 0.5)
            r = y - nf * 0.6931471803691238
            r = r - nf * 1.9082149292705877e-10
            p = 2.08767569878681e-09
            p = p * r + 2.505210838544172e-08
            p = p * r + 2.755731922398589e-07
            p = p * r + 2.7557319223985893e-06
            p = p * r + 2.48015873015873e-05
            p = p * r + 0.0001984126984126984
            p = p * r + 0.001388888888888889
            p = p * r + 0.008333333333333333
            p = p * r + 0.041666666666666664
            p = p * r + 0.16666666666666666
            p = p * r + 0.5
            p = p * r + 1.0
            p = p * r + 1.0
            n = np.int32(nf)
            half = np.int32(n >> 1)
            s1 = _bitcast(np.int64(half + 1023) << 52)
            s2 = _bitcast(np.int64(n - half + 1023) << 52)
            e = p * s1 * s2
            return e if x == x else x  # noqa: PLR0124 (NaN test)
        return impl
    if x == types.float32:
        def impl(x):
            y = x if x > np.float32(-150.0) else np.float32(-150.0)  # noqa: FURB136
            nf = np.floor(y * np.float32(1.442695) + np.float32(0.5))
            r = y - nf * np.float32(0.693359375)
            r = r - nf * np.float32(-2.12194440e-4)
            p = np.float32(1.9841270e-4)
            p = p * r + np.float32(1.3888889e-3)
            p = p * r + np.float32(8.3333338e-3)
            p = p * r + np.float32(4.1666668e-2)
            p = p * r + np.float32(0.16666667)
            p = p * r + np.float32(0.5)
            p = p * r + np.float32(1.0)
            p = p * r + np.float32(1.0)
            n = np.int32(nf)
            half = np.int32(n >> 1)
            s1 = _bitcast(np.int32((half + 127) << 23))
            s2 = _bitcast(np.int32((n - half + 127) << 23))
            e = p * s1 * s2
            return e if x == x else x  # noqa: PLR0124 (NaN test)
        return impl
    return None


def log1p_unit(e):
    """log(1 + e) for 0 <= e <= 1 (NaN -> NaN), to a few ulp."""
    return np.log1p(e)


@overload(log1p_unit, jit_options=_HELPER_OPTIONS)
def _log1p_unit(e):
    # log1p(e) = 2 atanh(u), u = e / (2 + e) in [0, 1/3]: the odd series 2u (1 + v/3 +
    # v^2/5 + ...), v = u^2 <= 1/9, truncated below an ulp (17 / 8 terms). Relative
    # accuracy holds down to e -> 0, where log1p(e) ~ e.
    if e == types.float64:
        def impl(e):
            u = e / (2.0 + e)
            v = u * u
            s = 1.0 / 33.0
            s = s * v + 1.0 / 31.0
            s = s * v + 1.0 / 29.0
            s = s * v + 1.0 / 27.0
            s = s * v + 1.0 / 25.0
            s = s * v + 1.0 / 23.0
            s = s * v + 1.0 / 21.0
            s = s * v + 1.0 / 19.0
            s = s * v + 1.0 / 17.0
            s = s * v + 1.0 / 15.0
            s = s * v + 1.0 / 13.0
            s = s * v + 1.0 / 11.0
            s = s * v + 1.0 / 9.0
            s = s * v + 1.0 / 7.0
            s = s * v + 1.0 / 5.0
            s = s * v + 1.0 / 3.0
            s = s * v + 1.0
            return 2.0 * u * s
        return impl
    if e == types.float32:
        def impl(e):
            u = e / (np.float32(2.0) + e)
            v = u * u
            s = np.float32(1.0 / 15.0)
            s = s * v + np.float32(1.0 / 13.0)
            s = s * v + np.float32(1.0 / 11.0)
            s = s * v + np.float32(1.0 / 9.0)
            s = s * v + np.float32(1.0 / 7.0)
            s = s * v + np.float32(1.0 / 5.0)
            s = s * v + np.float32(1.0 / 3.0)
            s = s * v + np.float32(1.0)
            return np.float32(2.0) * u * s
        return impl
    return None


def tanh_fast(z):
    """tanh(z), branch-free (NaN -> NaN), to a few ulp."""
    return np.tanh(z)


@overload(tanh_fast, jit_options=_HELPER_OPTIONS)
def _tanh_fast(z):
    # |z| >= 0.625: (1 - e) / (1 + e) with e = exp(-2|z|) (no cancellation: e <= 0.29);
    # below, Cephes' rational (float64) / polynomial (float32) in z^2.
    if z == types.float64:
        def impl(z):
            a = abs(z)
            e = exp_neg(-2.0 * a)
            big = (1.0 - e) / (1.0 + e)
            v = z * z
            num = (-9.64399179425052238628e-1 * v - 9.92877231001918586564e1) * v \
                - 1.61468768441708447952e3
            den = ((v + 1.12811678491632931402e2) * v + 2.23548839060100448583e3) * v \
                + 4.84406305325125486048e3
            small = a + a * v * (num / den)
            t = big if a >= 0.625 else small
            return -t if z < 0.0 else t
        return impl
    if z == types.float32:
        def impl(z):
            a = abs(z)
            e = exp_neg(np.float32(-2.0) * a)
            big = (np.float32(1.0) - e) / (np.float32(1.0) + e)
            v = z * z
            p = np.float32(-5.70498872745e-3)
            p = p * v + np.float32(2.06390887954e-2)
            p = p * v - np.float32(5.37397155531e-2)
            p = p * v + np.float32(1.33314422036e-1)
            p = p * v - np.float32(3.33332819422e-1)
            small = a + a * v * p
            t = big if a >= np.float32(0.625) else small
            return -t if z < np.float32(0.0) else t
        return impl
    return None


# --- Vector versions (``simd`` Vectors), used by the kernels' fused epilogues ----------

#: Activation codes the kernels use beyond the registry's: the raw logits (no activation)
IDENTITY = -1

#: bit ``code`` set: the activation's compiled derivative reads z (the kernels keep it)
_NEEDS_Z = sum(1 << a.code for a in ACTIVATIONS.values() if a.derivative_needs_z)


# Masked stores: a lane-wise ``where`` that keeps a value loaded from memory, stored back
# to the same place (ReLU and its derivative applied in place in the tile), is turned by
# LLVM into a masked store of the other value (``vmaskmovps``): about 12 cycles per
# vector on AMD Zen, 10x a plain load-blend-store (net B's 64-unit layers: 0.48 instead
# of 0.05 ns per ReLU). Adding 0.0 to the kept value breaks that pattern and changes no
# number (at most a -0.0 becomes +0.0, equal in every later sum and product).


@kernel(internal=True)
def activate(code, z):
    """f(z) lane-wise for the activation ``code`` (IDENTITY: z itself). An unknown code
    gives NaN, never another activation."""
    if code == 0:
        return vmath.sigmoid(z)
    if code == 1:  # + 0.0: see "Masked stores" above; NaN stays NaN
        return where(z <= 0.0, 0.0, z + 0.0)
    if code == 2:
        return vmath.tanh(z)
    if code == 3:
        return where(z > 0.0, z + 0.0, z * LEAKY_SLOPE)
    if code == 4:
        return z * vmath.sigmoid(z * (GELU_A + GELU_B * (z * z)))
    if code == 5:
        return z * vmath.sigmoid(z)
    if code == IDENTITY or code == 6:
        return z
    return z * math.nan


@kernel(internal=True)
def activate8(code, z0, z1, z2, z3, z4, z5, z6, z7):
    """``activate`` on 8 vectors (a layer of a narrow net, ``kernels``)."""
    return (activate(code, z0), activate(code, z1), activate(code, z2), activate(code, z3),
            activate(code, z4), activate(code, z5), activate(code, z6), activate(code, z7))


@kernel(internal=True, inline="always")
def activate8_inline(code, z0, z1, z2, z3, z4, z5, z6, z7):
    """``activate8`` with ReLU and sigmoid as their own functions: a loop compiled for one
    of them (a constant ``code``) calls no dispatch."""
    if code == 1:
        return _relu8(z0, z1, z2, z3, z4, z5, z6, z7)
    if code == 0:
        return _sigmoid8(z0, z1, z2, z3, z4, z5, z6, z7)
    return activate8(code, z0, z1, z2, z3, z4, z5, z6, z7)


@kernel(internal=True)
def _relu8(z0, z1, z2, z3, z4, z5, z6, z7):
    return (where(z0 <= 0.0, 0.0, z0), where(z1 <= 0.0, 0.0, z1), where(z2 <= 0.0, 0.0, z2),
            where(z3 <= 0.0, 0.0, z3), where(z4 <= 0.0, 0.0, z4), where(z5 <= 0.0, 0.0, z5),
            where(z6 <= 0.0, 0.0, z6), where(z7 <= 0.0, 0.0, z7))


@kernel(internal=True)
def _sigmoid8(z0, z1, z2, z3, z4, z5, z6, z7):
    return (vmath.sigmoid(z0), vmath.sigmoid(z1), vmath.sigmoid(z2), vmath.sigmoid(z3),
            vmath.sigmoid(z4), vmath.sigmoid(z5), vmath.sigmoid(z6), vmath.sigmoid(z7))


@kernel(internal=True)
def derivative_times(code, a, z, d):
    """d * f'(z) lane-wise, from a = f(z) or, for activations with ``derivative_needs_z``,
    from z (others may get any vector as z): sigmoid a (1 - a), tanh 1 - a^2, relu
    [a > 0], leaky relu [a > 0] or LEAKY_SLOPE (a > 0 exactly when z > 0 for both). An
    unknown code gives NaN. GELU and SiLU read z."""
    if code == 0:
        return d * (a * (1.0 - a))
    if code == 1:  # d + 0.0: see "Masked stores" above
        return where(a > 0.0, d + 0.0, 0.0)
    if code == 2:
        return d * (1.0 - a * a)
    if code == 3:
        return where(a > 0.0, d + 0.0, d * LEAKY_SLOPE)
    if code == 4:
        s = vmath.sigmoid(z * (GELU_A + GELU_B * (z * z)))
        zc = where(z > GELU_CLAMP, GELU_CLAMP, where(z < -GELU_CLAMP, -GELU_CLAMP, z))
        return d * (s + (s * (1.0 - s)) * (zc * (GELU_A + 3.0 * GELU_B * (zc * zc))))
    if code == 5:
        s = vmath.sigmoid(z)
        return d * (s * (1.0 + z * (1.0 - s)))
    if code == 6:
        return d
    return d * math.nan


@kernel(internal=True)
def needs_z(code):
    """Whether ``derivative_times`` reads z for the activation ``code``."""
    return code >= 0 and (_NEEDS_Z >> code) & 1 == 1
