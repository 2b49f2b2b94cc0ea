"""Side by side: fastgeo against NumPy, PyTorch (eager and torch.compile), JAX, scikit-learn
and ONNX Runtime on the same nets, weights, data and maths.

- ``fastgeo.bench.workloads``: nets A/B/C and the workloads of the performance targets.
- ``fastgeo.bench.peers``: one implementation per library, and the apples-to-apples check.
- ``fastgeo bench`` (``fastgeo.bench.command``): each implementation timed in its own
  process with every thread pool pinned; prints samples/s, ratios and fraction of peak.
- ``tests/bench``: the same comparisons as pytest-benchmark groups (``make bench``).
"""

from .peers import IMPLEMENTATIONS, PEERS
from .workloads import NETS, WORKLOADS

__all__ = ["IMPLEMENTATIONS", "NETS", "PEERS", "WORKLOADS"]
