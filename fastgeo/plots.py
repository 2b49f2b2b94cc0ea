"""PNG figures for ``fastgeo reproduce`` and ``fastgeo sweep``, and the canvas helpers
``fastgeo bench --plot`` draws its chart with.

matplotlib is an optional dependency (``pip install 'fastgeo[plot]'``) and is imported only
here, only when a figure is drawn. Figures are drawn on ``matplotlib.figure.Figure``
objects rendered by the Agg canvas, never through pyplot, so drawing them changes no
global matplotlib state (backend, open figures) of the calling process.
"""

import os

import numpy as np

from .activations import ACTIVATIONS
from .article.protocol import ARTICLE, TRACE_KEYS

COLORS = {act.name: act.color for act in ACTIVATIONS.values()}
CLASS_COLORS = ("tab:purple", "tab:olive")
MISSING = ("fastgeo's figures need matplotlib, which is not installed: "
           "pip install 'fastgeo[plot]' (or pip install matplotlib)")


def require_matplotlib():
    """Import matplotlib's Agg canvas, or raise ImportError saying how to install it."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as exc:
        raise ImportError(MISSING) from exc


def new_figure(ncols=1, nrows=1, size=(6, 4.5), **kw):
    """(figure, 2-D array of axes): a grid of ncols x nrows panels of ``size`` inches each,
    on the Agg canvas (no pyplot state). ImportError with the install hint without
    matplotlib."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def save_figure(fig, outdir, name):
    """Write fig as outdir/name (PNG at 110 dpi; outdir is created); returns the path."""
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, name)
    fig.savefig(path, dpi=110)
    return path


def _acts(results):
    return [k for k in results if k != "protocol" and k in COLORS]


# --- one protocol run ----------------------------------------------------------------


def dataset(data, far, outdir):
    Xtr, Xte, ytr, yte = data
    fig, ax = new_figure()
    ax = ax[0, 0]
    for c in (0, 1):
        ax.scatter(*Xtr[ytr == c].T, s=14, color=CLASS_COLORS[c], alpha=0.6,
                   label=f"train, class {c}")
        ax.scatter(*Xte[yte == c].T, s=26, color=CLASS_COLORS[c], marker="x",
                   label=f"test, class {c}")
    for key, i in far.items():
        ax.scatter(*Xtr[i], s=180, facecolors="none", edgecolors="k", linewidths=1.5)
        ax.annotate(f"far point {key}", Xtr[i], xytext=(6, 6), textcoords="offset points")
    ax.set_title(f"two-moons, standardized: {len(ytr)} train / {len(yte)} test")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.legend(fontsize=8)
    return save_figure(fig, outdir, "dataset.png")


def loss_curves(results, outdir):
    fig, ax = new_figure()
    ax = ax[0, 0]
    for act in _acts(results):
        h = results[act]["loss_history"]
        ax.plot(np.arange(1, len(h) + 1), h, color=COLORS[act],
                label=f"{act}: final {h[-1]:.4f}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (mean BCE of the mini-batches)")
    ax.set_title("loss curves")
    ax.legend()
    return save_figure(fig, outdir, "loss_curves.png")


def _grid(X, steps=250, pad=0.6):
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], steps), np.linspace(lo[1], hi[1], steps))
    return xx, yy, np.column_stack([xx.ravel(), yy.ravel()])


def decision_boundaries(results, nets, data, outdir):
    Xtr, Xte, _ytr, yte = data
    acts = _acts(results)
    fig, axes = new_figure(ncols=len(acts), sharex=True, sharey=True)
    xx, yy, G = _grid(np.vstack([Xtr, Xte]))
    for ax, act in zip(axes[0], acts):
        p = nets[act].forward(G)[:, 0].reshape(xx.shape)
        ax.contourf(xx, yy, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.45)
        ax.contour(xx, yy, p, levels=[0.5], colors="k", linewidths=1.5)
        for c in (0, 1):
            ax.scatter(*Xte[yte == c].T, s=22, color=CLASS_COLORS[c], edgecolors="k",
                       linewidths=0.4, label=f"test, class {c}")
        ax.set_title(f"{act}: test accuracy {results[act]['test_accuracy']:.0%}")
        ax.set_xlabel("x1")
    axes[0, 0].set_ylabel("x2")
    axes[0, 0].legend(fontsize=8, loc="lower left")
    return save_figure(fig, outdir, "decision_boundaries.png")


def signal_traces(results, outdir):
    acts = _acts(results)
    keys = ("class0", "class1")
    fig, axes = new_figure(ncols=2, sharey=True)
    far = results["protocol"].get("far_points", {})
    for ax, key in zip(axes[0], keys):
        for act in acts:
            tr = results[act]["signal_trace"][key]
            ax.plot(range(len(tr)), tr, "o-", color=COLORS[act], label=act)
        ax.set_xticks(range(len(TRACE_KEYS)), TRACE_KEYS)
        ax.set_yscale("log")
        ax.set_title(f"far point {key} (train index {far.get(key, '?')})")
        ax.set_xlabel("stage")
    axes[0, 0].set_ylabel("mean |.| over units")
    axes[0, 0].legend()
    return save_figure(fig, outdir, "signal_traces.png")


def _pca2(H):
    Hc = H - H.mean(axis=0)
    _, s, Vt = np.linalg.svd(Hc, full_matrices=False)
    P = Hc @ Vt[:2].T
    if P.shape[1] < 2:
        P = np.column_stack([P, np.zeros(len(P))])
    var = s ** 2
    share = var[:2].sum() / var.sum() if var.sum() > 0 else 1.0
    return P, share


def hidden_space(results, nets, data, outdir):
    """Layers 1-2 (every hidden layer) of each net, the training points projected on
    their two principal components; all panels share the axes, so the scale of each
    representation can be compared by eye."""
    Xtr, _, ytr, _ = data
    acts = _acts(results)
    n_hidden = len(nets[acts[0]].sizes) - 2
    fig, axes = new_figure(ncols=n_hidden, nrows=len(acts), size=(4.5, 4), sharex=True,
                        sharey=True)
    for r, act in enumerate(acts):
        _, trace = nets[act].forward_trace(Xtr)
        for l in range(1, n_hidden + 1):
            ax = axes[r, l - 1]
            P, share = _pca2(np.asarray(trace[l]))
            for c in (0, 1):
                ax.scatter(*P[ytr == c].T, s=8, color=CLASS_COLORS[c], alpha=0.7,
                           label=f"class {c}")
            ax.set_title(f"{act} a{l}: std {np.std(trace[l]):.3f}, "
                         f"PC1-2 {share:.1%} of variance", fontsize=9)
            if r == len(acts) - 1:
                ax.set_xlabel("PC1")
            if l == 1:
                ax.set_ylabel("PC2")
    axes[0, 0].legend(fontsize=8)
    return save_figure(fig, outdir, "hidden_space.png")


def protocol_figures(results, nets, data, outdir):
    """Every figure of one ``fastgeo reproduce`` run; returns their paths."""
    far = results["protocol"]["far_points"]
    return [
        dataset(data, far, outdir),
        loss_curves(results, outdir),
        decision_boundaries(results, nets, data, outdir),
        signal_traces(results, outdir),
        hidden_space(results, nets, data, outdir),
    ]


# --- many seeds -----------------------------------------------------------------------


def seeds_figures(runs, outdir, what=""):
    """One figure: each run's test accuracy and final loss per activation (a strip plot),
    the article's values as dashed lines."""
    acts = _acts(runs[0])
    fig, axes = new_figure(ncols=2)
    rng = np.random.RandomState(0)  # jitter only
    for ax, metric in zip(axes[0], ("test_accuracy", "final_loss")):
        for i, act in enumerate(acts):
            v = [r[act][metric] for r in runs]
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(v)), v, color=COLORS[act], s=20)
            ax.errorbar(i + 0.3, np.mean(v), yerr=np.std(v), fmt="s", color="k", capsize=4)
            if act in ARTICLE and metric in ARTICLE[act]:
                ax.hlines(ARTICLE[act][metric], i - 0.3, i + 0.4, colors=COLORS[act],
                          linestyles="--", label=f"article, {act}")
        ax.set_xticks(range(len(acts)), acts)
        ax.set_title(f"{metric} over {len(runs)} runs")
        ax.legend(fontsize=8)
    if what:
        fig.suptitle(what)
    return [save_figure(fig, outdir, "seeds_summary.png")]


# --- sweep ----------------------------------------------------------------------------


def sweep_figures(summary, outdir):
    """Test accuracy, and the last hidden layer's effective rank and probe accuracy, and
    the saturated / dead fraction, against depth, mean +- std over seeds per activation.
    ``summary``: {activation: {depth: {metric: {"mean", "std"}}}} as fastgeo.sweep makes."""
    panels = (("test_accuracy", "test accuracy"),
              ("last_effective_rank", "effective rank, last hidden layer"),
              ("last_probe_accuracy", "linear-probe accuracy, last hidden layer"),
              ("saturated_or_dead", "saturated (bounded) / dead (rectified, gated) fraction"))
    fig, axes = new_figure(ncols=2, nrows=2, size=(5.5, 4))
    # a label is an activation, or "activation optimizer@lr": colour by activation, line
    # style by optimiser setting
    settings = sorted({key.partition(" ")[2] for key in summary})
    styles = ("o-", "s--", "^:", "d-.", "v-", "x--")
    for ax, (metric, title) in zip(axes.ravel(), panels):
        for act, per_depth in summary.items():
            name, _, setting = act.partition(" ")
            style = styles[settings.index(setting) % len(styles)]
            depths = sorted(per_depth, key=int)
            m = np.array([per_depth[d][metric]["mean"] for d in depths], dtype=float)
            s = np.array([per_depth[d][metric]["std"] for d in depths], dtype=float)
            x = np.array([int(d) for d in depths])
            ax.plot(x, m, style, color=COLORS.get(name), label=act)
            ax.fill_between(x, m - s, m + s, color=COLORS.get(name), alpha=0.15)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("hidden layers")
    axes[0, 0].legend()
    return [save_figure(fig, outdir, "sweep.png")]
