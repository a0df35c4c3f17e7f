"""The analyses of an atlas: one module each. ``default_analyses`` is what ``atlas build``
runs; a library user may pass others to ``atlas.build(..., analyses=[...])``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .base import Analysis, Column, Result, RunInfo, Table
from .compare import Compare
from .distances import HeadDistances
from .examples import ExampleSentences
from .generation import PromptGeneration
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
    from ..result import Atlas

__all__ = [
    "BUILT_IN",
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
    "figures",
    "presenters",
]


# Every built-in analysis, by name: the site finds an analysis's presentation (its sections,
# charts, pages and page data) by the name its results are kept under in the Atlas.
BUILT_IN: dict[str, type[Analysis]] = {
    a.name: a
    for a in (
        HeadMetrics,
        HeadTypes,
        PromptGeneration,
        HeadDistances,
        ExampleSentences,
        WordPairs,
        Syntax,
        LayerEmbeddings,
        HeadImportance,
        Predictions,
        LabelBreakdown,
        ViewData,
        Compare,
    )
}


def default_analyses(options: BuildOptions | None = None) -> list[Analysis]:
    """The built-in analyses, each configured from ``options`` (default: the CLI's defaults),
    in the given order; the pipeline runs them in that order where their ``requires`` leave it
    free. Head importance is left out when ``options.importance`` is 0; the user's analyses of
    ``options.analysis`` ("MODULE:CLASS", ``--analysis``) come last."""
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
    # prompt rows and generated rows apart, where the model generates (--generate)
    split: list[Analysis] = [PromptGeneration()] if options.generate else []
    from ..plugins import load_analysis

    return [
        HeadMetrics(),
        HeadTypes(options.probe_sequences),
        *split,
        HeadDistances(),
        ExampleSentences(),
        WordPairs(),
        Syntax(options.min_relation),
        LayerEmbeddings(options.views),
        *extra,
        Predictions(),
        LabelBreakdown(),
        ViewData(options.views, options.neuron),
        *(load_analysis(spec) for spec in options.analysis),
    ]


def presenters(
    atlas: Atlas, analyses: Iterable[Analysis | type[Analysis]] = ()
) -> list[type[Analysis]]:
    """The class of each analysis whose results ``atlas`` holds: ``analyses`` (the user's,
    instances or classes) by name, else the built-in one of that name; in the order of
    ``BUILT_IN``, then the user's as given (the order of their sections on a page: atlas.json
    keeps ``results`` sorted by name). An analysis known by neither (one of the user's, not
    passed again) shows its columns only (``render_site`` warns)."""
    known = {**BUILT_IN, **{a.name: a if isinstance(a, type) else type(a) for a in analyses}}
    return [cls for name, cls in known.items() if name in atlas.results]


def figures(
    atlas: Atlas, analyses: Iterable[Analysis | type[Analysis]] = ()
) -> dict[int, set[int]]:
    """Sentence index -> the heads (flat) whose pages draw it as a figure, by every analysis
    (``Analysis.figures``: the head pages' examples)."""
    out: dict[int, set[int]] = {}
    for presenter in presenters(atlas, analyses):
        for index, heads in presenter.figures(atlas).items():
            out.setdefault(index, set()).update(heads)
    return out
