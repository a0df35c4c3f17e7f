"""The analyses of an atlas: one module each. ``default_analyses`` is what ``atlas build``
runs; a library user may pass others to ``atlas.build(..., analyses=[...])``."""

from __future__ import annotations

from .base import Analysis, Column, Result, RunInfo, Table
from .distances import HeadDistances
from .examples import ExampleSentences
from .heads import HeadMetrics
from .pairs import TokenPairs
from .views import ViewData

__all__ = ["Analysis", "Column", "Result", "RunInfo", "Table", "default_analyses"]


def default_analyses(views: int = 200) -> list[Analysis]:
    """The built-in analyses, in the order they finish (examples need the heads' labels, the
    view data needs the examples)."""
    return [HeadMetrics(), HeadDistances(), ExampleSentences(), TokenPairs(), ViewData(views)]
