"""The neuron view's data: for every model family the stored int16 queries and keys give back,
through softmax(q·k/√d) (causal mask for GPT-2), the uint8 attention stored beside them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import build
from tiny_models import FAMILIES, SHAPES

from atlas.result import load
from atlas.viewdata import VECTOR_TOLERANCE, inflate

SENTENCES = (
    "The dog chased the cat , and the bird watched .\n"
    "Where is the cat?\tThe cat sat on the mat.\n"
    "Many people think that the old house is very large .\n"
)


def attention_from(q: np.ndarray, k: np.ndarray, causal: bool) -> np.ndarray:
    n, d = q.shape[-2], q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d)
    if causal:
        scores = np.where(np.tril(np.ones((n, n), bool)), scores, -np.inf)
    scores -= scores.max(-1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(-1, keepdims=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_vectors_reproduce_attention(family, tiny_model, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text(SENTENCES, encoding="utf-8")
    out = tmp_path / "site"
    assert build([str(source), "-o", str(out), "--model", str(tiny_model(family))]) == 0

    card = json.loads((out / "atlas.json").read_text(encoding="utf-8"))["model"]
    assert card["neuron_view"] is True, card["neuron_note"]
    assert card["neuron_note"] == ""
    layers, heads = SHAPES[family]
    d = card["head_dim"]
    assert d * heads == 32  # tiny_models.HIDDEN_SIZE

    atlas = load(out)
    assert atlas.model.causal == (family == "gpt2")
    assert len(atlas.views) == 3
    for view in atlas.views:
        n = len(view.tokens)
        shape = (layers, heads, n, d)
        q, k = view.queries_keys(layers, heads, d)
        assert q.shape == k.shape == shape
        assert np.abs(q).max() > 0 and np.abs(k).max() > 0
        computed = attention_from(q, k, atlas.model.causal)
        stored = view.matrix(layers, heads)
        assert view.vectors_error <= VECTOR_TOLERANCE
        assert np.abs(computed - stored).max() <= VECTOR_TOLERANCE + 1 / 510, (family, view.index)
        if atlas.model.causal:
            assert np.all(stored[..., np.triu_indices(n, 1)[0], np.triu_indices(n, 1)[1]] == 0)

    # The attention script says the vectors exist; they sit in their own script beside it.
    text = (out / "data" / "0001.js").read_text(encoding="utf-8")
    payload = json.loads(text.split("] = ", 1)[1].rstrip().removesuffix(";"))
    assert payload["neuron"]["available"] is True and payload["neuron"]["head_dim"] == d
    assert "query" not in payload and "query" not in payload["neuron"]
    vectors = (out / "data" / "0001.qk.js").read_text(encoding="utf-8")
    assert vectors.startswith("window.ATLAS_VECTORS = window.ATLAS_VECTORS || {};")
    assert atlas.view(0).vectors in vectors


def test_default_model_vectors_reproduce_attention(default_site):
    """The real model (all-MiniLM-L6-v2, d = 32): the stored vectors (each head at the coarsest
    quantisation that keeps its softmax within VECTOR_TOLERANCE of the model's attention) give
    back the stored attention to within that plus the attention's own uint8 rounding (1/510),
    in every row of every head of every example sentence; and most heads need no int16."""
    atlas = load(default_site)
    assert atlas.model.neuron_view, atlas.model.neuron_note
    layers, heads, d = atlas.model.layers, atlas.model.heads, atlas.model.head_dim
    rows = []
    wide = blocks = 0
    for view in atlas.views:
        if not view.vectors:
            continue
        q, k = view.queries_keys(layers, heads, d)
        bits = inflate(view.vectors)[: 2 * layers * heads]
        wide, blocks = wide + bits.count(16), blocks + len(bits)
        computed = attention_from(q, k, atlas.model.causal)
        rows.append(np.abs(computed - view.matrix(layers, heads)).max(-1).ravel())
    diffs = np.concatenate(rows)
    assert diffs.size > 100_000
    assert diffs.max() <= VECTOR_TOLERANCE + 1 / 510
    assert wide < 0.1 * blocks, (wide, blocks)
