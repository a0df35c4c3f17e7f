"""The neuron view in a real browser (headless Chromium over file://): it follows the shared
head selection, its softmax of q·k/√d is the attention the model returned, a click picks the
query token, causal models mask future keys, and a site without vectors says why."""

from __future__ import annotations

import base64
import pathlib

import handmade
import numpy as np
import pytest
from browser import require_chromium

from atlas import viewdata
from atlas.result import load

require_chromium()


# softmax of the int16 vectors against the uint8 attention: they differ by the attention's
# rounding (at most 1/510) and a little more; "equal to 2 decimals" is the bar.
# The neuron view's softmax from the stored vectors against the stored (uint8) attention:
# viewdata.VECTOR_TOLERANCE plus the attention's own rounding (1/510).
TOLERANCE = viewdata.VECTOR_TOLERANCE + 1 / 510

ROWS = "() => AtlasNeuronView.rows(document.getElementById('neuron-view'))"
DATASET = "() => ({...document.getElementById('neuron-view').dataset})"


def decode(view: viewdata.View, layers: int, heads: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The view's queries and keys as float64 [L, H, n, d], as the page decodes them."""
    return view.queries_keys(layers, heads, d)


def softmax_rows(q: np.ndarray, k: np.ndarray, causal: bool) -> np.ndarray:
    """softmax(q·k/√d) over the last axis, future keys masked when causal: [..., n, n]."""
    n, d = q.shape[-2], q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d)
    if causal:
        scores = np.where(np.tril(np.ones((n, n), bool)), scores, -np.inf)
    scores = scores - scores.max(-1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(-1, keepdims=True)


def check_rows(page, expected_softmax: np.ndarray, expected_attention: np.ndarray) -> float:
    """The drawn rows against Python's softmax and the stored attention; the largest
    |softmax − model attention| in the view."""
    rows = page.evaluate(ROWS)
    assert [r["index"] for r in rows] == list(range(len(expected_softmax)))
    softmax = np.array([r["softmax"] for r in rows])
    attention = np.array([r["attention"] for r in rows])
    np.testing.assert_allclose(softmax, expected_softmax, atol=1e-5)
    np.testing.assert_allclose(attention, expected_attention, atol=1e-5)
    assert abs(softmax.sum() - 1) < 1e-4
    diff = float(np.abs(softmax - attention).max())
    assert diff < TOLERANCE, diff
    assert abs(float(page.evaluate(DATASET)["maxDiff"]) - diff) < 1e-5
    return diff


def shown(page) -> tuple[int, int, int]:
    d = page.evaluate(DATASET)
    return int(d["layer"]), int(d["head"]), int(d["query"])


def test_softmax_matches_the_model_attention(browser, default_site):
    """For heads picked by every route (start, hash, arrow keys, the view's own menus) and
    several query tokens, softmax(q·k/√d) reproduces the model's attention."""
    atlas = load(default_site)
    assert atlas.model.neuron_view, atlas.model.neuron_note
    layers, heads = atlas.model.layers, atlas.model.heads
    index = 48  # a question/passage pair, 51 tokens
    view = atlas.view(index)
    assert view is not None and view.vectors
    q, k = decode(view, layers, heads, atlas.model.head_dim)
    expected = softmax_rows(q, k, atlas.model.causal)
    attention = view.matrix(layers, heads)
    n = len(view.tokens)
    first_word = view.special.index(0)

    page, rep = browser.open(default_site / "sentences" / f"{index + 1:04d}.html")
    page.wait_for_selector("#neuron-view tr.nv-row")
    worst = 0.0

    def check(layer: int, head: int, queries: list[int]) -> None:
        nonlocal worst
        for i in queries:
            if i != shown(page)[2]:
                page.locator(f"#neuron-view button.nv-token[data-index='{i}']").click()
            assert shown(page) == (layer, head, i)
            h = (layer - 1, head - 1, i)
            worst = max(worst, check_rows(page, expected[h], attention[h]))

    # No hash: L1-H1, query = the first non-special token.
    assert shown(page) == (1, 1, first_word)
    check(1, 1, [first_word, 0, n - 1])

    # The hash selects a head (as another view or a shared link would).
    page.evaluate("location.hash = '#L3-H7'")
    page.wait_for_function("document.getElementById('neuron-view').dataset.head === '7'")
    check(3, 7, [n - 1, 5, 20])  # the query token is kept across head changes

    # Arrow keys move the shared selection.
    page.locator("h1").click()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    check(4, 8, [20, 11])

    # The view's own menus select through the shared state, and the address follows.
    page.locator("#neuron-view select[name='nv-layer']").select_option("6")
    page.locator("#neuron-view select[name='nv-head']").select_option("12")
    assert page.evaluate("location.hash") == "#L6-H12"
    check(6, 12, [11, first_word, 30])
    print(f"max |softmax - model attention| over the checked rows: {worst:.4f}")

    page.wait_for_timeout(50)
    assert rep.clean, rep
    page.close()


def test_a_page_opened_on_a_head_shows_it(browser, default_site):
    page, rep = browser.open(default_site / "sentences" / "0007.html", fragment="L3-H7")
    page.wait_for_selector("#neuron-view tr.nv-row")
    assert shown(page)[:2] == (3, 7)
    assert page.locator("#neuron-view select[name='nv-layer']").input_value() == "3"
    assert page.locator("#neuron-view select[name='nv-head']").input_value() == "7"
    # Every dimension is a cell whose title is its value; d = 32 for the default model.
    atlas = load(default_site)
    d = atlas.model.head_dim
    n = len(atlas.view(6).tokens)
    assert page.locator("#neuron-view .nv-query-row .nv-cell").count() == d
    assert page.locator("#neuron-view tr.nv-row .nv-cell").count() == 2 * n * d
    assert (
        page.locator("#neuron-view .nv-query-row .nv-cell")
        .first.get_attribute("title")
        .startswith("q[0] = ")
    )
    # BERT's scale is 1/√d (atlas.json keeps it to 6 decimals), and the page says so plainly.
    intro = page.locator("#neuron-view .nv-intro").inner_text()
    assert "every key token j by q·k_j/√d (d = 32) and turns" in intro, intro
    assert rep.clean, rep
    page.close()


def test_clicking_a_token_changes_the_query(browser, default_site):
    page, rep = browser.open(default_site / "sentences" / "0026.html", fragment="L2-H3")
    page.wait_for_selector("#neuron-view tr.nv-row")
    tokens = page.evaluate("AtlasData.get('0026').tokens")
    before = page.evaluate(ROWS)
    assert shown(page) == (2, 3, 1)
    assert page.locator("#neuron-view .nv-qtok").inner_text() == tokens[1]
    page.locator("#neuron-view button.nv-token[data-index='4']").click()
    assert shown(page) == (2, 3, 4)
    assert page.locator("#neuron-view .nv-qtok").inner_text() == tokens[4]
    pressed = page.locator("#neuron-view button.nv-token[aria-pressed='true']")
    assert pressed.count() == 1 and pressed.get_attribute("data-index") == "4"
    assert page.locator("#neuron-view tr.nv-self").get_attribute("data-index") == "4"
    after = page.evaluate(ROWS)
    assert [r["token"] for r in after] == tokens
    assert [r["softmax"] for r in after] != [r["softmax"] for r in before]
    attention = page.evaluate("Array.from(AtlasData.get('0026').matrix(2, 3))")
    n = len(tokens)
    assert [r["attention"] for r in after] == pytest.approx(attention[4 * n : 5 * n], abs=1e-6)
    # The selection itself did not move.
    assert page.evaluate("location.hash") == "#L2-H3"
    assert rep.clean, rep
    page.close()


# A hand-made sentence for a page of its own: the real assets, no site around them.

HARNESS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>neuron view</title>
<link rel="stylesheet" href="assets/atlas.css">
<link rel="stylesheet" href="assets/neuronview.css"></head>
<body><main><div id="neuron-view"></div></main>
<script src="assets/config.js"></script>
<script src="data.js"></script>
<script src="assets/atlas-data.js"></script>
<script src="assets/views-common.js"></script>
<script src="assets/state.js"></script>
<script src="assets/neuronview.js"></script>
<script src="mount.js"></script>
</body></html>
"""

MOUNT = """document.addEventListener("DOMContentLoaded", () => {
  const sentence = AtlasData.get("0001");
  window.state = AtlasState.create(sentence.layers, sentence.heads, { layer: 1, head: 1 });
  AtlasNeuronView.mount(document.getElementById("neuron-view"), sentence, window.state);
});
"""

TOKENS = ["<s>", "the", "<img src=x onerror=alert(1)>", "cat", "sat", "."]


def harness(tmp_path: pathlib.Path, causal: bool, available: bool) -> tuple[pathlib.Path, dict]:
    """A page with one hand-made sentence (1 layer, 2 heads, d = 8); returns it and the
    float attention its vectors give."""
    layers, heads, n, d = 1, 2, len(TOKENS), 8
    rng = np.random.default_rng(7)
    q = rng.normal(0, 1.5, (layers, heads, n, d)).astype(np.float32)
    k = rng.normal(0, 1.5, (layers, heads, n, d)).astype(np.float32)
    attention = softmax_rows(q.astype(np.float64), k.astype(np.float64), causal)
    neuron: dict = {"available": available, "head_dim": d, "note": ""}
    if available:
        neuron["encoding"] = viewdata.ENCODING
        neuron["vectors"], _error = viewdata.pack_vectors(q, k, attention, causal)
    else:
        neuron["note"] = "queries and keys of T5Model cannot be captured"
        neuron["vectors"] = ""
    payload = {
        "key": "0001",
        "index": 0,
        "id": "1",
        "layers": layers,
        "heads": heads,
        "causal": causal,
        "tokens": TOKENS,
        "segments": [-1, 0, 0, 0, 0, 0],
        "special": [1, 0, 0, 0, 0, 0],
        "attention": base64.b64encode(viewdata.quantise(attention)).decode("ascii"),
        "neuron": neuron,
    }
    handmade.copy_assets(tmp_path)
    handmade.write_config(tmp_path, layers, heads)  # the scripts read names and scales from it
    handmade.write_data(tmp_path / "data.js", payload)
    (tmp_path / "mount.js").write_text(MOUNT, encoding="utf-8")
    page = tmp_path / "index.html"
    page.write_text(HARNESS, encoding="utf-8")
    return page, {"q": q, "k": k, "attention": attention}


def test_not_available_says_why(browser, tmp_path):
    path, _ = harness(tmp_path, causal=False, available=False)
    page, rep = browser.open(path, wait_for="#neuron-view .nv-unavailable")
    text = page.locator("#neuron-view").inner_text()
    assert text == "Neuron view not available: queries and keys of T5Model cannot be captured"
    assert page.locator("#neuron-view table").count() == 0
    assert page.evaluate(DATASET)["available"] == "false"
    page.evaluate("state.select(1, 2, 'test')")  # a later selection draws nothing either
    assert page.locator("#neuron-view table").count() == 0
    assert rep.clean, rep
    page.close()


def test_causal_model_masks_future_keys(browser, tmp_path):
    path, made = harness(tmp_path, causal=True, available=True)
    page, rep = browser.open(path, wait_for="#neuron-view tr.nv-row")
    n = len(TOKENS)
    assert shown(page) == (1, 1, n - 1)  # a decoder starts from its last token
    for head, i in [(1, 1), (1, 3), (2, 3), (2, 0), (2, 5)]:
        if shown(page)[1] != head:
            page.evaluate(f"state.select(1, {head}, 'test')")
        if shown(page)[2] != i:
            page.locator(f"#neuron-view button.nv-token[data-index='{i}']").click()
        assert shown(page) == (1, head, i)
        rows = page.evaluate(ROWS)
        assert [r["masked"] for r in rows] == [j > i for j in range(n)]
        assert all(r["softmax"] == 0 and r["score"] is None for r in rows if r["masked"])
        softmax = np.array([r["softmax"] for r in rows])
        exact = made["attention"][0, head - 1, i]
        assert np.abs(softmax - exact).max() < TOLERANCE
        masked_scores = page.locator("#neuron-view tr.nv-masked td.nv-score")
        assert masked_scores.count() == n - 1 - i
        if masked_scores.count():
            assert masked_scores.first.inner_text() == "masked"
    assert rep.clean, rep
    page.close()


def test_tokens_are_text(browser, tmp_path):
    path, _ = harness(tmp_path, causal=False, available=True)
    page, rep = browser.open(path, wait_for="#neuron-view tr.nv-row")
    page.locator("#neuron-view button.nv-token[data-index='2']").click()
    assert page.locator("#neuron-view .nv-qtok").inner_text() == TOKENS[2]
    assert [r["token"] for r in page.evaluate(ROWS)] == TOKENS
    assert page.locator("img").count() == 0
    rows = page.evaluate(ROWS)
    assert not any(r["masked"] for r in rows)
    page.wait_for_timeout(50)
    assert rep.dialogs == [] and rep.clean, rep
    page.close()
