"""The one copy the asv suite keeps of what fastgeo now shares: the workloads' nets and
data (``fastgeo.bench.workloads``) and the article's protocol (``fastgeo.article.protocol``).

Why a copy: asv runs THIS suite (the checked-out ``benchmarks/``) against the fastgeo of
every commit it measures, including commits from before those modules existed.
``common.py`` takes every definition from the benchmarked commit's fastgeo when it has
it, and from here only when it does not (``common.WORKLOADS_SOURCE`` and
``common.ARTICLE_SOURCE`` say which was used). ``tests/test_asv_suite.py`` checks value
for value that this copy and the shared modules agree: change both together, or asv's
results stop being comparable across commits.

Nothing else may import this module.
"""

from itertools import pairwise

import numpy as np

# --- fastgeo.bench.workloads --------------------------------------------------------------

ACTIVATIONS = ("sigmoid", "relu")
#: nets A, B, C as "in-hidden-hidden-out"
ARCHS = ["2-8-8-1", "2-64-64-1", "32-512-512-1"]


def sizes_of(name):
    """(2, 8, 8, 1) from "2-8-8-1"."""
    return tuple(int(w) for w in name.split("-"))


def features(n, n_features, dtype, seed=0):
    """Standard-normal inputs, (n, n_features), C-contiguous, of the given dtype."""
    return np.random.RandomState(seed).randn(n, n_features).astype(dtype)


def moons(n, dtype, noise=0.2, seed=0):
    """Two-moons (X standardized, y 0/1 of ``dtype``, 1-D), as ``fastgeo demo`` makes them."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X.astype(dtype), y.astype(dtype)


# --- fastgeo.article.protocol ---------------------------------------------------------------

#: the protocol's constants the suite uses
PROTOCOL = {"sizes": [2, 8, 8, 1], "lr": 0.05, "batch_size": 64, "epochs": 800,
            "net_seed": 42, "data_seed": 42}
GAINS = {"sigmoid": 1.0, "relu": 2.0}


def load_data(data_seed=42):
    """make_moons(400, noise=.18, random_state=data_seed), StandardScaler on all 400,
    train_test_split(test_size=.25, random_state=data_seed)."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = make_moons(n_samples=400, noise=0.18, random_state=data_seed)
    X = StandardScaler().fit_transform(X)
    return train_test_split(X, y, test_size=0.25, random_state=data_seed)


def protocol_streams(net_seed, sizes, epochs, n, activations):
    """RandomState(net_seed).randn for W1..WL of each net times sqrt(gain/fan_in),
    reseeding per net, zero biases; then one permutation(n) per epoch from the stream
    after the last net's weights."""
    params = {}
    for act in activations:
        rng = np.random.RandomState(net_seed)
        Ws = [rng.randn(i, o) * np.sqrt(GAINS[act] / i) for i, o in pairwise(sizes)]
        params[act] = (Ws, [np.zeros(o) for o in sizes[1:]])
    perms = np.array([rng.permutation(n) for _ in range(epochs)])
    return params, perms
