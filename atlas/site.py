"""Render the static site: pure functions from an Atlas to files.

``render(atlas)`` returns every file of the site as ``{relative path: bytes}`` and touches no
disk; ``atlas.output.write(files, out)`` puts them into the output folder.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from . import __version__, charts
from .report import Atlas, Head, Sentence, data_script, sentence_number, vectors_script
from .stats import BROAD_THRESHOLD, LABEL_THRESHOLD, LABELS, METRICS, OFFSETS

PACKAGE_DIR = Path(__file__).resolve().parent
# Inside a wheel the templates sit in atlas/templates; in a source checkout, beside atlas/.
BUILTIN_TEMPLATES = next(
    p for p in (PACKAGE_DIR / "templates", PACKAGE_DIR.parent / "templates") if p.is_dir()
)
ASSETS = "assets"
VEGA_BUNDLE = "vega-bundle.js"


class SiteError(RuntimeError):
    """The site cannot be written; the message is one line."""


def environment(templates: Path | None = None) -> jinja2.Environment:
    """The one Jinja environment: the user's template folder, if any, wins over the built-in."""
    loaders: list[jinja2.BaseLoader] = []
    if templates is not None:
        loaders.append(jinja2.FileSystemLoader(str(templates)))
    loaders.append(jinja2.FileSystemLoader(str(BUILTIN_TEMPLATES)))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = lambda v, digits=3: f"{v:.{digits}f}"
    env.globals.update(
        metrics=METRICS,
        labels=LABELS,
        offsets=OFFSETS,
        label_threshold=LABEL_THRESHOLD,
        broad_threshold=BROAD_THRESHOLD,
        atlas_version=__version__,
    )
    return env


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed from vl-convert, as one classic script.

    Wrapped in a function so its top-level names cannot clash with other scripts' globals; it
    sets window.vega, window.vegaLite and window.vegaEmbed."""
    import vl_convert

    return "(function () {\n" + vl_convert.javascript_bundle() + "\n})();\n"


def render(atlas: Atlas, templates: Path | None = None) -> dict[str, bytes]:
    """Every file of the site, by relative path. Pure: same Atlas, same bytes."""
    try:
        return _render(atlas, templates)
    except jinja2.TemplateSyntaxError as err:
        raise SiteError(
            f"template {err.filename or err.name}:{err.lineno}: {err.message}"
        ) from None
    except jinja2.TemplateError as err:
        raise SiteError(f"template error: {err}") from None


def _render(atlas: Atlas, templates: Path | None) -> dict[str, bytes]:
    env = environment(templates)
    total = len(atlas.sentences)
    numbers = {s.index: sentence_number(s.index, total) for s in atlas.sentences}
    files: dict[str, str | bytes] = {}

    def page(path: str, template: str, **context) -> None:
        depth = path.count("/")
        root = "../" * depth
        files[path] = env.get_template(template).render(
            atlas=atlas, root=root, numbers=numbers, path=path, **context
        )

    page(
        "index.html",
        "index.html",
        heatmaps={key: charts.metric_heatmap(atlas, key, "") for key in METRICS},
        curves=charts.layer_curves(atlas, ""),
        head_map=charts.head_map(atlas, ""),
        label_counts={label: [h for h in atlas.heads if h.label == label] for label in LABELS},
    )
    page("heads/index.html", "heads.html")
    for flat, head in enumerate(atlas.heads):
        page(
            f"heads/{head.slug}.html",
            "head.html",
            head=head,
            previous=atlas.heads[flat - 1] if flat > 0 else None,
            next=atlas.heads[flat + 1] if flat + 1 < len(atlas.heads) else None,
            layer_means={k: atlas.layer_means[k][head.layer - 1] for k in METRICS},
            offset_chart=charts.offset_profile(atlas, head),
            map_chart=charts.head_map(atlas, "../", highlight=head.name),
            heads_by_name={h.name: h for h in atlas.heads},
        )
    page("sentences/index.html", "sentences.html")
    with_view = [s for s in atlas.sentences if s.has_view]
    for position, sentence in enumerate(with_view):
        page(
            f"sentences/{numbers[sentence.index]}.html",
            "sentence.html",
            sentence=sentence,
            view=atlas.view(sentence.index),
            previous=with_view[position - 1] if position > 0 else None,
            next=with_view[position + 1] if position + 1 < len(with_view) else None,
            head_links=_head_links(atlas, sentence),
        )
        view = atlas.view(sentence.index)
        files[f"data/{numbers[sentence.index]}.js"] = data_script(atlas, view)
        if view.query:
            files[f"data/{numbers[sentence.index]}.qk.js"] = vectors_script(atlas, view)
    for source in sorted(_asset_files(templates)):
        files[f"{ASSETS}/{source.name}"] = source.read_bytes()
    files[f"{ASSETS}/{VEGA_BUNDLE}"] = vega_bundle()
    files["atlas.json"] = atlas.to_json()
    files[".nojekyll"] = ""
    return {
        path: content.encode("utf-8") if isinstance(content, str) else content
        for path, content in files.items()
    }


def _head_links(atlas: Atlas, sentence: Sentence) -> list[Head]:
    """Heads whose pages show this sentence as an example."""
    return [h for h in atlas.heads if sentence.index in h.examples]


def _asset_files(templates: Path | None) -> list[Path]:
    """Built-in assets, each replaced by the user's file of the same name if there is one."""
    found = {p.name: p for p in (BUILTIN_TEMPLATES / ASSETS).iterdir() if p.is_file()}
    if templates is not None and (templates / ASSETS).is_dir():
        found.update({p.name: p for p in (templates / ASSETS).iterdir() if p.is_file()})
    return list(found.values())


def size_of(files: dict[str, bytes]) -> int:
    return sum(len(content) for content in files.values())
