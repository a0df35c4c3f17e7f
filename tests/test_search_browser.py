"""The search box of every page and the head map's colour control, in headless Chromium over
file://: a word finds its sentences and Enter opens one, from the root and from pages in
subfolders; a head name, a label or a column's name finds heads; the keyboard and ARIA of a
combobox; a sentence without a page opens at its row of the list; `atlas render` and `atlas
compare` sites search too; choosing a colour column recolours the map and its legend."""

from __future__ import annotations

import re

import pytest
from browser import require_chromium
from conftest import EXAMPLES, build

from atlas import charts, contract
from atlas.cli import main
from atlas.result import load

require_chromium()

OPTIONS = "#site-search-list [role=option]"
STATUS = ".site-search-status"


@pytest.fixture(scope="module")
def few_pages(tiny_model, tmp_path_factory):
    """The example corpus on the tiny BERT with pages for the first 3 sentences only."""
    out = tmp_path_factory.mktemp("search") / "site"
    assert build([str(EXAMPLES), "-o", str(out), "--model", str(tiny_model("bert")),
                  "--views", "3", "--importance", "0"]) == 0  # fmt: skip
    return out


def containing(atlas, word: str) -> list[int]:
    """The sentences holding ``word`` as a whole word, in any case (the expected answer)."""
    pattern = re.compile(rf"(?<![\w']){re.escape(word)}(?![\w'])", re.IGNORECASE)
    return [s.index for s in atlas.sentences if pattern.search(f"{s.text} {s.text_b or ''}")]


def search(page, query: str) -> list[str]:
    """Types the query into the box; the options' texts once the sentences are searched."""
    box = page.locator("#site-search")
    box.click()
    box.fill("")
    page.keyboard.type(query)
    page.wait_for_function(f"!document.querySelector({STATUS!r}).textContent.includes('loading')")
    return page.locator(OPTIONS).all_inner_texts()


def test_a_word_finds_its_sentences_and_enter_opens_the_first(browser, default_site):
    atlas = load(default_site)
    found = containing(atlas, "the")
    assert 8 < len(found) < len(atlas.sentences)
    page, rep = browser.open(default_site / "index.html")
    texts = search(page, "THE")  # any case
    status = page.locator(STATUS).inner_text()
    assert f"{len(found)} sentences (first 8 shown)" in status
    assert [t.split()[0] for t in texts] == [f"#{i + 1}" for i in found[:8]]
    marks = page.locator(f"{OPTIONS} mark").all_inner_texts()
    assert marks and {m.lower() for m in marks} == {"the"}
    # whole words only: "mone" is in no sentence as a word, "money" in one
    assert not [t for t in search(page, "mone") if t.startswith("#")]
    assert containing(atlas, "money") == [0]
    assert [t.split()[0] for t in search(page, "money")] == ["#1"]
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/sentences/0001.html")
    assert "money" in page.locator("p.sentence").inner_text()
    assert rep.clean, rep
    page.close()


def test_every_word_of_the_query_must_be_in_the_sentence(browser, default_site):
    atlas = load(default_site)
    both = sorted(set(containing(atlas, "the")) & set(containing(atlas, "of")))
    page, rep = browser.open(default_site / "index.html")
    search(page, "of the")
    assert f"{len(both)} sentence" in page.locator(STATUS).inner_text()
    assert rep.clean, rep
    page.close()


def test_from_a_head_page_in_a_subfolder_a_word_opens_its_sentence(browser, default_site):
    atlas = load(default_site)
    [index] = containing(atlas, "Mozilla")
    page, rep = browser.open(default_site / "heads" / "L03-H07.html")
    texts = search(page, "mozilla")
    assert texts[0].startswith(f"#{index + 1} ") and "Mozilla" in texts[0]
    page.keyboard.press("ArrowDown")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(f"/{contract.sentence_page(index, len(atlas.sentences))}")
    assert "Mozilla" in page.locator("p.sentence").inner_text()
    assert rep.clean, rep
    page.close()


def test_a_head_name_finds_the_head_from_a_sentence_page(browser, default_site):
    page, rep = browser.open(default_site / "sentences" / "0003.html")
    texts = search(page, "l3-h1")  # any case; the exact name first, then the longer ones
    assert [t.split()[0] for t in texts] == ["L3-H1", "L3-H10", "L3-H11", "L3-H12"]
    search(page, "L3-H7")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/heads/L03-H07.html")
    assert page.locator("h1").inner_text().startswith("L3-H7")
    assert rep.clean, rep
    page.close()


def test_a_label_finds_its_heads_then_the_column_top_heads(browser, default_site):
    atlas = load(default_site)
    words = {h.name: re.findall(r"\w+", h.label.lower()) for h in atlas.heads}
    labelled = [name for name, w in words.items() if any(x.startswith("prev") for x in w)]
    top = [h.name for h, _ in charts.top_heads(atlas, atlas.column("prev"))]
    assert labelled and len(labelled) + len(top) <= 6
    page, rep = browser.open(default_site / "index.html")
    texts = search(page, "prev")
    heads = len(labelled) + len(top)
    assert [t.split()[0] for t in texts[:heads]] == labelled + top
    assert all("highest on previous" in t for t in texts[len(labelled) : heads])
    # then the column's entry on the Definitions page
    assert texts[heads:] == ["previous definition: attention to the previous token"]
    assert (
        page.locator(OPTIONS)
        .nth(heads)
        .get_attribute("data-href")
        .endswith("definitions.html#prev")
    )
    status = page.locator(STATUS).inner_text()
    assert f"{len(labelled)} heads by name or label, the 3 highest on previous" in status
    assert "1 definition" in status
    # a column's name alone: the heads that attend most to [SEP], with their values, said to
    # be a ranking (none of them need be a [SEP] head)
    texts = search(page, "[SEP]")[:3]  # then its definition
    expected = charts.top_heads(atlas, atlas.column("to_sep"))
    assert [t.split()[0] for t in texts] == [h.name for h, _ in expected]
    assert [re.search(r"\w+(?= highest on \[SEP\])", t)[0] for t in texts] == ["1st", "2nd", "3rd"]
    status = page.locator(STATUS).inner_text()
    assert status.startswith("the 3 highest on [SEP], 1 definition, 0 sentences")
    assert [t.split()[-1] for t in texts] == [f"{v:.3f}" for _, v in expected]
    page.locator(OPTIONS).nth(1).click()
    page.wait_for_url(f"**/heads/{expected[1][0].slug}.html")
    assert rep.clean, rep
    page.close()


def test_the_keyboard_and_aria_of_the_combobox(browser, default_site):
    page, rep = browser.open(default_site / "index.html")
    box = page.locator("#site-search")
    listbox = page.locator("#site-search-list")
    assert box.get_attribute("role") == "combobox"
    assert box.get_attribute("aria-controls") == "site-search-list"
    assert listbox.get_attribute("role") == "listbox"
    assert box.get_attribute("aria-expanded") == "false" and listbox.is_hidden()
    count = len(search(page, "L2-H1"))
    assert count == 4 and box.get_attribute("aria-expanded") == "true" and listbox.is_visible()
    assert box.get_attribute("aria-activedescendant") is None

    def active() -> str:
        selected = page.locator(f"{OPTIONS}[aria-selected=true]")
        assert selected.count() == 1
        assert selected.get_attribute("id") == box.get_attribute("aria-activedescendant")
        return selected.inner_text().split()[0]

    page.keyboard.press("ArrowDown")
    assert active() == "L2-H1"
    page.keyboard.press("ArrowDown")
    assert active() == "L2-H10"
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")  # wraps round to the last
    assert active() == "L2-H12"
    page.keyboard.press("Escape")
    assert box.get_attribute("aria-expanded") == "false" and listbox.is_hidden()
    assert box.input_value() == "L2-H1"
    page.keyboard.press("Escape")
    assert box.input_value() == ""
    page.keyboard.type("nothing-like-this")
    assert page.locator(OPTIONS).count() == 0
    assert "Nothing found" in page.locator(STATUS).inner_text()
    assert rep.clean, rep
    page.close()


def test_a_sentence_shows_as_text_in_the_results(browser, default_site):
    page, rep = browser.open(default_site / "index.html")
    texts = search(page, "alert")
    assert any("</script><script>alert(1)</script>" in t for t in texts)
    page.wait_for_timeout(100)
    assert rep.dialogs == [] and rep.clean, rep
    page.close()


def test_a_sentence_without_a_page_opens_at_its_row(browser, few_pages):
    atlas = load(few_pages)
    [index] = containing(atlas, "Mozilla")
    assert not atlas.sentences[index].has_view
    page, rep = browser.open(few_pages / "heads" / "L01-H01.html")
    [text] = search(page, "Mozilla")
    assert "no page" in text
    with page.expect_navigation():
        page.keyboard.press("Enter")
    row = contract.sentence_row_id(index, len(atlas.sentences))
    assert page.url.endswith(f"/sentences/index.html#{row}")
    assert page.evaluate("document.querySelector('tr:target').id") == row
    assert "Mozilla" in page.locator("tr:target").inner_text()
    assert rep.clean, rep
    page.close()


def test_render_and_compare_sites_search_too(browser, few_pages, tmp_path):
    index = (few_pages / contract.SEARCH_SCRIPT).read_bytes()
    rendered, compared = tmp_path / "rendered", tmp_path / "compared"
    assert main(["render", str(few_pages), "-o", str(rendered), "-q"]) == 0
    assert (rendered / contract.SEARCH_SCRIPT).read_bytes() == index
    json = str(few_pages / "atlas.json")
    assert main(["compare", json, json, "-o", str(compared), "-q"]) == 0
    page, rep = browser.open(compared / "compare.html")
    texts = search(page, "money")
    assert [t.split()[0] for t in texts] == ["#1"]
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/sentences/0001.html")
    assert rep.clean, rep
    page.close()


def map_points(page) -> dict[str, str]:
    """Head name -> fill colour of its point on the overview's head map."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll(
             "div[data-spec='spec-head-map'] path[role='graphics-symbol']")]
           .map((p) => [p.getAttribute('aria-label').match(/head: (L\\d+-H\\d+)/)[1],
                        p.getAttribute('fill')]))"""
    )


def legend(page) -> list[str]:
    """The texts of the head map's legends (SVG text has no inner text: its textContent)."""
    return page.locator("div[data-spec='spec-head-map'] .role-legend text").evaluate_all(
        "texts => texts.map(t => t.textContent)"
    )


VIRIDIS_ENDS = ("rgb(68, 1, 84)", "rgb(253, 231, 37)")  # viridis at 0 and at 1


def test_the_head_map_is_coloured_by_the_column_chosen(browser, default_site):
    atlas = load(default_site)
    page, rep = browser.open(default_site / "index.html")
    page.wait_for_selector("div[data-spec='spec-head-map'].drawn svg.marks")
    by_layer = map_points(page)
    assert len(by_layer) == len(atlas.heads) and "layer" in legend(page)
    options = page.locator("#map-colour option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["layer", *(c.key for c in atlas.catalogue)]
    for key in ("to_sep", "entropy"):
        column = atlas.column(key)
        page.select_option("#map-colour", key)
        page.wait_for_selector(f"div[data-spec='spec-head-map'][data-colour='{key}'] svg.marks")
        fills = map_points(page)
        low, high = charts.metric_range(atlas, column)
        lowest = min(atlas.heads, key=lambda h: h.metrics[key])
        highest = max(atlas.heads, key=lambda h: h.metrics[key])
        assert (fills[lowest.name], fills[highest.name]) == VIRIDIS_ENDS
        assert fills != by_layer
        labels = legend(page)
        assert column.title in labels and f"{low:.3f}" in labels and f"{high:.3f}" in labels
        assert "layer" not in labels
        range_text = page.locator("#map-colour-range").inner_text()
        assert range_text == f"{column.title}: {low:.3f} – {high:.3f}"
    page.select_option("#map-colour", "layer")
    page.wait_for_selector("div[data-spec='spec-head-map'][data-colour='layer'] svg.marks")
    assert map_points(page) == by_layer and "layer" in legend(page)
    assert rep.clean, rep
    page.close()
