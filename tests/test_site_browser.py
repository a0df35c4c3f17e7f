"""The built site in a real browser (headless Chromium over file://): charts draw, heatmaps
draw, links in charts work, the hash selects a head, and nothing errs or leaves the site."""

from __future__ import annotations

import pytest
from browser import require_chromium

from atlas.result import load

require_chromium()


def test_overview_draws_every_chart(browser, default_site):
    page, rep = browser.open(default_site / "index.html")
    page.wait_for_function(
        "document.querySelectorAll('div.vega.drawn svg.marks').length === "
        "document.querySelectorAll('div.vega').length",
        timeout=20000,
    )
    charts = page.locator("div.vega")
    # 12 metric heatmaps (9 + an encoder's 2 head types, duplicate and induction: its first
    # position is [CLS], so no first-token column + importance), the layer curves, the head
    # map, and importance against attention to [SEP] and to [CLS]
    assert charts.count() == 16
    # The head map has one mark per head.
    marks = page.locator("div[data-spec='spec-head-map'] path[role='graphics-symbol']")
    assert marks.count() >= 72
    assert rep.clean, rep
    page.close()


def test_clicking_a_heatmap_cell_opens_that_head(browser, default_site):
    page, rep = browser.open(default_site / "index.html")
    page.wait_for_selector("div[data-spec='spec-heatmap-to_cls'].drawn svg.marks")
    cell = page.locator("div[data-spec='spec-heatmap-to_cls'] path[role='graphics-symbol']").first
    label = cell.get_attribute("aria-label") or ""
    url = label.split("url: ")[1].split(";")[0]
    assert url == "heads/L01-H01.html"
    with page.expect_navigation():
        cell.click()
    assert page.url.endswith("/heads/L01-H01.html")
    assert page.locator("h1").inner_text().startswith("L1-H1")
    assert rep.clean, rep
    page.close()


def test_head_page_shows_charts_and_example_heatmaps(browser, default_site):
    atlas = load(default_site)
    head = max(atlas.heads, key=lambda h: h.metrics["prev"])
    page, rep = browser.open(default_site / "heads" / f"{head.slug}.html")
    page.wait_for_function("document.querySelectorAll('div.vega.drawn svg.marks').length === 2")
    canvases = page.locator("canvas.heatmap")
    assert canvases.count() == len(head.parts["examples"]) == 3
    for i in range(canvases.count()):
        box = canvases.nth(i).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100
    # The drawn heatmap really is this head's pattern: dark cells just left of the diagonal.
    dark_below_diagonal = page.evaluate(
        """() => {
          const c = document.querySelector('canvas.heatmap');
          const s = AtlasData.get(c.dataset.key);
          const m = s.matrix(Number(c.dataset.layer), Number(c.dataset.head));
          let prev = 0;
          for (let i = 1; i < s.n; i++) prev += m[i * s.n + i - 1];
          return prev / s.n;
        }"""
    )
    assert dark_below_diagonal > 0.8
    assert rep.clean, rep
    page.close()


def test_sentence_page_hash_selects_a_head(browser, default_site):
    page, rep = browser.open(default_site / "sentences" / "0005.html", fragment="L3-H4")
    page.wait_for_selector("#head-grid canvas.active")
    assert page.locator("#selected-title").inner_text() == "L3-H4"
    active = page.locator("#head-grid canvas.active")
    assert active.get_attribute("data-layer") == "3" and active.get_attribute("data-head") == "4"
    assert page.locator("#head-grid canvas").count() == 72
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert page.locator("#selected-title").inner_text() == "L4-H5"
    assert page.evaluate("location.hash") == "#L4-H5"
    page.locator("#head-grid canvas[data-layer='6'][data-head='12']").click()
    assert page.locator("#selected-title").inner_text() == "L6-H12"
    assert page.locator("#selected-link").get_attribute("href") == "../heads/L06-H12.html"
    assert rep.clean, rep
    page.close()


def test_hostile_sentence_shows_as_text(browser, default_site):
    atlas = load(default_site)
    evil = next(s for s in atlas.sentences if "</script>" in s.text)
    page, rep = browser.open(default_site / "sentences" / f"{evil.index + 1:04d}.html")
    page.wait_for_timeout(300)
    assert "</script><script>alert(1)</script>" in page.locator("p.sentence").inner_text()
    assert page.locator("img").count() == 0
    assert rep.dialogs == [] and rep.clean, rep
    page.close()
    page, rep = browser.open(default_site / "sentences" / "index.html")
    page.wait_for_timeout(300)
    assert rep.dialogs == [] and rep.clean, rep
    page.close()


def test_heads_table_sorts(browser, default_site):
    page, rep = browser.open(default_site / "heads" / "index.html")
    header = page.locator("#heads-table thead th", has_text="previous")
    header.click()  # a number column: largest first
    first = page.locator("#heads-table tbody tr").first.locator("td").first.inner_text()
    atlas = load(default_site)
    assert first == max(atlas.heads, key=lambda h: h.metrics["prev"]).name
    assert rep.clean, rep
    page.close()


def _column(page, table: str, index: int) -> list[str]:
    return page.evaluate(
        f"[...document.querySelectorAll('{table} tbody tr')]"
        f".map(r => r.cells[{index}].dataset.value ?? r.cells[{index}].textContent.trim())"
    )


def test_tables_sort_numbers_largest_first_and_text_a_to_z(browser, default_site):
    page, rep = browser.open(default_site / "heads" / "index.html")
    table = "#heads-table"
    headers = page.locator(f"{table} thead th")
    titles = [t.strip() for t in headers.all_inner_texts()]
    sep = titles.index("[SEP]")
    headers.nth(sep).click()
    values = [float(v) for v in _column(page, table, sep)]
    assert values == sorted(values, reverse=True)  # first click: the most [SEP] on top
    assert headers.nth(sep).get_attribute("aria-sort") == "descending"
    headers.nth(sep).click()
    assert [float(v) for v in _column(page, table, sep)] == sorted(values)
    pattern = titles.index("pattern")
    headers.nth(pattern).click()
    labels = _column(page, table, pattern)
    assert labels == sorted(labels, key=str.lower)  # text: A to Z first
    assert headers.nth(pattern).get_attribute("aria-sort") == "ascending"
    headers.nth(0).click()  # head names, in model order (numbers inside compared as numbers)
    names = page.locator(f"{table} tbody tr td:first-child").all_inner_texts()
    assert names[:2] == ["L1-H1", "L1-H2"] and names[11] == "L1-H12"
    headers.nth(0).click()
    assert page.locator(f"{table} tbody tr td:first-child").first.inner_text() == "L6-H12"
    assert rep.clean, rep
    page.close()


def test_overview_heatmaps_span_their_own_range_and_name_the_top_heads(browser, default_site):
    atlas = load(default_site)
    page, rep = browser.open(default_site / "index.html")
    page.wait_for_selector("div[data-spec='spec-heatmap-to_sep'].drawn svg.marks")
    for key in ("to_sep", "self", "entropy"):
        values = sorted((h.metrics[key], -i, h) for i, h in enumerate(atlas.heads))
        low, high = values[0][0], values[-1][0]
        spec = page.evaluate(f"JSON.parse(document.getElementById('spec-heatmap-{key}').text)")
        assert spec["encoding"]["color"]["scale"]["domain"] == pytest.approx([low, high])
        side = page.locator(f"p.metric-range[data-column='{key}']")
        assert side.is_visible()
        assert side.inner_text().split() == ["range", f"{low:.3f}", "–", f"{high:.3f}"]
        links = page.locator(f"ol.top-heads[data-column='{key}'] a")
        assert links.all_inner_texts() == [h.name for _, _, h in values[::-1][:3]]
    # The heads that attend to [SEP] most are one click away.
    top = max(atlas.heads, key=lambda h: h.metrics["to_sep"])
    assert top.metrics["to_sep"] < 0.5  # on the kind's fixed 0–1 scale it would look faint
    with page.expect_navigation():
        page.locator("ol.top-heads[data-column='to_sep'] a").first.click()
    assert page.url.endswith(f"/heads/{top.slug}.html")
    assert rep.clean, rep
    page.close()


def test_head_patterns_card_has_a_row_for_every_target_even_with_no_head(browser, default_site):
    """No head of the example model reaches 0.5 on [SEP]: its row says so and names the heads
    that come closest, so "which heads attend to [SEP]?" has an answer on the overview."""
    atlas = load(default_site)
    assert not any(h.label == "[SEP]" for h in atlas.heads)
    page, rep = browser.open(default_site / "index.html")
    card = page.locator(".card", has=page.locator("h2", has_text="Head patterns"))
    for label in ("previous-token", "next-token", "self", "[CLS]", "[SEP]", "punctuation"):
        assert card.locator(f"tr[data-label='{label}']").is_visible(), label
    row = card.locator("tr[data-label='[SEP]']")
    assert row.locator("td").first.inner_text() == "0"
    assert "none reach 0.5" in row.inner_text()
    ranked = sorted(atlas.heads, key=lambda h: -h.metrics["to_sep"])
    assert row.locator("a.head-name").all_inner_texts() == [h.name for h in ranked[:3]]
    assert rep.clean, rep
    page.close()


def test_heads_that_are_not_one_pattern_are_named_by_their_two_largest_shares(
    browser, default_site
):
    atlas = load(default_site)
    compound = [h for h in atlas.heads if " + " in h.label]
    assert len(compound) >= 10  # the example model: 20 of its 35 formerly "mixed" heads
    page, rep = browser.open(default_site / "index.html")
    card = page.locator(".card", has=page.locator("h2", has_text="Head patterns"))
    for label in {h.label for h in compound}:
        row = card.locator(f"tr[data-label='{label}']")
        names = [h.name for h in compound if h.label == label]
        assert row.locator("td").first.inner_text() == str(len(names))
        assert row.locator("a.head-name").all_inner_texts() == names[:14]
        assert row.locator("span.label").get_attribute("class") == "label label-mixed"
    page.close()
    head = compound[0]
    page, rep2 = browser.open(default_site / "heads" / f"{head.slug}.html")
    assert head.label in page.locator("main").inner_text()
    assert "the two shares together" in page.locator("main").inner_text()
    assert rep.clean and rep2.clean, (rep, rep2)
    page.close()


def test_cosmetics_head_names_arrows_ids_pairs_and_cards(browser, default_site):
    """Head names and sort arrows stay on one line, the sentences table has no id column that
    repeats the number, a pair's second sentence is not coloured like a visited link, and no
    gap opens under the model card."""
    page, rep = browser.open(default_site / "heads" / "index.html")
    wrapped = page.evaluate(
        "[...document.querySelectorAll('a.head-name')].filter(a => a.getClientRects().length > 1)"
        ".map(a => a.textContent)"
    )
    assert wrapped == []
    arrows = page.evaluate(
        "[...document.querySelectorAll('th.sort')]"
        ".map(th => getComputedStyle(th, '::after').content)"
    )
    assert arrows and all(a.startswith('"\u00a0') for a in arrows), arrows  # a no-break space
    page.close()
    page, rep2 = browser.open(default_site / "sentences" / "index.html")
    titles = [t.strip() for t in page.locator("table.sentences thead th").all_inner_texts()]
    assert titles[:3] == ["#", "text", "tokens"]  # the ids of a .txt are the numbers
    second = page.locator("table.sentences .text-b").first
    colour = second.evaluate("e => getComputedStyle(e).color")
    body = page.evaluate("getComputedStyle(document.body).color")
    assert colour == body and colour != "rgb(107, 63, 160)"
    page.close()
    page, rep3 = browser.open(default_site / "index.html")
    model = page.locator(".card", has=page.locator("h2", has_text="Model")).first.bounding_box()
    corpus = page.locator(".card", has=page.locator("h2", has_text="Corpus")).bounding_box()
    assert model and corpus
    assert 0 <= corpus["y"] - (model["y"] + model["height"]) <= 24  # stacked, no gap between
    assert rep.clean and rep2.clean and rep3.clean
    page.close()
