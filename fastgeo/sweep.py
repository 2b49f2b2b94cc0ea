"""``fastgeo sweep``: the "wasted capacity" claim, tested against depth and activation.

Every combination of depth (hidden layers), activation and net seed is trained on the
article's data (two-moons, 300 train / 100 test, data seed 42) with the article's
training recipe (SGD, lr 0.05, batch 64, 800 epochs) by the fused ``fastgeo.kernels.train``
kernel (``MLP.fit``), then measured with ``fastgeo.geometry.diagnose`` on the test set
(the linear probe only on the last hidden layer: the probes cost more than the training).

The random draws follow the article's protocol for every net: weights
``RandomState(seed).randn(fan_in, fan_out) * sqrt(gain / fan_in)`` layer by layer (gain 1
for sigmoid and tanh, 2 for ReLU and leaky ReLU), and the epoch permutations from the
same stream continuing after the weights. All activations of one (depth, seed) therefore
train on the same sample order; at depth 2 and seed 42 the sigmoid and ReLU nets are
exactly ``fastgeo reproduce``'s.

Jobs run on a thread pool (the kernels release the GIL); each worker pins numba to one
thread for its own calls (``numba.set_num_threads`` is per thread), so the pool, not
numba's parallel kernels, uses the cores.
"""

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np

from . import activations as registry
from ._cli_args import parse_range, plots_unavailable, write_json
from .article.protocol import (
    OPTIMIZERS,
    PROTOCOL,
    gain,
    legacy_weights,
    load_data,
    make_optimizer,
    parse_optimizers,
    protocol_streams,
)
from .mlp import MLP

DEFAULTS = {"depths": "1-8", "width": 8, "activations": "sigmoid,relu,tanh,leaky_relu",
            "seeds": "0-4"}
METRICS = ("test_accuracy", "final_loss", "last_effective_rank", "last_probe_accuracy",
           "saturated_or_dead", "last_a_std")


class ProgressBar:
    """A plain text bar on a stream (stderr): redrawn in place on a terminal, one line
    per tenth otherwise."""

    def __init__(self, total, label="sweep", stream=None, width=30, enabled=True):
        self.total, self.label, self.width = total, label, width
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self.t0 = time.perf_counter()
        self._last_tenth = -1

    def text(self):
        frac = self.done / self.total if self.total else 1.0
        filled = round(self.width * frac)
        bar = "#" * filled + "-" * (self.width - filled)
        return (f"{self.label} [{bar}] {self.done}/{self.total} "
                f"{time.perf_counter() - self.t0:.1f} s")

    def update(self, n=1):
        self.done += n
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + self.text())
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            tenth = (10 * self.done) // max(self.total, 1)
            if tenth != self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(self.text() + "\n")
        self.stream.flush()


def _layer_summary(geometry, activation):
    """(last effective rank, last probe accuracy, saturated-or-dead fraction averaged over
    the hidden layers, last a std)."""
    layers = geometry["layers"]
    last = layers[-1]
    key = ("saturated_fraction" if registry.get(activation).kind == "bounded"
           else "dead_fraction")
    values = [layer[key] for layer in layers if layer[key] is not None]
    frac = float(np.mean(values)) if values else None  # linear: neither
    return last["effective_rank"], last["probe_accuracy"], frac, last["a_std"]


def train_one(activation, depth, seed, width, data, perms, epochs, lr, batch_size, probe,
              backend="numba", optimizer="sgd"):
    """Train and measure one net (``optimizer``: one of the protocol's ``OPTIMIZERS``, at
    rate lr); returns a JSON-ready dict (metrics None if it diverged)."""
    import numba

    from .geometry import diagnose

    if backend == "numba":
        numba.set_num_threads(1)  # this thread only: the pool provides the parallelism
    Xtr, Xte, ytr, yte = data
    sizes = (Xtr.shape[1],) + (width,) * depth + (1,)
    weights, biases = legacy_weights(np.random.RandomState(seed), sizes, gain(activation))
    net = MLP.from_params(weights, biases, activation=activation, backend=backend)
    out = {"activation": activation, "depth": depth, "seed": seed, "sizes": list(sizes),
           "optimizer": optimizer, "lr": lr, "diverged": False}
    t = time.perf_counter()
    try:
        history = net.fit(Xtr, ytr, epochs, optimizer=make_optimizer(optimizer, lr),
                          batch_size=batch_size, permutations=perms)
    except FloatingPointError as exc:
        out.update(diverged=True, error=str(exc), fit_seconds=time.perf_counter() - t,
                   **{m: None for m in METRICS})
        return out
    out["fit_seconds"] = time.perf_counter() - t
    geometry = diagnose(net, Xtr, ytr, Xte, yte, probe="last" if probe else False)
    erank, probe_acc, frac, a_std = _layer_summary(geometry, activation)
    out.update(test_accuracy=net.score(Xte, yte), final_loss=float(history[-1]),
               last_effective_rank=erank, last_probe_accuracy=probe_acc,
               saturated_or_dead=frac, last_a_std=a_std, geometry=geometry)
    return out


def permutations_for(seed, sizes, epochs, n):
    """The epoch orders: RandomState(seed), advanced past the weights of ``sizes``, then
    one permutation of range(n) per epoch (the article's protocol)."""
    return protocol_streams(seed, sizes, epochs, n, activations=())[1]


def label(activation, optimizer, lr, configs):
    """A run's column in the tables: its activation, and its optimiser and rate when the
    sweep has more than one."""
    return activation if len(configs) == 1 else f"{activation} {optimizer}@{lr:g}"


def run_sweep(depths, activations, seeds, width=8, epochs=None, lr=None, batch_size=None,
              data_seed=None, workers=None, probe=True, progress=None, backend="numba",
              optimizers=None):
    """Train every (optimizer config, activation, depth, seed); returns the list of
    per-run dicts, in grid order, each with its table ``label``. ``optimizers``: [(name,
    rate)] (default: the article's SGD at lr); ``progress``: a ProgressBar (or None)."""
    epochs = PROTOCOL["epochs"] if epochs is None else epochs
    lr = PROTOCOL["lr"] if lr is None else lr
    configs = [("sgd", lr)] if optimizers is None else list(optimizers)
    batch_size = PROTOCOL["batch_size"] if batch_size is None else batch_size
    data_seed = PROTOCOL["data_seed"] if data_seed is None else data_seed
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    data = load_data(data_seed)
    n = data[0].shape[0]
    perms = {(d, s): permutations_for(s, (2,) + (width,) * d + (1,), epochs, n)
             for d in depths for s in seeds}
    jobs = [(a, d, s, c) for c in configs for a in activations for d in depths for s in seeds]
    # costliest first (deepest; tanh and sigmoid call libm per unit), so that the long
    # jobs do not straggle at the end
    weight = {"tanh": 3.0, "sigmoid": 2.0}
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i][1] * weight.get(jobs[i][0], 1.0))
    def job(i):
        a, d, s, (name, rate) = jobs[i]
        out = train_one(a, d, s, width, data, perms[(d, s)], epochs, rate, batch_size, probe,
                        backend, name)
        out["label"] = label(a, name, rate, configs)
        return out

    if backend == "numba" and jobs:  # compile / load the kernels once, before the threads
        for name in {c[0] for c in configs}:  # each update rule is its own branch
            a, d, s, _ = jobs[order[-1]]
            train_one(a, d, s, width, data, perms[(d, s)][:1], 1, OPTIMIZERS[name], batch_size,
                      False, backend, name)
    results = [None] * len(jobs)
    if workers <= 1:
        for i in order:
            results[i] = job(i)
            if progress:
                progress.update()
        return results
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(job, i): i for i in order}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            if progress:
                progress.update()
    return results


def summarize(results):
    """{activation: {depth (str): {metric: {"mean", "std", "n", "diverged"}}}} over seeds;
    std is the population std; diverged runs are counted and left out of the means."""
    out = {}
    for r in results:
        out.setdefault(r.get("label", r["activation"]), {}).setdefault(
            str(r["depth"]), []).append(r)
    summary = {}
    for act, per_depth in out.items():
        summary[act] = {}
        for depth, runs in per_depth.items():
            cell = {}
            ok = [r for r in runs if not r["diverged"]]
            for m in METRICS:
                v = np.array([r[m] for r in ok if r[m] is not None], dtype=float)
                cell[m] = {"mean": float(v.mean()) if v.size else None,
                           "std": float(v.std()) if v.size else None, "n": int(v.size),
                           "diverged": len(runs) - len(ok)}
            summary[act][depth] = cell
    return summary


def format_tables(summary, activations, depths):
    titles = {
        "test_accuracy": "test accuracy",
        "final_loss": "final training loss",
        "last_effective_rank": "effective rank of the last hidden layer",
        "last_probe_accuracy": "linear-probe accuracy of the last hidden layer (test set)",
        "saturated_or_dead": "saturated fraction (bounded: entries a in the 5% tails) "
                             "/ dead fraction (rectified, gated: units with z <= 0 on "
                             "every sample), mean over hidden layers",
        "last_a_std": "std of the last hidden layer's activations",
    }
    lines = []
    w = max([20] + [len(a) + 2 for a in activations])
    for m in METRICS:
        lines.append(f"{titles[m]}: mean +- std over seeds")
        lines.append(f"{'depth':>5}" + "".join(f"{a:>{w}}" for a in activations))
        for d in depths:
            row = f"{d:>5}"
            for a in activations:
                c = summary[a][str(d)][m]
                if c["mean"] is not None:
                    text = f"{c['mean']:.3f} +- {c['std']:.3f}"
                else:  # every run diverged, or the metric does not apply (linear: no tails)
                    text = "diverged" if c["diverged"] else "-"
                if c["diverged"] and c["mean"] is not None:
                    text += f" ({c['diverged']}x div)"
                row += f"{text:>{w}}"
            lines.append(row)
        lines.append("")
    return "\n".join(lines).rstrip()


def add_parser(sub):
    p = sub.add_parser(
        "sweep", help="train every depth x activation x seed on the article's data and "
                      "print accuracy and geometry against depth",
        description="The 'wasted capacity' sweep: every combination of depth, activation "
                    "and seed, trained with the article's recipe on its data.")
    p.add_argument("--depths", default=DEFAULTS["depths"], metavar="RANGE",
                   help="hidden layers, e.g. 1-8 (default %(default)s)")
    p.add_argument("--width", type=int, default=DEFAULTS["width"],
                   help="units per hidden layer (default %(default)s)")
    p.add_argument("--activations", default=DEFAULTS["activations"],
                   help="comma-separated (default %(default)s)")
    p.add_argument("--seeds", default=DEFAULTS["seeds"], metavar="RANGE",
                   help="net seeds (default %(default)s)")
    p.add_argument("--epochs", type=int, default=PROTOCOL["epochs"])
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate of every optimizer given without @rate (default: "
                        "0.05 for sgd and momentum, 0.001 for adam)")
    p.add_argument("--optimizers", default="sgd", metavar="LIST",
                   help="comma-separated name[@lr] of " + ", ".join(OPTIMIZERS) +
                        ", e.g. sgd,adam@0.001,adam@0.01 (default: the article's sgd)")
    p.add_argument("--batch-size", type=int, default=PROTOCOL["batch_size"])
    p.add_argument("--data-seed", type=int, default=PROTOCOL["data_seed"])
    p.add_argument("--workers", type=int, default=None,
                   help="threads (default: 2, or 1 on a one-core machine)")
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba")
    p.add_argument("--no-probe", action="store_true", help="skip the linear probes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", metavar="PATH", help="write every run and the summary as JSON")
    p.add_argument("--plots", metavar="DIR", help="write sweep.png into DIR (needs matplotlib)")
    p.set_defaults(func=run)


def run(args):
    t0 = time.perf_counter()
    try:
        depths = parse_range(args.depths)
        seeds = parse_range(args.seeds)
        activations = [a.strip() for a in args.activations.split(",") if a.strip()]
        for a in activations:
            registry.get(a)
        if min(depths) < 1:
            raise ValueError("depths must be >= 1")
        for name in ("width", "epochs", "batch_size"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if args.workers is not None and args.workers < 1:
            raise ValueError("--workers must be >= 1")
        if not activations:
            raise ValueError("no activations given")
        configs = parse_optimizers(args.optimizers, args.lr)
    except ValueError as exc:
        print(f"fastgeo sweep: {exc}", file=sys.stderr)
        return 2
    if args.plots and plots_unavailable("fastgeo sweep"):
        return 2
    workers = min(2, os.cpu_count() or 1) if args.workers is None else args.workers
    total = len(depths) * len(activations) * len(seeds) * len(configs)
    recipe = ", ".join(f"{n} at lr {r:g}" for n, r in configs)
    print(f"fastgeo sweep: {total} nets (depths {args.depths}, width {args.width}, "
          f"{', '.join(activations)}, seeds {args.seeds}), {args.epochs} epochs of "
          f"{recipe} (batch {args.batch_size}) on two-moons 300/100, "
          f"{workers} worker thread{'s' if workers > 1 else ''}, {args.backend} backend")
    sys.stdout.flush()
    bar = ProgressBar(total, enabled=not args.no_progress)
    results = run_sweep(depths, activations, seeds, args.width, args.epochs, None,
                        args.batch_size, args.data_seed, workers, not args.no_probe, bar,
                        args.backend, configs)
    summary = summarize(results)
    labels = [label(a, n, r, configs) for n, r in configs for a in activations]
    print(format_tables(summary, labels, depths))
    if args.json:
        write_json(args.json, {"summary": summary, "runs": results, "config": {
            "depths": depths, "width": args.width, "activations": activations,
            "seeds": seeds, "epochs": args.epochs,
            "optimizers": [{"name": n, "lr": r} for n, r in configs],
            "batch_size": args.batch_size, "data_seed": args.data_seed,
            "backend": args.backend, "workers": workers}})
    if args.plots:
        from . import plots
        for path in plots.sweep_figures(summary, args.plots):
            print(f"wrote {path}")
    print(f"time: {time.perf_counter() - t0:.2f} s ({workers} worker threads)")
    return 0
