"""Accessibility in headless Chromium: every kind of page passes axe-core (node_modules, from
`npm ci`) with no serious or critical violation; the views work from the keyboard (token rows,
the model view's thumbnails, head swatches, the layer menu, table headers) with a visible
focus; the pages draw with the contract's colour-blind-safe scales."""

from __future__ import annotations

import pathlib

import pytest
from browser import Browser, axe_violations, dataset, open_sentence_page, require_axe
from test_compare import compare_site, perturbed  # noqa: F401 (fixtures)

from atlas import contract
from atlas.cli import main
from atlas.result import load

require_axe()

CHARTS_DRAWN = "[...document.querySelectorAll('div.vega')].every((e) => e.matches('.drawn'))"
TREEBANK = pathlib.Path(__file__).resolve().parent.parent / "examples" / "ud-ewt-sample.conllu"


@pytest.fixture(scope="module")
def treebank_site(tiny_model, tmp_path_factory) -> pathlib.Path:
    """A tiny BERT over the UD sample: the syntax and layers pages, a sentence with arcs."""
    out = tmp_path_factory.mktemp("a11y-treebank") / "site"
    argv = ["build", str(TREEBANK), "-o", str(out), "-q", "--model", str(tiny_model("bert"))]
    assert main([*argv, "--limit", "12", "--views", "2"]) == 0
    return out


def pair_page(site: pathlib.Path) -> str:
    atlas = load(site)
    pair = next(s for s in atlas.sentences if s.text_b is not None and s.has_view)
    return f"sentences/{pair.index + 1:04d}.html"


def check(browser: Browser, site: pathlib.Path, page_path: str) -> None:
    """Opens a page, waits for its scripts (views, charts) and asserts axe finds nothing
    serious or critical."""
    if page_path.startswith("sentences/0"):
        page, report = open_sentence_page(browser, site / page_path)
    else:
        page, report = browser.open(site / page_path)
        if page.locator("div.vega").count():
            page.wait_for_function(CHARTS_DRAWN)
    assert axe_violations(page) == [], page_path
    assert report.clean, report
    page.close()


DEFAULT_PAGES = [
    "index.html",
    "heads/index.html",
    "heads/L03-H02.html",
    "definitions.html",
    "sentences/index.html",
    "sentences/0001.html",
    "layers.html",
]


@pytest.mark.parametrize("page_path", DEFAULT_PAGES)
def test_pages_of_the_example_atlas_pass_axe(browser, default_site, page_path):
    check(browser, default_site, page_path)


def test_a_sentence_pair_page_passes_axe(browser, default_site):
    check(browser, default_site, pair_page(default_site))


@pytest.mark.parametrize("page_path", ["syntax.html", "sentences/0001.html"])
def test_treebank_pages_pass_axe(browser, treebank_site, page_path):
    check(browser, treebank_site, page_path)


@pytest.mark.parametrize("page_path", ["compare.html", "sentences/0002.html", "heads/L02-H01.html"])
def test_compare_pages_pass_axe(browser, compare_site, page_path):  # noqa: F811
    check(browser, compare_site, page_path)


def test_a_sentence_page_passes_axe_with_a_token_pinned_and_a_preview_open(browser, default_site):
    page, report = open_sentence_page(browser, default_site / "sentences" / "0005.html", "L3-H4")
    page.locator(".hv-from .hv-token[data-index='2']").focus()
    page.keyboard.press("Enter")
    page.locator("#head-grid canvas.active").focus()
    page.locator(".mv-preview").wait_for(state="visible")
    assert axe_violations(page) == []
    assert report.clean, report
    page.close()


# ---- the keyboard


def active(page) -> dict:
    """What has the focus: its tag, classes, data-* and aria-selected."""
    return page.evaluate(
        """() => { const e = document.activeElement;
          return {tag: e.tagName, cls: e.className, ...e.dataset,
                  selected: e.getAttribute('aria-selected')}; }"""
    )


def outline(page) -> str:
    """The focused element's computed outline (style and width), to check focus is visible."""
    return page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return `${s.outlineStyle} ${s.outlineWidth}`; }"
    )


def test_token_rows_are_driven_from_the_keyboard(browser, default_site):
    page, report = open_sentence_page(browser, default_site / "sentences" / "0005.html", "L3-H4")
    head_view = "#head-view"
    every = int(dataset(page, head_view)["lines"])
    # Tab from the threshold menu (the last control before the swatches) reaches a token row.
    page.locator(".hv-threshold select").focus()
    for _ in range(20):
        page.keyboard.press("Tab")
        if "hv-token" in active(page)["cls"]:
            break
    assert active(page) | {"cls": ""} == {
        "tag": "DIV", "cls": "", "side": "from", "index": "0", "selected": "false"
    }  # fmt: skip
    assert outline(page).startswith("solid")  # a visible focus ring
    assert dataset(page, head_view)["token"] == "from:0"  # focus shows the token's lines
    assert int(dataset(page, head_view)["lines"]) < every
    # Arrows move along the column (the selected head stays), Enter pins as a click does.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert (active(page)["side"], active(page)["index"]) == ("from", "2")
    data = dataset(page, head_view)
    assert (data["layer"], data["focus"], data["token"]) == ("3", "4", "from:2")
    assert page.evaluate("location.hash") == "#L3-H4"
    page.keyboard.press("Enter")
    assert dataset(page, head_view)["pinned"] == "from:2"
    assert active(page)["selected"] == "true"
    pinned_lines = dataset(page, head_view)["lines"]
    # Right crosses to the other column, same row; the pin stays while focus moves.
    page.keyboard.press("ArrowRight")
    assert (active(page)["side"], active(page)["index"]) == ("to", "2")
    assert dataset(page, head_view)["pinned"] == "from:2"
    page.keyboard.press("End")
    assert active(page)["index"] == str(len(page.locator(".hv-to .hv-token").all()) - 1)
    page.keyboard.press("Home")
    page.keyboard.press(" ")  # Space pins too, replacing the pin
    assert dataset(page, head_view)["pinned"] == "to:0"
    # Escape releases the pin; leaving the rows shows every line again.
    page.keyboard.press("Escape")
    assert dataset(page, head_view)["pinned"] == ""
    page.keyboard.press("ArrowLeft")
    page.locator(".hv-threshold select").focus()
    assert dataset(page, head_view)["token"] == ""
    assert int(dataset(page, head_view)["lines"]) == every != int(pinned_lines)
    # Tab into the token column again lands on the token last visited (one tab stop a column).
    page.keyboard.press("Tab")
    for _ in range(20):
        if "hv-token" in active(page)["cls"]:
            break
        page.keyboard.press("Tab")
    assert (active(page)["side"], active(page)["index"]) == ("from", "0")
    assert report.clean, report
    page.close()


def test_head_and_layer_controls_work_from_the_keyboard(browser, default_site):
    page, report = open_sentence_page(browser, default_site / "sentences" / "0005.html", "L3-H4")
    page.locator(".hv-layer select").focus()
    page.keyboard.press("ArrowDown")  # a closed <select>: the next layer
    assert dataset(page, "#head-view")["layer"] == "4"
    assert page.evaluate("location.hash") == "#L4-H4"
    page.locator(".hv-swatch[data-head='2']").focus()
    assert outline(page).startswith("solid")
    page.keyboard.press("Enter")
    assert dataset(page, "#head-view")["heads"] == "2,4"
    page.keyboard.press("Space")
    assert dataset(page, "#head-view")["heads"] == "4"
    # The model view: Tab reaches the selected head's thumbnail, which shows its preview;
    # the page's arrows move the selection and the focus follows it; Enter selects.
    page.locator(".mv-controls button").last.focus()
    page.keyboard.press("Tab")
    assert active(page) | {"cls": ""} == {
        "tag": "CANVAS", "cls": "", "layer": "4", "head": "4", "selected": None
    }  # fmt: skip
    assert outline(page).startswith("solid")
    preview = page.locator(".mv-preview")
    preview.wait_for(state="visible")
    assert preview.locator(".mv-preview-title").inner_text().startswith("L4-H4")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowUp")
    assert (active(page)["layer"], active(page)["head"]) == ("3", "5")
    page.wait_for_function(
        "document.querySelector('.mv-preview-title').textContent.startsWith('L3-H5')"
    )
    assert dataset(page, "#head-view")["heads"] == "5"
    assert page.evaluate("location.hash") == "#L3-H5"
    assert report.clean, report
    page.close()


def test_table_headers_sort_from_the_keyboard(browser, default_site):
    page, report = browser.open(default_site / "heads" / "index.html")
    header = page.locator("table.sortable th[data-sort='number']").first
    header.focus()
    assert outline(page).startswith("solid")
    page.keyboard.press("Space")
    assert header.get_attribute("aria-sort") == "descending"
    assert page.evaluate("window.scrollY") == 0  # Space sorted, it did not scroll the page
    page.keyboard.press("Enter")
    assert header.get_attribute("aria-sort") == "ascending"
    assert report.clean, report
    page.close()


def test_overview_heads_are_reachable_from_the_keyboard(browser, default_site):
    """The heatmap cells are pointer links; each heatmap's list of top heads links the same
    pages, and Tab reaches them."""
    page, report = browser.open(default_site / "index.html")
    page.wait_for_function(CHARTS_DRAWN)
    reached = set()
    for _ in range(60):
        page.keyboard.press("Tab")
        href = page.evaluate("document.activeElement.getAttribute('href') || ''")
        if href.startswith("heads/L"):
            reached.add(href)
    assert len(reached) >= 5, reached
    page.close()
    assert report.clean, report


# ---- the colours on the pages


def test_views_draw_with_the_contract_scales(browser, default_site):
    page, report = open_sentence_page(browser, default_site / "sentences" / "0005.html")
    heads = page.evaluate(
        f"[...Array({len(contract.HEAD_COLOURS)}).keys()].map((h) => AtlasViews.headColour(h + 1))"
    )
    assert heads == contract.HEAD_COLOURS
    rgb = [[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in contract.SEQUENTIAL]
    assert page.evaluate("AtlasHeatmap.colour(0)") == rgb[0] == [255, 255, 255]
    assert page.evaluate("AtlasHeatmap.colour(1)") == rgb[-1]
    # a pressed swatch's text is black or white, whichever reads better on its colour
    inks = page.evaluate(
        "[...Array(12).keys()].map((h) => AtlasViews.inkOn(AtlasViews.headColour(h + 1)))"
    )
    assert inks[6] == "#fff" and inks[1] == "#000"  # on black; on orange
    assert report.clean, report
    page.close()
