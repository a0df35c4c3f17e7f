"""Word-level views in headless Chromium (file://), on a hand-made sentence with a split word
(Clark et al. 2019 §4.1): units and word-level attention (TO a word: the sum over its pieces,
FROM it: the mean of their rows), the level switch of the head view, the model view and the
labelled heatmaps (words by default, tokens a click away, no switch without words), and the
dependency arcs view with the arcs a head gets right in both directions."""

from __future__ import annotations

import base64
import pathlib

import handmade
import numpy as np
import pytest
from browser import dataset, open_sentence_page, require_chromium

from atlas import viewdata

require_chromium()

TOKENS = ["[CLS]", "ko", "##ern", "##er", "said", "the", "dog", "bark", "##ed", ".", "[SEP]"]
WORDS = ["Koerner", "said", "the", "dog", "barked", "."]
WORD_OF = [-1, 0, 0, 0, 1, 2, 3, 4, 4, 5, -1]
UNITS = ["[CLS]", "Koerner", "said", "the", "dog", "barked", ".", "[SEP]"]
UNIT_TOKENS = [[0], [1, 2, 3], [4], [5], [6], [7, 8], [9], [10]]
# Koerner -nsubj-> said (root) <-ccomp- barked; the -det-> dog -nsubj-> barked; . -punct-> said
ARCS = [
    [0, 1, "nsubj"], [1, -1, "root"], [2, 3, "det"],
    [3, 4, "nsubj"], [4, 1, "ccomp"], [5, 1, "punct"],
]  # fmt: skip
HEAD_OF = {d: h for d, h, _ in ARCS}
FIRST_TOKEN = {w: WORD_OF.index(w) for w in range(len(WORDS))}
SEP = len(TOKENS) - 1

SENTENCE_PAGE = """
<p id="level-switch" hidden></p>
<section class="sentence-views" data-key="0001">
  <div class="view-panel arcs-panel" id="arcs-panel" hidden><div id="arcs-view"></div></div>
  <div id="head-view"></div>
  <div id="model-view"></div>
  <div class="view-panel selected">
    <h2 id="selected-title"></h2><span id="selected-label" class="label" hidden></span>
    <canvas id="selected-heatmap" data-key="0001" data-layer="1" data-head="1"
      data-labels="1"></canvas>
    <a id="selected-link" href="#">head</a>
  </div>
</section>
"""
SENTENCE_SCRIPTS = [
    "data/0001.js",
    *(
        f"assets/{name}.js"
        for name in (
            *("atlas-data", "state", "heatmap", "views-common"),
            *("headview", "arcsview", "modelview", "sentence"),
        )
    ),
]
HEAD_VIEW = "AtlasHeadView.of(document.getElementById('head-view'))"
HEAD_PAGE = """<div data-level-switch hidden></div>
<canvas class="heatmap" data-key="0001" data-layer="2" data-head="1" data-labels="1"
  data-size="300"></canvas>"""
HEAD_SCRIPTS = [
    "data/0001.js",
    *(f"assets/{n}.js" for n in ("atlas-data", "views-common", "heatmap")),
]


def row_to(n: int, targets: dict[int, float]) -> np.ndarray:
    row = np.zeros(n)
    for t, w in targets.items():
        row[t] = w
    return row


def pointing_head(target_word) -> np.ndarray:
    """Every token of word w attends to the first token of word target_word(w) (to [SEP] for
    None); special tokens attend to themselves."""
    n = len(TOKENS)
    rows = []
    for t, w in enumerate(WORD_OF):
        target = None if w == -1 else target_word(w)
        to = t if w == -1 else SEP if target is None else FIRST_TOKEN[target]
        rows.append(row_to(n, {to: 1.0}))
    return np.array(rows)


def spread_head() -> np.ndarray:
    """Every row different, in multiples of 1/255 summing to 1 (stored exactly)."""
    n = len(TOKENS)
    rng = np.random.default_rng(3)
    rows = rng.integers(1, 40, (n, n)).astype(float)
    counts = np.floor(rows / rows.sum(1, keepdims=True) * 255)
    counts[:, 0] += 255 - counts.sum(1)  # rows sum to exactly 255/255
    return counts / 255


def attention() -> np.ndarray:
    """[2 layers, 3 heads, n, n]: L1-H1 attends to the gold head (the root to [SEP]), L1-H2 to
    the next word, L1-H3 to the previous word (the first word to the last: a row with no word
    in it would tie, and ties go to the first word); L2-H1 spread."""
    n = len(TOKENS)
    last = len(WORDS) - 1
    a = np.zeros((2, 3, n, n))
    a[0, 0] = pointing_head(lambda w: None if HEAD_OF[w] < 0 else HEAD_OF[w])
    a[0, 1] = pointing_head(lambda w: None if w == last else w + 1)
    a[0, 2] = pointing_head(lambda w: w - 1 if w > 0 else last)
    a[1, 0] = spread_head()
    a[1, 1] = a[1, 2] = np.eye(n)
    return a


def payload(words: bool) -> dict:
    made = {
        "key": "0001",
        "index": 0,
        "id": "1",
        "layers": 2,
        "heads": 3,
        "causal": False,
        "tokens": TOKENS,
        "segments": [-1, *[0] * (len(TOKENS) - 2), -1],
        "special": [1, *[0] * (len(TOKENS) - 2), 1],
        "attention": base64.b64encode(viewdata.quantise(attention())).decode("ascii"),
        "neuron": {"available": False, "note": "hand-made"},
    }
    if words:
        made.update(words=WORDS, wordOf=WORD_OF, arcs=ARCS)
    return made


def make_site(folder: pathlib.Path, words: bool) -> pathlib.Path:
    handmade.copy_assets(folder)
    handmade.write_config(folder, 2, 3)
    handmade.write_data(folder / "data" / "0001.js", payload(words))
    (folder / "sentences").mkdir()
    (folder / "heads").mkdir()
    (folder / "heads" / "L02-H01.html").write_text(handmade.page(HEAD_PAGE, HEAD_SCRIPTS, depth=1))
    path = folder / "sentences" / "0001.html"
    path.write_text(handmade.page(SENTENCE_PAGE, SENTENCE_SCRIPTS, depth=1), encoding="utf-8")
    return path


@pytest.fixture
def with_words(tmp_path) -> pathlib.Path:
    return make_site(tmp_path, words=True)


@pytest.fixture
def without_words(tmp_path) -> pathlib.Path:
    return make_site(tmp_path, words=False)


def test_units_and_word_level_attention(browser, with_words):
    page, rep = open_sentence_page(browser, with_words)
    units = page.evaluate("AtlasData.get('0001').units")
    assert [u["label"] for u in units] == UNITS
    assert [u["tokens"] for u in units] == UNIT_TOKENS
    assert [u["word"] for u in units] == [-1, 0, 1, 2, 3, 4, 5, -1]
    a = np.array(page.evaluate("Array.from(AtlasData.get('0001').matrix(2, 1))")).reshape(11, 11)
    w = np.array(page.evaluate("Array.from(AtlasData.get('0001').unitMatrix(2, 1))")).reshape(8, 8)
    # By hand: Koerner (unit 1) is tokens 1-3, barked (unit 5) tokens 7-8.
    # said -> Koerner: the sum over its pieces; Koerner -> said: the mean of their rows.
    assert w[2, 1] == pytest.approx(a[4, 1] + a[4, 2] + a[4, 3], abs=1e-6)
    assert w[1, 2] == pytest.approx((a[1, 4] + a[2, 4] + a[3, 4]) / 3, abs=1e-6)
    assert w[1, 5] == pytest.approx(sum(a[t, s] for t in (1, 2, 3) for s in (7, 8)) / 3, abs=1e-6)
    assert w[5, 1] == pytest.approx(sum(a[t, s] for t in (7, 8) for s in (1, 2, 3)) / 2, abs=1e-6)
    assert w[0, 7] == pytest.approx(a[0, 10], abs=1e-6)  # [CLS] -> [SEP]: one token each
    assert w[3, 3] == pytest.approx(a[5, 5], abs=1e-6)
    expected = np.array(
        [[np.mean([a[t, v].sum() for t in u]) for v in UNIT_TOKENS] for u in UNIT_TOKENS]
    )
    np.testing.assert_allclose(w, expected, atol=1e-6)
    np.testing.assert_allclose(w.sum(1), 1, atol=1e-5)
    # The word level as the views see it; the token level is the sentence itself.
    words = "AtlasData.get('0001').at('words')"
    level = page.evaluate(
        f"(s => ({{n: s.n, tokens: s.tokens, special: s.special, level: s.level}}))({words})"
    )
    assert level == {"n": 8, "tokens": UNITS, "special": [1, 0, 0, 0, 0, 0, 0, 1], "level": "words"}
    assert page.evaluate("AtlasData.get('0001').at('tokens') === AtlasData.get('0001')")
    assert rep.clean, rep
    page.close()


def test_views_show_words_and_switch_to_tokens(browser, with_words):
    page, rep = open_sentence_page(browser, with_words, fragment="L2-H1")
    labels = f"{HEAD_VIEW}.labels()"
    assert page.evaluate(labels) == UNITS
    assert page.locator("#head-view .hv-from .hv-token").all_inner_texts() == UNITS
    assert dataset(page, "#head-view")["level"] == "words"
    assert dataset(page, "#model-view")["level"] == "words"
    assert page.evaluate("document.querySelector('#model-view canvas.thumb').width") == 8
    assert dataset(page, "#selected-heatmap")["level"] == "words"
    # Specials keep their style; received bars are over units.
    specials = page.locator("#head-view .hv-from .hv-token.special").all_inner_texts()
    assert specials == ["[CLS]", "[SEP]"]
    received = page.evaluate(f"{HEAD_VIEW}.importance().received")
    assert len(received) == 8 and received[0] == received[7] == 0
    pressed = "#level-switch button[aria-pressed='true']"
    assert page.locator(pressed).inner_text() == "words"

    page.locator("#level-switch button[data-level='tokens']").click()
    assert page.locator(pressed).inner_text() == "tokens"
    assert page.evaluate(labels) == TOKENS
    assert page.locator("#head-view .hv-from .hv-token").all_inner_texts() == TOKENS
    assert dataset(page, "#model-view")["level"] == "tokens"
    assert page.evaluate("document.querySelector('#model-view canvas.thumb').width") == 11
    assert dataset(page, "#selected-heatmap")["level"] == "tokens"
    # The head view keeps its layer and head across the switch, and hovering still works.
    data = dataset(page, "#head-view")
    assert (data["layer"], data["focus"]) == ("2", "1")
    page.locator("#head-view .hv-from .hv-token[data-index='2']").hover()
    assert dataset(page, "#head-view")["token"] == "from:2"

    page.locator("#level-switch button[data-level='words']").click()
    assert page.evaluate(labels) == UNITS
    page.locator("#head-view .hv-from .hv-token[data-index='1']").hover()
    assert "Koerner" in page.locator("#head-view .hv-status").inner_text()
    page.locator("#model-view canvas.thumb[data-layer='2'][data-head='1']").hover()
    page.wait_for_selector(".mv-preview:not([hidden])")
    assert "→" in page.locator(".mv-readout").inner_text()
    page.wait_for_timeout(50)
    assert rep.clean, rep
    page.close()


def test_no_words_no_switch(browser, without_words):
    page, rep = open_sentence_page(browser, without_words)
    assert page.locator("#level-switch").is_hidden()
    assert page.locator(".level-switch").count() == 0
    assert page.evaluate("AtlasData.get('0001').hasWords") is False
    assert page.evaluate("AtlasData.get('0001').arcs") == []
    assert page.evaluate(f"{HEAD_VIEW}.labels()") == TOKENS
    assert dataset(page, "#model-view")["level"] == "tokens"
    assert dataset(page, "#selected-heatmap")["level"] == "tokens"
    assert page.locator("#arcs-panel").is_hidden()
    assert page.locator("#arcs-view svg").count() == 0
    head_page, head_rep = browser.open(without_words.parent.parent / "heads" / "L02-H01.html")
    assert head_page.locator(".level-switch").count() == 0
    assert dataset(head_page, "canvas.heatmap")["level"] == "tokens"
    assert rep.clean and head_rep.clean, (rep, head_rep)
    page.close()
    head_page.close()


def test_head_page_heatmaps_switch(browser, with_words):
    page, rep = browser.open(with_words.parent.parent / "heads" / "L02-H01.html")
    assert dataset(page, "canvas.heatmap")["level"] == "words"
    page.locator("[data-level-switch] button[data-level='tokens']").click()
    assert dataset(page, "canvas.heatmap")["level"] == "tokens"
    assert page.locator("[data-level-switch] button[aria-pressed='true']").inner_text() == "tokens"
    assert rep.clean, rep
    page.close()


def arcs(page) -> dict:
    data = dataset(page, "#arcs-view")
    marked = page.locator("#arcs-view g.arc.right").all()
    right = sorted(int(g.get_attribute("data-index")) for g in marked)
    count = (int(data["right"]), int(data["total"]))
    return {"right": right, "count": count, "direction": data["direction"]}


def test_arcs_view_marks_the_arcs_a_head_gets_right(browser, with_words):
    page, rep = open_sentence_page(browser, with_words, fragment="L1-H1")
    assert page.locator("#arcs-panel").is_visible()
    assert page.locator("#arcs-view g.arc").count() == len(ARCS)
    assert page.locator("#arcs-view text.arc-word").all_text_contents() == WORDS
    # L1-H1 attends to the gold head: every arc but the root's is right.
    scored = [i for i, (_, h, _) in enumerate(ARCS) if h >= 0]
    assert arcs(page) == {"right": scored, "count": (5, 5), "direction": "dep-head"}
    count = page.locator(".arcs-count").inner_text()
    assert count == "L1-H1 gets 5 of 5 arcs right (dependent → head)"
    assert page.locator("#arcs-view g.arc.root").count() == 1
    # L1-H2 attends to the next word: right where the head is the next word.
    page.evaluate("location.hash = '#L1-H2'")
    page.wait_for_function("document.getElementById('arcs-view').dataset.head === '2'")
    next_word = [i for i, (d, h, _) in enumerate(ARCS) if h == d + 1]
    assert next_word == [0, 2, 3]
    assert arcs(page)["right"] == next_word and arcs(page)["count"] == (3, 5)
    # L1-H3 attends to the previous word: wrong from dependent to head, but the word attending
    # most to a dependent is the next word, which is right exactly where that is its head.
    page.evaluate("location.hash = '#L1-H3'")
    page.wait_for_function("document.getElementById('arcs-view').dataset.head === '3'")
    assert arcs(page)["count"] == (0, 5)
    page.locator("#arcs-view button[data-direction='head-dep']").click()
    assert arcs(page) == {"right": next_word, "count": (3, 5), "direction": "head-dep"}
    count = page.locator(".arcs-count").inner_text()
    assert count == "L1-H3 gets 3 of 5 arcs right (head → dependent)"
    title = page.locator("#arcs-view g.arc[data-index='0'] title").text_content()
    assert title == "Koerner ← nsubj ← said"
    page.wait_for_timeout(50)
    assert rep.clean, rep
    page.close()


def test_arcs_view_agrees_with_the_syntax_analysis(browser, tiny_model, tmp_path):
    """On a real treebank site, the page marks exactly the arcs that the syntax analysis's own
    functions (atlas/analyses/syntax.py) get right from the same stored attention: every head,
    both directions, every sentence with a page."""
    from conftest import ROOT, build

    from atlas.analyses.measures import attended_units as predictions
    from atlas.analyses.words import units, word_level
    from atlas.result import load

    out = tmp_path / "site"
    sample = ROOT / "examples" / "ud-ewt-sample.conllu"
    args = [str(sample), "-o", str(out), "--model", str(tiny_model("bert")), "--limit", "4"]
    assert build([*args, "--views", "4"]) == 0
    atlas = load(out)
    for view in atlas.views:
        attention = view.matrix(atlas.model.layers, atlas.model.heads)
        unit_of, unit_word = units(np.array(view.word_of))
        unit_for = {int(w): u for u, w in enumerate(unit_word) if w >= 0}
        page, rep = open_sentence_page(browser, out / "sentences" / f"{view.index + 1:04d}.html")
        for layer in range(atlas.model.layers):
            for head in range(atlas.model.heads):
                w = word_level(attention[layer, head], unit_of)
                for direction, matrix in (("dep-head", w), ("head-dep", w.T)):
                    guess = predictions(matrix, unit_word >= 0)
                    want = [
                        None
                        if h < 0 or d not in unit_for or h not in unit_for
                        else bool(unit_word[guess[unit_for[d]]] == h)
                        for d, h, _ in view.arcs
                    ]
                    got = page.evaluate(
                        "([l, h, d]) => AtlasArcsView.score(AtlasData.get("
                        f"'{view.index + 1:04d}'), l, h, d)",
                        [layer + 1, head + 1, direction],
                    )
                    assert got == want, (view.index, layer, head, direction)
        assert rep.clean, rep
        page.close()
