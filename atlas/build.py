"""The library entry point, beside the CLI (as pdoc has ``pdoc.pdoc()``).

    import atlas
    result = atlas.build("sentences.txt", "site/")       # the Atlas, and the site written
    atlas.render_site(atlas.load("site/"), "themed/", templates="mytheme/")

The CLI, the benchmarks and the tests all come through here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from .analyses import DEFAULT_ABLATION, DEFAULT_SAMPLE, MIN_RELATION
from .analyses.base import Analysis
from .budget import DEFAULT_MAX_SITE_MB, MB, fit
from .corpus import read_corpus
from .model import Runner
from .output import check_output, write
from .pipeline import measure
from .result import Atlas
from .site import render, size_of

log = logging.getLogger("atlas")


def build(
    input: str | Path,
    output: str | Path | None = None,
    *,
    model: str | None = None,
    model_name: str | None = None,
    device: str = "auto",
    max_length: int | None = None,
    batch_size: int = 16,
    limit: int | None = None,
    words: bool = False,
    views: int = 200,
    neuron: str = "views",
    max_site_mb: float | None = DEFAULT_MAX_SITE_MB,
    min_relation: int = MIN_RELATION,
    importance: int = DEFAULT_SAMPLE,
    ablation: int = DEFAULT_ABLATION,
    title: str | None = None,
    templates: str | Path | None = None,
    analyses: Sequence[Analysis] | None = None,
    progress: bool = False,
    **write_options,
) -> Atlas:
    """Measure every head of ``model`` (default: all-MiniLM-L6-v2) over the sentences in
    ``input`` and, if ``output`` is given, write the site there. Returns the Atlas.

    ``analyses`` replace the built-in ones (``atlas.analyses.default_analyses(views)``), e.g. to
    add one of your own. ``neuron``: which sentence pages keep the neuron view's queries and keys
    ("views": the first ``views``; "all"; "none"). ``max_site_mb``: the site's size budget
    (``atlas.budget``; None for none). ``words``: split .txt lines into words (``--words``), so
    each record maps its tokens to words. ``write_options`` go to ``atlas.output.write`` (``clean``,
    ``force``). ``importance``: sentences for head importance (0: off), ``ablation`` of them
    ablated (atlas/analyses/importance.py)."""
    input = Path(input)
    if output is not None:
        check_output(Path(output), **write_options)  # before the model runs, not after
    examples = read_corpus(input, limit=limit, words=words)
    log.info("read %d sentences from %s", len(examples), input)
    runner = Runner(model, device=device, max_length=max_length, name=model_name)
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
        title=title or f"{info.name.rstrip('/').split('/')[-1]} on {input.name}",
        input_name=input.name,
        batch_size=batch_size,
        views=views,
        neuron=neuron,
        limit=limit,
        progress=progress,
        min_relation=min_relation,
        importance=importance,
        ablation=ablation,
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
            atlas, output, templates=templates, max_site_mb=max_site_mb, **write_options
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
    """Render the Atlas's site and write it to ``output``, first fitting it to ``max_site_mb``
    if given; returns the Atlas as written."""
    templates = Path(templates) if templates is not None else None
    if max_site_mb is not None:
        atlas, left_out = fit(atlas, int(max_site_mb * MB), templates)
        for line in left_out:
            log.warning("%s", line)
    files = render(atlas, templates=templates)
    write(files, Path(output), **write_options)
    pages = sum(path.endswith(".html") for path in files)
    log.info(
        "wrote %s: %d pages, %d sentences with attention views, %.1f MB",
        output,
        pages,
        sum(s.has_view for s in atlas.sentences),
        size_of(files) / 1e6,
    )
    return atlas
