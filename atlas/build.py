"""The library entry point, beside the CLI (as pdoc has ``pdoc.pdoc()``).

    import atlas
    result = atlas.build("sentences.txt", "site/")       # the Atlas, and the site written
    atlas.build("sentences.txt", "site/", views=50)      # options: atlas.options.BuildOptions
    atlas.render_site(atlas.load("site/"), "themed/", templates="mytheme/")

The CLI, the benchmarks and the tests all come through here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .analyses import default_analyses
from .analyses.base import Analysis
from .analyses.compare import PAGE, SECTIONS, Compare, compare_heads, mirrors_of
from .budget import MB, pages_warnings, report, shrink
from .corpus import read_corpus
from .options import BuildOptions
from .output import claim, write
from .pipeline import measure, order
from .result import Atlas, first_non_finite, rounded
from .running import PairedRunner, Runner
from .site import render

log = logging.getLogger("atlas")


def build(
    input: str | Path,
    output: str | Path | None = None,
    options: BuildOptions | None = None,
    *,
    analyses: Sequence[Analysis] | None = None,
    **overrides: Any,
) -> Atlas:
    """Measure every head of ``options.model`` (default: all-MiniLM-L6-v2) over the sentences
    in ``input`` and, if ``output`` is given, write the site there. Returns the Atlas.

    ``options``: a ``BuildOptions`` (atlas/options.py; default: the CLI's defaults);
    ``overrides`` change fields of it, so ``atlas.build(input, out, views=50)`` works as
    ``atlas.build(input, out, BuildOptions(views=50))``. ``analyses`` replace the built-in ones
    (``atlas.analyses.default_analyses(options)``), e.g. to add one of your own. With
    ``options.compare`` (a second model B, hub id or folder, with the same tokenizer and shape)
    both models run over the same sentences in one pass and the site compares them head by head
    (``atlas.analyses.compare``)."""
    options = (options or BuildOptions()).replace(**overrides)
    input = Path(input)
    with contextlib.ExitStack() as held:
        if output is not None:  # checked before the model runs, not after; held until written
            held.enter_context(claim(Path(output), **options.write_options))
        examples = read_corpus(input, limit=options.limit, words=options.words)
        log.info("read %d sentences from %s", len(examples), input)
        runner = Runner(
            options.model,
            device=options.device,
            max_length=options.max_length,
            name=options.model_name,
            memory_gb=options.memory_gb,
        )
        if options.compare is not None:
            other = Runner(
                options.compare,
                device=options.device,
                max_length=options.max_length,
                name=options.compare_name,
                option="--compare",
                memory_gb=options.memory_gb,
            )
            runner = PairedRunner(runner, other)
            log.info("comparing with %s", other.info.name)
            analyses = order(analyses or default_analyses(options))
            if not any(a.name == Compare.name for a in analyses):
                analyses.append(
                    Compare(
                        other.info,
                        options.views,
                        options.min_relation,
                        mirrors_of(analyses),
                        runner_b=other,
                    )
                )
        info = runner.info
        log.info(
            "model %s: %d layers x %d heads, on %s, max length %d",
            info.name,
            info.layers,
            info.heads,
            runner.device,
            runner.max_length,
        )
        atlas = measure(
            examples,
            runner,
            analyses,
            options,
            title=options.title
            or _title(info.name, options.compare and runner.b.info.name, input.name),
            input_name=input.name,
        )
        if atlas.corpus.truncated:
            log.warning(
                "%d of %d sentences were truncated to %d tokens",
                atlas.corpus.truncated,
                atlas.corpus.sentences,
                runner.max_length,
            )
        if output is not None:
            atlas = render_site(
                atlas,
                output,
                templates=options.templates,
                max_site_mb=options.max_site_mb,
                **options.write_options,
            )
        return atlas


def render_site(
    atlas: Atlas,
    output: str | Path,
    *,
    templates: str | Path | None = None,
    max_site_mb: float | None = None,
    **write_options,
) -> Atlas:
    """Render the Atlas's site and write it to ``output``, fitting it to ``max_site_mb`` if
    given; returns the Atlas as written. Files are written as they are rendered, and the budget
    measures what was written: a site over it is rendered again with less (``budget.shrink``)
    in place of the first; the build reports the site's size, and warns near GitHub Pages'
    limits (``budget.pages_warnings``)."""
    templates = Path(templates) if templates is not None else None
    start, written = atlas, [atlas]

    def again(sizes: dict[str, int]):
        smaller = None if max_site_mb is None else shrink(written[-1], sizes, budget)
        if smaller is None:
            return None
        written.append(smaller)
        return render(smaller, templates=templates)

    budget = int(max_site_mb * MB) if max_site_mb is not None else 0
    sizes = write(render(atlas, templates=templates), Path(output), again=again, **write_options)
    atlas = written[-1]
    if max_site_mb is not None:
        for line in report(start, atlas, budget, sizes):
            log.warning("%s", line)
    log.info(
        "wrote %s: %d pages, %d sentences with attention views, %d files, %.1f MB",
        output,
        sum(path.endswith(".html") for path in sizes),
        sum(s.has_view for s in atlas.sentences),
        len(sizes),
        sum(sizes.values()) / MB,
    )
    for line in pages_warnings(sizes):
        log.warning("%s", line)
    return atlas


def _title(model: str, compare: str | None, input_name: str) -> str:
    short = [name.rstrip("/").split("/")[-1] for name in (model, compare) if name]
    return f"{' vs '.join(short)} on {input_name}"


class CompareError(ValueError):
    """Two atlases that cannot be compared; the message is one line."""


def compare_atlases(a: Atlas, b: Atlas, names: tuple[str, str] = ("A", "B")) -> Atlas:
    """Atlas ``a`` with the comparison to ``b`` (``atlas compare``): both built on the same
    sentences by models of the same shape; without the models there is no change per head,
    only the delta B − A of every column both have. B's attention is kept for the sentence
    pages where both atlases hold it on the same tokens. ``names`` name the files in errors."""
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
    heads = [
        dataclasses.replace(h, parts={**h.parts, "compare": part})
        for h, part in zip(a.heads, parts, strict=True)
    ]
    own = {v.index: v for v in a.views if v.heads_kept is None}
    views_b = [
        v
        for v in b.views
        if v.heads_kept is None and v.index in own and v.tokens == own[v.index].tokens
    ]
    sections = {place: list(a.sections.get(place, [])) for place in {*a.sections, *SECTIONS}}
    for place, template in SECTIONS.items():
        sections[place].append(template)
    model_b = dataclasses.asdict(b.model)
    return rounded(
        dataclasses.replace(
            a,
            heads=heads,
            results={
                **a.results,
                "compare": {**data, "model": model_b, "sentences": [v.index for v in views_b]},
            },
            pages={**a.pages, **PAGE},
            sections=sections,
            views_b=views_b,
        )
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
    if "compare" in a.results or "compare" in b.results:
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
