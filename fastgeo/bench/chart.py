"""``fastgeo bench --plot PATH``: the speed-up chart of one run.

One line per row of the tables (workload x activation); on it, fastgeo's speed-up over
each implementation that ran that row (fastgeo's samples/s over theirs), on a log scale,
one colour per implementation; 1x (parity) is a dashed line. The targets are ticks on
the row: black for a target against the best peer, the implementation's colour for a
target against that implementation (FMA-limit and compile targets are not speed-ups and
are left to the tables). A peer that failed the check against the reference is drawn
hollow. Drawn with matplotlib's Agg canvas (``fastgeo.plots.new_figure``).
"""

import re

from .. import plots

#: one colour and marker per implementation, in the tables' column order
STYLE = {
    "numpy": ("tab:red", "o"),
    "torch": ("tab:orange", "s"),
    "torch.compile": ("tab:brown", "D"),
    "jax": ("tab:blue", "^"),
    "sklearn": ("tab:green", "v"),
    "onnxruntime": ("tab:purple", "P"),
}


def speedup_chart(report, path):
    """Draw the chart of ``report`` (``fastgeo bench``'s report, or ``load_report`` of its
    --json) into the PNG ``path``; returns path. ValueError when no row has a speed-up."""
    rows = [r for r in report["rows"] if any(v for v in r["speedup"].values())]
    if not rows:
        raise ValueError("no row of this report has a speed-up to draw (fastgeo and at "
                         "least one other implementation must have run it)")
    height = 1.3 + 0.36 * len(rows)
    fig, axes = plots.new_figure(size=(9.5, height))
    ax = axes[0, 0]
    drawn = set()
    values = []
    for i, r in enumerate(rows):
        y = len(rows) - 1 - i
        if i % 2 == 0:
            ax.axhspan(y - 0.5, y + 0.5, color="0.95", zorder=0)
        for name, (color, marker) in STYLE.items():
            v = r["speedup"].get(name)
            if not v:
                continue
            values.append(v)
            ok = r["check_ok"].get(name, False)
            ax.plot([v], [y], marker=marker, markersize=7, linestyle="none", zorder=3,
                    color=color, markerfacecolor=color if ok else "none",
                    label=name if name not in drawn else None)
            drawn.add(name)
        for t in r["targets"]:
            target = speedup_target(t)
            if target is None:
                continue
            against, threshold = target
            color = "black" if against == "best" else STYLE[against][0]
            values.append(threshold)
            label = "target vs best peer" if against == "best" else None
            if label in drawn:
                label = None
            ax.plot([threshold], [y], marker="|", markersize=16, markeredgewidth=2.5,
                    linestyle="none", color=color, zorder=4, label=label)
            drawn.add(label)
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.axvline(1.0, color="0.4", linestyle="--", linewidth=1, zorder=1)
    ax.set_xscale("log")
    ax.set_xlim(min(values + [1.0]) / 1.6, max(values + [1.0]) * 1.6)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(-0.5, len(rows) - 0.5)
    ax.set_yticks(range(len(rows)),
                  [f"{r['title']}, {r['activation']}" for r in reversed(rows)], fontsize=8)
    ax.set_xlabel("fastgeo speed-up: fastgeo samples/s / theirs (log scale; > 1: fastgeo "
                  "faster)")
    meta = report.get("meta", {})
    ax.set_title(f"fastgeo against each implementation, {meta.get('threads', '?')} thread(s)"
                 f"{', --quick' if meta.get('quick') else ''}\nbars: targets (black: vs the "
                 f"best peer; coloured: vs that implementation); hollow marker: failed its "
                 f"check", fontsize=9)
    ax.grid(axis="x", which="major", color="0.8", linestyle=":", zorder=0)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.savefig(path, dpi=110)
    return path


def speedup_target(target):
    """(against, threshold) of a row's target that is a speed-up over the best peer or
    over one implementation of the chart; None for the others (FMA limit, seconds).
    Reports written before targets had "against"/"threshold" fields are read from the
    target's text (">=5x jax")."""
    if "against" in target:
        against, threshold = target["against"], target["threshold"]
    else:
        m = re.fullmatch(r">=([0-9.]+)x (\S+)", target["target"])
        if not m:
            return None
        threshold, against = float(m[1]), m[2]
    if against != "best" and against not in STYLE:
        return None
    return against, float(threshold)
