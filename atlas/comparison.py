"""Comparing two models as two atlases, and the analysis across them.

``atlas build --model A --compare B``: model A and model B each run the same analyses (the
build's, and fresh copies of them for B) over the same batches, on the same tokens
(``running.PairedRunner``), and the compare analysis (``analyses.compare.Compare``) takes both
models' records of each example together, for what needs both attentions at once: the change
per head and B's nearest head in A. Each model's analyses finish into an atlas of that model
(A's first; B's view data also keeps B's attention of A's sentence pages, which the compare
analysis asks for). ``compare_atlases`` then gives A's atlas with the comparison: B − A of
every catalogue column, B's labels and card, B's attention of A's sentence pages, and the
compare analysis's change. ``atlas compare A/atlas.json B/atlas.json`` takes that same path
from two finished atlases, without the models, so without the change.

A compare build splits into parts and merges as a single build does
(``measure_compare_states``, ``finish_compare_states``; tests/test_merge.py): each part's
states are A's (with the compare analysis's) and B's, and merging gives the one-pass atlas.
A sharded compare build (atlas/shards.py) merges its shards' parts one at a time as they come
(``finish_compare_parts``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import pipeline
from .analyses import default_analyses
from .analyses.base import Analysis, Result, RunInfo, feed
from .analyses.compare import PAGE, SECTIONS, Compare, compare_heads, model_card
from .corpus import Example
from .options import BuildOptions
from .pipeline import Part, load_part, save_part
from .result import Atlas, first_non_finite, rounded
from .running import PairedRunner, Runner

B_PART = "model-b"  # the subfolder of a compare part's folder that holds B's states


class CompareError(ValueError):
    """Two atlases that cannot be compared; the message is one line."""


def compare_atlases(
    a: Atlas, b: Atlas, names: tuple[str, str] = ("A", "B"), cross: Result | None = None
) -> Atlas:
    """Atlas ``a`` with the comparison to ``b``: both built on the same sentences by models of
    the same shape. B − A of every column both have, B's labels, and B's attention for the
    sentence pages of ``a`` where ``b`` holds it on the same tokens; with ``cross``, the compare
    analysis's result (a compare build), its change column and each head's rank and nearest
    head. ``names`` name the atlases in errors."""
    why = _incomparable(a, b)
    if why:
        raise CompareError(f"cannot compare {names[0]} with {names[1]}: {why}")
    columns_a = {c.key: [h.metrics[c.key] for h in a.heads] for c in a.catalogue}
    columns_b = {c.key: [h.metrics[c.key] for h in b.heads] for c in b.catalogue}
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below
        parts, data = compare_heads(a.catalogue, columns_a, columns_b, [h.label for h in b.heads])
    why = _not_finite(a, parts, data)
    if why:
        raise CompareError(f"cannot compare {names[0]} with {names[1]}: {why}")
    own = {v.index: v for v in a.views if v.heads_kept is None}
    views_b = [  # the data files of B hold attention only
        dataclasses.replace(v, vectors="", vectors_error=0.0)
        for v in b.views
        if v.heads_kept is None and v.index in own and v.tokens == own[v.index].tokens
    ]
    sections = {place: list(a.sections.get(place, [])) for place in {*a.sections, *SECTIONS}}
    for place, template in SECTIONS.items():
        sections[place].append(template)
    data.update(change=cross is not None, model=model_card(b.model))
    data["sentences"] = [v.index for v in views_b]
    compared = dataclasses.replace(
        a,
        heads=[
            dataclasses.replace(h, parts={**h.parts, Compare.name: part})
            for h, part in zip(a.heads, parts, strict=True)
        ],
        results={**a.results, Compare.name: data},
        pages={**a.pages, **PAGE},
        sections=sections,
        views_b=views_b,
    )
    return rounded(_with_cross(compared, cross) if cross is not None else compared)


def _with_cross(atlas: Atlas, cross: Result) -> Atlas:
    """The comparison with the compare analysis's result: its columns (the change) in the
    catalogue, every head's metrics and the means, as the pipeline puts an analysis's columns;
    its per-head part and data joined to the comparison's."""
    catalogue = [dataclasses.replace(c, analysis=Compare.name) for c in cross.catalogue]
    clash = {c.key for c in atlas.catalogue} & {c.key for c in catalogue}
    if clash:
        raise pipeline.AnalysisError(f"columns defined by two analyses: {', '.join(sorted(clash))}")
    shape = (atlas.model.layers, atlas.model.heads)
    grid = {c.key: np.asarray(cross.columns[c.key], float).reshape(shape) for c in catalogue}
    heads = [
        dataclasses.replace(
            h,
            metrics={**h.metrics, **{key: float(g.flat[flat]) for key, g in grid.items()}},
            parts={**h.parts, Compare.name: {**h.parts[Compare.name], **part}},
        )
        for flat, (h, part) in enumerate(zip(atlas.heads, cross.parts[Compare.name], strict=True))
    ]
    return dataclasses.replace(
        atlas,
        catalogue=[*atlas.catalogue, *catalogue],
        heads=heads,
        layer_means={**atlas.layer_means, **{k: g.mean(1).tolist() for k, g in grid.items()}},
        model_means={**atlas.model_means, **{k: float(g.mean()) for k, g in grid.items()}},
        results={
            **atlas.results,
            Compare.name: {**atlas.results[Compare.name], **cross.data},
        },
    )


def _not_finite(a: Atlas, parts: list[dict], data: dict) -> str:
    """Why the comparison holds a number that is not finite ("" if none does): metrics so
    large (each finite, as load() checks) that B − A or a mean passes float64's range."""
    for head, part in zip(a.heads, parts, strict=True):
        for key, delta in part["delta"].items():
            if not math.isfinite(delta):
                return (
                    f"B − A of {key!r} at head {head.name} is too large a number "
                    f"({part['b'][key]:g} − {head.metrics[key]:g})"
                )
    for key, mean in data["model_means_b"].items():
        if not math.isfinite(mean):
            return f"the mean of {key!r} over the second atlas's heads is too large a number"
    where = first_non_finite([parts, data])
    return f"a number of the comparison is not finite ({where})" if where else ""


def _incomparable(a: Atlas, b: Atlas) -> str:
    """Why two atlases cannot be compared head by head on the same sentences ("" if they can)."""
    if Compare.name in a.results or Compare.name in b.results:
        return "one of them is already a comparison; compare two plain atlases"
    shape_a, shape_b = (a.model.layers, a.model.heads), (b.model.layers, b.model.heads)
    if shape_a != shape_b:
        return (
            f"{a.model.name} has {shape_a[0]} layers × {shape_a[1]} heads and {b.model.name} "
            f"{shape_b[0]} × {shape_b[1]}; head-by-head comparison needs the same shape"
        )
    if len(a.sentences) != len(b.sentences):
        return (
            f"built on different inputs ({len(a.sentences)} and {len(b.sentences)} sentences); "
            "atlas compare needs two atlases of the same sentences"
        )
    for x, y in zip(a.sentences, b.sentences, strict=True):
        if (x.text, x.text_b) != (y.text, y.text_b):
            return (
                f"sentence {x.index + 1} differs ({x.text[:40]!r} and {y.text[:40]!r}); "
                "atlas compare needs two atlases of the same sentences"
            )
    return ""


# --- a compare build: both models over the same batches ---------------------------------------


@dataclass
class _Side:
    """One model's runner and its analyses, started on its run."""

    runner: Runner
    analyses: list[Analysis]
    run: RunInfo
    probe: object = None


def _analyses(
    analyses: Sequence[Analysis] | None, options: BuildOptions
) -> tuple[list[Analysis], Compare]:
    """Model A's analyses (fresh; default: ``default_analyses(options)``) and the compare
    analysis: the one among ``analyses``, else a new one."""
    given = list(analyses) if analyses is not None else default_analyses(options)
    cross = next((a for a in given if isinstance(a, Compare)), Compare())
    own = [a for a in given if not isinstance(a, Compare)]
    if any(a.name == cross.name for a in own):
        raise pipeline.AnalysisError(
            f"an analysis of the build is named {cross.name!r}, as the analysis that compares "
            "the two models is"
        )
    return own, cross


def _sides(
    examples: Sequence[Example],
    runner: PairedRunner,
    analyses: Sequence[Analysis],
    cross: Compare,
    batch_size: int,
) -> tuple[_Side, _Side]:
    """A's analyses and fresh copies of them for B, each started on its model's run with its
    model's probe; the compare analysis started on A's run."""
    copies = [copy.deepcopy(a) for a in analyses]  # before A's start: fresh
    a = _Side(runner.a, *pipeline._start(examples, runner.a, analyses, batch_size, probe=True))
    try:
        b = _Side(runner.b, *pipeline._start(examples, runner.b, copies, batch_size, probe=True))
    except BaseException:
        _close(a)
        raise
    cross.start(a.run)
    return a, b


def _close(*sides: _Side) -> None:
    for side in sides:
        if side.probe is not None:
            side.probe.close()


def _feed(
    examples: Sequence[Example],
    runner: PairedRunner,
    sides: tuple[_Side, _Side],
    cross: Compare,
    indices: range | None,
    options: BuildOptions,
) -> dict[int, tuple[int, bool, tuple[int | None, int | None] | None]]:
    """Feed each example's records to its model's analyses, both to the compare analysis;
    return each sentence's (tokens, truncated, kept characters), as ``pipeline._feed``."""
    a, b = sides
    rows = {}
    for record_a, record_b in runner.run(
        examples,
        indices=indices,
        batch_size=options.batch_size,
        progress=options.progress,
        capture=tuple(cross.needs.union(*(x.needs for x in s.analyses)) for s in sides),
        queries_keys_for=tuple(_queries_keys_for(s.analyses) for s in sides),
    ):
        for side, record in ((a, record_a), (b, record_b)):
            for analysis in side.analyses:
                feed(analysis, record)  # its layers in order, then the record
        cross.add_pair(record_a, record_b)
        rows[record_a.index] = pipeline.row(record_a, examples, runner.a.max_length)
    return rows


def _queries_keys_for(analyses: Sequence[Analysis]) -> Callable[[int], bool]:
    """Whether any of a model's analyses needs an example's queries and keys."""
    return lambda index: any(a.queries_keys_for(index) for a in analyses)


def _finish(
    examples: Sequence[Example],
    sides: tuple[_Side, _Side],
    cross: Compare,
    rows: dict | pipeline.Rows,
    options: BuildOptions,
    title: str,
    input_name: str,
) -> Atlas:
    """A's atlas, the compare analysis's result, B's atlas (whose view data, given that result,
    also keeps B's attention of the sentences it wants: A's sentence pages), and the
    comparison of the two."""
    a, b = sides
    results_a = pipeline._finish(examples, a.runner, a.analyses, options.batch_size)
    crossed = cross.finish(results_a)
    results_b = pipeline._finish(
        examples, b.runner, b.analyses, options.batch_size, given={cross.name: crossed}
    )
    atlas_a, atlas_b = (
        pipeline._atlas(examples, side.runner, side.analyses, side.run, rows, results, options,
                        title=title, input_name=input_name)
        for side, results in ((a, results_a), (b, results_b))
    )  # fmt: skip
    return compare_atlases(atlas_a, atlas_b, cross=crossed)


def measure_compare(
    examples: Sequence[Example],
    runner: PairedRunner,
    analyses: Sequence[Analysis] | None = None,
    options: BuildOptions | None = None,
    *,
    title: str,
    input_name: str,
) -> Atlas:
    """Both models over every example once, in the same batches, and the comparison of their
    atlases (as ``pipeline.measure`` for one model). ``analyses``: model A's (fresh), which B
    runs too, as copies; a ``Compare`` among them is the compare analysis (default: a new
    one)."""
    options = options or BuildOptions()
    analyses, cross = _analyses(analyses, options)
    sides = _sides(examples, runner, analyses, cross, options.batch_size)
    try:
        rows = _feed(examples, runner, sides, cross, None, options)
        for side in sides:
            for analysis in side.analyses:
                analysis.settle()
        return _finish(examples, sides, cross, rows, options, title, input_name)
    finally:
        _close(*sides)


@dataclass
class ComparePart:
    """What one range of the corpus gave in a compare build: A's ``Part`` (its analyses'
    states and the compare analysis's, the rows, and the generations: A generates) and B's (its
    analyses' states). Its range and generations are A's part's."""

    a: Part
    b: Part

    @property
    def start(self) -> int:
        return self.a.start

    @property
    def stop(self) -> int:
        return self.a.stop

    @property
    def generated(self) -> dict[int, tuple[int, ...]]:
        return self.a.generated


def measure_compare_states(
    examples: Sequence[Example],
    runner: PairedRunner,
    analyses: Sequence[Analysis] | None = None,
    start: int = 0,
    stop: int | None = None,
    options: BuildOptions | None = None,
) -> ComparePart:
    """One worker's share of a split compare build, as ``pipeline.measure_states``: the
    examples [start, stop) through both models, and the states, unfinished."""
    options = options or BuildOptions()
    stop = len(examples) if stop is None else min(stop, len(examples))
    span = range(max(0, start), max(start, stop))
    analyses, cross = _analyses(analyses, options)
    a, b = sides = _sides(examples, runner, analyses, cross, options.batch_size)
    try:
        rows = _feed(examples, runner, sides, cross, span, options)
        for side in sides:
            for analysis in side.analyses:
                analysis.settle()
    finally:
        _close(*sides)
    states = {x.name: x.state() for x in [*a.analyses, cross]}
    return ComparePart(
        Part(span.start, span.stop, rows, states),
        Part(span.start, span.stop, rows, {x.name: x.state() for x in b.analyses}),
    )


def finish_compare_states(
    examples: Sequence[Example],
    runner: PairedRunner,
    analyses: Sequence[Analysis] | None,
    parts: Sequence[ComparePart],
    options: BuildOptions | None = None,
    *,
    title: str,
    input_name: str,
) -> Atlas:
    """The compare atlas of the parts of a split compare build, which must cover the corpus
    once, in any order, as ``pipeline.finish_states``: ``finish_compare_parts`` of them in
    corpus order."""
    parts = sorted(parts, key=lambda part: (part.start, part.stop))
    pipeline.in_order([part.a for part in parts], len(examples))
    return finish_compare_parts(examples, runner, analyses, parts, options, title=title,
                                input_name=input_name)  # fmt: skip


def finish_compare_parts(
    examples: Sequence[Example],
    runner: PairedRunner,
    analyses: Sequence[Analysis] | None,
    parts: Iterable[ComparePart],
    options: BuildOptions | None = None,
    *,
    title: str,
    input_name: str,
) -> Atlas:
    """``finish_compare_states`` of parts given one at a time in corpus order (a sharded
    build's, as ``pipeline.finish_parts`` takes them): each model's analyses, and the compare
    analysis, merge each part's states as it is drawn, and the part is let go before the next;
    then they finish as ``measure_compare`` does. ``analyses``: fresh, as given to each part."""
    options = options or BuildOptions()
    analyses, cross = _analyses(analyses, options)
    copies = [copy.deepcopy(x) for x in analyses]
    parts = pipeline.following(parts, len(examples))
    first = next(parts, None)
    if first is None:
        raise ValueError("the parts do not cover the corpus exactly once")
    batch = options.batch_size
    a = pipeline.Merging(examples, runner.a, analyses, first.a.states, batch)
    b = pipeline.Merging(examples, runner.b, copies, first.b.states, batch)
    crossing = pipeline.Merging(examples, runner.a, [cross], first.a.states, batch)
    rows = pipeline.Rows(range(len(examples)))  # compact, as pipeline.finish_parts holds them
    rows.update(first.a.rows)
    del first
    for part in parts:
        _merge_part(part, a, b, crossing)
        rows.update(part.a.rows)
        del part  # merged: let it go before the next part is drawn
    if not crossing.analyses:
        raise ValueError("the parts hold no state of the compare analysis")
    sides = (_Side(runner.a, a.analyses, a.run), _Side(runner.b, b.analyses, b.run))
    return _finish(examples, sides, crossing.analyses[0], rows, options, title, input_name)


def _merge_part(
    part: ComparePart, a: pipeline.Merging, b: pipeline.Merging, crossing: pipeline.Merging
) -> None:
    """Merge a later part's states: A's, B's and the compare analysis's."""
    a.add(part.a.states, part.start)
    b.add(part.b.states, part.start)
    crossing.add(part.a.states, part.start)


def save_compare_part(part: ComparePart, folder: str | Path, analyses: Sequence[Analysis]) -> None:
    """Write a compare part into ``folder``: A's states as ``pipeline.save_part`` writes them,
    B's in the same format in its subfolder ``model-b``."""
    own, cross = _analyses(analyses, BuildOptions())
    save_part(part.a, folder, [*own, cross])
    save_part(part.b, Path(folder) / B_PART, own)


def load_compare_part(folder: str | Path, analyses: Sequence[Analysis]) -> ComparePart:
    """The compare part ``save_compare_part`` wrote in ``folder``."""
    own, cross = _analyses(analyses, BuildOptions())
    return ComparePart(load_part(folder, [*own, cross]), load_part(Path(folder) / B_PART, own))
