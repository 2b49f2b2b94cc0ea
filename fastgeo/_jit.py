"""The one decorator every fastgeo kernel is compiled with, and its on-disk cache.

Numba's own cache keys a function on the source of *its* file only, so editing a
callee in another module (an activation in ``activations.py``) would silently run
the stale machine code. fastgeo's cache keys every kernel on a digest of all the
kernel source files instead. When no cache folder is writable (read-only
``NUMBA_CACHE_DIR`` and a read-only install), kernels still compile, uncached,
with one warning.
"""

import hashlib
import os
import warnings

from numba import njit, types
from numba.core import caching

#: Files whose source any compiled kernel depends on.
KERNEL_SOURCES = ("_jit.py", "simd.py", "vmath.py", "activations.py", "kernels.py")

#: Flags that let LLVM reassociate and contract, but keep NaN/inf semantics
#: (no ``nnan``/``ninf``), so non-finite checks inside kernels still work.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def _sources_digest():
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for name in KERNEL_SOURCES:
        with open(os.path.join(here, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


SOURCES_DIGEST = _sources_digest()


def _package_stamped(locator_class):
    class Locator(locator_class):
        def get_source_stamp(self):
            return SOURCES_DIGEST

    Locator.__name__ = "Fastgeo" + locator_class.__name__
    return Locator


class _CacheImpl(caching.CompileResultCacheImpl):
    _locator_classes = [
        _package_stamped(cls)
        for cls in (
            caching.UserProvidedCacheLocator,
            caching.InTreeCacheLocator,
            caching.UserWideCacheLocator,
        )
    ]


class _FunctionCache(caching.FunctionCache):
    _impl_class = _CacheImpl


_warned_uncached = False


def _enable_cache(dispatcher):
    global _warned_uncached
    try:
        dispatcher._cache = _FunctionCache(dispatcher.py_func)
    except RuntimeError:  # no writable cache folder anywhere
        if not _warned_uncached:
            warnings.warn(
                "fastgeo: no writable numba cache folder (NUMBA_CACHE_DIR, the package's "
                "__pycache__ and the user cache are all read-only); kernels compile "
                "on every start",
                UserWarning,
                stacklevel=3,
            )
            _warned_uncached = True


def _one_specialisation(dispatcher, internal):
    """Calls from other kernels compile dispatcher for the argument types with their literal
    values dropped (numba would otherwise compile another copy for each constant passed,
    e.g. ``_load_rows(..., 0, ...)`` next to ``_load_rows(..., row, ...)``). An internal
    kernel that returns an array is refused as it compiles (``INTERNAL_OPTIONS``)."""
    typed = dispatcher.get_call_template

    def get_call_template(args, kws):
        template = typed(tuple(types.unliteral(a) for a in args),
                         {k: types.unliteral(v) for k, v in kws.items()})
        if internal:
            for compiled in dispatcher.overloads.values():
                if _holds_array(compiled.signature.return_type):
                    raise TypeError(
                        f"internal kernel {dispatcher.py_func.__name__} returns an array; "
                        "internal kernels compile without reference counting and must not")
        return template

    dispatcher.get_call_template = get_call_template
    return dispatcher


def _holds_array(t):
    if isinstance(t, types.BaseTuple):
        return any(_holds_array(x) for x in t)
    return isinstance(t, types.Array)


#: ``numba.njit`` options of an internal kernel (also for fastgeo's own ``@overload``s).
#: Internal kernels work on arrays their callers own: they never allocate an array or
#: return one (``kernel`` refuses one that does), so they compile without numba's
#: reference counting (``_nrt``). With it, a helper inlined in a loop
#: left incref/decref calls of its array arguments in the loop, each a call that spills
#: every vector register: 10-15% of net A's forward and of the article's float64 fit.
INTERNAL_OPTIONS = {"fastmath": FASTMATH, "error_model": "numpy", "nogil": True,
                    "no_cpython_wrapper": True, "no_cfunc_wrapper": True, "_nrt": False}


def kernel(fn=None, *, parallel=False, fastmath=None, inline="never", internal=False):
    """``numba.njit`` with fastgeo's defaults: numpy error model, safe fastmath, disk cache.

    ``internal=True`` is for helpers only ever called from other kernels: no Python
    entry point is generated for them (less to compile) and they are not cached on
    their own (the kernels that call them carry their code)."""

    def decorate(f):
        options = {}
        if internal:  # INTERNAL_OPTIONS' wrappers and reference counting
            options = {k: INTERNAL_OPTIONS[k]
                       for k in ("no_cpython_wrapper", "no_cfunc_wrapper", "_nrt")}
        dispatcher = njit(
            f,
            parallel=parallel,
            fastmath=set(FASTMATH if fastmath is None else fastmath),
            error_model="numpy",
            nogil=True,
            inline=inline,
            **options,
        )
        if os.environ.get("NUMBA_DISABLE_JIT", "0") == "0":
            if not internal:
                _enable_cache(dispatcher)
            if inline == "never":
                _one_specialisation(dispatcher, internal)
        return dispatcher

    return decorate if fn is None else decorate(fn)
