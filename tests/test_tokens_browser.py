"""Issue 11 in headless Chromium (file://): tokens read as a reader expects (no ``##``, ``Ġ`` or
``▁`` markers, the raw piece on hover, words at word level); head pages' example heatmaps are
readable at 40 tokens (every label, cells of 12 px, hover "from → to: value"), and say so
when labels are thinned; the head view's bars follow the segment filter and the threshold."""

from __future__ import annotations

import re

import pytest
from browser import dataset, open_sentence_page, require_chromium
from conftest import build

from atlas import contract
from atlas.result import load

require_chromium()

HEAD_VIEW = "AtlasHeadView.of(document.getElementById('head-view'))"
KEY = "document.querySelector('.sentence-views').dataset.key"
LABELS = f"(s => s.tokens.map((_, i) => AtlasData.tokenLabel(s, i)))(AtlasData.get({KEY}))"
MARKERS = ("##", "Ġ", "▁")
LONG = (
    "As of January 10, 2005, my source of income changed from The Mozilla Foundation to Google, "
    "Inc. of Mountain View, California, and Cécile said the café's unbelievably complicated "
    "paperwork was overwhelming."
)
ACCENTS = "Cécile said the café's paperwork was complicated."  # within the tiny models' 64 tokens


@pytest.fixture(scope="module")
def tiny_site(tiny_model, tmp_path_factory):
    """A function: (family, lines, extra options) -> a site of that tiny model (built once)."""
    made = {}

    def get(family, lines=(LONG,), options=()):
        key = (family, tuple(lines), tuple(options))
        if key not in made:
            folder = tmp_path_factory.mktemp(f"tokens-{family}")
            corpus = folder / "sentences.txt"
            corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
            site = folder / "site"
            model = str(tiny_model(family))
            assert build([str(corpus), "--model", model, "-o", str(site), *options]) == 0
            made[key] = site
        return made[key]

    return get


def visible_texts(page) -> dict:
    """The texts the sentence page shows for tokens, view by view."""
    return page.evaluate(
        """() => {
          const texts = (sel) => [...document.querySelectorAll(sel)].map((e) => e.textContent);
          return {
            list: texts('p.tokens .token'),
            headView: texts('#head-view .hv-token'),
            rollout: texts('#rollout-bars .ti-token').concat(texts('#rollout-row option')),
            drift: texts('#moved-table thead th'),
            neuron: texts('#neuron-view .nv-token'),
          };
        }"""
    )


def hover_cell(page, selector, i, j):
    """Moves the pointer to cell (row i, column j) of a labelled heatmap; returns the
    tooltip's text."""
    geometry = dataset(page, selector)
    page.locator(selector).scroll_into_view_if_needed()
    box = page.locator(selector).bounding_box()
    label, cell = float(geometry["labelWidth"]), float(geometry["cell"])
    page.mouse.move(box["x"] + label + (j + 0.5) * cell, box["y"] + label + (i + 0.5) * cell)
    page.wait_for_timeout(50)
    return page.locator(".heatmap-tip").inner_text()


# ---- tokens as a reader expects


def test_wordpiece_pieces_read_without_markers_in_every_view(browser, default_site):
    atlas = load(default_site)
    sentence = next(s for s in atlas.sentences if "Koerner" in s.text and s.has_view)
    path = default_site / "sentences" / f"{sentence.index + 1:04d}.html"
    page, rep = open_sentence_page(browser, path)
    page.locator("#neuron-view .nv-token").first.wait_for()
    raw = page.evaluate(f"AtlasData.get({KEY}).tokens")
    assert "##ern" in raw  # the tokenizer's pieces: ko ##ern ##er
    k = raw.index("##ern")
    texts = visible_texts(page)
    for view, shown in texts.items():
        assert shown and not any("##" in t for t in shown), view
    joiner = contract.JOINER
    # In the line of tokens the piece is glued to the one before; in columns it follows the joiner.
    chip = page.locator("p.tokens .token").nth(k)
    assert chip.text_content() == "ern" and "cont" in chip.get_attribute("class")
    assert chip.get_attribute("title") == "##ern"
    assert texts["list"][k - 1 : k + 2] == ["ko", "ern", "er"]
    cell = page.locator(f".hv-from .hv-token[data-index='{k}']")
    assert cell.text_content() == f"{joiner}ern" and cell.get_attribute("title") == "##ern"
    assert texts["drift"][1:][k - 1 : k + 2] == ["ko", f"{joiner}ern", f"{joiner}er"]
    assert page.locator(".nv-token").nth(k).text_content() == f"{joiner}ern"
    # The selected head's heatmap: labels as they read, and hover says from → to: value.
    labels = page.evaluate(LABELS)
    assert labels[k] == f"{joiner}ern"
    value = page.evaluate(f"AtlasData.get({KEY}).value(1, 1, {k}, 0)")
    tip = hover_cell(page, "#selected-heatmap", k, 0)
    assert tip == f"{joiner}ern → [CLS]: {value:.3f}"
    assert rep.clean, rep
    page.close()


@pytest.mark.parametrize("family", ["gpt2", "roberta"])
def test_byte_level_pieces_read_as_text(browser, tiny_site, family):
    """GPT-2 and RoBERTa tokens: no Ġ, no bytes spelt as other characters (Ã©), the raw
    piece on hover; the line of tokens reads as the sentence."""
    site = tiny_site(family, (ACCENTS,))
    page, rep = open_sentence_page(browser, site / "sentences" / "0001.html")
    page.locator("#neuron-view .nv-token").first.wait_for()
    for view, shown in visible_texts(page).items():
        assert shown, view
        assert not any(m in t or "Ã" in t for t in shown for m in MARKERS), (view, shown)
    assert page.locator("p.tokens .token[title^='Ġ']").count() >= 5
    # Words start at a marker; the pieces after it are glued to it: the line reads as the text.
    words = page.evaluate(
        """() => {
          let text = "";
          for (const t of document.querySelectorAll('p.tokens .token:not(.special)')) {
            text += (t.classList.contains('cont') ? "" : " ") + t.textContent;
          }
          return text.replaceAll("␣", " ").replaceAll("◌", "").split(/\\s+/).filter(Boolean);
        }"""
    )
    assert words == ACCENTS.split()
    assert rep.clean, rep
    page.close()


def test_word_level_shows_whole_words_with_their_pieces_on_hover(browser, tiny_site):
    words = ["Koerner", "called", "the", "unbelievably", "complicated", "paperwork", "."]
    site = tiny_site("bert", (" ".join(words),), ("--words",))
    page, rep = open_sentence_page(browser, site / "sentences" / "0001.html")
    assert dataset(page, "#head-view")["level"] == "words"
    cells = page.locator(".hv-from .hv-token")
    assert cells.all_text_contents() == ["[CLS]", *words, "[SEP]"]
    raw = page.evaluate(f"AtlasData.get({KEY}).tokens")
    split = cells.nth(4).get_attribute("title")  # "unbelievably": the tokenizer's pieces
    assert " ##" in split and split.replace(" ##", "") == "unbelievably"
    # At token level the same word reads as glued pieces, without markers.
    page.locator("#level-switch button[data-level='tokens']").click()
    tokens = page.locator(".hv-from .hv-token").all_text_contents()
    assert len(tokens) == len(raw) > len(words) + 2
    assert not any("##" in t for t in tokens)
    assert "".join(t.removeprefix(contract.JOINER) for t in tokens[1:-1]) == "".join(words).lower()
    assert rep.clean, rep
    page.close()


# ---- readable example heatmaps


def test_example_heatmaps_are_readable_at_40_tokens(browser, default_site):
    atlas = load(default_site)
    head, index = next(
        (h, i)
        for h in atlas.heads
        for i in h.parts.get("examples", [])
        if atlas.sentences[i].tokens >= 40
    )
    path = default_site / contract.head_page(head.layer, head.head)
    page, rep = browser.open(path, wait_for="canvas.heatmap[data-cell]")
    key = atlas.sentence_key(index)
    sentence = f"AtlasData.get('{key}')"
    selector = f"canvas.heatmap[data-key='{key}']"
    data = dataset(page, selector)
    n = page.evaluate(f"AtlasData.get('{key}').n")
    assert n >= 40
    assert int(data["cell"]) >= 12 and data["labelEvery"] == "1"  # every label, 12 px cells
    assert page.locator(f"{selector} + .heatmap-note").count() == 0
    # Wider than its column: it scrolls sideways inside its figure rather than shrink.
    scroll = page.evaluate(
        f"(p => [p.scrollWidth, p.clientWidth, getComputedStyle(p).overflowX])"
        f'(document.querySelector("{selector}").parentElement)'
    )
    assert scroll[0] >= float(data["labelWidth"]) + n * 12 and scroll[2] == "auto"
    if scroll[0] > scroll[1]:
        page.locator(selector).scroll_into_view_if_needed()
    tip = hover_cell(page, selector, 5, 3)
    labels = page.evaluate(f"(s => s.tokens.map((_, i) => AtlasData.tokenLabel(s, i)))({sentence})")
    value = page.evaluate(f"{sentence}.value({head.layer}, {head.head}, 5, 3)")
    assert tip == f"{labels[5]} → {labels[3]}: {value:.3f}"
    assert re.fullmatch(r".+ → .+: \d\.\d{3}", tip)
    page.mouse.move(1, 1)
    assert page.locator(".heatmap-tip").is_hidden()
    assert rep.clean, rep
    page.close()


def test_thinned_labels_say_which_are_shown(browser, tiny_site):
    """A sentence too long for a label per row of the sentence page's heatmap in a narrow
    window (cells under 8 px): a note under it says which labels are shown."""
    site = tiny_site("bert")
    page, rep = open_sentence_page(browser, site / "sentences" / "0001.html")
    assert dataset(page, "#selected-heatmap")["labelEvery"] == "1"
    assert page.locator("#selected-heatmap + .heatmap-note").count() == 0
    page.set_viewport_size({"width": 560, "height": 900})
    page.evaluate("location.hash = '#L2-H1'")  # drawn again, for the narrower panel
    page.wait_for_selector("#selected-heatmap[data-head='1'][data-layer='2']")
    data = dataset(page, "#selected-heatmap")
    every = int(data["labelEvery"])
    assert int(data["cell"]) < 8 and every > 1
    suffix = {2: "nd", 3: "rd"}.get(every, "th")
    note = page.locator("#selected-heatmap + .heatmap-note")
    assert note.is_visible()
    assert note.inner_text().startswith(f"every {every}{suffix} label shown")
    assert rep.clean, rep
    page.close()


# ---- the segment filter's bars


def test_segment_filter_bars_follow_the_lines_drawn(browser, default_site):
    atlas = load(default_site)
    pair = next(s for s in atlas.sentences if s.text_b is not None and s.has_view)
    path = default_site / "sentences" / f"{pair.index + 1:04d}.html"
    page, rep = open_sentence_page(browser, path, "L2-H1")
    special = page.evaluate(f"AtlasData.get({KEY}).special")

    def check(name):
        got = page.evaluate(
            f"""() => {{
              const h = {HEAD_VIEW};
              const bars = [...document.querySelectorAll('#head-view .hv-bar')];
              const caption = document.querySelector('#head-view .hv-bars .hv-caption');
              return {{lines: h.lines(), scale: h.importance().scale,
                       values: bars.map((b) => Number(b.dataset.value)),
                       hidden: bars.map((b) => b.hidden),
                       widths: bars.map((b) => b.getBoundingClientRect().width),
                       caption: caption.textContent}};
            }}"""
        )
        drawn = [0.0] * len(special)
        for _, _, j, w in got["lines"]:
            if not special[j]:
                drawn[j] += w
        for j, total in enumerate(drawn):
            assert got["values"][j] == pytest.approx(total, abs=2e-6), (name, j)
            assert got["hidden"][j] == (total == 0), (name, j)
            if total:
                width = 84 * total / got["scale"]  # the head view's longest bar: 84 px
                assert got["widths"][j] == pytest.approx(width, abs=0.6), (name, j)
        return got

    everything = check("all")
    assert everything["caption"] == "received"
    for key, text, caption in [("AB", "A→B", "received from A"), ("BA", "B→A", "received from B")]:
        page.locator(".hv-filter button", has_text=text).click()
        for threshold in ("0.02", "0.1"):
            page.locator(".hv-threshold select").select_option(threshold)
            got = check(f"{key} {threshold}")
            assert got["caption"] == caption
            assert got["scale"] == everything["scale"]  # one scale for every filter
        page.locator(".hv-threshold select").select_option("0.02")
    # A head with no A→B line above 0.1 shows no bar either.
    page.locator(".hv-filter button", has_text="A→B").click()
    page.locator(".hv-threshold select").select_option("0.1")
    for head in range(1, 13):
        page.locator(f".hv-swatch[data-head='{head}']").dblclick()
        if dataset(page, "#head-view")["lines"] == "0":
            break
    else:
        pytest.fail("every head of layer 2 has an A→B line above 0.1")
    assert page.locator("#head-view .hv-bar:not([hidden])").count() == 0
    assert "A→B only · 0 lines" in page.locator(".hv-status").inner_text()
    assert rep.clean, rep
    page.close()
