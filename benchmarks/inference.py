"""Inference: ``MLP.forward`` (output probabilities) per activation, backend, batch,
architecture and dtype, and the batch-1 latency of net A."""

import fastgeo

from .common import ACTIVATIONS, ARCHS, BACKENDS, DTYPES, Suite, best_seconds, features, sizes

BATCHES = [256, 4096, 65536]


def _pruned_forward(arch, batch):
    # Pruned: 32-512-512-1 at batch 65536 is 18 G multiply-adds and ~270 MB of activations
    # per call. Measured on the 2-core machine (shared, under load), one thread: 2-4 s per
    # call at commit 227d5f0 (numba and numpy alike; 16x the rows of batch 4096 cost
    # 27-50x the time), 5-11 s at 9507637, 20-46 s at 4e430cb. With the set-up's warm-up
    # call and two rounds of at least two samples, its 8 combinations would add 3 minutes
    # or more to a full run that should stay near 10. The same kernels on the same
    # architecture are measured at batches 256 and 4096, and batch 65536 on the two
    # smaller architectures.
    if arch == "32-512-512-1" and batch == 65536:
        return "pruned: 32-512-512-1 at batch 65536 takes 2-4 s per call on 2 cores"
    return None


class Forward(Suite):
    """Seconds per ``net.forward(X)`` call."""

    params = [ACTIVATIONS, BACKENDS, BATCHES, ARCHS, DTYPES]
    param_names = ["activation", "backend", "batch", "arch", "dtype"]
    def pruned(self, activation, backend, batch, arch, dtype):
        return _pruned_forward(arch, batch)

    def build(self, activation, backend, batch, arch, dtype):
        dims = sizes(arch)
        net = fastgeo.MLP(dims, activation, seed=0, dtype=dtype, backend=backend)
        X = features(batch, dims[0], dtype)
        net.forward(X)  # compiles (or loads) the very kernel timed below: same shapes, same path
        return {"net": net, "X": X}

    def time_forward(self, activation, backend, batch, arch, dtype):
        self.net.forward(self.X)


class ForwardPerSample(Suite):
    """Nanoseconds per sample of ``net.forward`` at batch 4096 (lower is better).

    Pruned to batch 4096: at 256 the figure is mostly per-call overhead and at 65536 it
    costs the most time; ``Forward`` has all three batches in seconds per call."""

    params = [ACTIVATIONS, BACKENDS, ARCHS, DTYPES]
    param_names = ["activation", "backend", "arch", "dtype"]
    batch = 4096

    def build(self, activation, backend, arch, dtype):
        dims = sizes(arch)
        net = fastgeo.MLP(dims, activation, seed=0, dtype=dtype, backend=backend)
        X = features(self.batch, dims[0], dtype)
        net.forward(X)
        return {"net": net, "X": X}

    def track_ns_per_sample(self, activation, backend, arch, dtype):
        return best_seconds(lambda: self.net.forward(self.X)) / self.batch * 1e9

    track_ns_per_sample.unit = "ns/sample"


class ForwardBatch1(Suite):
    """Seconds per ``net.forward(x)`` of ONE sample through net A (2-8-8-1): the
    online-inference latency, ``fastgeo bench``'s row "A forward batch 1". At this size
    the figure is the per-call overhead (validation, dispatch, the compiled call): what
    a user evaluating a net sample by sample pays.

    Hook: the batch-1 latency of the njit-callable kernel API (issue 11, item 8) inside a
    user's ``@njit`` loop goes beside this as another ``time_`` method of this class
    (``fastgeo bench`` reports it through ``fastgeo.bench.peers.njit_api_latency``)."""

    params = [ACTIVATIONS, BACKENDS, DTYPES]
    param_names = ["activation", "backend", "dtype"]
    arch = ARCHS[0]

    def build(self, activation, backend, dtype):
        dims = sizes(self.arch)
        net = fastgeo.MLP(dims, activation, seed=0, dtype=dtype, backend=backend)
        X = features(1, dims[0], dtype)
        net.forward(X)  # compiles (or loads) the kernel timed below
        return {"net": net, "X": X}

    def time_forward(self, activation, backend, dtype):
        self.net.forward(self.X)
