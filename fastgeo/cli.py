"""The ``fastgeo`` command. Each subcommand lives in its own module, which exposes
``add_parser(subparsers)`` registering its arguments and a ``func`` to run."""

import argparse
import importlib
import sys

#: subcommand modules, in the order ``fastgeo --help`` lists them
SUBCOMMANDS = ("fastgeo.demo", "fastgeo.experiment", "fastgeo.sweep", "fastgeo.bench.command")


def build_parser():
    parser = argparse.ArgumentParser(prog="fastgeo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
