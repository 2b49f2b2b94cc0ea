"""The report of ``fastgeo reproduce``: the article's numbers beside a run's, the
per-layer geometry, and the statistics over many seeds (where the article's values fall
in the spread, and how many runs satisfy each of its qualitative claims)."""

import numpy as np

from .protocol import ACTIVATIONS, ARTICLE, TRACE_KEYS

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
