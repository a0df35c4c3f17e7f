"""The analyses of an atlas: one module each. ``default_analyses`` is what ``atlas build``
runs; a library user may pass others to ``atlas.build(..., analyses=[...])``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Analysis, Column, Result, RunInfo, Table
from .distances import HeadDistances
from .examples import ExampleSentences
from .heads import HeadMetrics
from .headtypes import DEFAULT_SEQUENCES, HeadTypes
from .importance import DEFAULT_ABLATION, DEFAULT_SAMPLE, HeadImportance
from .labels import LabelBreakdown
from .layers import LayerEmbeddings
from .pairs import WordPairs
from .predictions import Predictions
from .syntax import MIN_RELATION, Syntax
from .views import ViewData

if TYPE_CHECKING:
    from ..options import BuildOptions

__all__ = [
    "DEFAULT_ABLATION",
    "DEFAULT_SAMPLE",
    "DEFAULT_SEQUENCES",
    "MIN_RELATION",
    "Analysis",
    "Column",
    "Result",
    "RunInfo",
    "Table",
    "default_analyses",
]


def default_analyses(options: BuildOptions | None = None) -> list[Analysis]:
    """The built-in analyses, each configured from ``options`` (default: the CLI's defaults),
    in the given order; the pipeline runs them in that order where their ``requires`` leave it
    free. Head importance is left out when ``options.importance`` is 0."""
    from ..options import BuildOptions  # atlas.options imports this package's defaults

    if options is None:
        options = BuildOptions()
    if not isinstance(options, BuildOptions):  # the old default_analyses(views, ...)
        raise TypeError(
            f"default_analyses takes a BuildOptions, e.g. BuildOptions(views={options!r}); "
            f"got {type(options).__name__}"
        )
    extra: list[Analysis] = (
        [HeadImportance(options.importance, options.ablation, options.views)]
        if options.importance
        else []
    )
    return [
        HeadMetrics(),
        HeadTypes(options.probe_sequences),
        HeadDistances(),
        ExampleSentences(),
        WordPairs(),
        Syntax(options.min_relation),
        LayerEmbeddings(options.views),
        *extra,
        Predictions(),
        LabelBreakdown(),
        ViewData(options.views, options.neuron),
    ]
