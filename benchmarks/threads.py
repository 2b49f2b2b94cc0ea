"""The numba backend's parallel paths: the same workloads on 1 and 2 threads.

Every other benchmark runs numba on one thread (benchmarks/__init__.py says why), where
``fastgeo.MLP`` always takes its serial kernels. At 2 threads the large calls take the
parallel ones (``fastgeo.backends``, from 4M multiply-adds per call): the forward pass
split into blocks of whole tiles, and a training step's gradient summed per block into
partials, the blocks run on a pool of Python threads (the kernels release the GIL). The
fit stays one serial compiled call (``fit_into``) at any thread count, so its two rows
should agree: a measure of the noise. Expect more noise here than
anywhere else on a machine that is running anything besides the benchmark."""

import fastgeo

from .common import ACTIVATIONS, Suite, features, moons, restore, start_weights

PHASES = ["forward", "train_step", "fit"]


class Threads(Suite):
    """numba backend, float64. forward: 2-64-64-1 at batch 65536; train_step: 2-64-64-1 at
    batch 4096; fit: 2-8-8-1 on two-moons, 1000 samples, 200 full-batch epochs."""

    params = [ACTIVATIONS, PHASES, [1, 2]]
    param_names = ["activation", "phase", "threads"]

    def build(self, activation, phase, threads):
        if phase == "forward":
            net = fastgeo.MLP((2, 64, 64, 1), activation, seed=0)
            X = features(65536, 2, "float64")
            call = lambda: net.forward(X)
        elif phase == "train_step":
            net = fastgeo.MLP((2, 64, 64, 1), activation, seed=0)
            X, y = moons(4096, "float64")
            call = lambda: net.train_step(X, y, 0.01)
        else:
            net = fastgeo.MLP((2, 8, 8, 1), activation, seed=0)
            X, y = moons(1000, "float64")
            call = lambda: net.fit(X, y, 200, 0.5)
        p0 = start_weights(net)
        call()
        return {"net": net, "call": call, "p0": p0}

    def reset(self):
        restore(self.net, self.p0)

    def time_numba(self, activation, phase, threads):
        self.call()
