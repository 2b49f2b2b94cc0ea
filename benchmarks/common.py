"""Shared pieces of the asv suite: parameter values, data, the article protocol, and the
base class every benchmark class derives from.

Why the base class works as it does (asv 0.6 with asv_runner 0.3):

* asv calibrates how many calls go into a sample from the FIRST timed call, and ``--quick``
  does no warm-up at all, so ``build`` must call every kernel the benchmark will time once
  (compile, or load from numba's on-disk cache) before asv times anything.
* asv_runner re-runs ``setup`` before every sample (asv#966). ``setup`` therefore builds
  the data, the net and the warm-up once per process (memoized in ``_BUILT``) and on later
  calls only puts the parameters back where they started (``reset``), so every sample of a
  training benchmark starts from the same weights and a re-setup costs microseconds.
* asv treats a RISING number as a regression, so every ``track_`` here is lower-is-better:
  nanoseconds per sample, loss, test error. Never samples/s.
"""

import math
import time

import numba
import numpy as np

ACTIVATIONS = ["sigmoid", "relu"]
BACKENDS = ["numpy", "numba"]
DTYPES = ["float32", "float64"]
#: Architectures as "in-hidden-hidden-out" strings (readable in asv's tables and plots).
ARCHS = ["2-8-8-1", "2-64-64-1", "32-512-512-1"]

_BUILT = {}


def _prime_numba():
    """Pay numba's one-off start-up (typing and code-generation set-up: ~1 s) now, at
    import. asv.conf.json uses asv's forkserver: the suite is imported once and every
    benchmark process is forked from that interpreter, so each starts with numba ready
    and loads its kernels from the on-disk cache in milliseconds instead of seconds.
    Under other launch methods this only moves the same cost earlier."""
    numba.njit(lambda x: x + 1.0)(1.0)


_prime_numba()


def sizes(arch):
    """(2, 8, 8, 1) from "2-8-8-1"."""
    return tuple(int(w) for w in arch.split("-"))


def features(n, n_features, dtype="float64", seed=0):
    """Standard-normal inputs, (n, n_features), C-contiguous, of the given dtype."""
    return np.random.RandomState(seed).randn(n, n_features).astype(dtype)


def moons(n, dtype="float64", noise=0.2, seed=0):
    """Two-moons (X standardized, y 0/1 floats), as ``fastgeo demo`` makes them."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X.astype(dtype), y.astype(dtype)


def best_seconds(fn, min_calls=5, min_time=0.5, max_calls=100):
    """Fastest of at least ``min_calls`` calls of fn (more while under ``min_time`` seconds
    in all, at most ``max_calls``). The minimum is the estimate least hurt by other load
    on a shared machine; ``track_`` benchmarks use it because asv gives them no warm-up
    and no repeats of their own."""
    best = math.inf
    calls = 0
    start = time.perf_counter()
    while calls < min_calls or (time.perf_counter() - start < min_time and calls < max_calls):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        calls += 1
    return best


# --- the article protocol ----------------------------------------------------------------

ARTICLE = {"sizes": (2, 8, 8, 1), "lr": 0.05, "batch_size": 64, "epochs": 800, "seed": 42}
ARTICLE_GAINS = {"sigmoid": 1.0, "relu": 2.0}


def _local_article_setup():
    """The article's data and random streams, written out here for commits that predate
    ``fastgeo.experiment``: make_moons(400, noise=.18, random_state=42), StandardScaler on
    all 400, train_test_split(test_size=.25, random_state=42); RandomState(42).randn for
    W1..W3 of the sigmoid net times sqrt(1/fan_in), RandomState(42) again for the ReLU net
    times sqrt(2/fan_in), then the same stream draws one permutation(300) per epoch."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = make_moons(n_samples=400, noise=0.18, random_state=42)
    X = StandardScaler().fit_transform(X)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=42)
    dims = ARTICLE["sizes"]
    params = {}
    for act in ("sigmoid", "relu"):
        rng = np.random.RandomState(ARTICLE["seed"])
        Ws = [rng.randn(i, o) * np.sqrt(ARTICLE_GAINS[act] / i) for i, o in zip(dims, dims[1:])]
        params[act] = (Ws, [np.zeros(o) for o in dims[1:]])
    perms = np.array([rng.permutation(Xtr.shape[0]) for _ in range(ARTICLE["epochs"])])
    return (Xtr, Xte, ytr, yte), params, perms


def article_setup():
    """((X_train, X_test, y_train, y_test), {activation: (weights, biases)}, permutations).

    Uses ``fastgeo.experiment`` (the protocol's home) when the benchmarked commit has it,
    else the identical local transcription (asv runs this suite against older commits too).
    """
    try:
        from fastgeo.experiment import load_data, protocol_streams
    except ImportError:
        return _local_article_setup()
    data = load_data(ARTICLE["seed"])
    params, perms = protocol_streams(ARTICLE["seed"], list(ARTICLE["sizes"]), ARTICLE["epochs"],
                                     data[0].shape[0], ("sigmoid", "relu"))
    return data, params, perms


# --- base class --------------------------------------------------------------------------


class Suite:
    """Base of every benchmark class. Subclasses set ``params``/``param_names`` and
    implement ``build(*params) -> dict`` (attributes set on the instance; it must call
    every kernel the benchmarks will time, once), optionally ``pruned(*params) -> reason or
    None`` (a combination not run: asv shows it as n/a) and ``reset()``.

    numba runs on one thread, or on the value of a ``threads`` parameter."""

    #: The first benchmark process of a run may compile kernels (a minute on a loaded
    #: 2-core machine); asv's default timeout of 60 s would kill it.
    timeout = 600
    #: time_ benchmarks: two processes ("rounds"), each taking 2-10 one-call samples in
    #: about 2.5 s. Two rounds let `asv continuous` interleave the commits it compares
    #: (base, head, head, base), so a burst of load from something else on the machine
    #: does not land on one commit only; on this shared machine a single-process run
    #: showed identical code 0.4x-3.8x apart on single benchmarks.
    rounds = 2
    repeat = (2, 10, 2.5)

    def setup(self, *params):
        reason = self.pruned(*params)
        if reason:
            raise NotImplementedError(reason)
        threads = self.threads_for(*params)
        if threads > numba.config.NUMBA_NUM_THREADS:
            raise NotImplementedError(f"needs {threads} numba threads, the pool has "
                                      f"{numba.config.NUMBA_NUM_THREADS} (NUMBA_NUM_THREADS)")
        numba.set_num_threads(threads)
        key = (type(self).__qualname__,) + params
        if key not in _BUILT:
            _BUILT[key] = self.build(*params)
        self.__dict__.update(_BUILT[key])
        self.reset()

    def pruned(self, *params):
        return None

    def threads_for(self, *params):
        """numba threads for this combination: 1 unless the class has a "threads" param."""
        names = getattr(self, "param_names", ())
        return int(params[names.index("threads")]) if "threads" in names else 1

    def build(self, *params):
        return {}

    def reset(self):
        pass


def start_weights(net):
    """A copy of the net's parameters, for ``restore``."""
    return net.params.copy()


def restore(net, params0):
    """Put the net's flat parameter buffer back to params0 (in place: no re-validation)."""
    net.params[:] = params0
