"""The neuron view of a decoder that scores unlike softmax(q·k/√d), in real Chromium: the tiny
Gemma 2 (grouped-query attention, rotary, scale 1/√16, logit soft-capping at 5, a sliding window
of 3 tokens in layer 1, none in layer 2). For every head and several query tokens the page's
softmax is the one Python computes from the stored vectors (atlas/scores.py) and within 0.01 of
the model's attention; keys outside the window are masked and the page says why; the head view
and the model view draw beside it."""

from __future__ import annotations

import numpy as np
import pytest
from browser import open_sentence_page, require_chromium
from conftest import build

from atlas.result import load
from atlas.scores import Scores
from atlas.viewdata import VECTOR_TOLERANCE

require_chromium()

ROWS = "() => AtlasNeuronView.rows(document.getElementById('neuron-view'))"
DATASET = "() => ({...document.getElementById('neuron-view').dataset})"
SENTENCE = "The old man saw the cat on the mat, and the dog ran to the house.\n"


@pytest.fixture(scope="module")
def gemma_site(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gemma2-site")
    (folder / "in.txt").write_text(SENTENCE, encoding="utf-8")
    out = folder / "site"
    assert (
        build([str(folder / "in.txt"), "-o", str(out), "--model", str(tiny_model("gemma2"))]) == 0
    )
    return out


def test_every_head_of_gemma2_is_reproduced_in_the_page(browser, gemma_site):
    atlas = load(gemma_site)
    assert atlas.model.neuron_view, atlas.model.neuron_note
    layers, heads, d = atlas.model.layers, atlas.model.heads, atlas.model.head_dim
    scores = Scores.from_json(atlas.model.scores, layers, d)
    assert scores.softcap == (5.0, 5.0) and scores.window == (3, None)
    view = atlas.view(0)
    q, k = view.queries_keys(layers, heads, d)
    expected = scores.probabilities(q, k, causal=True)
    attention = view.matrix(layers, heads)
    n = len(view.tokens)
    assert n > 10

    # the head view and the model view draw too (open_sentence_page waits for both)
    page, rep = open_sentence_page(browser, gemma_site / "sentences" / "0001.html")
    page.wait_for_selector("#neuron-view tr.nv-row")
    worst = 0.0
    for layer in range(1, layers + 1):
        for head in range(1, heads + 1):
            page.locator("#neuron-view select[name='nv-layer']").select_option(str(layer))
            page.locator("#neuron-view select[name='nv-head']").select_option(str(head))
            for i in (n - 1, 6, 1):
                page.locator(f"#neuron-view button.nv-token[data-index='{i}']").click()
                shown = page.evaluate(DATASET)
                assert (int(shown["layer"]), int(shown["head"]), int(shown["query"])) == (
                    layer,
                    head,
                    i,
                )
                rows = page.evaluate(ROWS)
                softmax = np.array([r["softmax"] for r in rows])
                model = np.array([r["attention"] for r in rows])
                np.testing.assert_allclose(softmax, expected[layer - 1, head - 1, i], atol=1e-5)
                np.testing.assert_allclose(model, attention[layer - 1, head - 1, i], atol=1e-5)
                worst = max(worst, float(np.abs(softmax - model).max()))
                why = [r["maskedBy"] for r in rows]
                later = ["later"] * (n - 1 - i)
                if layer == 1:  # window of 3: keys i-2..i
                    assert why == ["window"] * max(0, i - 2) + [""] * min(i + 1, 3) + later
                else:
                    assert why == [""] * (i + 1) + later
    assert worst <= VECTOR_TOLERANCE + 1 / 510, worst
    print(f"max |page softmax - model attention| over every head: {worst:.4f}")

    page.locator("#neuron-view select[name='nv-layer']").select_option("1")
    page.locator(f"#neuron-view button.nv-token[data-index='{n - 1}']").click()
    intro = page.locator("#neuron-view .nv-intro").inner_text()
    assert "5·tanh(q·k_j × 0.2500 / 5)" in intro and "soft-caps its scores at ±5" in intro
    assert "sliding window of 3 tokens" in intro
    title = page.locator("#neuron-view tr[data-masked='window'] td.nv-score").first
    assert "outside the sliding window of 3 tokens" in title.get_attribute("title")
    page.wait_for_timeout(50)
    assert rep.clean, rep
    page.close()
