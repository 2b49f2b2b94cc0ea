"""Output heads: the output layer's function and the loss it is trained on, from logits.

A head maps the last layer's logits z (n, k) to the prediction, and gives the batch loss
and its gradient dL/dz. The three are the canonical (loss, link) pairs, so dL/dz is
always (prediction - y) scaled by the reduction:

    sigmoid   p = sigmoid(z)   BCE      max(z, 0) - z y + log(1 + exp(-|z|)),
                                        mean over samples and outputs (fastgeo's loss
                                        since the first version; one output: scikit-learn's)
    softmax   p = softmax(z)   CE       logsumexp(z) - sum_k y_k z_k, mean over samples
    identity  p = z            squared  0.5 sum_k (z_k - y_k)^2, mean over samples

All three are computed from the logits, so no probability is clipped: scikit-learn
clips p to [eps, 1 - eps] before taking logs, and the two agree wherever p stays inside
the clip. scikit-learn reports the squared loss as 0.5 * mean over samples *and outputs*
while its gradient is that of the sum over outputs (the form above); for one output the
two are the same number, and ``sklearn_loss`` converts.

Sample weights w follow scikit-learn: the mean over samples becomes sum_i w_i l_i /
sum_i w_i, and dL/dz of sample i is w_i (p_i - y_i) / sum(w) (times 1 / k for sigmoid).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import activations

#: The compiled kernels' codes for the heads (``Head.code``)
SIGMOID, SOFTMAX, IDENTITY = range(3)


def _mean(per_sample, sample_weight):
    """The mean over samples, weighted as scikit-learn's ``np.average`` when weights are
    given."""
    if sample_weight is None:
        return np.mean(per_sample)
    return np.dot(sample_weight, per_sample) / sample_weight.sum()


def _scaled(residual, sample_weight, k=1):
    """residual / (n k), or residual w / (sum(w) k) per row with sample weights."""
    if sample_weight is None:
        return residual / (residual.shape[0] * k)
    scale = sample_weight / (sample_weight.sum() * k)
    return residual * scale.astype(residual.dtype)[:, None]


def _sigmoid_loss(z, Y, sample_weight=None):
    elementwise = np.maximum(z, 0) - z * Y + np.log1p(np.exp(-np.abs(z)))
    if sample_weight is None:
        return np.mean(elementwise)
    return _mean(elementwise.mean(axis=1), sample_weight)


def _sigmoid_delta(z, Y, sample_weight=None):
    """(p - y) / (n k); for y = 1, p - 1 is -sigmoid(-z): the same number, without the
    cancellation that costs float32 its digits when p is near 1."""
    residual = np.where(Y == 1, -activations.sigmoid(-z), activations.sigmoid(z))
    return _scaled(residual, sample_weight, z.shape[1])


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _logsumexp(z):
    top = z.max(axis=1)
    return top + np.log(np.exp(z - top[:, None]).sum(axis=1))


def _softmax_loss(z, Y, sample_weight=None):
    return _mean(_logsumexp(z) * Y.sum(axis=1) - (Y * z).sum(axis=1), sample_weight)


def _softmax_delta(z, Y, sample_weight=None):
    return _scaled(softmax(z) - Y, sample_weight)


def _identity(z):
    return z


def _squared_loss(z, Y, sample_weight=None):
    return _mean(0.5 * ((z - Y) ** 2).sum(axis=1), sample_weight)


def _squared_delta(z, Y, sample_weight=None):
    return _scaled(z - Y, sample_weight)


@dataclass(frozen=True)
class Head:
    """An output head: ``output(z)`` the prediction, ``loss(z, Y, sample_weight)`` the
    batch loss and ``delta(z, Y, sample_weight)`` its gradient with respect to z, all
    from the logits z (n, k). ``sklearn`` is scikit-learn's ``out_activation_``."""

    name: str
    code: int
    loss_name: str
    output: Callable
    loss: Callable
    delta: Callable
    sklearn: str
    min_outputs: int = 1

    def sklearn_loss(self, loss, n_outputs):
        """This head's batch loss as scikit-learn reports it in ``loss_curve_`` (the L2
        penalty is added unchanged)."""
        return loss / n_outputs if self.name == "identity" else loss

    def __reduce__(self):
        return get, (self.name,)


HEADS = {
    head.name: head
    for head in (
        Head("sigmoid", SIGMOID, "binary cross-entropy", activations.sigmoid, _sigmoid_loss,
             _sigmoid_delta, sklearn="logistic"),
        Head("softmax", SOFTMAX, "categorical cross-entropy", softmax, _softmax_loss,
             _softmax_delta, sklearn="softmax", min_outputs=2),
        Head("identity", IDENTITY, "squared error", _identity, _squared_loss, _squared_delta,
             sklearn="identity"),
    )
}


def get(name):
    """The head called ``name``; ValueError naming the known ones otherwise."""
    if isinstance(name, Head):
        return name
    if not isinstance(name, str):
        raise TypeError(f"head must be a str, got {type(name).__name__}")
    try:
        return HEADS[name]
    except KeyError:
        raise ValueError(f"unknown head {name!r}; known: {', '.join(HEADS)}") from None
