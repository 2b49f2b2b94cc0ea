"""The exceptions ``MLP`` raises for non-finite numbers, in one place: the kernels' status
codes mapped to exceptions, and the messages both backends share.

Argument errors found before any computation (shapes, dtypes, labels of converted input)
are ``fastgeo._validate``'s; this module holds what a computation reports.
"""

import numpy as np

from .kernels import BATCH_BAD_X, BATCH_BAD_Y, FORWARD_BAD_PARAMS, FORWARD_BAD_X, FORWARD_OVERFLOW

X_NOT_FINITE = "X contains NaN or inf"
PARAMS_NOT_FINITE = "the net's parameters contain NaN or inf"
Y_NOT_LABELS = "y must contain only 0 and 1 labels"


def overflow(name, dtype):
    """The FloatingPointError of a result of ``name`` that came out non-finite."""
    return FloatingPointError(f"{name} overflowed to a non-finite value (inputs or weights "
                              f"too large for {np.dtype(dtype).name})")


def finite(name, value):
    """value, or ``overflow(name)`` raised if any of it is NaN or inf."""
    if not np.all(np.isfinite(value)):
        raise overflow(name, np.asarray(value).dtype)
    return value


def update_overflow(dtype):
    """A train_step whose update would make the parameters non-finite (they are left
    unchanged)."""
    return FloatingPointError(
        f"train_step update overflowed to a non-finite value (inputs, weights or "
        f"lr too large for {np.dtype(dtype).name}); the parameters are unchanged")


def fit_diverged(epoch):
    """A fit whose loss or parameters turned non-finite in ``epoch`` (the parameters are
    restored to the start of that epoch)."""
    return FloatingPointError(
        f"fit: the loss or the parameters became non-finite in epoch {epoch}; "
        f"the parameters are left as they were at the start of epoch {epoch}")


def forward_error(status, dtype):
    """The exception for a ``kernels.forward`` status (None for FORWARD_OK)."""
    if status == FORWARD_BAD_X:
        return ValueError(X_NOT_FINITE)
    if status == FORWARD_BAD_PARAMS:
        return ValueError(PARAMS_NOT_FINITE)
    if status == FORWARD_OVERFLOW:
        return overflow("forward", dtype)
    return None


def batch_error(status):
    """The exception for a ``kernels.check_batch`` status (None for BATCH_OK)."""
    if status == BATCH_BAD_X:
        return ValueError(X_NOT_FINITE)
    if status == BATCH_BAD_Y:
        return ValueError(Y_NOT_LABELS)
    return None
