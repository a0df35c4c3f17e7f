"""Every supported family, one tiny random model each (tests/tiny_models.py): located by the hooks
table, its queries and keys (after q/k norms and rotary, key heads shared) give back the model's
own attention in every head when scored as the model scores them (scale, soft-cap, sliding
window: atlas/scores.py), and (slow) it builds end to end: statistics, pages, the three views'
data, head importance and a comparison, with stored vectors whose attention, computed as the
page computes it, is the stored attention within 0.01."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers
from conftest import build
from tiny_models import DECODERS, FAMILIES, SHAPES, make_tiny_gemma3_multimodal

from atlas import hooks
from atlas.analyses.views import not_reproduced
from atlas.corpus import Example
from atlas.records import QUERIES_KEYS
from atlas.result import load
from atlas.running import Runner
from atlas.scores import Scores
from atlas.viewdata import VECTOR_TOLERANCE, ViewMaker

# Longer than every tiny model's sliding window (3 or 4 tokens), so the windows matter.
SENTENCE = "The old man saw the cat on the mat, and the dog ran to the house."
SENTENCES = (
    "The dog chased the cat , and the bird watched .\n"
    "Where is the cat?\tThe cat sat on the mat.\n"
    "Many people think that the old house is very large .\n"
)

# What each family's table entry is, and how its layers score (scale, soft-cap, window), as
# tiny_models.DECODER_TRAITS sets them up.
ROOT_8 = 8**-0.5
EXPECTED = {
    "bert": ("bert", Scores((ROOT_8,) * 2, (None,) * 2, (None,) * 2)),
    "roberta": ("bert", Scores((ROOT_8,) * 2, (None,) * 2, (None,) * 2)),
    "distilbert": ("distilbert", Scores((ROOT_8,) * 2, (None,) * 2, (None,) * 2)),
    "electra": ("bert", Scores((ROOT_8,) * 2, (None,) * 2, (None,) * 2)),
    "gpt2": ("gpt2", Scores((0.25,) * 3, (None,) * 3, (None,) * 3)),
    "llama": ("llama", Scores((ROOT_8,) * 2, (None,) * 2, (None,) * 2)),
    "mistral": ("llama", Scores((ROOT_8,) * 2, (None,) * 2, (4, 4))),
    "qwen2": ("llama", Scores((ROOT_8,) * 2, (None,) * 2, (None, 3))),
    "qwen3": ("qwen3", Scores((ROOT_8,) * 2, (None,) * 2, (None,) * 2)),
    "gemma2": ("llama", Scores((0.25,) * 2, (5.0, 5.0), (3, None))),
    "gemma3": ("gemma3", Scores((0.25,) * 2, (None,) * 2, (3, None))),
    "phi3": ("phi3", Scores((ROOT_8,) * 2, (None,) * 2, (None,) * 2)),
    "gpt_neox": ("gpt_neox", Scores((ROOT_8,) * 2, (None,) * 2, (None,) * 2)),
    "olmo": ("olmo", Scores((ROOT_8,) * 2, (None,) * 2, (None,) * 2)),
    "olmo2": ("olmo2", Scores((ROOT_8,) * 2, (None,) * 2, (None,) * 2)),
}


def test_every_family_is_covered():
    assert set(EXPECTED) == set(FAMILIES) | set(DECODERS)


def run(model, tokenizer, layout):
    """(queries, keys, attention) of SENTENCE, float64 [L, H, n, d] and [L, H, n, n]."""
    encoded = tokenizer(SENTENCE, return_tensors="pt")
    with torch.no_grad(), hooks.queries_keys(layout) as capture:
        out = model(**encoded, output_attentions=True)
    pairs = capture.take()
    assert pairs is not None
    query = np.stack([q[0] for q, _ in pairs]).astype(np.float64)
    key = np.stack([k[0] for _, k in pairs]).astype(np.float64)
    attention = np.stack([a[0].numpy() for a in out.attentions]).astype(np.float64)
    return query, key, attention


@pytest.mark.parametrize("family", FAMILIES + DECODERS)
def test_queries_and_keys_scored_as_the_model_scores_them_give_its_attention(family, tiny_model):
    folder = tiny_model(family)
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    layout = hooks.locate(model)
    name, scores = EXPECTED[family]
    assert layout is not None and layout.family.name == name
    assert layout.scores() == scores
    query, key, attention = run(model, tokenizer, layout)
    layers, heads = SHAPES[family]
    n = attention.shape[-1]
    assert n > 8 and query.shape == key.shape == (layers, heads, n, layout.head_dim)
    causal = family in DECODERS or family == "gpt2"
    if family in DECODERS:  # far from uniform, so a wrong rotation, scale, cap or window shows
        assert attention.max() > 0.5
    assert scores.error(query, key, attention, causal).max() < 1e-4, family
    if scores != Scores.plain(layers, layout.head_dim):
        # the model's own scale, cap and window are needed: softmax(q·k/√d) is far off
        plain = Scores.plain(layers, layout.head_dim)
        assert plain.error(query, key, attention, causal).max() > 0.05


def test_a_sliding_window_masks_the_keys_it_leaves_behind():
    """Scores.visible: causal, window w: i sees j for i − w < j ≤ i (transformers' masks)."""
    scores = Scores((1.0, 1.0), (None, None), (None, 2))
    assert scores.visible(0, 4, causal=True).astype(int).tolist() == [
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 1, 0],
        [1, 1, 1, 1],
    ]
    assert scores.visible(1, 4, causal=True).astype(int).tolist() == [
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [0, 0, 1, 1],
    ]
    assert scores.visible(1, 4, causal=False).astype(int).tolist() == [
        [1, 1, 1, 0],
        [1, 1, 1, 1],
        [1, 1, 1, 1],
        [0, 1, 1, 1],
    ]


def test_soft_capping_bounds_the_scores():
    """cap·tanh(s/cap): scores of 0 and ±100 with a cap of 5 become 0 and ±4.99995."""
    query = np.array([[[[1.0], [1.0], [1.0]]]])  # [L=1, H=1, n=3, d=1]
    key = np.array([[[[0.0], [100.0], [-100.0]]]])
    capped = Scores((1.0,), (5.0,), (None,)).probabilities(query, key, causal=False)[0, 0, 0]
    expected = np.exp(5 * np.tanh(np.array([0.0, 20.0, -20.0])))
    np.testing.assert_allclose(capped, expected / expected.sum())


@pytest.mark.slow
@pytest.mark.parametrize("family", DECODERS)
def test_every_decoder_family_builds_end_to_end(family, tiny_model, tmp_path):
    """Statistics, pages, the three views' data, head importance and a comparison (with
    itself); the stored vectors, scored as the page scores them, give back the stored
    attention of every head of every sentence within 0.01 (plus its own rounding, 1/510)."""
    source = tmp_path / "in.txt"
    source.write_text(SENTENCES, encoding="utf-8")
    out = tmp_path / "site"
    folder = str(tiny_model(family))
    args = [str(source), "-o", str(out), "--model", folder, "--compare", folder]
    assert build([*args, "--importance", "3"]) == 0
    atlas = load(out)
    layers, heads = SHAPES[family]
    assert (atlas.model.layers, atlas.model.heads, atlas.model.causal) == (layers, heads, True)
    assert atlas.model.neuron_view, atlas.model.neuron_note
    assert "importance" in atlas.heads[0].metrics and "change" in atlas.heads[0].metrics
    assert all(abs(head.metrics["change"]) < 1e-9 for head in atlas.heads)
    for page in ("index.html", "heads/index.html", "compare.html", "heads/L02-H04.html"):
        assert (out / page).is_file(), page
    scores = Scores.from_json(atlas.model.scores, layers, atlas.model.head_dim)
    expected = EXPECTED[family][1]  # atlas.json rounds the scale to 6 decimals
    np.testing.assert_allclose(scores.scale, expected.scale, rtol=1e-5)
    assert (scores.softcap, scores.window) == (expected.softcap, expected.window)
    for view in atlas.views:
        assert (out / "sentences" / f"{view.index + 1:04d}.html").is_file()
        q, k = view.queries_keys(layers, heads, atlas.model.head_dim)
        stored = view.matrix(layers, heads)
        assert view.vectors_error <= VECTOR_TOLERANCE
        error = scores.error(q, k, stored, causal=True)
        assert error.max() <= VECTOR_TOLERANCE + 1 / 510, (family, view.index)
    data = (out / "data" / "0001.js").read_text(encoding="utf-8")
    neuron = json.loads(data.split("] = ", 1)[1].rstrip().removesuffix(";"))["neuron"]
    assert neuron["scores"] == atlas.model.scores and neuron["available"] is True


def made(record, scores: Scores) -> ViewMaker:
    """The record's view, made layer by layer as a build makes it, under ``scores``."""
    layers, heads = record.attention.shape[:2]
    maker = ViewMaker(record, layers=layers, heads=heads, vectors=True, causal=True,
                      scores=scores)  # fmt: skip
    for layer, attention in enumerate(record.attention):
        maker.layer(layer, attention)
    return maker


def test_a_model_scored_otherwise_has_no_neuron_view_and_its_pages_say_why(
    tiny_model, tmp_path, monkeypatch
):
    """Were Gemma 2's cap, scale and window unknown (scored as softmax(q·k/√d)), its vectors
    would not give back its attention: the build keeps no vectors, and the note, which the
    page shows in place of the view, names the head and how far off it is."""
    folder = str(tiny_model("gemma2"))
    runner = Runner(folder, device="cpu")
    record = next(runner.run([Example(id="1", text=SENTENCE)], capture={QUERIES_KEYS}))
    right = Scores.from_json(runner.info.scores, 2, 8)
    assert not_reproduced(made(record, right)) == ""
    note = not_reproduced(made(record, Scores.plain(2, 8)))
    error = right.error(record.query, record.key, record.attention, True)
    assert error.max() < 1e-4
    wrong = Scores.plain(2, 8).error(record.query, record.key, record.attention, True)
    layer, head = np.unravel_index(int(wrong.argmax()), wrong.shape)
    assert f"in L{layer + 1}-H{head + 1} the attention they give differs" in note
    assert f"by up to {wrong.max():.3f}" in note

    monkeypatch.setattr(hooks.Layout, "scores", lambda self: Scores.plain(2, 8))
    source = tmp_path / "in.txt"
    source.write_text(SENTENCE + "\n", encoding="utf-8")
    out = tmp_path / "site"
    assert build([str(source), "-o", str(out), "--model", folder]) == 0
    atlas = load(out)
    assert not atlas.model.neuron_view and atlas.model.neuron_note == note
    assert not (out / "data" / "0001.qk.js").exists()
    data = (out / "data" / "0001.js").read_text(encoding="utf-8")
    neuron = json.loads(data.split("] = ", 1)[1].rstrip().removesuffix(";"))["neuron"]
    assert neuron["available"] is False and neuron["note"] == note


@pytest.mark.slow
def test_a_multimodal_gemma3_is_measured_through_its_text_model(tmp_path):
    """Gemma 3 4B and larger are saved with a vision tower (model type "gemma3"): the layers are
    its text model's, and its sentences build with the neuron view."""
    folder = make_tiny_gemma3_multimodal(tmp_path / "gemma3-mm")
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    layout = hooks.locate(model)
    assert layout is not None and layout.family.name == "gemma3"
    assert hooks.geometry(model.config) == (2, 4, 2, 8)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    query, key, attention = run(model, tokenizer, layout)
    assert layout.scores() == EXPECTED["gemma3"][1]
    assert EXPECTED["gemma3"][1].error(query, key, attention, causal=True).max() < 1e-4
    source = tmp_path / "in.txt"
    source.write_text(SENTENCES, encoding="utf-8")
    assert build([str(source), "-o", str(tmp_path / "site"), "--model", str(folder)]) == 0
    atlas = load(tmp_path / "site")
    assert (atlas.model.layers, atlas.model.heads, atlas.model.causal) == (2, 4, True)
    assert atlas.model.neuron_view, atlas.model.neuron_note
