"""Memory: a fit's peak memory does not grow with the number of epochs, and the cost of
forward on 1e7 rows.

Python-side allocations (NumPy arrays, lists) are measured with tracemalloc; the
compiled kernels allocate through numba's NRT, which tracemalloc does not see, so a
subprocess with NUMBA_NRT_STATS=1 counts NRT allocations/frees and watches the
resident set size.

Measured costs (stated, and asserted as upper bounds below):

* ``MLP.fit``: beyond X/Y converted once, Python allocates the (epochs,) float64 loss
  history (8 bytes per epoch) and nothing else per epoch. The ``train`` kernel
  allocates its gradient/saved/partials buffers once per call, and each mini-batch
  allocates and frees five scratch vectors of O(units) (layer offsets; z, a, delta);
  nothing is kept, so the peak is flat in epochs.
* ``MLP.forward(X)`` streams: rows are computed one at a time into the (n, outputs)
  result; nothing of size n x width is stored. Its peak beyond X is the result plus
  one n x n_features bool mask from the finiteness check (plus a converted copy of X
  if X is not C-contiguous of the net's dtype): for 1e7 x 2 float64 rows and one
  output, 80 MB + 20 MB.
* ``MLPClassifier.predict_proba``/``decision_function`` compute logits in chunks of at
  most 2**20 units (16 MB of scratch) and allocate O(n x n_classes) results.
"""

import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import fastgeo
from fastgeo import MLPClassifier


def traced_peak(fn):
    """(result, peak bytes allocated by fn beyond what was allocated before it)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(256, 2)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.float64)
    return X, y


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mlp_fit_python_peak_flat_in_epochs(data, dtype):
    X, y = data
    X = X.astype(dtype)
    net = fastgeo.MLP((2, 32, 32, 1), dtype=dtype)
    net.fit(X, y, 1, 0.1, batch_size=32, shuffle_seed=0)  # compile outside the trace
    peaks = {}
    for epochs in (5, 500):
        _, peaks[epochs] = traced_peak(
            lambda e=epochs: net.fit(X, y, e, 0.1, batch_size=32, shuffle_seed=0))
    # the only per-epoch growth allowed: three float64 arrays of one value per epoch (the
    # history, scikit-learn's reported loss, the learning rates)
    assert peaks[500] - peaks[5] <= 3 * 8 * (500 - 5) + 4096, peaks


def test_classifier_fit_python_peak_flat_in_epochs(data):
    X, y = data
    clf = MLPClassifier((32,), n_iter_no_change=10**6, random_state=0)  # runs max_iter
    peaks = {}
    for epochs in (1, 5, 300):  # the first fit compiles outside the compared traces
        clf.set_params(max_iter=epochs)
        with pytest.warns(UserWarning, match="Maximum iterations"):
            _, peaks[epochs] = traced_peak(lambda: clf.fit(X, y))
        assert clf.n_iter_ == epochs
    # per epoch only the loss_curve_ entry (a float object and a list slot) is kept
    assert peaks[300] - peaks[5] <= 64 * (300 - 5) + 8192, peaks


NRT_PROBE = r"""
import json, sys
import numpy as np
import fastgeo
from numba.core.runtime import rtsys

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

rng = np.random.RandomState(0)
X = rng.randn(64, 2)
y = (X[:, 0] > 0).astype(np.float64)
net = fastgeo.MLP((2, 128, 128, 1))   # 17k parameters: 135 kB per copy
net.fit(X, y, 2, 0.01, batch_size=16)  # compile / load, warm up
out = {}
for epochs in (20, 400):
    before, rss0 = rtsys.get_allocation_stats(), rss()
    net.fit(X, y, epochs, 0.01, batch_size=16, shuffle_seed=1)
    after = rtsys.get_allocation_stats()
    out[epochs] = {"alloc": after.alloc - before.alloc, "free": after.free - before.free,
                   "live": after.alloc - after.free, "rss_growth": rss() - rss0}
print(json.dumps(out))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_train_kernel_allocations_balanced_and_rss_flat():
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    proc = subprocess.run([sys.executable, "-c", NRT_PROBE], env=env, check=False,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    batches_per_epoch = 64 // 16
    for epochs, m in out.items():
        assert m["alloc"] == m["free"], m  # every NRT allocation of the fit was freed
        assert m["live"] == out[20]["live"], out  # nothing accumulates across calls
        # a few O(units) scratch vectors per mini-batch, plus a constant per call
        assert m["alloc"] <= 8 * batches_per_epoch * epochs + 50, m
    # a per-epoch copy of the parameters would add 380 x 135 kB = 51 MB here
    assert out[400]["rss_growth"] - out[20]["rss_growth"] < 16 * 2**20, out


def test_forward_1e7_rows_streams():
    n = 10_000_000
    net = fastgeo.MLP((2, 8, 8, 1))
    X = np.random.RandomState(0).standard_normal((n, 2))
    net.forward(X[:10])  # compile outside the trace
    out, peak = traced_peak(lambda: net.forward(X))
    assert out.shape == (n, 1) and np.isfinite(out[::99991]).all()
    stated = out.nbytes + X.size * np.dtype(bool).itemsize  # result + finiteness mask
    # no n x width intermediate (one would be 8 x 8 bytes x 1e7 = 640 MB here)
    assert peak <= stated + 2**20, (peak, stated)


def test_classifier_predict_proba_bounded(data):
    X, y = data
    clf = MLPClassifier((64,), max_iter=2, random_state=0)
    with pytest.warns(UserWarning):
        clf.fit(X, y)
    n = 1_000_000
    X_big = np.random.RandomState(1).standard_normal((n, 2))
    clf.predict_proba(X_big[:10])
    proba, peak = traced_peak(lambda: clf.predict_proba(X_big))
    assert proba.shape == (n, 2)
    # logits (8 B/row) + two log-probability columns, probabilities and temporaries
    # (~6 x 16 B/row) + one chunk of trace scratch (<= 2 x 2**20 float64)
    assert peak <= 104 * n + 2 * 8 * 2**20 + 2**20, peak
