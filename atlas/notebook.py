"""``atlas.show``: a sentence's views inside a notebook (Jupyter, VS Code), with nothing to serve.

Two sources, one page:

- ``show(text)`` (or a pair) runs the model on it through the pipeline, with the view data
  analysis alone, and renders the sentence page a site would have (``site.sentence_files``);
- ``show(site_dir, sentence=23)`` takes sentence 23's page of a built atlas as it is on disk.

Either way the page's stylesheets and scripts (the site's own views), its data scripts and the
neuron view's queries and keys (which the page would load on demand) are inlined into one
document, shown in an ``<iframe srcdoc>``: each output has its own globals and element ids, no
URL leaves the document, and the notebook's own page is never touched. Inside the frame, and
in a page written by ``.save()``, there is no site around the page: its menus are hidden and
its links to the site's other pages are turned into plain text (notebook/frame.js, in the page's
DOM, so the links the views' scripts make are caught too); the views work as on the site.
"""

from __future__ import annotations

import html
import json
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from . import contract
from .analyses.views import ViewData
from .corpus import Example
from .loading import DEFAULT_MODEL
from .options import BuildOptions
from .pipeline import measure
from .running import Runner
from .site import BUILTIN_TEMPLATES, sentence_files

# The frame's height until the page inside has measured itself (and where scripts cannot reach
# the frame, its height for good): enough for the head view and the model view.
DEFAULT_HEIGHT = 900
INPUT_NAME = "atlas.show"

_SCRIPT = re.compile(r'<script\b[^>]*\bsrc="([^"]+)"[^>]*>\s*</script>')
_STYLESHEET = re.compile(r'<link\b(?=[^>]*\brel="stylesheet")[^>]*\bhref="([^"]+)"[^>]*>')
# The site's favicon: a notebook's frame has no site to load it from, and the notebook has its own.
_ICON = re.compile(r'<link\b(?=[^>]*\brel="icon")[^>]*>\n?')
_DATA = re.compile(re.escape(contract.DATA_SCRIPT).replace(re.escape("{key}"), "(?P<key>.+)"))

# Inside a frame, relative URLs resolve against the notebook's page unless the document says
# otherwise; against the frame itself, the views' address (#L3-H7) can follow the selection.
_FRAME_BASE = '<base href="about:srcdoc">\n'
# What the frame adds to the page: notebook/frame.css and frame.js in the templates.
FRAME_FILES = BUILTIN_TEMPLATES / "notebook"

# The last model show() loaded, kept so that showing sentence after sentence loads it once: at
# most one (a notebook rarely switches models, and each holds its weights in memory).
_loaded: dict[tuple, Runner] = {}


@dataclass(frozen=True)
class Shown:
    """What ``atlas.show`` returns: a notebook displays it (``_repr_html_``); ``page`` is the
    self-contained HTML document, ``html`` the frame that holds it, ``save(path)`` writes the
    document to a file that opens in any browser. At a plain Python prompt its repr is one
    line (the page is some 350 KB of HTML)."""

    page: str
    text: str  # the sentence (a pair: "A / B")
    model: str  # the model's name as the site gives it
    layers: int
    heads: int
    height: int = DEFAULT_HEIGHT

    @property
    def title(self) -> str:
        return "Attention Atlas: " + _cut(self.text, 60)

    def __repr__(self) -> str:
        return (
            f"<atlas.show: sentence {_cut(self.text, 30)!r} · model {self.model} · "
            f"{self.layers}×{self.heads} heads · .save(path) to keep>"
        )

    @property
    def html(self) -> str:
        framed = _after_head(self.page, _FRAME_BASE)
        return (
            f'<iframe class="atlas-show" title="{html.escape(self.title)}" '
            f'style="width: 100%; height: {self.height}px; border: 0;" '
            f'srcdoc="{html.escape(framed, quote=True)}"></iframe>'
        )

    def _repr_html_(self) -> str:
        return self.html

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(self.page, encoding="utf-8")
        return path


def show(
    source: str | os.PathLike | tuple[str, str],
    text_b: str | None = None,
    *,
    sentence: int | None = None,
    head: str | None = None,
    model: str | None = None,
    words: bool = False,
    device: str = "auto",
    max_length: int | None = None,
    height: int = DEFAULT_HEIGHT,
) -> Shown:
    """The head, model and neuron views of one sentence, for a notebook cell.

    ``show("The cat sat.")``; a pair as the CLI's ``A TAB B``: ``show("The cat sat.", "It was
    tired.")`` or ``show(("The cat sat.", "It was tired."))``; ``model``: a hub id or folder
    (default: the CLI's offline default model), loaded once and kept for the next call;
    ``words``: split the sentence into words on whitespace (``--words``), for word-level views.

    ``show(site_dir, sentence=23)``: sentence 23's page (1-based, as the site numbers it) of an
    atlas built before (a ``Path`` alone: its first sentence page). ``head="L3-H7"`` selects that
    head in either. Bad arguments raise ValueError with a one-line message."""
    if isinstance(source, os.PathLike) or sentence is not None:
        if text_b is not None or model is not None or words:
            raise ValueError(
                "atlas.show(site, sentence=N) shows a page as it was built; text_b, model and "
                "words are for atlas.show(text)"
            )
        if not isinstance(source, str | os.PathLike):
            raise ValueError(f"atlas.show: a site is a folder, got {type(source).__name__}")
        return _from_site(Path(source), sentence, head, height)
    text, text_b = _texts(source, text_b)
    if words and text_b is not None:
        raise ValueError("atlas.show: words=True is for single sentences, not pairs")
    example = Example(
        id="1", text=text, text_b=text_b, words=tuple(text.split()) if words else None
    )
    runner = _runner(model, device, max_length)
    _check_head(head, runner.info.layers, runner.info.heads)
    result = measure(
        [example],
        runner,
        [ViewData(1, "all")],
        title=runner.info.name.rstrip("/").split("/")[-1],
        input_name=INPUT_NAME,
        options=BuildOptions(batch_size=1, views=1, neuron="all"),
    )
    files = sentence_files(result, 0)
    page = contract.sentence_page(0, 1)
    shown = text if text_b is None else f"{text} / {text_b}"
    info = result.model
    return Shown(_inline(page, files.get, head), shown, info.name, info.layers, info.heads, height)


def _texts(source: object, text_b: object) -> tuple[str, str | None]:
    """(text, text_b) from show()'s first two arguments, checked."""
    if isinstance(source, tuple | list):
        if text_b is not None:
            raise ValueError("atlas.show: give a pair as a tuple or as two texts, not both")
        if len(source) != 2:
            raise ValueError(f"atlas.show: a pair is two texts, got {len(source)}")
        source, text_b = source
    for side in (source, text_b):
        if side is not None and not isinstance(side, str):
            raise ValueError(f"atlas.show: the text must be a string, got {type(side).__name__}")
    assert isinstance(source, str)
    if not source.strip() or (text_b is not None and not text_b.strip()):
        raise ValueError("atlas.show: empty text")
    return source.strip(), text_b.strip() if text_b is not None else None


def _runner(model: str | None, device: str, max_length: int | None) -> Runner:
    """The model's runner, loaded once per process (the last one used is kept)."""
    key = (model or DEFAULT_MODEL, device, max_length)
    if key not in _loaded:
        _loaded.clear()  # before loading the next, so two models are never held at once
        _loaded[key] = Runner(model, device=device, max_length=max_length)
    return _loaded[key]


def _check_head(head: str | None, layers: int, heads: int) -> None:
    if head is not None and head not in contract.head_names(layers, heads):
        last = contract.head_name(layers, heads)
        raise ValueError(f"atlas.show: no head {head!r} in this model (L1-H1 to {last})")


def _cut(text: str, length: int) -> str:
    """``text``, cut to ``length`` characters with an ellipsis if it is longer."""
    return text if len(text) <= length else text[: length - 1] + "…"


def _from_site(site: Path, sentence: int | None, head: str | None, height: int) -> Shown:
    """Sentence ``sentence``'s page (1-based) of the atlas in ``site``, inlined."""
    if not site.is_dir():
        raise ValueError(f"atlas.show: {site}: no such folder")
    try:
        data = json.loads((site / "atlas.json").read_text(encoding="utf-8"))
        sentences, model = data["sentences"], data["model"]
        pages = [s["index"] + 1 for s in sentences if s["has_view"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"atlas.show: {site}: not an atlas (no readable atlas.json)") from None
    if sentence is None:
        if not pages:
            raise ValueError(f"atlas.show: {site}: no sentence has a page in this atlas")
        sentence = pages[0]
    if not isinstance(sentence, int) or isinstance(sentence, bool):
        raise ValueError(f"atlas.show: sentence is a number, got {sentence!r}")
    if not 1 <= sentence <= len(sentences):
        raise ValueError(
            f"atlas.show: {site} has sentences 1 to {len(sentences)}, not sentence {sentence}"
        )
    if sentence not in pages:
        raise ValueError(
            f"atlas.show: sentence {sentence} of {site} has no page (--views kept "
            f"{len(pages)}; the pages are of sentences {_ranges(pages)})"
        )
    _check_head(head, model["layers"], model["heads"])
    page = contract.sentence_page(sentence - 1, len(sentences))
    root = site.resolve()

    def read(path: str) -> bytes | None:
        file = (root / path).resolve()
        if not file.is_relative_to(root) or not file.is_file():
            return None
        return file.read_bytes()

    shown = sentences[sentence - 1]
    text = shown["text"] if shown.get("text_b") is None else f"{shown['text']} / {shown['text_b']}"
    return Shown(
        _inline(page, read, head, site),
        text,
        model["name"],
        model["layers"],
        model["heads"],
        height,
    )


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)


def _inline(page: str, read, head: str | None, site: Path | None = None) -> str:
    """The page at ``page`` (a path in the site) with every stylesheet and script it loads
    inlined, and each data script followed by its queries and keys (the neuron view's, which
    the page would load when it opens), as one document for the frame. ``read(path)``: a file
    of the site by path, or None."""

    def content(path: str) -> str:
        data = read(path)
        if data is None:
            where = f"{site}: " if site is not None else ""
            raise ValueError(f"atlas.show: {where}{path} is missing (the page loads it)")
        return data.decode("utf-8")

    def resolve(url: str) -> str:
        return posixpath.normpath(posixpath.join(posixpath.dirname(page), url))

    def script(match: re.Match) -> str:
        path = resolve(html.unescape(match.group(1)))
        scripts = [content(path)]
        data = _DATA.fullmatch(path)
        if data:
            vectors = read(contract.VECTORS_SCRIPT.format(key=data.group("key")))
            if vectors is not None:
                scripts.append(vectors.decode("utf-8"))
        return "".join(f"<script>{_safe(s, 'script')}</script>" for s in scripts)

    def stylesheet(match: re.Match) -> str:
        path = resolve(html.unescape(match.group(1)))
        return f"<style>{_safe(content(path), 'style')}</style>"

    text = _ICON.sub("", content(page))
    text = _STYLESHEET.sub(stylesheet, text)
    text = _SCRIPT.sub(script, text)
    extra = (
        f"<style>{_safe((FRAME_FILES / 'frame.css').read_text('utf-8'), 'style')}</style>\n"
        f"<script>window.ATLAS_SHOW = {contract.script_json({'head': head})};\n"
        f"{_safe((FRAME_FILES / 'frame.js').read_text('utf-8'), 'script')}</script>\n"
    )
    return text.replace("</head>", extra + "</head>", 1)  # after the page's own stylesheets


def _after_head(page: str, extra: str) -> str:
    """``page`` with ``extra`` at the start of its <head>, after its charset (before anything
    that loads)."""
    return re.sub(
        r"<head>\s*(<meta charset=[^>]*>\s*)?", lambda m: m.group(0) + extra, page, count=1
    )


def _safe(source: str, element: str) -> str:
    """A script or stylesheet's text, safe inside its element: no "</script" (or "</style") to
    end it early and no "<!--" to start an HTML comment state; inside JavaScript and CSS strings
    and comments the escaped forms read the same."""
    source = re.sub(f"</({element})", r"<\\/\1", source, flags=re.IGNORECASE)
    return source.replace("<!--", "<\\x21--") if element == "script" else source
