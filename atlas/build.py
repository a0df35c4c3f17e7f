"""The library entry point, beside the CLI (as pdoc has ``pdoc.pdoc()``).

    import atlas
    result = atlas.build("sentences.txt", "site/")       # the Atlas, and the site written
    atlas.build("sentences.txt", "site/", views=50)      # options: atlas.options.BuildOptions
    atlas.render_site(atlas.load("site/"), "themed/", templates="mytheme/")

The CLI, the benchmarks and the tests all come through here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .analyses import default_analyses, presenters
from .analyses.base import Analysis
from .budget import MB, pages_warnings, report, shrink
from .comparison import CompareError as CompareError
from .comparison import compare_atlases as compare_atlases
from .comparison import measure_compare
from .corpus import read_corpus
from .generation import continue_examples
from .options import BuildOptions
from .output import claim, write
from .pipeline import measure
from .plugins import presentation_classes
from .result import Atlas
from .running import PairedRunner, Runner
from .site import render, unknown_analyses

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
    (``atlas.analyses.default_analyses(options)``), e.g. ``[*default_analyses(), Mine()]`` to
    add one of your own (as ``analysis=("mymodule:Mine",)`` does); the site shows each one's
    sections, charts, pages and page data (``Analysis`` presentation). With
    ``options.compare`` (a second model B, hub id or folder, with the same tokenizer and shape)
    both models run the analyses over the same sentences in one pass, and the site is A's atlas
    compared with B's head by head (atlas/comparison.py)."""
    options = (options or BuildOptions()).replace(**overrides)
    input = Path(input)
    with contextlib.ExitStack() as held:
        if output is not None:  # checked before the model runs, not after; held until written
            held.enter_context(claim(Path(output), **options.write_options))
        examples = read_corpus(input, limit=options.limit, words=options.words)
        analyses = list(analyses) if analyses is not None else default_analyses(options)
        log.info("read %d sentences from %s", len(examples), input)
        runner = runner_of(options)
        paired = None
        if options.compare is not None:
            other = runner_of(options, compare=True)
            paired = PairedRunner(runner, other)
            log.info("comparing with %s", other.info.name)
        if options.generate:  # after a compare build's max length is settled: A generates
            examples = continue_examples(
                examples, runner, options.generate, options.batch_size, options.progress
            )
            log.info("continued %d prompts by up to %d tokens", len(examples), options.generate)
        info = runner.info
        log.info(
            "model %s: %d layers x %d heads, on %s, max length %d",
            info.name,
            info.layers,
            info.heads,
            runner.device,
            runner.max_length,
        )
        title = options.title or _title(
            info.name, paired.b.info.name if paired else None, input.name
        )
        if paired is None:
            atlas = measure(examples, runner, analyses, options, title=title, input_name=input.name)
        else:
            atlas = measure_compare(
                examples, paired, analyses, options, title=title, input_name=input.name
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
                analyses=analyses,
                max_site_mb=options.max_site_mb,
                **options.write_options,
            )
        return atlas


def runner_of(options: BuildOptions, compare: bool = False) -> Runner:
    """Model A's runner as the options say, or with ``compare`` model B's (which neither
    generates nor wraps a chat template: it reads A's tokens)."""
    shared = {
        "device": options.device,
        "max_length": options.max_length,
        "memory_gb": options.memory_gb,
        "dtype": options.dtype,
        "device_map": options.device_map,
    }
    if compare:
        return Runner(options.compare, name=options.compare_name, option="--compare", **shared)
    return Runner(
        options.model,
        name=options.model_name,
        generate=options.generate,
        chat=options.chat,
        **shared,
    )


def render_site(
    atlas: Atlas,
    output: str | Path,
    *,
    templates: str | Path | None = None,
    max_site_mb: float | None = None,
    analyses: Sequence[Analysis | type[Analysis] | str] = (),
    **write_options,
) -> Atlas:
    """Render the Atlas's site and write it to ``output``, fitting it to ``max_site_mb`` if
    given; returns the Atlas as written. ``analyses``: the user's analyses whose results the
    Atlas holds (instances, classes or "MODULE:CLASS"), for their sections, charts, pages and
    page data; the built-in ones are always known. Files are written as they are rendered,
    and the budget measures what was written: a site over it is rendered again with less
    (``budget.shrink``) in place of the first; the build reports the site's size, and warns
    near GitHub Pages' limits (``budget.pages_warnings``)."""
    templates = Path(templates) if templates is not None else None
    analyses = presentation_classes(analyses)
    unknown = unknown_analyses(atlas, presenters(atlas, analyses))
    if unknown:
        log.warning(
            "the atlas holds results of analyses not known here (%s): only their columns are "
            "shown; pass them again to show their sections, charts and page data "
            "(--analysis MODULE:CLASS, or analyses=)",
            ", ".join(unknown),
        )
    start, written = atlas, [atlas]

    def again(sizes: dict[str, int]):
        smaller = None if max_site_mb is None else shrink(written[-1], sizes, budget, analyses)
        if smaller is None:
            return None
        written.append(smaller)
        return render(smaller, templates=templates, analyses=analyses)

    budget = int(max_site_mb * MB) if max_site_mb is not None else 0
    sizes = write(
        render(atlas, templates=templates, analyses=analyses),
        Path(output),
        again=again,
        **write_options,
    )
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
