"""``fastgeo reproduce``: the sigmoid-vs-ReLU geometry article, re-run with one command
(the protocol: ``fastgeo.article.protocol``; the report: ``fastgeo.article.report``)."""

import sys
import time

import numpy as np

from .._cli_args import parse_range, plots_unavailable, write_json
from .notebook import run_notebook
from .protocol import ACTIVATIONS, OPTIMIZERS, PROTOCOL, make_optimizer, run_protocol
from .report import format_geometry, format_report, format_summary, summarize


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
    p.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="sgd",
                   help="the article's plain SGD (default), SGD with Nesterov momentum 0.9, "
                        "or Adam: does the sigmoid net still compress and plateau?")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: 0.05 for sgd and momentum, 0.001 for adam)")
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


def _report_notebook(results, net_seed, data_seed, epochs):
    nb = run_notebook(net_seed, data_seed, epochs)
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
    if args.plots and plots_unavailable("fastgeo reproduce"):
        return 2
    geometry = not args.no_geometry
    try:
        lr = make_optimizer(args.optimizer, args.lr).learning_rate_init
    except (TypeError, ValueError) as exc:
        print(f"fastgeo reproduce: --lr: {exc}", file=sys.stderr)
        return 2
    training = {"optimizer": args.optimizer, "lr": args.lr}
    recipe = ("" if args.optimizer == "sgd" and lr == PROTOCOL["lr"] else
              f"; trained with {args.optimizer} at lr {lr:g} instead of the article's SGD at "
              f"lr {PROTOCOL['lr']}: the article's numbers are not expected to match")

    if net_seeds is None and data_seeds is None:
        print(f"fastgeo reproduce: the article's protocol on the {args.backend} backend "
              f"(2-8-8-1, two-moons 300/100, {args.optimizer} at lr {lr:g}, batch "
              f"{PROTOCOL['batch_size']}, {args.epochs} epochs, seeds 42){recipe}")
        results, nets, data = run_protocol(epochs=args.epochs, backend=args.backend,
                                           geometry=geometry, **training)
        print(format_report(results))
        if geometry:
            print()
            print(format_geometry(results))
        if args.notebook:
            _report_notebook(results, 42, 42, args.epochs)
        if args.json:
            write_json(args.json, results)
        if args.plots:
            from .. import plots
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
          f"{args.backend} backend, {args.epochs} epochs each, {args.optimizer} at lr "
          f"{lr:g}{recipe}")
    runs = []
    for n, d in combos:
        res, _, _ = run_protocol(net_seed=n, data_seed=d, epochs=args.epochs,
                                 backend=args.backend, geometry=geometry, **training)
        runs.append(res)
    summary = summarize(runs)
    print(format_summary(runs, summary, what))
    if args.json:
        write_json(args.json, {"summary": summary, "runs": runs,
                                "protocol": dict(PROTOCOL, epochs=args.epochs,
                                                 net_seeds=net_seeds, data_seeds=data_seeds,
                                                 backend=args.backend,
                                                 optimizer=args.optimizer, lr=lr)})
    if args.plots:
        from .. import plots
        for path in plots.seeds_figures(runs, args.plots, what):
            print(f"wrote {path}")
    print(f"time: {time.perf_counter() - t0:.2f} s")
    return 0
