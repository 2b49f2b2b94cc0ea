"""Compatibility alias: the article's protocol, notebook transcription and report moved
to the ``fastgeo.article`` package (``fastgeo reproduce`` is ``fastgeo.article.reproduce``).
The names below keep ``from fastgeo.experiment import ...`` working; new code should
import from ``fastgeo.article``."""

from . import article as _article
from ._cli_args import parse_range
from .article import *
from .article.notebook import run_notebook as notebook_fit
from .article.report import ARTICLE_METRICS, CLAIMS

__all__ = _article.__all__ + ["ARTICLE_METRICS", "CLAIMS", "notebook_fit", "parse_range"]
