"""SIMD vectors for the compiled kernels: the primitives the kernels are written in.

A ``Vector`` holds LANES[dtype] numbers of one float type (8 float32 or 4 float64: 256
bits) and compiles to an LLVM vector, so a kernel keeps its accumulators in registers
and says exactly which operations it wants, instead of hoping LLVM's loop vectorizer
finds them. LLVM lowers these vectors for whatever CPU numba targets (AVX-512, AVX2,
plain SSE2 for ``NUMBA_CPU_NAME=generic``), so nothing here assumes one instruction set.

Kernels use them as numbers::

    acc = fma(broadcast(w), load(X, q, t), acc)     # acc + w * X[q, t:t + LANES]
    store(A, o, t, where(acc > zero, acc, zero))

Every primitive is emitted in place by its caller (an ``@intrinsic``, or a lowering of
the arithmetic operators): no function of its own to compile, which keeps the kernels'
cold compile short. Without the JIT (``NUMBA_DISABLE_JIT=1``) each name is instead a
plain NumPy function on arrays of LANES elements (its ``py_`` twin), so the same kernel
bodies run as Python and the test suite covers their logic.

Floating-point flags: each instruction carries its own, ``contract`` (a * b + c may
fuse) and nothing else; numba's kernel-wide fastmath flags are only applied to
instructions that have none, so the vector code is never reassociated (which would undo
the Cody-Waite range reduction and the magic-bias rounding in ``vmath``).

Loads and stores take (array, row, column) of a C-contiguous 2-D array (or (array,
index) of a 1-D one) and touch LANES consecutive elements; with ``NUMBA_BOUNDSCHECK=1``
both ends are checked.
"""

import operator

import numpy as np
from llvmlite import ir
from numba import config, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed, lower_builtin
from numba.core.typing.templates import AbstractTemplate, infer_global, signature
from numba.extending import intrinsic, models, register_model
from numba.np.arrayobj import populate_array

#: Lanes per vector: 256 bits.
LANES = {np.dtype(np.float32): 8, np.dtype(np.float64): 4}
_NB_LANES = {types.float32: 8, types.float64: 4}
_FLAGS = ("contract",)


class Vector(types.Type):
    """LANES[dtype] floats of one type, held in a vector register."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = _NB_LANES[dtype]
        super().__init__(name=f"Vector({dtype} x {self.lanes})")


class Mask(types.Type):
    """The lane-wise result of a comparison of Vectors, for ``where``."""

    def __init__(self, lanes):
        self.lanes = lanes
        super().__init__(name=f"Mask({lanes})")


def _llvm_float(dtype):
    return ir.FloatType() if dtype == types.float32 else ir.DoubleType()


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(_llvm_float(fe_type.dtype), fe_type.lanes))


@register_model(Mask)
class _MaskModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.IntType(1), fe_type.lanes))


_VECTORS = {dt: Vector(dt) for dt in _NB_LANES}


# --- code generation helpers -----------------------------------------------------------


def _flagged(instr, flags=_FLAGS):
    for f in flags:
        instr.flags.append(f)
    return instr


def _splat(builder, value, vty):
    """An LLVM vector of vty with every lane = value (an LLVM scalar)."""
    undef = ir.Constant(vty, ir.Undefined)
    first = builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    return builder.shuffle_vector(first, undef, mask)


def _as_vector(context, builder, value, ty, vec):
    """value (of numba type ty: a Vector, or a real scalar) as an LLVM vector like vec."""
    if isinstance(ty, Vector):
        return value
    scalar = context.cast(builder, value, ty, vec.dtype)
    return _splat(builder, scalar, context.get_value_type(vec))


def _vector_of(*tys):
    """The Vector type among the operand types (all Vectors must agree), or None."""
    found = None
    for ty in tys:
        if isinstance(ty, Vector):
            if found is not None and found != ty:
                return None
            found = ty
        elif not isinstance(ty, (types.Float, types.Integer)):
            return None
    return found


def _intrinsic_fn(builder, name, vty, n_args):
    fnty = ir.FunctionType(vty, [vty] * n_args)
    suffix = f"v{vty.count}f{32 if isinstance(vty.element, ir.FloatType) else 64}"
    return cgutils.get_or_insert_function(builder.module, fnty, f"llvm.{name}.{suffix}")


def _element_pointer(context, builder, aryty, ary, inds):
    """Pointer to ary[inds] (C layout), checking inds and the vector's last element when
    NUMBA_BOUNDSCHECK is on."""
    array = context.make_array(aryty)(context, builder, ary)
    shape = cgutils.unpack_tuple(builder, array.shape, aryty.ndim)
    strides = cgutils.unpack_tuple(builder, array.strides, aryty.ndim)
    if config.BOUNDSCHECK:
        last = builder.add(inds[-1], ir.Constant(inds[-1].type, _NB_LANES[aryty.dtype] - 1))
        for axis, (ind, dim) in enumerate(zip(inds[:-1] + [inds[-1], last],
                                              shape + [shape[-1]])):
            cgutils.do_boundscheck(context, builder, ind, dim, min(axis, aryty.ndim - 1))
    return cgutils.get_item_pointer2(context, builder, array.data, shape, strides,
                                     aryty.layout, inds)


def _array_ok(aryty, ndim):
    return (isinstance(aryty, types.Array) and aryty.ndim == ndim and aryty.layout == "C"
            and aryty.dtype in _NB_LANES)


def _compiled(python_twin):
    """The decorated intrinsic under the JIT, python_twin (its NumPy model) without it;
    either way the result carries the twin's name and docstring."""

    def choose(compiled):
        chosen = python_twin if config.DISABLE_JIT else compiled
        if chosen is compiled:
            compiled.__doc__ = python_twin.__doc__
        return chosen

    return choose


# --- loads, stores, broadcasts ---------------------------------------------------------


def _index(context, builder, ty, value):
    return context.cast(builder, value, ty, types.intp)


def py_load(a, i, j):
    """a[i, j:j + LANES] as a Vector (a 2-D, C-contiguous)."""
    return a[i, j:j + LANES[a.dtype]].copy()


def py_store(a, i, j, v):
    """a[i, j:j + LANES] = v."""
    a[i, j:j + LANES[a.dtype]] = v


def py_load1(a, j):
    """a[j:j + LANES] as a Vector (a 1-D, contiguous)."""
    return a[j:j + LANES[a.dtype]].copy()


def py_store1(a, j, v):
    """a[j:j + LANES] = v."""
    a[j:j + LANES[a.dtype]] = v


def py_broadcast(x):
    """A Vector with every lane = x (x a float32 or float64 scalar: its type decides)."""
    dt = np.dtype(type(x)) if isinstance(x, np.floating) else np.dtype(np.float64)
    return np.full(LANES[dt], x, dtype=dt)


def py_broadcast_at(a, i):
    """A Vector with every lane = a[i] (a 1-D, contiguous; i >= 0: no negative-index
    wraparound, which costs a compare and a conditional move per load)."""
    return np.full(LANES[a.dtype], a[i], dtype=a.dtype)


def _scalar_pointer(context, builder, a, ary, ity, i):
    """Pointer to element i of the 1-D array ary (type a): no wraparound, bounds-checked
    under NUMBA_BOUNDSCHECK."""
    ind = _index(context, builder, ity, i)
    array = context.make_array(a)(context, builder, ary)
    if config.BOUNDSCHECK:
        cgutils.do_boundscheck(context, builder, ind,
                               cgutils.unpack_tuple(builder, array.shape, 1)[0], 0)
    return builder.gep(array.data, [ind])


def _vector_pointer(context, builder, aryty, ary, index_types, indices, vec):
    inds = [_index(context, builder, t, v) for t, v in zip(index_types, indices)]
    ptr = _element_pointer(context, builder, aryty, ary, inds)
    return builder.bitcast(ptr, context.get_value_type(vec).as_pointer())


@_compiled(py_load)
@intrinsic
def load(typingctx, a, i, j):
    if not (_array_ok(a, 2) and isinstance(i, types.Integer) and isinstance(j, types.Integer)):
        return None
    vec = _VECTORS[a.dtype]

    def codegen(context, builder, sig, args):
        ptr = _vector_pointer(context, builder, a, args[0], sig.args[1:], args[1:], vec)
        return builder.load(ptr, align=a.dtype.bitwidth // 8)

    return vec(a, i, j), codegen


@_compiled(py_store)
@intrinsic
def store(typingctx, a, i, j, v):
    if not (_array_ok(a, 2) and isinstance(v, Vector) and v.dtype == a.dtype):
        return None

    def codegen(context, builder, sig, args):
        ptr = _vector_pointer(context, builder, a, args[0], sig.args[1:3], args[1:3], v)
        builder.store(args[3], ptr, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(a, i, j, v), codegen


@_compiled(py_load1)
@intrinsic
def load1(typingctx, a, j):
    if not (_array_ok(a, 1) and isinstance(j, types.Integer)):
        return None
    vec = _VECTORS[a.dtype]

    def codegen(context, builder, sig, args):
        ptr = _vector_pointer(context, builder, a, args[0], sig.args[1:], args[1:], vec)
        return builder.load(ptr, align=a.dtype.bitwidth // 8)

    return vec(a, j), codegen


@_compiled(py_store1)
@intrinsic
def store1(typingctx, a, j, v):
    if not (_array_ok(a, 1) and isinstance(v, Vector) and v.dtype == a.dtype):
        return None

    def codegen(context, builder, sig, args):
        ptr = _vector_pointer(context, builder, a, args[0], sig.args[1:2], args[1:2], v)
        builder.store(args[2], ptr, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(a, j, v), codegen


@_compiled(py_broadcast)
@intrinsic
def broadcast(typingctx, x):
    if x not in _VECTORS:
        return None
    vec = _VECTORS[x]

    def codegen(context, builder, sig, args):
        return _splat(builder, args[0], context.get_value_type(vec))

    return vec(x), codegen


@_compiled(py_broadcast_at)
@intrinsic
def broadcast_at(typingctx, a, i):
    if not (_array_ok(a, 1) and isinstance(i, types.Integer)):
        return None
    vec = _VECTORS[a.dtype]

    def codegen(context, builder, sig, args):
        value = builder.load(_scalar_pointer(context, builder, a, args[0], sig.args[1], args[1]))
        return _splat(builder, value, context.get_value_type(vec))

    return vec(a, i), codegen


def py_get(a, i):
    """a[i] (a 1-D, contiguous; i >= 0): an element without numba's negative-index
    wraparound, whose compare and select per access keep LLVM from vectorizing loops
    over computed indices (a 9,000-element copy: 7.1 -> 0.7 us)."""
    return a[i]


def py_put(a, i, x):
    """a[i] = x (a 1-D, contiguous; i >= 0), without the wraparound (``get``)."""
    a[i] = x


def _elements_ok(aryty):
    return (isinstance(aryty, types.Array) and aryty.ndim == 1 and aryty.layout == "C"
            and isinstance(aryty.dtype, types.Number))


@_compiled(py_get)
@intrinsic
def get(typingctx, a, i):
    if not (_elements_ok(a) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_scalar_pointer(context, builder, a, args[0], sig.args[1], args[1]))

    return a.dtype(a, i), codegen


@_compiled(py_put)
@intrinsic
def put(typingctx, a, i, x):
    if not (_elements_ok(a) and isinstance(i, types.Integer) and isinstance(x, types.Number)):
        return None

    def codegen(context, builder, sig, args):
        value = context.cast(builder, args[2], sig.args[2], a.dtype)
        builder.store(value, _scalar_pointer(context, builder, a, args[0], sig.args[1], args[1]))
        return context.get_dummy_value()

    return types.none(a, i, x), codegen


def py_rows_of(a, r, n, s):
    """An (n, s) C-contiguous view of a's memory from a[r, 0] on (a 2-D, C-contiguous;
    n s elements must fit): the same buffer in rows of another length."""
    return a[r:].reshape(-1)[:n * s].reshape(n, s)


@_compiled(py_rows_of)
@intrinsic
def rows_of(typingctx, a, r, n, s):
    # numba's reshape would do, but it compares the sizes in float64 (uintp vs intp),
    # which the float32 kernels must not contain
    if not (_array_ok(a, 2) and all(isinstance(x, types.Integer) for x in (r, n, s))):
        return None

    def codegen(context, builder, sig, args):
        r, n, s = (_index(context, builder, t, v) for t, v in zip(sig.args[1:], args[1:]))
        array = context.make_array(a)(context, builder, args[0])
        rows, cols = cgutils.unpack_tuple(builder, array.shape, 2)
        start = builder.mul(r, cols)
        if config.BOUNDSCHECK:  # the view's last element lies inside a
            last = builder.sub(builder.add(start, builder.mul(n, s)), ir.Constant(r.type, 1))
            cgutils.do_boundscheck(context, builder, last, builder.mul(rows, cols), 0)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(
            context.get_data_type(a.dtype)))
        view = context.make_array(a)(context, builder)
        populate_array(view, data=builder.gep(array.data, [start]),
                       shape=cgutils.pack_array(builder, [n, s]),
                       strides=cgutils.pack_array(builder, [builder.mul(s, itemsize), itemsize]),
                       itemsize=itemsize, meminfo=array.meminfo, parent=array.parent)
        return impl_ret_borrowed(context, builder, a, view._getvalue())

    return a(a, r, n, s), codegen


# --- arithmetic: the operators + - * / and comparisons on Vectors ----------------------


def _register_operator(op, emit, result=lambda vec: vec):
    """Typing and in-place lowering of ``op`` when an operand is a Vector (a real scalar
    operand is broadcast in the Vector's type)."""

    @infer_global(op)
    class _Typing(AbstractTemplate):
        def generic(self, args, kws):
            if len(args) == 2 and not kws and any(isinstance(a, Vector) for a in args):
                vec = _vector_of(*args)
                if vec is not None:
                    return signature(result(vec), *args)
            return None

    def lower(context, builder, sig, args):
        vec = _vector_of(*sig.args)
        x = _as_vector(context, builder, args[0], sig.args[0], vec)
        y = _as_vector(context, builder, args[1], sig.args[1], vec)
        return emit(builder, x, y)

    for a, b in ((Vector, Vector), (Vector, types.Number), (types.Number, Vector)):
        lower_builtin(op, a, b)(lower)


_register_operator(operator.add, lambda b, x, y: _flagged(b.fadd(x, y)))
_register_operator(operator.sub, lambda b, x, y: _flagged(b.fsub(x, y)))
_register_operator(operator.mul, lambda b, x, y: _flagged(b.fmul(x, y)))
_register_operator(operator.truediv, lambda b, x, y: _flagged(b.fdiv(x, y)))
for _op, _sym in ((operator.gt, ">"), (operator.ge, ">="), (operator.lt, "<"),
                  (operator.le, "<=")):
    # ordered comparisons: NaN compares false
    _register_operator(_op, lambda b, x, y, _sym=_sym: b.fcmp_ordered(_sym, x, y),
                       lambda vec: Mask(vec.lanes))


@infer_global(operator.neg)
class _NegTyping(AbstractTemplate):
    def generic(self, args, kws):
        if len(args) == 1 and isinstance(args[0], Vector):
            return signature(args[0], args[0])
        return None


@lower_builtin(operator.neg, Vector)
def _lower_neg(context, builder, sig, args):
    return _flagged(builder.fneg(args[0]), ())


def py_fma(a, b, c):
    """a * b + c, fused where the CPU has FMA (``llvm.fmuladd``); scalars broadcast."""
    return a * b + c


@_compiled(py_fma)
@intrinsic
def fma(typingctx, a, b, c):
    vec = _vector_of(a, b, c)
    if vec is None:
        return None

    def codegen(context, builder, sig, args):
        vals = [_as_vector(context, builder, v, t, vec) for v, t in zip(args, sig.args)]
        return builder.call(_intrinsic_fn(builder, "fmuladd", vals[0].type, 3), vals)

    return vec(a, b, c), codegen


def py_where(mask, a, b):
    """Lane-wise mask ? a : b (scalars broadcast)."""
    dt = a.dtype if isinstance(a, np.ndarray) else b.dtype
    return np.where(mask, a, b).astype(dt)


@_compiled(py_where)
@intrinsic
def where(typingctx, mask, a, b):
    vec = _vector_of(a, b)
    if not isinstance(mask, Mask) or vec is None or vec.lanes != mask.lanes:
        return None

    def codegen(context, builder, sig, args):
        x = _as_vector(context, builder, args[1], sig.args[1], vec)
        y = _as_vector(context, builder, args[2], sig.args[2], vec)
        return builder.select(args[0], x, y)

    return vec(mask, a, b), codegen


def _unary(llvm_name):
    """An intrinsic applying ``llvm.<llvm_name>`` to each lane."""

    @intrinsic
    def op(typingctx, v):
        if not isinstance(v, Vector):
            return None

        def codegen(context, builder, sig, args):
            return builder.call(_intrinsic_fn(builder, llvm_name, args[0].type, 1), [args[0]])

        return v(v), codegen

    return op


def py_rint(v):
    """Each lane rounded to the nearest integer, ties to even (``llvm.rint``)."""
    return np.rint(v)


def py_floor(v):
    """Each lane rounded down (``llvm.floor``)."""
    return np.floor(v)


def py_absolute(v):
    """|v| lane-wise (``llvm.fabs``: clears the sign bit, NaN stays NaN)."""
    return np.abs(v)


rint = _compiled(py_rint)(_unary("rint"))
floor = _compiled(py_floor)(_unary("floor"))
absolute = _compiled(py_absolute)(_unary("fabs"))


def py_pow2(n):
    """2**n for lanes holding integers n in the normal range (float32 -126..127, float64
    -1022..1023), built from the exponent bits."""
    if n.dtype == np.float32:
        return ((n.astype(np.int32) + 127) << 23).view(np.float32)
    return ((n.astype(np.int64) + 1023) << 52).view(np.float64)


@_compiled(py_pow2)
@intrinsic
def pow2(typingctx, n):
    if not isinstance(n, Vector):
        return None
    bits, bias, shift = (32, 127, 23) if n.dtype == types.float32 else (64, 1023, 52)

    def codegen(context, builder, sig, args):
        ity = ir.VectorType(ir.IntType(bits), n.lanes)
        k = builder.fptosi(args[0], ity)
        k = builder.add(k, ir.Constant(ity, [bias] * n.lanes))
        k = builder.shl(k, ir.Constant(ity, [shift] * n.lanes))
        return builder.bitcast(k, args[0].type)

    return n(n), codegen


def py_exponent_from_bits(t):
    """The float32 lanes whose bits are t's shifted left by 23: for t = 1.5 * 2**23 + 127 +
    n (n an integer, -126 <= n <= 127, the "magic bias" form of a rounded value), 2**n."""
    return (t.view(np.int32) << 23).view(np.float32)


@_compiled(py_exponent_from_bits)
@intrinsic
def exponent_from_bits(typingctx, t):
    if not (isinstance(t, Vector) and t.dtype == types.float32):
        return None

    def codegen(context, builder, sig, args):
        ity = ir.VectorType(ir.IntType(32), t.lanes)
        k = builder.shl(builder.bitcast(args[0], ity), ir.Constant(ity, [23] * t.lanes))
        return builder.bitcast(k, args[0].type)

    return t(t), codegen


def py_evens(a, b):
    """Lanes 0, 2, 4, ... of a followed by b: with odds, splits interleaved pairs (x0 y0
    x1 y1 ...) into their two streams."""
    return np.concatenate([a, b])[0::2]


def py_odds(a, b):
    """Lanes 1, 3, 5, ... of a followed by b."""
    return np.concatenate([a, b])[1::2]


def _picker(first):
    @intrinsic
    def pick(typingctx, a, b):
        if not (isinstance(a, Vector) and a == b):
            return None

        def codegen(context, builder, sig, args):
            i32 = ir.IntType(32)
            mask = ir.Constant(ir.VectorType(i32, a.lanes), list(range(first, 2 * a.lanes, 2)))
            return builder.shuffle_vector(args[0], args[1], mask)

        return a(a, b), codegen

    return pick


evens = _compiled(py_evens)(_picker(0))
odds = _compiled(py_odds)(_picker(1))


def py_hsum(v):
    """The sum of the lanes, as a pairwise tree (fixed order: deterministic)."""
    while v.shape[0] > 1:
        h = v.shape[0] // 2
        v = (v[:h] + v[h:]).astype(v.dtype)
    return v[0]


@_compiled(py_hsum)
@intrinsic
def hsum(typingctx, v):
    if not isinstance(v, Vector):
        return None

    def codegen(context, builder, sig, args):
        x = args[0]
        n = v.lanes
        i32 = ir.IntType(32)
        while n > 1:
            h = n // 2
            lo = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(i32, h), list(range(h))))
            hi = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(i32, h),
                                                          list(range(h, n))))
            x = _flagged(builder.fadd(lo, hi))
            n = h
        return builder.extract_element(x, ir.Constant(i32, 0))

    return v.dtype(v), codegen


def py_lanes(a):
    """LANES for the dtype of array a (a compile-time constant in kernels)."""
    return LANES[a.dtype]


@_compiled(py_lanes)
@intrinsic
def lanes(typingctx, a):
    if not (isinstance(a, types.Array) and a.dtype in _NB_LANES):
        return None
    n = _NB_LANES[a.dtype]

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, n)

    return types.intp(a), codegen
