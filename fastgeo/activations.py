"""The one registry of hidden-layer activations.

Each activation is written twice, side by side: a NumPy version on arrays, used by
``fastgeo.reference``, and a scalar version compiled into the Numba kernels
(``activate`` / ``activate_derivative``, selected by an integer code so one compiled
kernel serves every activation). Adding an activation is a change to this file only:
a NumPy pair, a branch in each scalar dispatcher, an entry in ``ACTIVATIONS``.

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


# --- Scalar versions, compiled into the kernels ------------------------------------


@kernel(inline="always")
def scalar_sigmoid(z):
    e = math.exp(-abs(z))
    s = 1 / (1 + e)
    return s if z >= 0 else e * s


@kernel(inline="always")
def activate(code, z):
    """f(z) for the activation with this code (NaN in, NaN out)."""
    if code == 0:
        return scalar_sigmoid(z)
    elif code == 1:
        return 0.0 if z <= 0 else z
    elif code == 2:
        return math.tanh(z)
    else:
        return z if z > 0 else z * LEAKY_SLOPE


@kernel(inline="always")
def activate_derivative(code, z, a):
    """f'(z), given z and a = f(z)."""
    if code == 0:
        return a * (1 - a)
    elif code == 1:
        return 1.0 if z > 0 else 0.0
    elif code == 2:
        return 1 - a * a
    else:
        return 1.0 if z > 0 else LEAKY_SLOPE
