"""Compatibility alias: the article's protocol, notebook transcription and report moved
to the ``fastgeo.article`` package (``fastgeo reproduce`` is ``fastgeo.article.reproduce``).
The names below keep ``from fastgeo.experiment import ...`` working; new code should
import from ``fastgeo.article``."""

from ._cli_args import parse_range
from .article.notebook import run_notebook as notebook_fit
from .article.protocol import (
    ACTIVATIONS,
    ARTICLE,
    GAINS,
    PROTOCOL,
    TRACE_KEYS,
    far_points,
    legacy_weights,
    load_data,
    protocol_streams,
    run_protocol,
    signal_trace,
)
from .article.report import (
    ARTICLE_METRICS,
    CLAIMS,
    article_rows,
    format_geometry,
    format_report,
    format_summary,
    summarize,
)

__all__ = [
    "ACTIVATIONS", "ARTICLE", "ARTICLE_METRICS", "CLAIMS", "GAINS", "PROTOCOL", "TRACE_KEYS",
    "article_rows", "far_points", "format_geometry", "format_report", "format_summary",
    "legacy_weights", "load_data", "notebook_fit", "parse_range", "protocol_streams",
    "run_protocol", "signal_trace", "summarize",
]
