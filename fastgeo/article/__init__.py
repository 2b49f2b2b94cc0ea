"""The "sigmoid compresses, ReLU preserves" article, as a package.

- ``protocol``: the protocol once: data, weights, random streams, constants, the
  article's numbers, and one run of it on ``fastgeo.MLP`` with the article's metrics.
- ``notebook``: the companion notebook transcribed literally in NumPy (the witness for
  its two quirks, and ``fastgeo bench``'s NumPy baseline for the article row).
- ``report``: the comparison with the article, the geometry table, many-seed statistics.
- ``reproduce``: the ``fastgeo reproduce`` command.

Imports go one way: ``reproduce`` -> ``report``, ``notebook`` -> ``protocol`` -> fastgeo's
core (``mlp``, ``geometry``, inside the functions that train). ``fastgeo.plots``,
``fastgeo.sweep``, ``fastgeo.bench`` and the asv suite import this package; nothing in it
imports them at module level (``reproduce`` loads ``fastgeo.plots`` when asked for figures).
"""

from .notebook import NotebookMLP, notebook_data, run_notebook
from .protocol import (
    ACTIVATIONS,
    ARTICLE,
    GAINS,
    OPTIMIZERS,
    PROTOCOL,
    TRACE_KEYS,
    far_points,
    legacy_weights,
    load_data,
    make_optimizer,
    parse_optimizers,
    protocol_streams,
    run_protocol,
    signal_trace,
    train_nets,
)
from .report import article_rows, format_geometry, format_report, format_summary, summarize

__all__ = [
    "ACTIVATIONS", "ARTICLE", "GAINS", "OPTIMIZERS", "PROTOCOL", "TRACE_KEYS", "NotebookMLP",
    "article_rows", "far_points", "format_geometry", "format_report", "format_summary",
    "legacy_weights", "load_data", "make_optimizer", "notebook_data", "parse_optimizers",
    "protocol_streams", "run_notebook",
    "run_protocol", "signal_trace", "summarize", "train_nets",
]
