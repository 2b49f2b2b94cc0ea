"""fastgeo: fast Numba kernels for small dense MLPs, proven against a NumPy reference.

    import fastgeo
    net = fastgeo.MLP((2, 8, 8, 1), activation="relu", seed=0)
    losses = net.fit(X, y, epochs=2000, lr=0.5)
    net.score(X, y)
"""

from . import activations, kernels, reference
from ._version import __version__
from .activations import ACTIVATIONS
from .mlp import BACKENDS, MLP


def __getattr__(name):  # the estimators import scikit-learn (~2 s): only on first use
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import estimator
        return getattr(estimator, name)
    raise AttributeError(f"module 'fastgeo' has no attribute {name!r}")

__all__ = ["ACTIVATIONS", "BACKENDS", "MLP", "__version__", "activations", "kernels", "reference"]
