"""Side by side: fastgeo against NumPy, PyTorch (eager and torch.compile), JAX, scikit-learn
and ONNX Runtime on the same nets, weights, data and maths.

- ``fastgeo.bench.workloads``: the nets, data, inputs and workloads every instrument
  shares (``fastgeo bench``, the pytest-benchmark groups in ``tests/bench``, the asv
  suite in ``benchmarks/``).
- ``fastgeo.bench.peers``: one implementation per library, and the apples-to-apples check.
- ``fastgeo.bench.timing``: the one timer of ``fastgeo bench``.
- ``fastgeo.bench.peak``: the machine's ceilings, the FMA limit and the BLAS reference.
- ``fastgeo.bench.pinning``: every library's thread pools held to one count.
- ``fastgeo bench`` (``fastgeo.bench.command``, ``_worker``): each implementation timed in
  its own process with every thread pool pinned; prints samples/s, ratios, the fractions
  of the FMA limit and of the BLAS reference, and the targets; ``fastgeo.bench.chart``
  draws the speed-up chart (``--plot``).
"""

from .peers import IMPLEMENTATIONS, PEERS
from .workloads import NETS, WORKLOADS

__all__ = ["IMPLEMENTATIONS", "NETS", "PEERS", "WORKLOADS"]
