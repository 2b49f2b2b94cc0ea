"""``fastgeo reproduce``: the sigmoid-vs-ReLU geometry article, re-run with one command.

The protocol is the article's companion notebook, kept exactly, quirks included:

* Data: ``make_moons(n_samples=400, noise=0.18, random_state=42)``; a ``StandardScaler``
  fit on all 400 points *before* the split (the notebook does this; it leaks the test
  set's mean and scale into training, harmlessly here); ``train_test_split(test_size=0.25,
  random_state=42)`` -> 300 train, 100 test.
* Nets: 2-8-8-1, sigmoid output, biases zero. Sigmoid net: ``np.random.seed(42)``, then
  ``randn`` for W1, W2, W3 in that order, each times sqrt(1/fan_in) (the article calls it
  Xavier). ReLU net: ``np.random.seed(42)`` again, the same draws times sqrt(2/fan_in) (He).
* Training: mini-batch SGD, lr 0.05, batch 64 (the last batch of each epoch has 44),
  800 epochs. Each epoch draws ONE ``np.random.permutation(300)`` from the legacy global
  stream, continuing right after the ReLU net's weights, and both nets train on that
  same order. Recorded epoch loss = mean of the mini-batch losses measured before each
  update.

Here the legacy global stream is a private ``np.random.RandomState(seed)`` (the same
Mersenne-Twister stream as ``np.random.seed(seed)``), so the caller's global numpy
random state is left alone.

Two notebook quirks fastgeo does not copy, and why it does not matter here:

* The notebook records the loss as ``-mean(y log(p + 1e-9) + (1 - y) log(1 - p + 1e-9))``;
  fastgeo computes the same BCE stably from the logits. The gradients are the same
  (the notebook's backward pass uses p - y), so the trajectories are identical; only the
  recorded numbers differ, by about 1e-9 on this protocol (``--notebook`` measures it
  with a literal transcription of the notebook: far below the 4th decimal).
* The notebook clips the sigmoid's input to +-500. That changes nothing unless some
  |z| > 500; ``--notebook`` reports the largest |z| the transcription saw (about 20).

Metrics: test accuracy at threshold 0.5; hidden std of layer l = std over ALL entries of
a_l on the test set; signal trace of a point = mean |.| over units of [z1, a1, z2, a2, z3];
the two "far" points are the class-0 training point farthest from (-1.2, -0.3) and the
class-1 training point farthest from (1.2, 0.3).
"""

import itertools
import json
import sys
import time

import numpy as np

#: The protocol, as the notebook has it. ``net_seed`` and ``data_seed`` are what
#: ``--seeds`` and ``--data-seeds`` vary.
PROTOCOL = {
    "n_samples": 400,
    "noise": 0.18,
    "data_seed": 42,  # make_moons random_state and train_test_split random_state
    "test_size": 0.25,
    "scaler": "StandardScaler fit on all 400 points before the split",
    "sizes": [2, 8, 8, 1],
    "init": {"sigmoid": "randn * sqrt(1/fan_in)", "relu": "randn * sqrt(2/fan_in)"},
    "net_seed": 42,  # legacy np.random.seed for the weights and the epoch permutations
    "lr": 0.05,
    "batch_size": 64,
    "epochs": 800,
    "far_point_centres": {"class0": [-1.2, -0.3], "class1": [1.2, 0.3]},
    "loss": "mean BCE from the logits (the notebook: log(p + 1e-9); difference ~1e-9)",
}

ACTIVATIONS = ("sigmoid", "relu")
GAINS = {"sigmoid": 1.0, "relu": 2.0, "tanh": 1.0, "leaky_relu": 2.0}
TRACE_KEYS = ("z1", "a1", "z2", "a2", "z3")

#: The article's reported values.
ARTICLE = {
    "sigmoid": {"final_loss": 0.2822, "test_accuracy": 0.79, "hidden_std": [0.2593, 0.1950]},
    "relu": {"final_loss": 0.0353, "test_accuracy": 0.96},
    # The summary's "pre-activations 9-20 vs a 0.6 cap": the ReLU net's output logit |z3|
    # at the two far points, against the sigmoid net's a2 there.
    "relu_far_z3": [9, 20],
    "sigmoid_far_a2_cap": 0.6,
}


# --- the protocol --------------------------------------------------------------------


def load_data(data_seed=42):
    """(X_train, X_test, y_train, y_test) as the notebook makes them; y are int 0/1."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = make_moons(n_samples=PROTOCOL["n_samples"], noise=PROTOCOL["noise"],
                      random_state=data_seed)
    X = StandardScaler().fit_transform(X)  # on all 400 points, before the split
    return train_test_split(X, y, test_size=PROTOCOL["test_size"], random_state=data_seed)


def legacy_weights(rng, sizes, gain):
    """Weights ``rng.randn(fan_in, fan_out) * sqrt(gain / fan_in)`` layer by layer (the
    draws advance rng), zero biases."""
    weights = [rng.randn(fan_in, fan_out) * np.sqrt(gain / fan_in)
               for fan_in, fan_out in itertools.pairwise(sizes)]
    return weights, [np.zeros(fan_out) for fan_out in sizes[1:]]


def protocol_streams(net_seed, sizes, epochs, n, activations=ACTIVATIONS):
    """The notebook's random draws: for each activation, reseed and draw its weights;
    then ``epochs`` permutations of range(n) from the stream continuing after the LAST
    net's weights. Returns ({activation: (weights, biases)}, perms (epochs, n))."""
    params = {}
    for act in activations:
        rng = np.random.RandomState(net_seed)  # == np.random.seed(net_seed)
        params[act] = legacy_weights(rng, sizes, GAINS[act])
    perms = np.empty((epochs, n), dtype=np.int64)
    for e in range(epochs):
        perms[e] = rng.permutation(n)
    return params, perms


def far_points(X, y):
    """Indices of the class-0 point farthest from (-1.2, -0.3) and the class-1 point
    farthest from (1.2, 0.3)."""
    out = {}
    for c, key in ((0, "class0"), (1, "class1")):
        idx = np.flatnonzero(y == c)
        centre = np.array(PROTOCOL["far_point_centres"][key])
        out[key] = int(idx[np.argmax(np.linalg.norm(X[idx] - centre, axis=1))])
    return out


def signal_trace(net, x):
    """mean |.| over units of [z1, a1, z2, a2, ..., z_L] for one point x."""
    zs, acts = net.forward_trace(np.asarray(x, dtype=float).reshape(1, -1))
    trace = []
    for z, a in zip(zs[:-1], acts[1:-1]):
        trace += [float(np.abs(z).mean()), float(np.abs(a).mean())]
    return trace + [float(np.abs(zs[-1]).mean())]


def run_protocol(net_seed=42, data_seed=42, epochs=None, backend="numba",
                 activations=ACTIVATIONS, geometry=True):
    """Run the protocol once. Returns (results, nets, data): results is the JSON-ready
    dict {activation: {...}, "protocol": {...}}, nets {activation: trained MLP}, data the
    (X_train, X_test, y_train, y_test) tuple."""
    import fastgeo

    from . import geometry as geo

    epochs = PROTOCOL["epochs"] if epochs is None else epochs
    sizes = PROTOCOL["sizes"]
    data = Xtr, Xte, ytr, yte = load_data(data_seed)
    params, perms = protocol_streams(net_seed, sizes, epochs, Xtr.shape[0], activations)
    far = far_points(Xtr, ytr)
    results, nets = {}, {}
    for act in activations:
        net = fastgeo.MLP.from_params(*params[act], activation=act, backend=backend)
        history = net.fit(Xtr, ytr, epochs, PROTOCOL["lr"], batch_size=PROTOCOL["batch_size"],
                          permutations=perms)
        _, acts = net.forward_trace(Xte)
        res = {
            "final_loss": float(history[-1]) if epochs else None,
            "test_accuracy": net.score(Xte, yte),
            "hidden_std": [float(a.std()) for a in acts[1:-1]],
            "signal_trace": {k: signal_trace(net, Xtr[i]) for k, i in far.items()},
            "loss_history": [float(v) for v in history],
        }
        if geometry:
            res["geometry"] = geo.diagnose(net, Xtr, ytr, Xte, yte)
        results[act] = res
        nets[act] = net
    results["protocol"] = dict(PROTOCOL, epochs=epochs, net_seed=net_seed, data_seed=data_seed,
                               backend=backend, far_points=far,
                               far_point_coordinates={k: Xtr[i].tolist() for k, i in far.items()})
    return results, nets, data


# --- the notebook, transcribed literally (the witness for the two quirks) ---------------


def notebook_fit(net_seed=42, data_seed=42, epochs=None):
    """A literal NumPy transcription of the notebook's training loop (clip +-500,
    log(p + 1e-9)), independent of fastgeo. Returns {activation: {"loss_history": the
    notebook's recorded losses, "stable_history": the same batches' BCE from the
    logits, "max_abs_z": the largest |pre-activation| seen by any sigmoid, "weights":
    final [W1, W2, W3], "biases": final [b1, b2, b3]}}."""
    epochs = PROTOCOL["epochs"] if epochs is None else epochs
    Xtr, _, ytr, _ = load_data(data_seed)
    ytr = ytr.reshape(-1, 1).astype(float)
    lr, bs = PROTOCOL["lr"], PROTOCOL["batch_size"]
    seen = {"sigmoid": 0.0, "relu": 0.0}

    def make(act):
        def sigmoid(z):
            seen[act] = max(seen[act], float(np.abs(z).max()))
            return 1 / (1 + np.exp(-np.clip(z, -500, 500)))
        if act == "sigmoid":
            return sigmoid, sigmoid, lambda z, a: a * (1 - a)
        return sigmoid, lambda z: np.maximum(0, z), lambda z, a: (z > 0).astype(float)

    nets = {}
    for act in ACTIVATIONS:
        rng = np.random.RandomState(net_seed)
        W1 = rng.randn(2, 8) * np.sqrt(GAINS[act] / 2)
        W2 = rng.randn(8, 8) * np.sqrt(GAINS[act] / 8)
        W3 = rng.randn(8, 1) * np.sqrt(GAINS[act] / 8)
        nets[act] = [W1, np.zeros((1, 8)), W2, np.zeros((1, 8)), W3, np.zeros((1, 1))]
    fns = {act: make(act) for act in ACTIVATIONS}
    hist = {act: ([], []) for act in ACTIVATIONS}
    for _ in range(epochs):
        perm = rng.permutation(Xtr.shape[0])
        losses = {act: ([], []) for act in ACTIVATIONS}
        for start in range(0, Xtr.shape[0], bs):
            idx = perm[start:start + bs]
            X, y = Xtr[idx], ytr[idx]
            for act in ACTIVATIONS:
                sig, f, df = fns[act]
                W1, b1, W2, b2, W3, b3 = p = nets[act]
                z1 = X @ W1 + b1
                a1 = f(z1)
                z2 = a1 @ W2 + b2
                a2 = f(z2)
                z3 = a2 @ W3 + b3
                a3 = sig(z3)
                losses[act][0].append(
                    -np.mean(y * np.log(a3 + 1e-9) + (1 - y) * np.log(1 - a3 + 1e-9)))
                losses[act][1].append(
                    np.mean(np.maximum(z3, 0) - z3 * y + np.log1p(np.exp(-np.abs(z3)))))
                m = X.shape[0]
                d3 = (a3 - y) / m
                d2 = (d3 @ W3.T) * df(z2, a2)
                d1 = (d2 @ W2.T) * df(z1, a1)
                grads = [X.T @ d1, d1.sum(0, keepdims=True), a1.T @ d2,
                         d2.sum(0, keepdims=True), a2.T @ d3, d3.sum(0, keepdims=True)]
                for P, G in zip(p, grads):
                    P -= lr * G
        for act in ACTIVATIONS:
            hist[act][0].append(float(np.mean(losses[act][0])))
            hist[act][1].append(float(np.mean(losses[act][1])))
    return {act: {"loss_history": hist[act][0], "stable_history": hist[act][1],
                  "max_abs_z": seen[act], "weights": nets[act][0::2],
                  "biases": [b.ravel() for b in nets[act][1::2]]}
            for act in ACTIVATIONS}


# --- comparing with the article -------------------------------------------------------


def _same_4dp(got, want):
    return got is not None and f"{got:.4f}" == f"{want:.4f}"


def article_rows(results):
    """[(label, article value text, got text, reproduced bool or None)] for the table."""
    s, r = results["sigmoid"], results["relu"]
    rows = []
    for act, res in (("sigmoid", s), ("relu", r)):
        want = ARTICLE[act]["final_loss"]
        got = res["final_loss"]
        rows.append((f"final loss, {act}", f"{want:.4f}",
                     "n/a" if got is None else f"{got:.4f}", _same_4dp(got, want)))
    for act, res in (("sigmoid", s), ("relu", r)):
        want = ARTICLE[act]["test_accuracy"]
        got = res["test_accuracy"]
        rows.append((f"test accuracy, {act}", f"{want:.0%}", f"{got:.0%}",
                     round(100 * got) == round(100 * want)))
    for l, want in enumerate(ARTICLE["sigmoid"]["hidden_std"]):
        got = s["hidden_std"][l]
        rows.append((f"hidden std layer {l + 1}, sigmoid", f"{want:.4f}", f"{got:.4f}",
                     _same_4dp(got, want)))
    for l, got in enumerate(r["hidden_std"]):
        rows.append((f"hidden std layer {l + 1}, relu", "-", f"{got:.4f}", None))
    z3 = [r["signal_trace"][k][-1] for k in ("class0", "class1")]
    lo, hi = ARTICLE["relu_far_z3"]
    rows.append(("relu |z3| at far points (\"9-20\")", f"{lo}-{hi}",
                 f"{z3[0]:.2f} / {z3[1]:.2f}", sorted(round(v) for v in z3) == [lo, hi]))
    a2 = [s["signal_trace"][k][3] for k in ("class0", "class1")]
    cap = ARTICLE["sigmoid_far_a2_cap"]
    rows.append(("sigmoid mean|a2| at far points (\"0.6 cap\")", f"<= {cap}",
                 f"{a2[0]:.4f} / {a2[1]:.4f}", max(a2) <= cap))
    return rows


def _mark(ok):
    return "" if ok is None else ("reproduced" if ok else "NOT reproduced")


def format_report(results, every=200):
    """The text ``fastgeo reproduce`` prints for one run."""
    p = results["protocol"]
    lines = []
    hs, hr = results["sigmoid"]["loss_history"], results["relu"]["loss_history"]
    lines.append(f"{'epoch':>5}  {'sigmoid loss':>12}  {'relu loss':>10}")
    for e in range(len(hs)):
        if (e + 1) % every == 0 or e == 0:
            lines.append(f"{e + 1:>5}  {hs[e]:>12.4f}  {hr[e]:>10.4f}")
    lines.append("")
    rows = article_rows(results)
    w = max(len(r[0]) for r in rows)
    lines.append(f"{'metric':<{w}}  {'article':>9}  {'fastgeo':>17}  mark")
    for label, want, got, ok in rows:
        lines.append(f"{label:<{w}}  {want:>9}  {got:>17}  {_mark(ok)}".rstrip())
    lines.append("")
    lines.append("The summary's \"pre-activations 9-20 vs a 0.6 cap\" compares the ReLU net's "
                 "output logit |z3| at the two far points")
    lines.append("with the sigmoid net's mean |a2| there (not the same quantity: a logit "
                 "against a bounded activation).")
    lines.append("")
    lines.append("signal traces, mean |.| over units at the far points "
                 f"(train index class0 {p['far_points']['class0']}, "
                 f"class1 {p['far_points']['class1']}):")
    lines.append(f"{'net':<8} {'point':<7}" + "".join(f"{k:>9}" for k in TRACE_KEYS))
    for act in ACTIVATIONS:
        for key in ("class0", "class1"):
            tr = results[act]["signal_trace"][key]
            lines.append(f"{act:<8} {key:<7}" + "".join(f"{v:>9.4f}" for v in tr))
    n_ok = sum(1 for r in rows if r[3])
    n_checked = sum(1 for r in rows if r[3] is not None)
    lines.append("")
    lines.append(f"{n_ok} of {n_checked} article values reproduced"
                 + ("" if n_ok == n_checked else
                    "; the rows marked NOT reproduced differ as shown"))
    return "\n".join(lines)


def format_geometry(results):
    """Per-layer diagnostics of each net, as text."""
    lines = ["geometry (fastgeo.geometry.diagnose, on the test set; probes fit on train):"]
    head = (f"{'net':<8} {'layer':>5} {'z std':>7} {'z range':>16} {'a std':>7} "
            f"{'a range':>16} {'sat/dead':>8} {'probe':>6} {'erank':>6}")
    lines.append(head)
    for act in ACTIVATIONS:
        g = results[act].get("geometry")
        if not g:
            continue
        lines.append(f"{act:<8} {'in':>5} {'':>7} {'':>16} {'':>7} {'':>16} {'':>8} "
                     f"{g['input_probe_accuracy']:>6.2f} {g['input_effective_rank']:>6.2f}")
        for layer in g["layers"]:
            frac = layer["saturated_fraction"] if act != "relu" else layer["dead_fraction"]
            frac = "-" if frac is None else f"{frac:.2f}"
            zr = f"[{layer['z_range'][0]:.2f}, {layer['z_range'][1]:.2f}]"
            ar = f"[{layer['a_range'][0]:.2f}, {layer['a_range'][1]:.2f}]"
            lines.append(f"{'':<8} {layer['layer']:>5} {layer['z_std']:>7.3f} {zr:>16} "
                         f"{layer['a_std']:>7.3f} {ar:>16} {frac:>8} "
                         f"{layer['probe_accuracy']:>6.2f} {layer['effective_rank']:>6.2f}")
    lines.append("sat/dead: sigmoid = fraction of entries with a < 0.05 or a > 0.95; relu = "
                 "fraction of units never active on the test set.")
    return "\n".join(lines)


# --- many seeds -------------------------------------------------------------------------


def parse_range(text):
    """'0-9' -> [0..9]; '1,3,5' -> [1, 3, 5]; '2-4,7' -> [2, 3, 4, 7] (values >= 0;
    ValueError otherwise)."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = (int(v) for v in part.split("-", 1))
            if hi < lo:
                raise ValueError(f"range {part!r} ends before it starts")
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(part))
    if not out:
        raise ValueError(f"no values in {text!r}")
    return out


def _scalar_metrics(res):
    """Flat {name: value} of every scalar metric of one net's results."""
    m = {"final_loss": res["final_loss"], "test_accuracy": res["test_accuracy"]}
    for l, v in enumerate(res["hidden_std"]):
        m[f"hidden_std_l{l + 1}"] = v
    for key in ("class0", "class1"):
        for name, v in zip(TRACE_KEYS, res["signal_trace"][key]):
            m[f"trace_{key}_{name}"] = v
    g = res.get("geometry")
    if g:
        for layer in g["layers"]:
            l = layer["layer"]
            for k in ("probe_accuracy", "effective_rank", "saturated_fraction", "dead_fraction"):
                if layer[k] is not None:
                    m[f"{k}_l{l}"] = layer[k]
    return m


def summarize(runs):
    """{activation: {metric: {"mean", "std", "min", "max", "n"}}} over a list of results
    dicts (std is the population std, ddof=0)."""
    out = {}
    for act in ACTIVATIONS:
        per = [_scalar_metrics(r[act]) for r in runs]
        out[act] = {}
        for k in per[0]:
            v = np.array([m[k] for m in per if m.get(k) is not None], dtype=float)
            out[act][k] = {"mean": float(v.mean()), "std": float(v.std()),
                           "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}
    return out


def _article_checks(results):
    """{row label: bool} for the rows of ``article_rows`` that compare with the article."""
    return {label: ok for label, _, _, ok in article_rows(results) if ok is not None}


#: (label, activation, metric of ``_scalar_metrics``, the article's value)
ARTICLE_METRICS = (
    ("final loss, sigmoid", "sigmoid", "final_loss", ARTICLE["sigmoid"]["final_loss"]),
    ("final loss, relu", "relu", "final_loss", ARTICLE["relu"]["final_loss"]),
    ("test accuracy, sigmoid", "sigmoid", "test_accuracy", ARTICLE["sigmoid"]["test_accuracy"]),
    ("test accuracy, relu", "relu", "test_accuracy", ARTICLE["relu"]["test_accuracy"]),
    ("hidden std l1, sigmoid", "sigmoid", "hidden_std_l1", ARTICLE["sigmoid"]["hidden_std"][0]),
    ("hidden std l2, sigmoid", "sigmoid", "hidden_std_l2", ARTICLE["sigmoid"]["hidden_std"][1]),
    ("relu |z3|, far point class0", "relu", "trace_class0_z3", ARTICLE["relu_far_z3"][0]),
    ("relu |z3|, far point class1", "relu", "trace_class1_z3", ARTICLE["relu_far_z3"][1]),
)


def _trace(res, key, stage):
    return res["signal_trace"][key][TRACE_KEYS.index(stage)]


#: The article's qualitative claims, each checked on one run's results.
CLAIMS = (
    ("relu ends at a lower training loss than sigmoid",
     lambda r: r["relu"]["final_loss"] < r["sigmoid"]["final_loss"]),
    ("relu has the higher test accuracy",
     lambda r: r["relu"]["test_accuracy"] > r["sigmoid"]["test_accuracy"]),
    ("sigmoid hidden std shrinks from layer 1 to layer 2",
     lambda r: r["sigmoid"]["hidden_std"][1] < r["sigmoid"]["hidden_std"][0]),
    ("relu hidden std does not shrink from layer 1 to 2",
     lambda r: r["relu"]["hidden_std"][1] >= r["relu"]["hidden_std"][0]),
    ("relu hidden std above sigmoid's at both layers",
     lambda r: all(a > b for a, b in zip(r["relu"]["hidden_std"], r["sigmoid"]["hidden_std"]))),
    ("relu |z3| above sigmoid |z3| at both far points",
     lambda r: all(_trace(r["relu"], k, "z3") > _trace(r["sigmoid"], k, "z3")
                   for k in ("class0", "class1"))),
    ("relu |z3| at both far points within 9-20 (+-0.5)",
     lambda r: all(8.5 <= _trace(r["relu"], k, "z3") < 20.5 for k in ("class0", "class1"))),
    ("sigmoid mean|a2| at both far points <= 0.6",
     lambda r: all(_trace(r["sigmoid"], k, "a2") <= ARTICLE["sigmoid_far_a2_cap"]
                   for k in ("class0", "class1"))),
)


def format_summary(runs, summary, what):
    n = len(runs)
    lines = [f"mean +- std over {n} runs ({what}); population std"]
    lines.append(f"{'metric':<30} {'sigmoid':>26}   {'relu':>26}")
    keys = list(summary["sigmoid"])
    keys += [k for k in summary["relu"] if k not in keys]

    def cell(act, k):
        s = summary[act].get(k)
        if s is None:
            return "-"
        return f"{s['mean']:.4f} +- {s['std']:.4f}"

    for k in keys:
        lines.append(f"{k:<30} {cell('sigmoid', k):>26}   {cell('relu', k):>26}")
    lines.append("")
    lines.append("the article's numbers against this spread (z = (article - mean) / std; "
                 "exact = runs that match the article to its printed precision):")
    lines.append(f"  {'metric':<30} {'article':>8} {'mean +- std':>20} {'min .. max':>18} "
                 f"{'z':>6} {'exact':>6}")
    exact = [_article_checks(r) for r in runs]
    exact_label = {"hidden std l1, sigmoid": "hidden std layer 1, sigmoid",
                   "hidden std l2, sigmoid": "hidden std layer 2, sigmoid"}
    for label, act, key, want in ARTICLE_METRICS:
        st = summary[act][key]
        z = (want - st["mean"]) / st["std"] if st["std"] > 0 else float("nan")
        ex_label = exact_label.get(label, label)
        k = (sum(e[ex_label] for e in exact)
             if ex_label in exact[0] else "-")
        k = f"{k}/{n}" if k != "-" else "-"
        lines.append(f"  {label:<30} {want:>8.4g} {st['mean']:>10.4f} +- {st['std']:<6.4f} "
                     f"{st['min']:>8.4f} .. {st['max']:<8.4f}{z:>6.1f} {k:>6}")
    lines.append("")
    lines.append("the article's claims, run by run (typical, or one lucky seed?):")
    for text, check in CLAIMS:
        k = sum(bool(check(r)) for r in runs)
        lines.append(f"  {text:<52} {k:>3}/{n}")
    return "\n".join(lines)


# --- the command ------------------------------------------------------------------------


def add_parser(sub):
    p = sub.add_parser(
        "reproduce",
        help="re-run the sigmoid-vs-ReLU geometry article's protocol and compare with its "
             "numbers",
        description="Re-run the article's companion-notebook protocol (two-moons, 2-8-8-1 "
                    "sigmoid vs ReLU, 800 epochs of SGD) and print its numbers beside the "
                    "article's, each marked reproduced / NOT reproduced.")
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba",
                   help="numba kernels (default) or the plain NumPy reference")
    p.add_argument("--epochs", type=int, default=PROTOCOL["epochs"],
                   help="epochs (default 800, the article's; other values will not match it)")
    p.add_argument("--seeds", metavar="RANGE",
                   help="net seeds, e.g. 0-9: mean +- std of every metric over them")
    p.add_argument("--data-seeds", metavar="RANGE",
                   help="data seeds (make_moons and the split), e.g. 0-9: mean +- std")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--plots", metavar="DIR", help="write PNG figures into DIR (needs matplotlib)")
    p.add_argument("--notebook", action="store_true",
                   help="also run a literal NumPy transcription of the notebook (1e-9 in the "
                        "logs, clip +-500) and report how much its numbers differ")
    p.add_argument("--no-geometry", action="store_true",
                   help="skip the per-layer diagnostics (probes, effective rank)")
    p.set_defaults(func=run)


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    print(f"wrote {path}")


def _report_notebook(results, net_seed, data_seed, epochs):
    nb = notebook_fit(net_seed, data_seed, epochs)
    print()
    print("notebook transcription (plain NumPy, log(p + 1e-9), sigmoid input clipped to +-500):")
    for act in ACTIVATIONS:
        ours = np.array(results[act]["loss_history"])
        theirs = np.array(nb[act]["loss_history"])
        stable = np.array(nb[act]["stable_history"])
        print(f"  {act:<8} final loss notebook {theirs[-1]:.10f}  fastgeo {ours[-1]:.10f}  "
              f"max |notebook - fastgeo| over epochs {np.abs(theirs - ours).max():.1e}  "
              f"(of which the 1e-9 quirk: {np.abs(theirs - stable).max():.1e})")
        print(f"  {act:<8} largest |z| into the notebook's sigmoid: {nb[act]['max_abs_z']:.2f} "
              f"(the +-500 clip {'never acts' if nb[act]['max_abs_z'] <= 500 else 'ACTS'})")


def run(args):
    t0 = time.perf_counter()
    if args.epochs < 1:
        print("fastgeo reproduce: --epochs must be >= 1", file=sys.stderr)
        return 2
    try:
        net_seeds = parse_range(args.seeds) if args.seeds else None
        data_seeds = parse_range(args.data_seeds) if args.data_seeds else None
    except ValueError as exc:
        print(f"fastgeo reproduce: {exc}", file=sys.stderr)
        return 2
    if args.plots:
        from . import plots
        try:
            plots.require_matplotlib()
        except ImportError as exc:
            print(f"fastgeo reproduce: {exc}", file=sys.stderr)
            return 2
    geometry = not args.no_geometry

    if net_seeds is None and data_seeds is None:
        print(f"fastgeo reproduce: the article's protocol on the {args.backend} backend "
              f"(2-8-8-1, two-moons 300/100, lr {PROTOCOL['lr']}, batch "
              f"{PROTOCOL['batch_size']}, {args.epochs} epochs, seeds 42)")
        results, nets, data = run_protocol(epochs=args.epochs, backend=args.backend,
                                           geometry=geometry)
        print(format_report(results))
        if geometry:
            print()
            print(format_geometry(results))
        if args.notebook:
            _report_notebook(results, 42, 42, args.epochs)
        if args.json:
            _write_json(args.json, results)
        if args.plots:
            from . import plots
            for path in plots.protocol_figures(results, nets, data, args.plots):
                print(f"wrote {path}")
        print(f"time: {time.perf_counter() - t0:.2f} s")
        return 0

    combos = [(n, d) for n in (net_seeds or [PROTOCOL["net_seed"]])
              for d in (data_seeds or [PROTOCOL["data_seed"]])]
    what = []
    if net_seeds is not None:
        what.append(f"net seeds {args.seeds}")
    if data_seeds is not None:
        what.append(f"data seeds {args.data_seeds}")
    what = ", ".join(what)
    print(f"fastgeo reproduce: {len(combos)} runs of the article's protocol ({what}) on the "
          f"{args.backend} backend, {args.epochs} epochs each")
    runs = []
    for n, d in combos:
        res, _, _ = run_protocol(net_seed=n, data_seed=d, epochs=args.epochs,
                                 backend=args.backend, geometry=geometry)
        runs.append(res)
    summary = summarize(runs)
    print(format_summary(runs, summary, what))
    if args.json:
        _write_json(args.json, {"summary": summary, "runs": runs,
                                "protocol": dict(PROTOCOL, epochs=args.epochs,
                                                 net_seeds=net_seeds, data_seeds=data_seeds,
                                                 backend=args.backend)})
    if args.plots:
        from . import plots
        for path in plots.seeds_figures(runs, args.plots, what):
            print(f"wrote {path}")
    print(f"time: {time.perf_counter() - t0:.2f} s")
    return 0
