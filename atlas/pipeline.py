"""The pipeline: runs the model once over the corpus and feeds every record to every analysis.

input → runner → analyses → Atlas. The runner captures what the analyses ask for and nothing
more; each analysis sees each record once (and, if it asks, a few again at the end); their
results are put together into the Atlas here, and nothing flows back.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from . import contract
from .analyses import DEFAULT_ABLATION, DEFAULT_SAMPLE, MIN_RELATION, default_analyses
from .analyses.base import PROBE, QUERIES_KEYS, Analysis, Result, RunInfo
from .corpus import Example
from .probe import ProbeError
from .result import Atlas, CorpusSummary, Head, ModelCard, Options, Sentence, rounded
from .running import Runner

log = logging.getLogger(__name__)
# Where an analysis can add a section: the overview's top cards, the overview, head pages, and
# sentence pages (under the sentence, before the views: "sentence_top"; after them: "sentence").
PAGES = ("overview_cards", "overview", "head", "sentence_top", "sentence")


class AnalysisError(ValueError):
    """Analyses that cannot run together (e.g. two define the same column)."""


def measure(
    examples: Sequence[Example],
    runner: Runner,
    analyses: Sequence[Analysis] | None = None,
    *,
    title: str,
    input_name: str,
    batch_size: int = 16,
    views: int = 200,
    neuron: str = "views",
    limit: int | None = None,
    progress: bool = False,
    min_relation: int = MIN_RELATION,
    importance: int = DEFAULT_SAMPLE,
    ablation: int = DEFAULT_ABLATION,
) -> Atlas:
    """Run the model over every example once, streaming, and assemble the Atlas.

    ``analyses`` default to ``default_analyses(views, min_relation, neuron)``; their order is the
    order in which they finish (an analysis may use the results of those before it)."""
    if analyses is None:
        analyses = default_analyses(views, min_relation, neuron, importance, ablation)
    _check_names(analyses)
    probe = None
    if any(PROBE in a.needs for a in analyses):
        try:
            probe = runner.probe(examples, batch_size)
        except ProbeError as err:  # a model layout the probe does not know: measure the rest
            log.warning(
                "%s; left out: %s", err, ", ".join(a.name for a in analyses if PROBE in a.needs)
            )
            analyses = [a for a in analyses if PROBE not in a.needs]
    needs = frozenset().union(*(a.needs for a in analyses))
    info = runner.info
    run = RunInfo(
        layers=info.layers,
        heads=info.heads,
        causal=info.causal,
        sentences=len(examples),
        queries_keys_note=runner.queries_keys_note if QUERIES_KEYS in needs else "not captured",
        device=runner.device,
        probe=probe,
        task=info.task,
        classes=tuple(info.classes),
        gold_labels=any(e.label is not None for e in examples),
    )
    for analysis in analyses:
        analysis.start(run)
    rows: dict[int, tuple[int, bool, tuple[int | None, int | None] | None]] = {}
    for record in runner.run(
        examples,
        batch_size=batch_size,
        progress=progress,
        capture=needs,
        queries_keys_for=lambda index: any(a.queries_keys_for(index) for a in analyses),
    ):
        for analysis in analyses:
            analysis.add(record)
        rows[record.index] = (record.n, record.truncated, record.kept_chars)
        if record.truncated:
            example = examples[record.index]
            log.warning(
                "sentence %d (id %s, line %d) truncated to %d tokens",
                record.index + 1,
                example.id,
                example.line,
                runner.max_length,
            )
    results: dict[str, Result] = {}
    for analysis in analyses:
        again = list(analysis.revisit(results))
        if again:
            why = f": {analysis.revisit_reason}" if analysis.revisit_reason else ""
            log.info(
                "running %d sentences again for the %s analysis%s", len(again), analysis.name, why
            )
            for record in runner.run(
                examples,
                indices=again,
                batch_size=batch_size,
                capture=analysis.needs,
                queries_keys_for=analysis.queries_keys_for,
            ):
                analysis.add(record)
        results[analysis.name] = analysis.finish(results)
    if probe is not None:
        probe.close()

    if any(rows[i][2] for i in rows):
        log.info(
            "pages and atlas.json keep of each truncated sentence only the text its %d tokens "
            "cover, marked '… [cut at %d tokens]'",
            runner.max_length,
            runner.max_length,
        )
    views_data = results["views"].data if "views" in results else {}
    kept = results["views"].sentences if "views" in results else {}
    token_counts = [rows[i][0] for i in range(len(examples))]
    atlas = Atlas(
        title=title,
        model=ModelCard(
            **dataclasses.asdict(info),
            neuron_view=bool(views_data.get("neuron_view")),
            neuron_note=views_data.get("neuron_note", "no sentence views were kept"),
        ),
        options=Options(
            input=input_name,
            batch_size=batch_size,
            max_length=runner.max_length,
            device=runner.device,
            limit=limit,
            views=views,
            neuron=views_data.get("neuron_mode", neuron),
        ),
        corpus=CorpusSummary(
            sentences=len(examples),
            pairs=sum(e.text_b is not None for e in examples),
            tokens=int(sum(token_counts)),
            mean_tokens=float(np.mean(token_counts)),
            max_tokens=int(max(token_counts)),
            truncated=sum(rows[i][1] for i in range(len(examples))),
        ),
        sentences=[
            Sentence(
                index=i,
                id=e.id,
                tokens=rows[i][0],
                truncated=rows[i][1],
                has_view=i in kept and kept[i].heads_kept is None,
                has_data=i in kept,
                label=e.label,
                **analysed_text(e, rows[i][2]),
            )
            for i, e in enumerate(examples)
        ],
        views=list(kept.values()),
        views_b=list(results["compare"].sentences.values()) if "compare" in results else [],
        **assemble(results, analyses, run),
    )
    return rounded(atlas)


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


def _check_names(analyses: Sequence[Analysis]) -> None:
    names = [a.name for a in analyses]
    if not all(names) or len(set(names)) != len(names):
        raise AnalysisError(f"every analysis needs a name of its own, got {names}")
