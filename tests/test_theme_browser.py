"""A one-file theme: a --templates folder holding only assets/custom.css changes the site's
colours and fonts through atlas.css's variables, and keeps its layout (the head view's tokens
stay in two columns, row by row), on real pages in Chromium. A site without a custom.css links
none (no missing file asked for)."""

from __future__ import annotations

import pathlib

import pytest
from browser import open_sentence_page, require_chromium
from test_snapshot import STORED

import atlas
from atlas.cli import main

require_chromium()

ACCENT = "#b0306a"
ACCENT_RGB = "rgb(176, 48, 106)"
# What the README suggests: five lines of custom.css.
CUSTOM_CSS = f"""\
:root {{
  --accent: {ACCENT};
  --font: Georgia, "DejaVu Serif", serif;
  --mono: "DejaVu Sans Mono", monospace;
}}
"""


def render(out: pathlib.Path, theme: pathlib.Path | None = None) -> pathlib.Path:
    args = ["render", str(STORED), "-o", str(out), "-q"]
    assert main([*args, "--templates", str(theme)] if theme else args) == 0
    return out


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """The stored atlas rendered plain and with a theme that is one custom.css."""
    root = tmp_path_factory.mktemp("theme")
    theme = root / "mytheme"
    (theme / "assets").mkdir(parents=True)
    (theme / "assets" / "custom.css").write_text(CUSTOM_CSS, encoding="utf-8")
    return render(root / "plain"), render(root / "themed", theme)


def pages(site: pathlib.Path) -> list[pathlib.Path]:
    return sorted(site.rglob("*.html"))


def test_every_page_links_the_themes_custom_css_last(sites):
    """Linked on every page after the built-in stylesheets (so its rules win), and copied into
    the site; a site without a theme links none and has none."""
    plain, themed = sites
    assert (themed / "assets" / "custom.css").read_text(encoding="utf-8") == CUSTOM_CSS
    assert not (plain / "assets" / "custom.css").exists()
    for page in pages(themed):
        text = page.read_text(encoding="utf-8")
        root = "../" * (len(page.relative_to(themed).parts) - 1)
        link = f'<link rel="stylesheet" href="{root}assets/custom.css">\n</head>'
        assert link in text, page
        assert text.index(f"{root}assets/atlas.css") < text.index(link), page
    for page in pages(plain):
        assert "custom.css" not in page.read_text(encoding="utf-8"), page


def test_atlas_show_inlines_the_themes_custom_css(sites):
    """A page of a themed atlas, shown in a notebook, keeps its theme."""
    _, themed = sites
    assert f"<style>{CUSTOM_CSS}</style>" in atlas.show(themed, sentence=1).page


@pytest.mark.parametrize("themed", [False, True], ids=["plain", "themed"])
def test_the_theme_sets_colours_and_fonts_and_keeps_the_layout(browser, sites, themed, tmp_path):
    """On a sentence page: links take the theme's accent, the text its font and the tokens its
    monospace font; the head view still has its two columns of tokens side by side, row by
    row (replacing atlas.css instead would stack them); no file is missing."""
    site = sites[themed]
    page, report = open_sentence_page(browser, site / "sentences" / "0001.html")
    style = page.evaluate(
        """() => {
          const css = (selector, name) =>
            getComputedStyle(document.querySelector(selector)).getPropertyValue(name);
          return {
            accent: css(":root", "--accent").trim(),
            link: css("header.top nav a", "color"),
            font: css("body", "font-family"),
            token: css("#head-view .hv-token", "font-family"),
          };
        }"""
    )
    if themed:
        assert style["accent"] == ACCENT
        assert style["link"] == ACCENT_RGB
        assert style["font"].startswith("Georgia")
        assert style["token"].startswith('"DejaVu Sans Mono"')
    else:
        assert style["accent"] == "#2458a6"
        assert style["link"] == "rgb(36, 88, 166)"
        assert style["font"].startswith("system-ui")
        assert style["token"].startswith("ui-monospace")
    rows = page.evaluate(
        """() => ['.hv-from', '.hv-to'].map((column) =>
          [...document.querySelectorAll(`#head-view ${column} .hv-token`)].map((t) => {
            const box = t.getBoundingClientRect();
            return [box.left, box.right, box.top];
          }))"""
    )
    left, right = rows
    assert len(left) == len(right) > 3
    for (_, from_right, from_top), (to_left, _, to_top) in zip(left, right, strict=True):
        assert abs(from_top - to_top) < 0.5  # one row: a token and the same token attended to
        assert to_left > from_right + 20  # the lines' canvas between the columns
    assert len({top for _, _, top in left}) == len(left)  # each token on its own row
    page.screenshot(path=str(tmp_path / "page.png"))
    page.wait_for_timeout(50)
    assert report.clean, report
