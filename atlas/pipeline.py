"""The pipeline: runs the model once over the corpus and feeds every record to every analysis.

input → runner → analyses → Atlas. The runner captures what the analyses ask for and nothing
more; each analysis sees each example's attention layer by layer during the forward pass
(``add_layer``), then its record (``add``); the attention of every layer at once exists only when
an analysis of the run reads it so (``wants_whole``). Each analysis sees each example once (and,
if it asks, a few again at the end); their results are put together into the Atlas here, and
nothing flows back.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from . import contract
from .analyses import default_analyses
from .analyses.base import (
    ATTENTION,
    EVERY,
    PROBE,
    QUERIES_KEYS,
    SEQUENCES,
    Analysis,
    Result,
    RunInfo,
    streams,
    wants_whole,
)
from .analyses.states import load_states, save_states
from .corpus import Example, count_pairs, has_labels
from .options import BuildOptions
from .probe import ProbeError
from .records import Record
from .result import Atlas, CorpusSummary, Head, ModelCard, Options, Sentence, Sentences, rounded
from .running import Runner
from .scores import Scores
from .sequences import TokenPasses

log = logging.getLogger(__name__)
# Where an analysis can add a section: the overview's top cards, the overview, head pages, and
# sentence pages (under the sentence, before the views: "sentence_top"; after them: "sentence").
PAGES = ("overview_cards", "overview", "head", "sentence_top", "sentence")
P = TypeVar("P")  # a part of a split build: a Part, or a compare build's ComparePart


class AnalysisError(ValueError):
    """Analyses that cannot run together (e.g. two define the same column)."""


def measure(
    examples: Sequence[Example],
    runner: Runner,
    analyses: Sequence[Analysis] | None = None,
    options: BuildOptions | None = None,
    *,
    title: str,
    input_name: str,
) -> Atlas:
    """Run the model over every example once, streaming, and assemble the Atlas.

    ``analyses`` default to ``default_analyses(options)``; ``options`` (default: the CLI's)
    give the batch size, the progress bar and the options atlas.json records. The analyses
    finish in the order their ``requires`` ask (``order``), else in the order given."""
    options = options or BuildOptions()
    if analyses is None:
        analyses = default_analyses(options)
    batch_size = options.batch_size
    analyses, run, probe = _start(examples, runner, analyses, batch_size, probe=True)
    try:
        rows = _feed(examples, runner, analyses, None, batch_size, options.progress)
        for analysis in analyses:
            analysis.settle()
        results = _finish(examples, runner, analyses, batch_size)
    finally:
        if probe is not None:
            probe.close()
    return rounded(_atlas(examples, runner, analyses, run, rows, results, options, title=title,
                          input_name=input_name))  # fmt: skip


Row = tuple[int, bool, tuple[int | None, int | None] | None]  # tokens, truncated, kept chars


class Rows:
    """Each sentence's row (``row``: tokens, truncated, the characters kept of each side) over a
    range of the corpus, in arrays (33 bytes a sentence), not a tuple of Python objects per
    sentence: what a build of any size holds of every sentence beside its text."""

    def __init__(self, span: range) -> None:
        self.span = span
        self.tokens = np.zeros(len(span), np.int64)
        self.truncated = np.zeros(len(span), bool)
        self.cut = np.zeros(len(span), bool)  # kept characters given (the tuple, not None)
        self._kept = np.full((len(span), 2), -1, np.int64)  # -1: None

    @classmethod
    def of(cls, rows: Mapping[int, Row] | Rows, size: int) -> Rows:
        """``rows`` (by index, as a dict) as the rows of a corpus of ``size`` sentences."""
        if isinstance(rows, Rows) and rows.span == range(size):
            return rows
        made = cls(range(size))
        made.update(rows)
        return made

    def __setitem__(self, index: int, row: Row) -> None:
        at = index - self.span.start
        self.tokens[at], self.truncated[at] = row[0], row[1]
        self.cut[at] = row[2] is not None
        self._kept[at] = [-1 if end is None else end for end in row[2] or (None, None)]

    def __getitem__(self, index: int) -> Row:
        at = index - self.span.start
        kept = None
        if self.cut[at]:
            kept = tuple(None if end < 0 else int(end) for end in self._kept[at])
        return int(self.tokens[at]), bool(self.truncated[at]), kept

    def items(self) -> Iterator[tuple[int, Row]]:
        return ((i, self[i]) for i in self.span)

    def update(self, rows: Mapping[int, Row] | Rows) -> None:
        for i, given in rows.items():
            self[i] = given


@dataclasses.dataclass
class Part:
    """What one range [start, stop) of the corpus gave (``measure_states``): each sentence's
    (tokens, truncated, kept characters), and each analysis's ``state()`` by name; in a sharded
    ``--generate`` build, the ids the model wrote after each of its prompts (``generated``: the
    driver needs them for the sentence list, atlas/generation.py's ``Continued``)."""

    start: int
    stop: int
    rows: Rows | dict[int, Row]
    states: dict[str, dict]
    generated: dict[int, tuple[int, ...]] = dataclasses.field(default_factory=dict)


def save_part(part: Part, folder: str | Path, analyses: Sequence[Analysis]) -> None:
    """Write a part's states and rows into ``folder`` (``analyses.states``'s format; the rows
    as ``extra``)."""
    versions = {a.name: a.state_version for a in analyses}
    rows = [[i, n, truncated, kept] for i, (n, truncated, kept) in sorted(part.rows.items())]
    extra = {"start": part.start, "stop": part.stop, "rows": rows}
    if part.generated:
        extra["generated"] = [[i, list(ids)] for i, ids in sorted(part.generated.items())]
    save_states(folder, part.states, versions, extra)


def load_part(folder: str | Path, analyses: Sequence[Analysis]) -> Part:
    """The part ``save_part`` wrote in ``folder``."""
    states, extra = load_states(folder, {a.name: a.state_version for a in analyses})
    rows = Rows(range(int(extra["start"]), int(extra["stop"])))
    for i, n, truncated, kept in extra["rows"]:
        rows[int(i)] = (int(n), bool(truncated), tuple(kept) if kept is not None else None)
    generated = {int(i): tuple(int(t) for t in ids) for i, ids in extra.get("generated", [])}
    return Part(rows.span.start, rows.span.stop, rows, states, generated)


def measure_states(
    examples: Sequence[Example],
    runner: Runner,
    analyses: Sequence[Analysis],
    start: int = 0,
    stop: int | None = None,
    options: BuildOptions | None = None,
) -> Part:
    """Run the examples [start, stop) of the corpus through the model and the analyses, and
    return their states without finishing them: one worker's share of a split build. Records
    keep their index in the whole corpus, and the analyses know its size, so ``finish_states``
    over every part gives the one-pass Atlas. ``analyses`` are fresh (not started)."""
    options = options or BuildOptions()
    batch_size = options.batch_size
    stop = len(examples) if stop is None else min(stop, len(examples))
    analyses, _, probe = _start(examples, runner, analyses, batch_size, probe=True)
    try:
        span = range(max(0, start), max(start, stop))
        rows = _feed(examples, runner, analyses, span, batch_size, options.progress)
        for analysis in analyses:
            analysis.settle()
    finally:
        if probe is not None:
            probe.close()
    return Part(span.start, span.stop, rows, {a.name: a.state() for a in analyses})


def finish_states(
    examples: Sequence[Example],
    runner: Runner,
    analyses: Sequence[Analysis],
    parts: Sequence[Part],
    options: BuildOptions | None = None,
    *,
    title: str,
    input_name: str,
) -> Atlas:
    """The Atlas of the parts of a split build (``measure_states``), which must cover the
    corpus once, in any order: each analysis takes the first part's state and merges the
    others' in corpus order, then finishes as in ``measure`` (the few sentences an analysis asks
    to see again, ``revisit``, run here through ``runner``). ``analyses``: fresh, as given to
    each part."""
    parts = in_order(parts, len(examples))
    return finish_parts(examples, runner, analyses, parts, options, title=title,
                        input_name=input_name)  # fmt: skip


def finish_parts(
    examples: Sequence[Example],
    runner: Runner,
    analyses: Sequence[Analysis],
    parts: Iterable[Part],
    options: BuildOptions | None = None,
    *,
    title: str,
    input_name: str,
) -> Atlas:
    """``finish_states`` of parts given one at a time in corpus order (an iterator: a Ray
    driver's shards as they finish, state folders read one by one): each is merged in and let go
    before the next is drawn, so memory holds the merged states and one part, not every part.
    Refuses parts that do not follow on from each other or do not reach the corpus's end."""
    options = options or BuildOptions()
    batch_size = options.batch_size
    parts = iter(parts)
    first = next(parts, None)
    if first is None or first.start != 0:
        raise ValueError("the parts do not cover the corpus exactly once")
    blanks = {a.name: copy.deepcopy(a) for a in analyses}  # not started: for each later part
    merged = [a for a in analyses if a.name in first.states]
    analyses, run, _ = _start(examples, runner, merged, batch_size, probe=False)
    for analysis in analyses:
        analysis.load_state(first.states[analysis.name])
    rows, at = Rows(range(len(examples))), first.stop
    rows.update(first.rows)
    del first
    for part in parts:
        if part.start != at:
            raise ValueError("the parts do not cover the corpus exactly once")
        lacking = [a.name for a in analyses if a.name not in part.states]
        if lacking:
            raise ValueError(f"the part from sentence {at + 1} has no state of {lacking}")
        for analysis in analyses:
            _merge_in(analysis, blanks[analysis.name], run, part.states[analysis.name])
        rows.update(part.rows)
        at = part.stop
        del part  # its states are merged: let them go before the next part is drawn
    if at != len(examples):
        raise ValueError("the parts do not cover the corpus exactly once")
    results = _finish(examples, runner, analyses, batch_size)
    return rounded(_atlas(examples, runner, analyses, run, rows, results, options, title=title,
                          input_name=input_name))  # fmt: skip


def in_order(parts: Sequence[Part], size: int) -> list[Part]:
    """The parts in corpus order; refuses parts that do not cover a corpus of ``size``
    examples exactly once."""
    parts = sorted(parts, key=lambda part: (part.start, part.stop))
    covered = [i for part in parts for i in range(part.start, part.stop)]
    if covered != list(range(size)):
        raise ValueError("the parts do not cover the corpus exactly once")
    return parts


def following(parts: Iterable[P], size: int) -> Iterator[P]:
    """The parts (each with ``start`` and ``stop``), as given, one at a time; refused as they
    come unless each follows on from the one before it, from the corpus's first sentence to its
    last (``size``): the order a merge that draws parts one by one needs."""
    at = 0
    for part in parts:
        if part.start != at:
            raise ValueError("the parts do not cover the corpus exactly once")
        at = part.stop
        yield part
        del part  # not held while the next is drawn
    if at != size:
        raise ValueError("the parts do not cover the corpus exactly once")


class Merging:
    """Analyses (fresh) merging the parts' states one part at a time, in corpus order: started
    on the run, they take the first part's states (``states``: by analysis name; those that
    have none there are left out), and ``add`` merges each later part's into them, so that the
    parts can be let go as they are merged."""

    def __init__(
        self,
        examples: Sequence[Example],
        runner: Runner,
        analyses: Sequence[Analysis],
        states: Mapping[str, dict],
        batch_size: int,
    ) -> None:
        self.blanks = {a.name: copy.deepcopy(a) for a in analyses}  # not started: each part's
        merged = [a for a in analyses if a.name in states]
        self.analyses, self.run, _ = _start(examples, runner, merged, batch_size, probe=False)
        for analysis in self.analyses:
            analysis.load_state(states[analysis.name])

    def add(self, states: Mapping[str, dict], start: int) -> None:
        """Merge the states of the part that starts at sentence ``start`` (0-based)."""
        lacking = [a.name for a in self.analyses if a.name not in states]
        if lacking:
            raise ValueError(f"the part from sentence {start + 1} has no state of {lacking}")
        for analysis in self.analyses:
            _merge_in(analysis, self.blanks[analysis.name], self.run, states[analysis.name])


def _merge_in(analysis: Analysis, blank: Analysis, run: RunInfo, state: dict) -> None:
    """Merge ``state`` (a later part's, of ``analysis``) into ``analysis`` through a copy of
    ``blank`` (the analysis not started) that loads it."""
    piece = copy.deepcopy(blank)
    piece.start(run)
    piece.load_state(state)
    analysis.merge(piece)


def _start(
    examples: Sequence[Example],
    runner: Runner,
    analyses: Sequence[Analysis],
    batch_size: int,
    probe: bool,
) -> tuple[list[Analysis], RunInfo, object]:
    """Start the analyses on the run (with the runner's probe and token passes, if some need
    them and ``probe``); those that need a probe the model cannot give are left out, with a
    warning."""
    analyses = order(analyses)
    made = None
    if probe and any(PROBE in a.needs for a in analyses):
        try:
            made = runner.probe(examples, batch_size)
        except ProbeError as err:  # a model layout the probe does not know: measure the rest
            log.warning(
                "model %s: %s; left out: %s",
                runner.info.name,
                err,
                ", ".join(a.name for a in analyses if PROBE in a.needs),
            )
            analyses = order([a for a in analyses if PROBE not in a.needs])
    needs = frozenset().union(*(a.needs for a in analyses))
    info = runner.info
    run = RunInfo(
        layers=info.layers,
        heads=info.heads,
        causal=info.causal,
        sentences=len(examples),
        queries_keys_note=runner.queries_keys_note if QUERIES_KEYS in needs else "not captured",
        device=runner.device,
        probe=made,
        sequences=TokenPasses(runner, batch_size) if probe and SEQUENCES in needs else None,
        task=info.task,
        classes=tuple(info.classes),
        gold_labels=has_labels(examples),
        batch_size=batch_size,
        scores=Scores.from_json(info.scores, info.layers, info.head_dim),
    )
    for analysis in analyses:
        analysis.start(run)
    return analyses, run, made


def _feed(
    examples: Sequence[Example],
    runner: Runner,
    analyses: Sequence[Analysis],
    indices: range | None,
    batch_size: int,
    progress: bool,
) -> Rows:
    """Feed every record (of ``indices``, default all) to every analysis; return each
    sentence's (tokens, truncated, kept characters)."""
    rows = Rows(range(len(examples)) if indices is None else indices)
    for record in _run(examples, runner, analyses, indices, batch_size, progress):
        rows[record.index] = row(record, examples, runner.max_length)
    return rows


def row(
    record: Record, examples: Sequence[Example], max_length: int
) -> tuple[int, bool, tuple[int | None, int | None] | None]:
    """A sentence's (tokens, truncated, kept characters), from its record; warns of a
    truncated sentence."""
    if record.truncated:
        example = examples[record.index]
        log.warning(
            "sentence %d (id %s, line %d) truncated to %d tokens",
            record.index + 1,
            example.id,
            example.line,
            max_length,
        )
    return (record.n, record.truncated, record.kept_chars)


def _run(
    examples: Sequence[Example],
    runner: Runner,
    analyses: Sequence[Analysis],
    indices: Sequence[int] | None,
    batch_size: int,
    progress: bool,
) -> Iterator[Record]:
    """Run the examples (of ``indices``, default all) through the model and the analyses: each
    layer to those that stream (``add_layer``) as the pass leaves it, then each record to all
    (``add``); yields each record after that."""
    layered = [a for a in analyses if streams(a)]

    def each_layer(record: Record, layer: int, attention: np.ndarray) -> None:
        for analysis in layered:
            analysis.add_layer(record, layer, attention)

    needs = frozenset().union(*(a.needs for a in analyses)) - {ATTENTION}
    for record in runner.run(
        examples,
        indices=indices,
        batch_size=batch_size,
        progress=progress,
        capture=needs | ({ATTENTION} if wants_whole(analyses) else set()),
        queries_keys_for=lambda index: any(a.queries_keys_for(index) for a in analyses),
        each_layer=each_layer if layered else None,
    ):
        for analysis in analyses:
            analysis.add(record)
        yield record


def _finish(
    examples: Sequence[Example],
    runner: Runner,
    analyses: Sequence[Analysis],
    batch_size: int,
    given: Mapping[str, Result] | None = None,
) -> dict[str, Result]:
    """Each analysis's Result, in order, after running again the sentences it asks for.
    ``given``: results from outside this run that the analyses see as finished before them
    (a compare build's sentences whose B attention its pages want); not returned."""
    results: dict[str, Result] = dict(given or {})
    for analysis in analyses:
        again = list(analysis.revisit(results))
        if again:
            why = f": {analysis.revisit_reason}" if analysis.revisit_reason else ""
            log.info(
                "running %d sentences again for the %s analysis%s", len(again), analysis.name, why
            )
            for _record in _run(examples, runner, [analysis], again, batch_size, False):
                pass
        results[analysis.name] = analysis.finish(results)
    return {name: result for name, result in results.items() if name not in (given or {})}


def _atlas(
    examples: Sequence[Example],
    runner: Runner,
    analyses: Sequence[Analysis],
    run: RunInfo,
    rows: Mapping[int, Row] | Rows,
    results: dict[str, Result],
    options: BuildOptions,
    *,
    title: str,
    input_name: str,
) -> Atlas:
    """The Atlas of finished results and the sentences' rows, not yet ``rounded``."""
    info = runner.info
    rows = Rows.of(rows, len(examples))
    if rows.cut.any():
        log.info(
            "pages and atlas.json keep of each truncated sentence only the text its %d tokens "
            "cover, marked '… [cut at %d tokens]'",
            runner.max_length,
            runner.max_length,
        )
    views_data = results["views"].data if "views" in results else {}
    kept = results["views"].sentences if "views" in results else {}
    token_counts = rows.tokens
    return Atlas(
        title=title,
        model=ModelCard(
            **dataclasses.asdict(info),
            neuron_view=bool(views_data.get("neuron_view")),
            neuron_note=views_data.get("neuron_note", "no sentence views were kept"),
        ),
        options=Options(
            input=input_name,
            batch_size=options.batch_size,
            max_length=runner.max_length,
            device=runner.device,
            limit=options.limit,
            views=options.views,
            neuron=views_data.get("neuron_mode", options.neuron),
            generate=options.generate,
            chat=options.chat,
            dtype=options.dtype,
            device_map=options.device_map,
        ),
        corpus=CorpusSummary(
            sentences=len(examples),
            pairs=count_pairs(examples),
            tokens=int(sum(token_counts)),
            mean_tokens=float(np.mean(token_counts)),
            max_tokens=int(token_counts.max()),
            truncated=int(rows.truncated.sum()),
        ),
        sentences=Sentences(  # compact, made as the examples are read again
            Sentence(
                index=i,
                id=e.id,
                tokens=rows[i][0],
                truncated=rows[i][1],
                has_view=i in kept and kept[i].heads_kept is None,
                has_data=i in kept,
                label=e.label,
                generation=e.generation,
                generated=len(e.generated),
                **analysed_text(e, rows[i][2]),
            )
            for i, e in enumerate(examples)
        ),
        views=list(kept.values()),
        **assemble(results, analyses, run),
    )


def analysed_text(example: Example, kept: tuple[int | None, int | None] | None) -> dict:
    """A sentence's ``text``, ``text_b`` and ``cut``: the text its tokens cover. A side that
    truncation cut ends where its last kept token ends, and is named in ``cut``: pages show
    what was analysed, not a whole long input (a 1 MB line on every head page that shows it)."""
    texts = {"text": example.text, "text_b": example.text_b}
    cut = []
    for field, end in zip(texts, kept or (None, None), strict=True):
        if end is not None and texts[field] is not None:
            texts[field] = texts[field][:end].rstrip()
            cut.append(field)
    return {**texts, "cut": cut}


def assemble(results: dict[str, Result], analyses: Sequence[Analysis], run: RunInfo) -> dict:
    """The analysis-driven fields of the Atlas: catalogue, heads, means, tables, sections."""
    catalogue = [
        dataclasses.replace(column, analysis=name)
        for name, result in results.items()
        for column in result.catalogue
    ]
    keys = [c.key for c in catalogue]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise AnalysisError(f"columns defined by two analyses: {', '.join(duplicated)}")
    values = {c.key: np.asarray(results[c.analysis].columns[c.key], float) for c in catalogue}
    parts = {key: v for result in results.values() for key, v in result.parts.items()}
    labels = parts.pop("label", [""] * run.size)
    heads = [
        Head(
            name=contract.head_name(layer + 1, head + 1),
            layer=layer + 1,
            head=head + 1,
            label=labels[flat],
            metrics={key: float(v[flat]) for key, v in values.items()},
            parts={key: v[flat] for key, v in parts.items()},
        )
        for flat, (layer, head) in enumerate(np.ndindex(run.layers, run.heads))
    ]
    grid = {key: v.reshape(run.layers, run.heads) for key, v in values.items()}
    return {
        "catalogue": catalogue,
        "heads": heads,
        "layer_means": {key: g.mean(1).tolist() for key, g in grid.items()},
        "model_means": {key: float(g.mean()) for key, g in grid.items()},
        "results": {name: result.data for name, result in results.items()},
        "tables": [
            dataclasses.replace(table, analysis=name)
            for name, result in results.items()
            for table in result.tables
        ],
        "sections": {
            page: [a.sections[page] for a in analyses if page in a.sections] for page in PAGES
        },
        "labels": results["heads"].data["labels"] if "heads" in results else [],
        "pages": {path: page for result in results.values() for path, page in result.pages.items()},
    }


def order(analyses: Sequence[Analysis]) -> list[Analysis]:
    """The analyses in the order they finish: each after those it ``requires`` or ``uses``,
    otherwise in the order given (a stable topological sort: at each step the first analysis
    given whose inputs have all finished). Refuses, in one line, two analyses of one name, a
    required analysis that is not in the build, and analyses that require each other."""
    _check_names(analyses)
    names = {a.name for a in analyses}
    for analysis in analyses:
        missing = [name for name in analysis.requires if name not in names]
        if missing:
            raise AnalysisError(
                f"the {analysis.name} analysis requires the {', '.join(missing)} "
                f"analys{'es' if len(missing) > 1 else 'is'}, which this build does not run"
            )
    every = [a.name for a in analyses if EVERY not in a.uses]
    inputs = {
        a.name: {
            *a.requires,  # itself too, if it says so: a cycle
            *(name for name in a.uses if name in names and name != a.name),
            *(every if EVERY in a.uses else ()),
        }
        for a in analyses
    }
    done: list[Analysis] = []
    finished: set[str] = set()
    waiting = list(analyses)
    while waiting:
        ready = next((a for a in waiting if inputs[a.name] <= finished), None)
        if ready is None:
            raise AnalysisError(f"analyses that require each other: {_cycle(inputs, waiting)}")
        waiting.remove(ready)
        done.append(ready)
        finished.add(ready.name)
    return done


def _cycle(inputs: dict[str, set[str]], waiting: Sequence[Analysis]) -> str:
    """One cycle among the analyses left waiting, as "a → b → a" (each requires the next)."""
    left = {a.name for a in waiting}
    path = [waiting[0].name]
    while True:
        step = min(inputs[path[-1]] & left)  # each waiting analysis waits on another waiting
        if step in path:
            return " → ".join([*path[path.index(step) :], step])
        path.append(step)


def _check_names(analyses: Sequence[Analysis]) -> None:
    names = [a.name for a in analyses]
    if not all(names) or len(set(names)) != len(names):
        raise AnalysisError(f"every analysis needs a name of its own, got {names}")
