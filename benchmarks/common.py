"""Shared pieces of the asv suite: parameter values, data, the article protocol, and the
base class every benchmark class derives from.

Nets, data and the article protocol come from the benchmarked fastgeo itself
(``fastgeo.bench.workloads``, ``fastgeo.article.protocol``: the definitions ``fastgeo
bench`` and ``tests/bench`` use too), or, on commits that predate them, from
``_fallback.py``, the suite's one copy (see there).

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

import importlib
import math
import time

import numba

from . import _fallback


def _source(modules, names):
    """The first of ``modules`` the benchmarked fastgeo has with all of ``names``; else
    ``_fallback``, the suite's own copy for older commits (see benchmarks/_fallback.py)."""
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if all(hasattr(module, n) for n in names):
            return module
    return _fallback


#: Where the nets and data come from: ``fastgeo.bench.workloads``, the set every
#: instrument shares (fastgeo bench, tests/bench, this suite), or the fallback copy.
WORKLOADS_SOURCE = _source(("fastgeo.bench.workloads",),
                           ("ACTIVATIONS", "ARCHS", "features", "moons", "sizes_of"))
#: Where the article protocol comes from: ``fastgeo.article.protocol``, its home;
#: ``fastgeo.experiment`` on commits between its creation and the move; else the copy.
ARTICLE_SOURCE = _source(("fastgeo.article.protocol", "fastgeo.experiment"),
                         ("PROTOCOL", "load_data", "protocol_streams"))

ACTIVATIONS = list(WORKLOADS_SOURCE.ACTIVATIONS)
BACKENDS = ["numpy", "numba"]
DTYPES = ["float32", "float64"]
#: Architectures as "in-hidden-hidden-out" strings (readable in asv's tables and plots):
#: nets A, B, C.
ARCHS = list(WORKLOADS_SOURCE.ARCHS)
sizes = WORKLOADS_SOURCE.sizes_of
features = WORKLOADS_SOURCE.features
moons = WORKLOADS_SOURCE.moons

_BUILT = {}


def _prime_numba():
    """Pay numba's one-off start-up (typing and code-generation set-up: ~1 s) now, at
    import. asv.conf.json uses asv's forkserver: the suite is imported once and every
    benchmark process is forked from that interpreter, so each starts with numba ready
    and loads its kernels from the on-disk cache in milliseconds instead of seconds.
    Under other launch methods this only moves the same cost earlier."""
    numba.njit(lambda x: x + 1.0)(1.0)


_prime_numba()


def best_seconds(fn, min_calls=5, min_time=0.5, max_calls=100):
    """Fastest of at least ``min_calls`` calls of fn (more while under ``min_time`` seconds
    in all, at most ``max_calls``). The minimum is the estimate least hurt by other load
    on a shared machine; ``track_`` benchmarks use it because asv gives them no warm-up
    and no repeats of their own.

    This timer belongs to the suite, not to fastgeo (``fastgeo bench`` has its own in
    ``fastgeo.bench.timing``): asv measures every commit with the suite's harness, so a
    commit cannot change how it is measured."""
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

PROTOCOL = ARTICLE_SOURCE.PROTOCOL


def article_setup():
    """((X_train, X_test, y_train, y_test), {activation: (weights, biases)}, permutations)
    of the article's protocol, from ``ARTICLE_SOURCE``."""
    data = ARTICLE_SOURCE.load_data(PROTOCOL["data_seed"])
    params, perms = ARTICLE_SOURCE.protocol_streams(
        PROTOCOL["net_seed"], list(PROTOCOL["sizes"]), PROTOCOL["epochs"], data[0].shape[0],
        ("sigmoid", "relu"))
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
