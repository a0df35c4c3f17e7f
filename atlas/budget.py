"""Keep a site under a size budget (``--max-site-mb``): leave out what costs most, and say so.

Between the Atlas and the site: the site is rendered to learn the size of every file (rendering
is pure, so the sizes are exact), and ``shrink`` lowers what is kept until the rendered site
fits, in this order:

1. the neuron view's queries and keys (data/NNNN.qk.js), the costliest data per sentence, from
   the last sentence back;
2. sentence pages (their page and full attention), from the last back. A sentence that a head
   page draws as an example keeps the attention of those heads, which costs a few kilobytes.

What is left out is returned as lines for the log; the pages say which sentences have pages and
which keep queries and keys. Nothing else (the overview, head pages, statistics, the search
index) is ever cut. The search index (``contract.SEARCH_SCRIPT``) holds every sentence's text,
pages or not, so it grows with the corpus (about 1.2 MB at 10,000 sentences): it is counted
like any file, and named with its size when the site cannot be brought under the budget.

A build measures each round as it writes it into the staging folder (``atlas.output.write``'s
``again``), so the round that fits is the one written, not rendered a second time; ``fit``
does the same rounds without writing (the files are let go as they are measured).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from . import contract
from .analyses import Analysis, figures
from .result import Atlas
from .site import sizes as site_sizes
from .viewdata import View, deflate, inflate

MB = 1_000_000  # the budget's megabyte, as file managers and GitHub count them
# The default budget: a site one can attach to an e-mail (Gmail and Outlook take 25 MB and
# 20 MB) once zipped, and far below GitHub Pages' limits.
DEFAULT_MAX_SITE_MB = 25.0
# GitHub Pages publishes at most 1 GB per site, and GitHub takes no file over 100 MB (its
# documented limits); the build warns at WARN_SHARE of either, before a push fails.
PAGES_SITE_BYTES = 1_000 * MB
PAGES_FILE_BYTES = 100 * MB
WARN_SHARE = 0.8


def fit(
    atlas: Atlas,
    max_bytes: int,
    templates: Path | None = None,
    analyses: Iterable[Analysis | type[Analysis]] = (),
) -> tuple[Atlas, list[str]]:
    """The Atlas whose site fits in ``max_bytes`` (or is as small as leaving out sentence data
    can make it), and what was left out, as lines fit to log.

    Each round renders the site to measure it and leaves out, by those sizes, what should make
    it fit; leaving something out changes a few other bytes (notes, links), so rounds repeat
    until the rendered site fits or nothing is left to leave out."""
    start = atlas
    while True:
        sizes = site_sizes(atlas, templates, analyses)  # streamed: the sizes, not the files
        smaller = shrink(atlas, sizes, max_bytes, analyses)
        if smaller is None:
            break
        atlas = smaller
    return atlas, report(start, atlas, max_bytes, sizes)


def shrink(
    atlas: Atlas,
    sizes: dict[str, int],
    max_bytes: int,
    analyses: Iterable[Analysis | type[Analysis]] = (),
) -> Atlas | None:
    """The next, smaller Atlas to try, from the ``sizes`` of ``atlas``'s site (every file, by
    path), with the budget in its options; None when that site fits in ``max_bytes`` or there
    is nothing left to leave out. ``analyses``: the user's, whose ``figures`` count too."""
    total = sum(sizes.values())
    if total <= max_bytes:
        return None
    smaller = _trim(atlas, sizes, total, max_bytes, figures(atlas, analyses))
    if smaller is atlas:
        return None
    return dataclasses.replace(
        smaller, options=dataclasses.replace(smaller.options, max_site_mb=max_bytes / MB)
    )


def _trim(
    atlas: Atlas,
    sizes: dict[str, int],
    total: int,
    max_bytes: int,
    examples: dict[int, set[int]],
) -> Atlas:
    """The Atlas with enough left out, by ``sizes``, to bring ``total`` under ``max_bytes``:
    queries and keys first, then sentence pages, each from the last sentence back; a sentence
    that ``examples`` names keeps the attention of those heads. Returns ``atlas`` itself when
    there is nothing left to leave out."""
    count = len(atlas.sentences)
    views = {view.index: view for view in atlas.views}

    def size(template: str, index: int) -> int:
        return sizes.get(template.format(key=contract.sentence_key(index, count)), 0)

    changed = False
    for index in sorted((i for i, v in views.items() if v.vectors), reverse=True):
        if total <= max_bytes:
            break
        total -= size(contract.VECTORS_SCRIPT, index)
        views[index] = dataclasses.replace(views[index], vectors="", vectors_error=0.0)
        changed = True
    for index in sorted((i for i, v in views.items() if v.heads_kept is None), reverse=True):
        if total <= max_bytes:
            break
        data = size(contract.DATA_SCRIPT, index)
        total -= size(contract.SENTENCE_PAGE, index) + data
        if index in examples:
            views[index] = _only_heads(views[index], sorted(examples[index]))
            total += data * len(examples[index]) // (atlas.model.layers * atlas.model.heads)
        else:
            del views[index]
        changed = True
    if not changed:
        return atlas
    pages = {i for i, v in views.items() if v.heads_kept is None}
    return dataclasses.replace(
        atlas,
        views=[views[i] for i in sorted(views)],
        sentences=atlas.sentences.with_pages(pages, views),
    )


def _only_heads(view: View, heads: list[int]) -> View:
    """The view with only these heads' attention kept (and no queries and keys)."""
    stored = np.frombuffer(inflate(view.attention), np.uint8).reshape(-1, view.head_bytes)
    return dataclasses.replace(
        view, attention=deflate(stored[heads].tobytes()), heads_kept=heads, vectors="", rollout=""
    )


def report(start: Atlas, fitted: Atlas, max_bytes: int, sizes: dict[str, int]) -> list[str]:
    """What was left out of ``start`` to make ``fitted`` (whose site has these file sizes), and
    whether the site still exceeds the budget."""
    total = sum(sizes.values())
    budget = f"--max-site-mb {max_bytes / MB:g}"
    vectors = [sum(bool(v.vectors) for v in a.views) for a in (start, fitted)]
    pages = [sum(s.has_view for s in a.sentences) for a in (start, fitted)]
    lines = []
    if vectors[1] < vectors[0]:
        lines.append(
            f"{budget}: left out the neuron view's queries and keys of {vectors[0] - vectors[1]} "
            f"of {vectors[0]} sentences (kept for {vectors[1]})"
        )
    if pages[1] < pages[0]:
        lines.append(
            f"{budget}: left out the pages of {pages[0] - pages[1]} of {pages[0]} sentences "
            f"({pages[1]} kept)"
        )
    if total > max_bytes:
        lines.append(
            f"{budget}: the site is still {total / MB:.1f} MB without any sentence page "
            "(the overview, head pages and search index "
            f"({sizes.get(contract.SEARCH_SCRIPT, 0) / 1000:,.0f} kB) are never left out)"
        )
    return lines


def pages_warnings(sizes: dict[str, int]) -> list[str]:
    """Lines that warn of GitHub Pages' limits, from the size of every file of a site: one for
    the whole site, one for the largest files, each when past ``WARN_SHARE`` of the limit."""
    lines = []
    total = sum(sizes.values())
    if total > WARN_SHARE * PAGES_SITE_BYTES:
        how = "more than" if total > PAGES_SITE_BYTES else "close to"
        lines.append(
            f"the site is {total / MB:.1f} MB, {how} GitHub Pages' limit of "
            f"{PAGES_SITE_BYTES / MB:g} MB per site (--max-site-mb sets a budget)"
        )
    large = sorted(
        (p for p, size in sizes.items() if size > WARN_SHARE * PAGES_FILE_BYTES),
        key=lambda p: (-sizes[p], p),
    )
    if large:
        how = "more than" if sizes[large[0]] > PAGES_FILE_BYTES else "close to"
        named = ", ".join(f"{p} ({sizes[p] / MB:.1f} MB)" for p in large[:3])
        lines.append(
            f"{len(large)} file(s) {how} GitHub's limit of {PAGES_FILE_BYTES / MB:g} MB per "
            f"file: {named}{', ...' if len(large) > 3 else ''}"
        )
    return lines
