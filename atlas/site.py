"""Render the static site: pure functions from an Atlas to files, one small function per page.

``render(atlas)`` yields every file of the site as ``(relative path, bytes)``, one at a time, and
touches no disk; ``atlas.output.write(files, out)`` writes each one into the output folder as it
comes, so no more than one file of the site is held in memory at once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from . import __version__, charts, contract, describe, pieces
from .result import Atlas, Sentence
from .viewdata import View, data_script, vectors_script

PACKAGE_DIR = Path(__file__).resolve().parent
# Inside a wheel the templates sit in atlas/templates; in a source checkout, beside atlas/.
BUILTIN_TEMPLATES = next(
    p for p in (PACKAGE_DIR / "templates", PACKAGE_DIR.parent / "templates") if p.is_dir()
)
ASSETS = "assets"
VEGA_BUNDLE = "vega-bundle.js"
# A theme's own stylesheet (assets/custom.css in the --templates folder): every page links it
# after the built-in ones, so a theme sets atlas.css's variables in a few lines.
CUSTOM_CSS = "custom.css"
log = logging.getLogger(__name__)


class SiteError(RuntimeError):
    """The site cannot be written; the message is one line."""


# What templates may call to draw charts: the functions, not the module (a module would hand a
# template everything it imports).
CHART_FUNCTIONS = SimpleNamespace(
    metric_heatmap=charts.metric_heatmap,
    metric_range=charts.metric_range,
    top_heads=charts.top_heads,
    layer_curves=charts.layer_curves,
    head_map=charts.head_map,
    head_map_colours=charts.head_map_colours,
    highlighted=charts.highlighted,
    offset_profile=charts.offset_profile,
    relation_heatmap=charts.relation_heatmap,
    delta_heatmap=charts.delta_heatmap,
    embedding_curves=charts.embedding_curves,
    importance_scatter=charts.importance_scatter,
)


def environment(templates: Path | None = None) -> jinja2.Environment:
    """The one Jinja environment: the user's template folder, if any, wins over the built-in.

    Templates see the contract (head_page, sentence_page, data_script, label_class) and
    ``charts``; every page gets ``atlas``, ``root`` (the way back to the site's root), ``path``
    and ``shared`` (what every page may need, computed once per site)."""
    loaders: list[jinja2.BaseLoader] = []
    if templates is not None:
        loaders.append(jinja2.FileSystemLoader(str(templates)))
    loaders.append(jinja2.FileSystemLoader(str(BUILTIN_TEMPLATES)))
    # Sandboxed: themes are shared like stylesheets, so a template may read the Atlas and call
    # the chart functions below, and nothing else (no attribute starting with "_", no module).
    env = SandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = lambda v, digits=3: f"{v:.{digits}f}"
    env.globals.update(
        atlas_version=__version__,
        charts=CHART_FUNCTIONS,
        head_page=contract.head_page,
        sentence_page=contract.sentence_page,
        sentence_row_id=contract.sentence_row_id,
        data_script=contract.data_script,
        vectors_script=contract.vectors_script,
        compare_key=contract.compare_key,
        compare_data_script=contract.compare_data_script,
        label_class=contract.label_class,
        joiner=contract.JOINER,
        shown_tokens=lambda view: pieces.shown_tokens(view.tokens, view.special),
        head_summary=describe.head_summary,
        later_pieces=pieces.later_pieces,
    )
    return env


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed from vl-convert, as one classic script.

    Wrapped in a function so its top-level names cannot clash with other scripts' globals; it
    sets window.vega, window.vegaLite and window.vegaEmbed. vl-convert takes about 1.7 s to
    make it, the same for every site, so it is kept in the user's cache folder, one file per
    vl-convert version (``bundle_cache``); a cache that cannot be read or written is made again
    or skipped, never an error."""
    import vl_convert

    path = bundle_cache(vl_convert.__version__)
    try:
        text = path.read_text(encoding="utf-8")
        if text.startswith(_BUNDLE_HEAD) and text.endswith(_BUNDLE_TAIL):  # not cut short
            return text
    except (OSError, UnicodeError):
        pass
    text = _BUNDLE_HEAD + vl_convert.javascript_bundle() + _BUNDLE_TAIL
    _store(path, text)
    return text


_BUNDLE_HEAD, _BUNDLE_TAIL = "(function () {\n", "\n})();\n"


def bundle_cache(version: str) -> Path:
    """The cache file of the vega bundle of one vl-convert version: in $XDG_CACHE_HOME (or
    ~/.cache) on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on Windows; under
    attention-atlas/, which holds nothing else."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", version)
    return Path(base) / "attention-atlas" / f"vega-bundle-{safe}.js"


def _store(path: Path, text: str) -> None:
    """Write the cache file whole or not at all: a temporary file beside it, renamed over it
    (so two builds at once cannot leave half a file); the atlas writes nothing else there."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=path.name + ".", delete=False
        ) as file:
            temporary = Path(file.name)
            file.write(text)
        os.replace(temporary, path)
    except OSError as err:
        log.debug("vega bundle not cached in %s: %s", path, err)
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)


def render(atlas: Atlas, templates: Path | None = None) -> Iterator[tuple[str, bytes]]:
    """Every file of the site as (relative path, bytes), made one at a time as the caller asks
    for the next (a site of many sentences need not fit in memory twice). Pure: same Atlas, same
    files in the same order, same bytes. A template error is raised, as a SiteError, when the
    page that meets it is made."""
    env = with_custom_css(environment(templates), templates)
    try:
        yield from _pages(atlas, env)
    except jinja2.TemplateSyntaxError as err:
        raise SiteError(
            f"template {err.filename or err.name}:{err.lineno}: {err.message}"
        ) from None
    except SecurityError as err:
        raise SiteError(f"template error: not allowed in a theme: {err}") from None
    except jinja2.TemplateNotFound as err:  # its message is the bare name
        raise SiteError(f"template error: no template named {err.name!r}") from None
    except jinja2.TemplateError as err:
        raise SiteError(f"template error: {err}") from None
    except RecursionError:
        raise SiteError("template error: a template includes or extends itself") from None
    except (ArithmeticError, TypeError, ValueError, LookupError) as err:
        if not raised_by_template(err):
            raise  # a bug in the atlas's chart or page code: shown as one, traceback under -v
        raise SiteError(f"template error: {type(err).__name__}: {err}") from None
    yield from _data_files(atlas)
    for source in sorted(_asset_files(templates)):
        yield f"{ASSETS}/{source.name}", source.read_bytes()
    yield f"{ASSETS}/{VEGA_BUNDLE}", vega_bundle().encode("utf-8")
    yield contract.CONFIG_SCRIPT, _config_script(atlas)
    yield contract.SEARCH_SCRIPT, contract.search_script(search_index(atlas)).encode("utf-8")
    yield "atlas.json", atlas.to_json().encode("utf-8")
    yield ".nojekyll", b""


def raised_by_template(err: BaseException) -> bool:
    """Whether ``err`` came from a template (``{{ 1 // 0 }}``, ``{{ x[9] }}``, a theme's
    template that is not UTF-8) rather than from Python code a template called: the innermost
    frame outside the standard library is a template's own line, or jinja2's. A chart or page
    bug must not be reported as the theme's fault."""
    frames = []
    tb = err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_globals)
        tb = tb.tb_next
    for scope in reversed(frames):
        if "__jinja_template__" in scope or "__jinja_exception__" in scope:  # a template's line
            return True
        package = (scope.get("__name__") or "").partition(".")[0]
        if package not in sys.stdlib_module_names:
            return package == "jinja2"
    return False


def _config_script(atlas: Atlas) -> bytes:
    labels = {h.name: h.label for h in atlas.heads}
    labels_b = (
        {h.name: h.parts["compare"]["label_b"] for h in atlas.heads}
        if all("compare" in h.parts for h in atlas.heads) and atlas.heads
        else None
    )
    config = contract.page_config(atlas.model.layers, atlas.model.heads, labels, labels_b)
    return contract.config_script(config).encode("utf-8")


def sentence_files(atlas: Atlas, index: int, templates: Path | None = None) -> dict[str, bytes]:
    """One sentence's page and every file it may load, by path in the site (the page, its data
    scripts, assets/config.js, the assets), without rendering the rest of the site: what
    ``atlas.show`` inlines into a notebook. The sentence must have a page (``has_view``)."""
    env = with_custom_css(environment(templates), templates)
    shared = _shared(atlas)
    with_view = [s for s in atlas.sentences if s.has_view]
    position = [s.index for s in with_view].index(index)
    path = contract.sentence_page(index, len(atlas.sentences))
    context = sentence_context(atlas, shared, with_view, position)
    files = dict([_renderer(atlas, env, shared)(path, "sentence.html", **context)])
    files.update(_data_files(atlas, only=index))  # the page loads its own data only
    files.update(
        (f"{ASSETS}/{source.name}", source.read_bytes()) for source in _asset_files(templates)
    )
    if VEGA_BUNDLE.encode() in files[path]:
        files[f"{ASSETS}/{VEGA_BUNDLE}"] = vega_bundle().encode("utf-8")
    files[contract.CONFIG_SCRIPT] = _config_script(atlas)
    return files


SEARCH_TOP = 3  # heads listed per catalogue column when a search names the column


def search_index(atlas: Atlas) -> dict:
    """What the search box finds beyond the page config's heads (names and labels): every
    sentence, as [key, text, second text or None, 1 if it has a page else 0], its text stored
    once (words are matched in the page), and each catalogue column's top heads and its entry
    on the Definitions page, as [title, [[head name, value], ...], key, description]. About the
    corpus's text in size, plus ~12 bytes a sentence."""
    total = len(atlas.sentences)
    sentence, column = contract.SEARCH_SENTENCE_ROW, contract.SEARCH_COLUMN_ROW
    index = {
        "sentences": [
            contract.search_row(
                sentence, contract.sentence_key(s.index, total), s.text, s.text_b, int(s.has_view)
            )
            for s in atlas.sentences
        ],
        "columns": [
            contract.search_row(
                column,
                c.title,
                [[h.name, round(v, 3)] for h, v in charts.top_heads(atlas, c, SEARCH_TOP)],
                c.key,
                c.description,
            )
            for c in atlas.catalogue
        ],
    }
    return contract.data_payload(index, contract.SEARCH_FIELDS)


@dataclass(frozen=True)
class Shared:
    """What many pages need, computed once per site rather than once per page."""

    head_map: dict  # the head-map chart, unhighlighted
    views: dict[int, View]  # sentence index -> its kept attention
    views_b: dict[int, View]  # in a compare atlas: sentence index -> model B's attention


def _shared(atlas: Atlas) -> Shared:
    return Shared(
        head_map=charts.head_map(atlas, "../") if "distances" in atlas.results else {},
        views={v.index: v for v in atlas.views},
        views_b={v.index: v for v in atlas.views_b if atlas.sentences[v.index].has_view},
    )


def _renderer(atlas: Atlas, env: jinja2.Environment, shared: Shared):
    """page(path, template, **context) -> (path, bytes): one page of the site."""

    def page(path: str, template: str, **context) -> tuple[str, bytes]:
        text = env.get_template(template).render(
            atlas=atlas, root="../" * path.count("/"), path=path, shared=shared, **context
        )
        return path, text.encode("utf-8")

    return page


def _pages(atlas: Atlas, env: jinja2.Environment) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every page: one small function per kind of page."""
    shared = _shared(atlas)
    page = _renderer(atlas, env, shared)

    yield page("index.html", "index.html", **overview(atlas))
    yield page("heads/index.html", "heads.html")
    yield page(contract.DEFINITIONS_PAGE, "definitions.html")
    for flat, head in enumerate(atlas.heads):
        path = contract.head_page(head.layer, head.head)
        yield page(path, "head.html", **head_context(atlas, flat))
    for path, own in sorted(atlas.pages.items()):
        yield page(path, own["template"])
    yield page("sentences/index.html", "sentences.html")
    with_view = [s for s in atlas.sentences if s.has_view]
    for position, sentence in enumerate(with_view):
        path = contract.sentence_page(sentence.index, len(atlas.sentences))
        yield page(path, "sentence.html", **sentence_context(atlas, shared, with_view, position))


def overview(atlas: Atlas) -> dict:
    """The overview's charts: one heatmap per catalogue column, the per-layer curves."""
    return {
        "heatmaps": {c.key: charts.metric_heatmap(atlas, c, "") for c in atlas.catalogue},
        "curves": charts.layer_curves(atlas, ""),
    }


def head_context(atlas: Atlas, flat: int) -> dict:
    head = atlas.heads[flat]
    return {
        "head": head,
        "previous": atlas.heads[flat - 1] if flat > 0 else None,
        "next": atlas.heads[flat + 1] if flat + 1 < len(atlas.heads) else None,
        "layer_means": {k: v[head.layer - 1] for k, v in atlas.layer_means.items()},
    }


def sentence_context(atlas: Atlas, shared: Shared, with_view: list[Sentence], position: int):
    sentence = with_view[position]
    return {
        "sentence": sentence,
        "view": shared.views[sentence.index],
        "view_b": shared.views_b.get(sentence.index),
        "previous": with_view[position - 1] if position > 0 else None,
        "next": with_view[position + 1] if position + 1 < len(with_view) else None,
        "head_links": [h for h in atlas.heads if sentence.index in h.parts.get("examples", ())],
    }


def _data_files(atlas: Atlas, only: int | None = None) -> Iterator[tuple[str, bytes]]:
    """data/NNNN.js of every sentence kept (or of sentence ``only``), and data/NNNN.qk.js of
    those with vectors."""
    total = len(atlas.sentences)
    for view in atlas.views if only is None else [v for v in atlas.views if v.index == only]:
        key = contract.sentence_key(view.index, total)
        script = data_script(
            view,
            key=key,
            sentence_id=atlas.sentences[view.index].id,
            layers=atlas.model.layers,
            heads=atlas.model.heads,
            causal=atlas.model.causal,
            neuron={
                "available": atlas.model.neuron_view and bool(view.vectors),
                "note": neuron_note(atlas, view),
                "head_dim": atlas.model.head_dim,
            },
        )
        yield contract.data_script(view.index, total), script.encode("utf-8")
        if view.vectors:
            yield contract.vectors_script(view.index, total), vectors_script(view, key).encode()
    yield from _compare_files(atlas)


def _compare_files(atlas: Atlas) -> Iterator[tuple[str, bytes]]:
    """data/NNNN.b.js: model B's attention of each sentence with a page, in a compare atlas,
    in the format of data/NNNN.js under the key NNNN.b (no queries and keys)."""
    if "compare" not in atlas.results:
        return
    model = atlas.results["compare"]["model"]
    total = len(atlas.sentences)
    for view in atlas.views_b:
        if not atlas.sentences[view.index].has_view:
            continue  # its page was left out (--max-site-mb)
        script = data_script(
            view,
            key=contract.compare_key(view.index, total),
            sentence_id=atlas.sentences[view.index].id,
            layers=model["layers"],
            heads=model["heads"],
            causal=model["causal"],
            neuron={
                "available": False,
                "note": model["neuron_note"],
                "head_dim": model["head_dim"],
            },
        )
        yield contract.compare_data_script(view.index, total), script.encode("utf-8")


def neuron_note(atlas: Atlas, view: View) -> str:
    """Why a sentence's page has no neuron view ("" when it has one)."""
    if not atlas.model.neuron_view:
        return atlas.model.neuron_note
    if view.vectors:
        return ""
    if atlas.options.neuron == "views" and view.index >= atlas.options.views:
        return (
            f"queries and keys are kept for the first {atlas.options.views} sentences "
            "(--neuron views); build with --neuron all to keep them for every page"
        )
    if atlas.options.max_site_mb is None:
        return "no queries and keys were kept for this sentence"
    return (
        "this sentence's queries and keys were left out to keep the site under "
        f"--max-site-mb {atlas.options.max_site_mb:g}"
    )


def _asset_files(templates: Path | None) -> list[Path]:
    """Built-in assets, each replaced by the user's file of the same name if there is one."""
    found = {p.name: p for p in (BUILTIN_TEMPLATES / ASSETS).iterdir() if p.is_file()}
    if templates is not None and (templates / ASSETS).is_dir():
        found.update({p.name: p for p in (templates / ASSETS).iterdir() if p.is_file()})
    return list(found.values())


def with_custom_css(env: jinja2.Environment, templates: Path | None) -> jinja2.Environment:
    """``env`` with the ``custom_css`` global that base.html reads: whether the site has the
    theme's assets/custom.css (copied with the other assets). Only then is it linked, so a site
    without one asks for no missing file and keeps its bytes."""
    env.globals["custom_css"] = any(p.name == CUSTOM_CSS for p in _asset_files(templates))
    return env


def sizes(atlas: Atlas, templates: Path | None = None) -> dict[str, int]:
    """The size in bytes of every file of the site, rendering it without keeping the files."""
    return {path: len(content) for path, content in render(atlas, templates)}
