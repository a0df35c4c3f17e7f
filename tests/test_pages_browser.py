"""Issue 22's pages in headless Chromium at 1366 × 900, the laptop width a new user had: the
treebank sentence page's layout (arcs across the top, the two views side by side), arc labels
that never collide and a long sentence that scrolls, the heads table that fits with its header
and first column sticky, the Definitions page and its links, the word explorer's occurrence
marks, the favicon, and the words that said one thing and counted another."""

from __future__ import annotations

import pathlib
import re

import pytest
from browser import Browser, open_sentence_page, require_chromium

from atlas import contract
from atlas.cli import main
from atlas.result import load

require_chromium()

TREEBANK = pathlib.Path(__file__).resolve().parent.parent / "examples" / "ud-ewt-sample.conllu"
LAPTOP = {"width": 1366, "height": 900}


@pytest.fixture(scope="module")
def browser():
    """One Chromium at the laptop width (the shared fixture's is 1280 px)."""
    with Browser(viewport=LAPTOP) as b:
        yield b


@pytest.fixture(scope="module")
def site(tiny_model, tmp_path_factory) -> pathlib.Path:
    """A tiny BERT over the first 60 UD sentences, each with a page (long, dense ones too)."""
    out = tmp_path_factory.mktemp("pages-treebank") / "site"
    argv = ["build", str(TREEBANK), "-o", str(out), "-q", "--model", str(tiny_model("bert"))]
    assert main([*argv, "--limit", "60", "--views", "60"]) == 0
    return out


def longest(site: pathlib.Path) -> str:
    atlas = load(site)
    sentence = max((s for s in atlas.sentences if s.has_view), key=lambda s: s.tokens)
    return contract.sentence_page(sentence.index, len(atlas.sentences))


def box(page, selector: str) -> dict:
    return page.evaluate(
        f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
        " return {top: r.top, left: r.left, right: r.right, bottom: r.bottom}; })()"
    )


def test_treebank_page_arcs_on_top_and_the_two_views_side_by_side(browser, site):
    page, report = open_sentence_page(browser, site / "sentences/0001.html")
    panels = ("#arcs-panel", ".head-view-panel > h2", ".model-view-panel > h2")
    arcs, head, model = (box(page, s) for s in panels)
    assert arcs["bottom"] <= head["top"]  # the arcs across the top
    assert abs(model["top"] - head["top"]) < 2  # the two views' titles on one line
    assert model["left"] >= head["right"]  # side by side
    assert model["top"] < LAPTOP["height"]  # the model view is on the first screen
    assert report.clean, report
    page.close()


def test_arc_labels_never_collide_and_a_long_sentence_scrolls_from_the_keyboard(browser, site):
    page, report = open_sentence_page(browser, site / longest(site))
    labels = page.evaluate(
        "[...document.querySelectorAll('#arcs-view .arc-label')].map((t) => {"
        " const r = t.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })"
    )
    overlapping = [
        (i, j)
        for i, a in enumerate(labels)
        for j, b in enumerate(labels[:i])
        if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    ]
    assert len(labels) > 15 and overlapping == []
    scroller = page.locator(".arcs-box")
    assert scroller.get_attribute("role") == "region" and scroller.get_attribute("aria-label")
    page.set_viewport_size({"width": 480, "height": 900})  # the tiny model's sentences are short
    scrolls = "(b => b.scrollWidth > b.clientWidth)(document.querySelector('.arcs-box'))"
    assert page.evaluate(scrolls)
    assert box(page, ".arcs-box")["right"] <= 480  # scrolls inside the page, not past its edge
    scroller.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)  # smooth scrolling
    assert page.evaluate("document.querySelector('.arcs-box').scrollLeft") > 0
    assert report.clean, report
    page.close()


def test_heads_table_fits_1366_with_its_header_and_head_names_in_view(browser, site):
    page, report = browser.open(site / "heads/index.html")
    widths = page.evaluate(
        "(() => { const s = document.querySelector('.heads-scroll');"
        " return [document.querySelector('#heads-table').scrollWidth, s.clientWidth]; })()"
    )
    assert widths[0] <= widths[1], widths  # every column in view, no sideways scrolling
    headers = page.locator("#heads-table thead th").all_text_contents()
    assert headers.count("head") == 1  # the name; layer and head number are L and H
    assert page.locator("#heads-table thead abbr[title='head number within its layer']").count()
    page.evaluate("document.querySelector('.heads-scroll').scrollTop = 600")
    scroller = box(page, ".heads-scroll")
    assert abs(box(page, "#heads-table thead th")["top"] - scroller["top"]) < 2  # sticky header
    page.set_viewport_size({"width": 700, "height": 900})  # now it scrolls sideways
    page.evaluate("document.querySelector('.heads-scroll').scrollLeft = 300")
    first = box(page, "#heads-table tbody tr:last-child td:first-child")
    assert abs(first["left"] - box(page, ".heads-scroll")["left"]) < 2  # the name stays
    assert report.clean, report
    page.close()


@pytest.fixture(scope="module")
def default_treebank(tmp_path_factory) -> pathlib.Path:
    """The default model over the first 40 UD sentences, with every column a new user's build
    has (syntax, head types, importance): the widest heads table of the examples."""
    out = tmp_path_factory.mktemp("pages-default-treebank") / "site"
    argv = ["build", str(TREEBANK), "-o", str(out), "-q", "--limit", "40", "--views", "1"]
    assert main([*argv, "--importance-ablation", "2"]) == 0
    return out


def test_the_default_model_s_treebank_heads_table_fits_1366_with_every_column(
    browser, default_treebank
):
    """At 1366 px the table of every column (head types and importance beside the syntax
    columns) is in view without scrolling sideways: it was 1,341 px in a 1,278 px box."""
    atlas = load(default_treebank)
    page, report = browser.open(default_treebank / "heads/index.html")
    width, room = page.evaluate(
        "(() => { const s = document.querySelector('.heads-scroll');"
        " return [document.querySelector('#heads-table').scrollWidth, s.clientWidth]; })()"
    )
    assert width <= room, (width, room)
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    shown = page.locator("#heads-table thead th[data-column]").evaluate_all(
        "(ths) => ths.map((th) => th.dataset.column)"
    )
    assert shown == [c.key for c in atlas.catalogue]  # nothing left out to make it fit
    labels = page.locator("#heads-table tbody td:nth-child(4)").all_inner_texts()
    assert [" ".join(t.split()) for t in labels] == [h.label for h in atlas.heads]
    assert report.clean, report
    page.close()


def test_definitions_page_every_column_its_links_and_search(browser, site):
    atlas = load(site)
    page, report = browser.open(site / contract.DEFINITIONS_PAGE)
    for column in atlas.catalogue:
        entry = page.locator(f"dt#{column.key}")
        assert entry.count() == 1, column.key
        assert column.title in entry.inner_text()
    assert "Clark et al. 2019" in page.locator("dt#to_sep + dd").inner_text()
    assert "Htut et al. 2019" in page.locator("dt#uuas + dd").inner_text()
    assert page.locator("header nav a[aria-current='page']").inner_text() == "Definitions"
    page.fill("#site-search", "MST")
    page.wait_for_selector("#site-search-list li.search-definition")
    hit = page.locator("#site-search-list li.search-definition").first
    assert hit.get_attribute("data-href").endswith("definitions.html#uuas")
    page.close()
    head, _ = browser.open(site / "heads/L01-H01.html")
    link = head.locator("tr[data-column='entropy'] a.metric-name")
    assert link.get_attribute("href") == "../definitions.html#entropy"
    link.click()
    head.wait_for_url(re.compile(r"definitions\.html#entropy$"))
    head.close()
    assert report.clean, report


def test_word_explorer_marks_which_occurrence_it_means(browser, site):
    page, report = browser.open(site / "layers.html", wait_for="#explorer-table tbody tr")
    words = page.locator("#explorer-word option").all_text_contents()
    the = next(i for i, w in enumerate(words) if w.startswith("the "))
    page.select_option("#explorer-word", index=the)
    rows = page.evaluate(
        """[...document.querySelectorAll('#explorer-table tbody tr')].map((tr) => {
          const cell = tr.cells[1], mark = cell.querySelector('mark.occurrence');
          return {number: cell.firstChild.textContent, mark: mark && mark.textContent,
                  at: mark ? mark.previousSibling.textContent.length : -1,
                  which: cell.querySelector('.occurrence-of').textContent};
        })"""
    )
    assert all(r["mark"] and r["mark"].lower() == "the" for r in rows), rows
    # Two occurrences in one sentence: different words marked, and said so.
    by_sentence: dict[str, list] = {}
    for r in rows:
        by_sentence.setdefault(r["number"], []).append(r)
    twice = next(v for v in by_sentence.values() if len(v) > 1)
    assert twice[0]["at"] < twice[1]["at"]
    number = twice[0]["number"].removeprefix("#")
    assert [r["which"] for r in twice[:2]] == [
        f"the 1st “the” of sentence {number}",
        f"the 2nd “the” of sentence {number}",
    ]
    assert report.clean, report
    page.close()


@pytest.mark.parametrize("path", ["index.html", "heads/L01-H01.html", "sentences/0001.html"])
def test_every_page_has_a_favicon_that_loads(browser, site, path):
    page, report = browser.open(site / path)
    href = page.locator("link[rel=icon]").get_attribute("href")
    assert not href.startswith(("/", "http"))  # relative: works under any sub-path
    loaded = page.evaluate(
        "(async () => { const i = new Image();"
        " i.src = document.querySelector('link[rel=icon]').href;"
        " await i.decode(); return i.naturalWidth; })()"
    )
    assert loaded > 0
    assert report.clean, report
    page.close()


def test_words_that_agree_with_the_counts(site):
    """The overview counts sentences with a page apart from those kept only for a head page's
    figures; the Layers page's two adjusted columns have names of their own; the Syntax page
    says where its right and wrong numbers come from and why its two best-head figures differ."""
    atlas = load(site)
    pages = sum(s.has_view for s in atlas.sentences)
    overview = (site / "index.html").read_text(encoding="utf-8")
    assert f"<td>{pages} sentences, each on a page of its own" in overview
    layers = (site / "layers.html").read_text(encoding="utf-8")
    assert "less anisotropy" not in layers
    assert ">self-similarity − anisotropy<" in layers and ">intra-sentence − anisotropy<" in layers
    assert "docs/metrics.md" not in layers
    syntax = (site / "syntax.html").read_text(encoding="utf-8")
    assert ">right in sentences</th>" in syntax and ">wrong in sentences</th>" in syntax
    assert re.search(r'title="sentence \d+: L\d+-H\d+ gets a \w+ dependent right">#\d+</a>', syntax)
    assert "on the held-out quarter only" in syntax
