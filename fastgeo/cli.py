"""The ``fastgeo`` command.

Each subcommand lives in its own module, listed in ``SUBCOMMANDS``; the module exposes
``add_parser(subparsers)``, which registers the subcommand's arguments and sets
``func``, the function that runs it.
"""

import argparse
import importlib
import sys

#: subcommand modules, in the order ``fastgeo --help`` lists them
SUBCOMMANDS = ("fastgeo.demo", "fastgeo.article.reproduce", "fastgeo.sweep",
               "fastgeo.bench.command")

DESCRIPTION = ("fastgeo: fast Numba kernels for small dense MLPs, checked against a NumPy\n"
               "reference. Reproduce the sigmoid-vs-ReLU geometry article, sweep depth and\n"
               "activation, and benchmark the kernels against NumPy, PyTorch, JAX,\n"
               "scikit-learn and ONNX Runtime.")
EPILOG = ("examples:\n"
          "  fastgeo reproduce --plots figures   the article's numbers beside fastgeo's\n"
          "  fastgeo sweep --depths 1-4          accuracy and geometry against depth\n"
          "  fastgeo bench --quick               fastgeo against every installed peer\n"
          "  fastgeo COMMAND --help              a command's options")


def build_parser():
    parser = argparse.ArgumentParser(prog="fastgeo", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
