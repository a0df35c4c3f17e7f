"""The analyses of an atlas: one module each. ``default_analyses`` is what ``atlas build``
runs; a library user may pass others to ``atlas.build(..., analyses=[...])``."""

from __future__ import annotations

from .base import Analysis, Column, Result, RunInfo, Table
from .distances import HeadDistances
from .examples import ExampleSentences
from .heads import HeadMetrics
from .importance import DEFAULT_ABLATION, DEFAULT_SAMPLE, HeadImportance
from .labels import LabelBreakdown
from .layers import LayerEmbeddings
from .pairs import WordPairs
from .predictions import Predictions
from .syntax import MIN_RELATION, Syntax
from .views import ViewData

__all__ = [
    "DEFAULT_ABLATION",
    "DEFAULT_SAMPLE",
    "MIN_RELATION",
    "Analysis",
    "Column",
    "Result",
    "RunInfo",
    "Table",
    "default_analyses",
]


def default_analyses(
    views: int = 200,
    min_relation: int = MIN_RELATION,
    neuron: str = "views",
    importance: int = DEFAULT_SAMPLE,
    ablation: int = DEFAULT_ABLATION,
) -> list[Analysis]:
    """The built-in analyses, in the order they finish (examples need the heads' labels, the
    view data needs the sentences the others link to). ``importance``: sentences for head
    importance (0: none); ``ablation``: how many of them are ablated."""
    extra: list[Analysis] = [HeadImportance(importance, ablation, views)] if importance else []
    return [
        HeadMetrics(),
        HeadDistances(),
        ExampleSentences(),
        WordPairs(),
        Syntax(min_relation),
        LayerEmbeddings(views),
        *extra,
        Predictions(),
        LabelBreakdown(),
        ViewData(views, neuron),
    ]
