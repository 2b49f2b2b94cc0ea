"""The one registry of hidden-layer activations.

Each activation is written twice, side by side: a NumPy version on arrays, used by
``fastgeo.reference``, and a compiled version used by the Numba kernels
(``activate_row`` / ``multiply_derivative_row``, selected by an integer code so one
compiled kernel serves every activation). Adding an activation is a change to this
file only: a NumPy pair, a branch in each compiled function, an entry in ``ACTIVATIONS``.

Conventions: ReLU'(0) = 0 and leaky ReLU'(0) = LEAKY_SLOPE (the derivative at 0 is
the left one). Sigmoid is evaluated as exp(-|z|) based, so it never overflows.
"""

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._jit import kernel

LEAKY_SLOPE = 0.01


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


@dataclass(frozen=True)
class Activation:
    name: str
    code: int  # the branch of the scalar dispatchers below
    value: Callable  # a = f(z), NumPy
    derivative: Callable  # f'(z) from z and a = f(z), NumPy
    default_init: str  # init used when MLP(init=None)


ACTIVATIONS = {
    act.name: act
    for act in (
        Activation("sigmoid", 0, sigmoid, sigmoid_derivative, "xavier"),
        Activation("relu", 1, relu, relu_derivative, "he"),
        Activation("tanh", 2, tanh, tanh_derivative, "xavier"),
        Activation("leaky_relu", 3, leaky_relu, leaky_relu_derivative, "he"),
    )
}


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


# --- Compiled versions, used by the kernels ---------------------------------------
# The kernels keep a batch tile feature-major: row r of Z/A holds unit r for each of the
# tile's samples. The per-activation loops below run along such a row; the branch on
# ``code`` sits outside the loop so each loop is branch-free and can vectorize.


@kernel
def scalar_sigmoid(z):
    e = math.exp(-abs(z))
    s = 1 / (1 + e)
    return s if z >= 0 else e * s


@kernel
def activate_row(code, Z, A, r, m):
    """A[r, :m] = f(Z[r, :m]) (NaN in, NaN out)."""
    if code == 0:
        for t in range(m):
            A[r, t] = scalar_sigmoid(Z[r, t])
    elif code == 1:
        for t in range(m):
            z = Z[r, t]
            A[r, t] = 0.0 if z <= 0 else z
    elif code == 2:
        for t in range(m):
            A[r, t] = math.tanh(Z[r, t])
    else:
        for t in range(m):
            z = Z[r, t]
            A[r, t] = z if z > 0 else z * LEAKY_SLOPE


@kernel
def multiply_derivative_row(code, Z, A, D, r, m):
    """D[r, :m] *= f'(Z[r, :m]), given A = f(Z)."""
    if code == 0:
        for t in range(m):
            D[r, t] *= A[r, t] * (1 - A[r, t])
    elif code == 1:
        for t in range(m):
            D[r, t] = D[r, t] if Z[r, t] > 0 else 0.0
    elif code == 2:
        for t in range(m):
            D[r, t] *= 1 - A[r, t] * A[r, t]
    else:
        for t in range(m):
            D[r, t] = D[r, t] if Z[r, t] > 0 else D[r, t] * LEAKY_SLOPE
