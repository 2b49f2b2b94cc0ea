"""Geometry diagnostics for any ``fastgeo.MLP``: what each hidden layer does to the data.

``diagnose(net, X, y)`` returns, for every hidden layer l = 1..L-1 (z_l = pre-activation,
a_l = post-activation, over the rows of X):

* ``z_std``, ``a_std``: std over ALL entries (samples x units), as the article's
  "hidden std"; ``z_range``, ``a_range``: [min, max] over all entries.
* ``saturated_fraction``: for bounded activations (``kind`` "bounded" in the registry,
  ``fastgeo.activations``), the fraction of entries in the flat tails: sigmoid a < 0.05
  or a > 0.95 (|z| > 2.94, where sigmoid' < 0.048, a fifth of its peak); tanh |a| >
  0.95. None for the others.
* ``dead_fraction``: for rectified (ReLU, leaky ReLU) and gated (GELU, SiLU: z times a
  sigmoid gate) activations, the fraction of UNITS with z <= 0 on every row of X (dead on
  this data: a ReLU unit passes no signal and gets no gradient there; a leaky one still
  passes 1%; a gated one passes at most |min f| and a small gradient).
  ``inactive_fraction``: fraction of entries with z <= 0. None for bounded activations
  and for the linear one (identity), which neither saturates nor dies.
* ``probe_accuracy``: linear-probe accuracy: a logistic regression (features
  standardized first, so the probe does not care about the layer's scale; L2, C = 1,
  the newton-cholesky solver: the same optimum as sklearn's default lbfgs, ten times
  faster on these few features) fit on a_l of the probe's training rows and scored on a_l
  of its test rows — how linearly separable the classes are at that depth.
  ``input_probe_accuracy`` is the same on the raw inputs, the baseline.
* ``effective_rank``: exp of the Shannon entropy of the normalized singular values of
  the centred representation (Roy & Vetterli, 2007): with s_i the singular values of
  a_l minus its column means and p_i = s_i / sum(s), erank = exp(-sum p_i log p_i). It
  is k for k equal non-zero singular values, between 1 and min(n, units) otherwise, and
  0 for a representation with no spread at all. ``input_effective_rank`` likewise.
"""

import numpy as np

from . import activations
from .activations import SATURATION  # noqa: F401 (re-exported: the tails' width)


def effective_rank(H, center=True):
    """exp(entropy of s / sum(s)), s the singular values of H (rows = samples), centred
    column-wise first unless center=False; 0.0 when H has no spread."""
    H = np.asarray(H, dtype=float)
    if H.ndim != 2:
        raise ValueError(f"H must be 2-D (samples, units), got shape {H.shape}")
    if center:
        H = H - H.mean(axis=0)
    if H.size == 0:
        return 0.0
    s = np.linalg.svd(H, compute_uv=False)
    total = s.sum()
    if not np.isfinite(total) or total <= np.finfo(float).tiny * max(H.shape):
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def saturated_fraction(a, activation):
    """Fraction of entries of a in the flat tails of a bounded activation (see the module
    docstring); None for activations without tails."""
    act = activations.get(activation)
    if act.kind != "bounded":
        return None
    return float(np.mean(act.saturated(np.asarray(a))))


def dead_fraction(z, activation):
    """Fraction of units (columns) with z <= 0 on every row; None for activations that
    cannot die."""
    if activations.get(activation).kind not in ("rectified", "gated"):
        return None
    z = np.asarray(z)
    return float(np.mean(np.all(z <= 0, axis=0)))


def probe_accuracy(H_train, y_train, H_test=None, y_test=None):
    """Accuracy of a standardized logistic regression fit on (H_train, y_train), scored on
    (H_test, y_test), or on the training rows when no test rows are given. A single-class
    y_train gives the majority rate."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_train = np.asarray(y_train).ravel()
    if H_test is None:
        H_test, y_test = H_train, y_train
    y_test = np.asarray(y_test).ravel()
    if np.unique(y_train).size < 2:
        return float(np.mean(y_test == y_train[0]))
    probe = make_pipeline(StandardScaler(),
                          LogisticRegression(solver="newton-cholesky", max_iter=200))
    probe.fit(np.asarray(H_train, dtype=float), y_train)
    return float(probe.score(np.asarray(H_test, dtype=float), y_test))


def layer_stats(z, a, activation):
    """Everything ``diagnose`` reports about one hidden layer except the probe."""
    z = np.asarray(z, dtype=float)
    a = np.asarray(a, dtype=float)
    return {
        "z_std": float(z.std()),
        "z_range": [float(z.min()) + 0.0, float(z.max()) + 0.0],
        "a_std": float(a.std()),
        "a_range": [float(a.min()) + 0.0, float(a.max()) + 0.0],
        "saturated_fraction": saturated_fraction(a, activation),
        "dead_fraction": dead_fraction(z, activation),
        "inactive_fraction": (float(np.mean(z <= 0)) if activations.get(activation).kind
                              in ("rectified", "gated") else None),
        "effective_rank": effective_rank(a),
    }


def diagnose(net, X, y=None, X_test=None, y_test=None, probe=True):
    """Per-hidden-layer diagnostics of ``net`` (any ``fastgeo.MLP``) on data.

    Statistics are taken on X_test when given, else on X. Probes (when y is given and
    probe is True, or "last" for the last hidden layer only) fit on the representations
    of X and score on those of X_test (or X); layers without a probe report None.
    Returns {"activation", "n_samples", "input_probe_accuracy", "input_effective_rank",
    "layers": [{"layer": l, z_std, z_range, a_std, a_range, saturated_fraction,
    dead_fraction, inactive_fraction, effective_rank, probe_accuracy}, ...]}.
    """
    X = np.asarray(X, dtype=float)
    if (X_test is None) != (y_test is None):
        raise ValueError("give both X_test and y_test, or neither")
    if probe not in (True, False, "last"):
        raise ValueError(f"probe must be True, False or 'last', got {probe!r}")
    do_probe = probe is not False and y is not None
    n_hidden = len(net.sizes) - 2
    X_eval = X if X_test is None else np.asarray(X_test, dtype=float)
    zs, acts = net.forward_trace(X_eval)
    if do_probe and X_test is not None:
        _, acts_train = net.forward_trace(X)
    else:
        acts_train = acts
    y_eval = y if X_test is None else y_test
    out = {"activation": net.activation, "n_samples": int(X_eval.shape[0]),
           "input_probe_accuracy": None, "input_effective_rank": effective_rank(X_eval)}
    if do_probe and probe is True:
        out["input_probe_accuracy"] = probe_accuracy(X, y, X_eval, y_eval)
    layers = []
    for l in range(1, n_hidden + 1):
        stats = {"layer": l}
        stats.update(layer_stats(zs[l - 1], acts[l], net.activation))
        probed = do_probe and (probe is True or l == n_hidden)
        stats["probe_accuracy"] = (probe_accuracy(acts_train[l], y, acts[l], y_eval)
                                   if probed else None)
        layers.append(stats)
    out["layers"] = layers
    return out
