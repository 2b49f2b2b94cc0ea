"""Property-based fuzzing of fastgeo's public API (MLP and MLPClassifier).

Whatever goes in (any shape, dtype, memory layout, NaN/inf anywhere, magnitudes up to
1e30, odd hyper-parameters), the only acceptable outcomes are a clean ValueError,
TypeError or FloatingPointError, or finite output of the documented shape. Inputs are
never modified, and a call that raises leaves the net's parameters finite. Warnings
are errors here (pytest's ``error::RuntimeWarning``), so an overflow warning fails too.

Raw ``fastgeo.kernels`` are not fuzzed: they document that they do no validation.
"""

import itertools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastgeo
from fastgeo import MLPClassifier

CLEAN = (ValueError, TypeError, FloatingPointError)
#: examples per test; FASTGEO_FUZZ_EXAMPLES=1000 for a deeper run than CI's
FUZZ = settings(max_examples=int(os.environ.get("FASTGEO_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

FLOAT_LIMIT = 1e30
NONFINITE = (np.nan, np.inf, -np.inf)
DTYPES = ("float64", "float32", "float16", "int64", "int32", "uint8", "int8", "bool",
          "complex128", "object", "str")
LAYOUTS = ("C", "F", "strided", "reversed", "readonly", "list", "broadcast")


@st.composite
def values(draw, shape, nonfinite=True, limit=FLOAT_LIMIT):
    """float64 array of `shape`: magnitudes up to `limit`, mostly moderate, with NaN/inf
    at random positions when `nonfinite`."""
    scale = draw(st.sampled_from([1.0, 1e3, 1e10, limit]))
    elements = st.floats(-1.0, 1.0, allow_nan=False).map(lambda v: v * scale)
    a = draw(hnp.arrays(np.float64, shape, elements=elements))
    if nonfinite and a.size and draw(st.booleans()):
        k = draw(st.integers(1, min(3, a.size)))
        flat = a.reshape(-1)
        for _ in range(k):
            flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(NONFINITE))
    return a


def cast(a, dtype):
    """a (float64) as `dtype`, without numpy cast warnings (ints wrap from rounded,
    clipped values)."""
    if dtype in ("float64", "complex128", "object"):
        return a.astype(dtype)
    if dtype == "str":
        return a.astype(str)
    if dtype == "bool":
        return np.nan_to_num(a) > 0
    if dtype.startswith("float"):
        lim = np.finfo(dtype).max
        with np.errstate(over="ignore", invalid="ignore"):
            return np.where(np.isfinite(a), np.clip(a, -lim, lim), a).astype(dtype)
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -2**53), min(info.max, 2**53)  # exactly representable bounds
    return np.clip(np.nan_to_num(a, posinf=0, neginf=0), lo, hi).round().astype(dtype)


def layout(a, how):
    """The same values as `a` in another memory layout."""
    if how == "C" or a.ndim == 0:
        return np.ascontiguousarray(a)
    if how == "F":
        return np.asfortranarray(a)
    if how == "strided":
        big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if how == "reversed":
        return a[::-1].copy()[::-1]
    if how == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    if how == "list":
        return a.tolist()
    if how == "broadcast" and a.ndim == 2 and a.shape[0] > 0:
        return np.broadcast_to(a[:1], a.shape)  # zero row stride, read-only
    return a


@st.composite
def arrays(draw, shape, dtypes=DTYPES, nonfinite=True):
    dtype = draw(st.sampled_from(dtypes))
    a = cast(draw(values(shape, nonfinite=nonfinite)), dtype)
    return layout(a, draw(st.sampled_from(LAYOUTS)))


@st.composite
def shapes(draw, n_features):
    """Mostly (n, n_features), sometimes any other shape of 0 to 3 dimensions."""
    n = draw(st.integers(0, 6))
    if draw(st.integers(0, 4)) > 0:
        return (n, n_features)
    return draw(st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple))


@st.composite
def nets(draw):
    sizes = draw(st.lists(st.integers(1, 5), min_size=2, max_size=4))
    activation = draw(st.sampled_from(sorted(fastgeo.ACTIVATIONS)))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    backend = draw(st.sampled_from(["numba", "numba", "numpy"]))
    return fastgeo.MLP(sizes, activation=activation, dtype=dtype, seed=draw(st.integers(0, 99)),
                       backend=backend)


@st.composite
def labels(draw, n, n_outputs):
    """Mostly valid 0/1 labels of shape (n,) or (n, outputs); sometimes anything."""
    kind = draw(st.integers(0, 5))
    shape = (n,) if n_outputs == 1 and draw(st.booleans()) else (n, n_outputs)
    if kind >= 2:
        y = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 1)))
        return layout(cast(y.astype(np.float64), draw(st.sampled_from(DTYPES))),
                      draw(st.sampled_from(LAYOUTS)))
    if kind == 1:
        shape = draw(st.lists(st.integers(0, 4), max_size=3).map(tuple))
    return draw(arrays(shape))


def snapshot(x):
    if isinstance(x, np.ndarray):
        return x.copy()
    return x


def unchanged(before, after):
    if isinstance(before, np.ndarray):
        if before.dtype.kind in "fc":
            return np.array_equal(before, after, equal_nan=True)
        # object arrays: the copy holds the same objects, so identity covers NaN
        return before.shape == after.shape and before.tolist() == after.tolist()
    return True


def finite_array(a, shape=None):
    a = np.asarray(a)
    assert a.dtype.kind == "f", a.dtype
    assert np.isfinite(a).all()
    if shape is not None:
        assert a.shape == shape
    return a


def attempt(fn, *args, **kwargs):
    """fn(...) or None when it raised one of the clean errors."""
    try:
        return fn(*args, **kwargs)
    except CLEAN:
        return None


# --- MLP ------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_forward_predict(data):
    net = data.draw(nets())
    X = data.draw(arrays(data.draw(shapes(net.sizes[0]))))
    X0, params0 = snapshot(X), net.params.copy()
    p = attempt(net.forward, X)
    if p is not None:
        p = finite_array(p, (np.shape(X)[0], net.sizes[-1]))
        assert p.dtype == net.dtype
        assert ((p >= 0) & (p <= 1)).all()
        pred = net.predict(X)
        assert set(np.unique(pred)) <= {0, 1}
    assert unchanged(X0, X)
    np.testing.assert_array_equal(net.params, params0)


@FUZZ
@given(data=st.data())
def test_loss_gradients_train_step_score(data):
    net = data.draw(nets())
    X = data.draw(arrays(data.draw(shapes(net.sizes[0]))))
    n = np.shape(X)[0] if np.ndim(X) else 0
    y = data.draw(labels(n, net.sizes[-1]))
    lr = data.draw(st.one_of(st.floats(1e-6, 10.0), st.sampled_from([0.0, -1.0, np.nan, 1e30])))
    X0, y0 = snapshot(X), snapshot(y)

    value = attempt(net.loss, X, y)
    if value is not None:
        assert isinstance(value, float) and np.isfinite(value) and value >= 0
    grads = attempt(net.gradients, X, y)
    if grads is not None:
        for g, p in zip(grads[0] + grads[1], net.weights + net.biases):
            finite_array(g, p.shape)
    score = attempt(net.score, X, y)
    if score is not None:
        assert 0.0 <= score <= 1.0
    step = attempt(net.train_step, X, y, lr)
    if step is not None:
        assert np.isfinite(step)
    finite_array(net.params)
    assert unchanged(X0, X) and unchanged(y0, y)


@FUZZ
@given(data=st.data())
def test_fit(data):
    net = data.draw(nets())
    X = data.draw(arrays(data.draw(shapes(net.sizes[0]))))
    n = np.shape(X)[0] if np.ndim(X) else 0
    y = data.draw(labels(n, net.sizes[-1]))
    epochs = data.draw(st.one_of(st.integers(0, 5), st.sampled_from([-1, 2.0, True, None])))
    lr = data.draw(st.one_of(st.floats(1e-4, 5.0), st.sampled_from(
        [0.0, -0.5, np.nan, np.inf, 1e30, 1e300, 1e-300, "0.1", True])))
    batch_size = data.draw(st.one_of(st.none(), st.integers(1, 8),
                                     st.sampled_from([0, -3, 1.5, 2**40])))
    shuffle_seed = data.draw(st.one_of(st.none(), st.integers(0, 2**63),
                                       st.sampled_from([-1, 1.0])))
    X0, y0 = snapshot(X), snapshot(y)
    history = attempt(net.fit, X, y, epochs, lr, batch_size=batch_size,
                      shuffle_seed=shuffle_seed)
    if history is not None:
        finite_array(history, (epochs,))
    finite_array(net.params)
    assert unchanged(X0, X) and unchanged(y0, y)


@FUZZ
@given(data=st.data())
def test_fit_huge_inputs_raise_or_stay_finite(data):
    """Finite inputs up to 1e30 with a large step: the loss may overflow, but only ever as
    FloatingPointError with the parameters left finite."""
    net = data.draw(nets())
    n = data.draw(st.integers(1, 6))
    X = data.draw(values((n, net.sizes[0]), nonfinite=False))
    y = data.draw(hnp.arrays(np.int64, (n, net.sizes[-1]), elements=st.integers(0, 1)))
    lr = data.draw(st.sampled_from([0.1, 10.0, 1e10]))
    try:
        history = net.fit(X, y, 3, lr)
    except FloatingPointError:
        pass
    else:
        finite_array(history)
    finite_array(net.params)
    attempt(net.forward, X)


@FUZZ
@given(data=st.data())
def test_from_params_and_set_params(data):
    sizes = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4))
    Ws = [data.draw(arrays((i, o))) for i, o in itertools.pairwise(sizes)]
    bs = [data.draw(arrays((o,))) for o in sizes[1:]]
    if data.draw(st.booleans()):  # break one shape
        l = data.draw(st.integers(0, len(Ws) - 1))
        Ws[l] = data.draw(arrays(data.draw(st.lists(st.integers(0, 4), max_size=3).map(tuple))))
    dtype = data.draw(st.sampled_from([None, "float32", "float64", "int8", "complex64", 3]))
    net = attempt(fastgeo.MLP.from_params, Ws, bs, dtype=dtype)
    if net is not None:
        finite_array(net.params)
        assert net.sizes == (np.shape(Ws[0])[0],) + tuple(np.shape(b)[0] for b in bs)
        out = attempt(net.forward, np.ones((2, net.sizes[0])))
        if out is not None:
            finite_array(out, (2, net.sizes[-1]))
        other = fastgeo.MLP(net.sizes, dtype=net.dtype)
        attempt(other.set_params, Ws, bs)
        finite_array(other.params)


HYPER = st.one_of(st.integers(-3, 6), st.floats(allow_nan=True), st.text(max_size=4),
                  st.none(), st.booleans(), st.just(2**70), st.lists(st.integers(-1, 4),
                                                                        max_size=4))


@FUZZ
@given(sizes=st.one_of(HYPER, st.lists(HYPER, max_size=4)), activation=HYPER | st.sampled_from(
       sorted(fastgeo.ACTIVATIONS)), init=HYPER | st.sampled_from(["he", "xavier", "glorot"]),
       seed=HYPER, dtype=HYPER | st.sampled_from(["float32", "float64", "float16", "int64"]),
       backend=HYPER | st.sampled_from(["numba", "numpy"]))
def test_constructor(sizes, activation, init, seed, dtype, backend):
    try:
        net = fastgeo.MLP(sizes, activation=activation, init=init, seed=seed, dtype=dtype,
                          backend=backend)
    except CLEAN:
        return
    finite_array(net.params)
    assert net.sizes == tuple(sizes)


# --- MLPClassifier ------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.DataConversionWarning")
@FUZZ
@given(data=st.data())
def test_classifier(data):
    n_features = data.draw(st.integers(1, 3))
    X = data.draw(arrays(data.draw(shapes(n_features))))
    n = np.shape(X)[0] if np.ndim(X) else 0
    y = data.draw(st.one_of(
        hnp.arrays(np.int64, (n,), elements=st.integers(0, 2)),
        hnp.arrays(np.int64, (n,), elements=st.integers(0, 2)).map(
            lambda a: np.array(["x", "y", "z"])[a]),
        labels(n, 1)))
    clf = MLPClassifier(hidden_layer_sizes=data.draw(st.sampled_from([(), (3,), (4, 2)])),
                        activation=data.draw(st.sampled_from(sorted(fastgeo.ACTIVATIONS))),
                        dtype=data.draw(st.sampled_from(["float64", "float32"])),
                        max_iter=3, random_state=0,
                        early_stopping=data.draw(st.booleans()))
    X0, y0 = snapshot(X), snapshot(y)
    if attempt(clf.fit, X, y) is None:
        return
    assert unchanged(X0, X) and unchanged(y0, y)
    X_new = data.draw(arrays(data.draw(shapes(n_features))))
    proba = attempt(clf.predict_proba, X_new)
    if proba is not None:
        finite_array(proba, (np.shape(X_new)[0], len(clf.classes_)))
        np.testing.assert_allclose(proba.sum(axis=1), 1)
        pred = clf.predict(X_new)
        assert set(pred) <= set(clf.classes_)
        finite_array(clf.decision_function(X_new))
        finite_array(clf.predict_log_proba(X_new), proba.shape)
