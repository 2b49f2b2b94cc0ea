"""Input checks run before any compiled kernel sees the data.

Each check names the argument and the problem, and converts legal-but-awkward input
(lists, int arrays, Fortran order, strided views, another float dtype) to the
C-contiguous array of the net's dtype the kernels expect.
"""

import math
import numbers

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


def dtype(value):
    try:
        dt = np.dtype(value)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {value!r}") from None
    if dt.name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dt.name!r}")
    return dt


def integer(name, value, minimum=None, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _real(name, value):
    """value as a float; TypeError unless it is a real number (bool is not)."""
    if type(value) is float:  # the common case, without the ABC checks (a training step)
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def positive_finite(name, value):
    value = _real(name, value)
    if not 0.0 < value < math.inf:  # NaN fails both comparisons
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return value


def finite_float(name, value):
    value = _real(name, value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def nonnegative_finite(name, value):
    value = finite_float(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def sizes(value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"sizes must be a sequence of ints such as (2, 8, 8, 1), got {value!r}")
    if len(value) < 2:
        raise ValueError(f"sizes must have at least 2 entries (inputs, outputs), got {value!r}")
    out = []
    for s in value:
        s = integer("each entry of sizes", s)
        if s < 1:
            raise ValueError(f"sizes must be positive widths, got {tuple(value)!r}")
        out.append(s)
    return tuple(out)


def _numeric_array(name, value):
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged lists
        raise ValueError(f"{name} could not be read as an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def _finite_in(name, arr, dt):
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or inf")
        limit = np.finfo(dt).max
        if arr.size and np.finfo(arr.dtype).max > limit and np.abs(arr).max() > limit:
            raise ValueError(f"{name} has values beyond the {np.dtype(dt).name} range")


def ready(X, n_features, dt):
    """X needs no conversion: an ndarray of dtype dt, shape (n, n_features), C-contiguous
    (the fast path of small calls: only its values are left to check)."""
    return (type(X) is np.ndarray and X.dtype == dt and X.ndim == 2
            and X.shape[1] == n_features and X.flags.c_contiguous)


def features(X, n_features, dt, name="X", finite=True):
    """X as a C-contiguous (n, n_features) array of dtype dt. finite=False leaves the
    NaN/inf check of an X that needs no conversion to the caller (``MLP.forward`` has its
    kernel check it, before computing anything, in the same pass)."""
    if ready(X, n_features, dt):
        if finite:
            _finite_in(name, X, dt)
        return X
    arr = _numeric_array(name, X)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features, but the net's input layer expects {n_features}"
        )
    _finite_in(name, arr, dt)
    return np.ascontiguousarray(arr, dtype=dt)


def _target_array(y, n_samples, n_outputs, name):
    """y as a numeric (n, n_outputs) array; y may be (n,) when n_outputs == 1."""
    arr = _numeric_array(name, y)
    if arr.ndim == 1 and n_outputs == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != n_outputs:
        raise ValueError(
            f"{name} must have shape ({n_samples},) or ({n_samples}, {n_outputs}), "
            f"got {arr.shape}"
        )
    if arr.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but {name} has {arr.shape[0]}")
    return arr


def labels(y, n_samples, n_outputs, dt, name="y"):
    """y as a C-contiguous (n, n_outputs) 0/1 array of dtype dt; y may be (n,) when
    n_outputs == 1."""
    arr = _target_array(y, n_samples, n_outputs, name)
    if not ((arr == 0) | (arr == 1)).all():  # np.isin, 6x faster on small arrays
        raise ValueError(f"{name} must contain only 0 and 1 labels")
    return np.ascontiguousarray(arr, dtype=dt)


def targets(y, n_samples, n_outputs, dt, head, name="y"):
    """y checked for the head: 0/1 labels (sigmoid), one-hot rows (softmax) or finite
    values (identity), as a C-contiguous (n, n_outputs) array of dtype dt."""
    if head == "sigmoid":
        return labels(y, n_samples, n_outputs, dt, name)
    arr = np.ascontiguousarray(_target_array(y, n_samples, n_outputs, name), dtype=dt)
    if head == "softmax":
        if not (((arr == 0) | (arr == 1)).all() and (arr.sum(axis=1) == 1).all()):
            raise ValueError(f"{name} must be one-hot rows (one 1 per row, else 0) for the "
                             "softmax head")
    elif not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr


def sample_weight(w, n_samples, dt):
    """w as a C-contiguous (n,) array of dtype dt: finite, >= 0, with a positive sum."""
    arr = _numeric_array("sample_weight", w)
    if arr.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dt)
    if not np.isfinite(arr).all():
        raise ValueError("sample_weight must be finite (no NaN or inf)")
    if (arr < 0).any():
        raise ValueError("sample_weight must be >= 0")
    if not arr.sum() > 0:
        raise ValueError("sample_weight must have a positive sum")
    return arr


def parameters(weights, biases, dt=None):
    """Weight and bias lists checked for matching shapes and finite values; returns
    (sizes, weights, biases) with arrays of dtype dt (default: the weights' own float
    dtype, float64 for ints)."""
    if not isinstance(weights, (list, tuple)) or not isinstance(biases, (list, tuple)):
        raise TypeError("weights and biases must be lists of arrays")
    if len(weights) == 0 or len(weights) != len(biases):
        raise ValueError(
            f"weights and biases must be non-empty lists of equal length, got "
            f"{len(weights)} and {len(biases)}"
        )
    Ws = [_numeric_array(f"weights[{l}]", W) for l, W in enumerate(weights)]
    bs = [_numeric_array(f"biases[{l}]", b) for l, b in enumerate(biases)]
    if dt is None:
        dt = Ws[0].dtype if Ws[0].dtype.name in DTYPES else np.dtype(np.float64)
    sizes_ = [None]
    for l, (W, b) in enumerate(zip(Ws, bs)):
        if W.ndim != 2 or 0 in W.shape:
            raise ValueError(f"weights[{l}] must be a non-empty 2-D (fan_in, fan_out) array, "
                             f"got shape {W.shape}")
        if sizes_[-1] is not None and W.shape[0] != sizes_[-1]:
            raise ValueError(f"weights[{l}] has fan_in {W.shape[0]}, but the layer before "
                             f"has {sizes_[-1]} outputs")
        if b.shape != (W.shape[1],):
            raise ValueError(f"biases[{l}] must have shape ({W.shape[1]},), got {b.shape}")
        _finite_in(f"weights[{l}]", W, dt)
        _finite_in(f"biases[{l}]", b, dt)
        sizes_[-1:] = [W.shape[0], W.shape[1]]
    return tuple(sizes_), Ws, bs, dt


def permutations(perms, epochs, n):
    arr = _numeric_array("permutations", perms)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"permutations must be an integer array, got dtype {arr.dtype}")
    if arr.shape != (epochs, n):
        raise ValueError(f"permutations must have shape (epochs, n_samples) = ({epochs}, {n}), "
                         f"got {arr.shape}")
    if n and epochs and not _rows_are_permutations(arr):
        raise ValueError("each row of permutations must be a permutation of 0..n_samples-1")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _rows_are_permutations(arr):
    """Every row of the (epochs, n) int array holds each of 0..n-1 once: in range, and
    every (row, value) pair marked (half the time of sorting the rows)."""
    epochs, n = arr.shape
    if arr.min() < 0 or arr.max() >= n:
        return False
    seen = np.zeros((epochs, n), dtype=np.bool_)
    seen[np.arange(epochs)[:, None], arr] = True
    return bool(seen.all())
