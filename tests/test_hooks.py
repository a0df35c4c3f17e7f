"""The hooks module: one family table, captures scoped to a ``with`` block, and queries and keys
after position encoding that reproduce the model's own attention (rotary and grouped-query
attention included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from tiny_models import DECODERS, FAMILIES, make_tiny_llama, tiny_llama

from atlas import hooks
from atlas.corpus import Example
from atlas.records import QUERIES_KEYS, reproduction_error
from atlas.running import Runner


def softmax_rows(query: np.ndarray, key: np.ndarray, causal: bool) -> np.ndarray:
    """softmax(q·k/√d) per head, with the causal mask where asked."""
    d = query.shape[-1]
    scores = query.astype(np.float64) @ np.swapaxes(key, -1, -2) / np.sqrt(d)
    if causal:
        n = scores.shape[-1]
        scores = np.where(np.tril(np.ones((n, n), bool)), scores, -np.inf)
    scores -= scores.max(-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(-1, keepdims=True)


@pytest.mark.parametrize("key_heads", [4, 2, 1])
def test_llama_queries_and_keys_after_rotary_reproduce_its_attention(key_heads):
    model = tiny_llama(key_heads)
    layout = hooks.locate(model)
    assert layout is not None and layout.family.name == "llama"
    assert (layout.heads, layout.key_heads) == (4, key_heads)
    ids = torch.tensor([[1, 5, 9, 13, 2, 40, 7, 3, 11]])
    with torch.no_grad(), hooks.queries_keys(layout) as capture:
        out = model(input_ids=ids, output_attentions=True)
    pairs = capture.take()
    assert pairs is not None and len(pairs) == 3
    for (query, key), attention in zip(pairs, out.attentions, strict=True):
        assert query.shape == key.shape == (1, 4, 9, 8)  # one key per query head
        expected = attention.numpy()
        assert np.abs(softmax_rows(query, key, causal=True) - expected).max() < 1e-4
    # without the rotation the keys would not: the capture is after position encoding
    raw = model.layers[0].self_attn.q_proj
    assert raw is layout.modules("query")[0]


def test_the_hooks_are_gone_after_the_block_even_on_error():
    model = tiny_llama()
    layout = hooks.locate(model)
    modules = [*layout.modules("query"), *layout.modules("key"), *layout.modules("attention")]
    with pytest.raises(RuntimeError, match="inside"), hooks.queries_keys(layout):
        assert all(m._forward_hooks or m._forward_pre_hooks for m in modules)
        raise RuntimeError("inside")
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in modules)


@pytest.mark.parametrize("family", FAMILIES + DECODERS)
def test_every_family_is_located_and_its_captures_agree_with_the_model(tiny_model, family):
    model = transformers.AutoModel.from_pretrained(
        str(tiny_model(family)), attn_implementation="eager"
    ).eval()
    layout = hooks.locate(model)
    assert layout is not None
    assert model.config.model_type in layout.family.model_types
    ids = torch.tensor([[0, 5, 9, 13, 8, 21, 2]])
    caught: dict[str, dict[int, torch.Tensor]] = {"p": {}, "o": {}, "h": {}}
    with (
        torch.no_grad(),
        hooks.queries_keys(layout) as qk,
        hooks.probabilities(layout, lambda i, p: caught["p"].__setitem__(i, p)),
        hooks.head_outputs(layout, lambda i, o: caught["o"].__setitem__(i, o)),
        hooks.hidden_states(layout, lambda i, h: caught["h"].__setitem__(i, h)),
    ):
        out = model(input_ids=ids, output_attentions=True, output_hidden_states=True)
    causal = family == "gpt2" or family in DECODERS
    layers = len(out.attentions)
    pairs = qk.take()
    query, key = (np.stack([pair[i][0] for pair in pairs]) for i in (0, 1))
    # scored with the model's scale, soft-cap and sliding window
    computed = layout.scores().probabilities(query, key, causal)
    assert np.abs(computed - np.stack([a[0].numpy() for a in out.attentions])).max() < 1e-5
    for layer, attention in enumerate(out.attentions):
        assert torch.equal(caught["p"][layer], attention)
        # the heads' outputs are the attention-weighted values, head by head
        assert caught["o"][layer].shape == (1, layout.heads, 7, layout.head_dim)
        if layer + 1 < layers or not causal:  # a decoder's last hidden state is after its norm
            assert torch.equal(caught["h"][layer], out.hidden_states[layer + 1])
    assert sorted(caught["p"]) == list(range(layers))


def test_a_model_no_family_describes_has_no_layout():
    config = transformers.T5Config(
        vocab_size=32, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4
    )
    assert hooks.locate(transformers.T5EncoderModel(config)) is None


def test_the_runner_measures_a_llama_with_its_queries_and_keys(tmp_path):
    """End to end through the runner: a causal model, one record per sentence, and queries and
    keys (after rotary, key heads repeated) that give back each record's attention."""
    runner = Runner(str(make_tiny_llama(tmp_path / "llama")), device="cpu")
    assert runner.info.causal and (runner.info.layers, runner.info.heads) == (3, 4)
    assert runner.info.head_dim == 8 and runner.queries_keys_note == ""
    texts = ["The cat sat on the mat.", "Where is the cat?", "The dog sat on the rug."]
    examples = [Example(id=str(i), text=t) for i, t in enumerate(texts)]
    records = list(runner.run(examples, batch_size=2, capture={QUERIES_KEYS}))
    assert sorted(r.index for r in records) == [0, 1, 2]
    for record in records:
        assert record.query.shape == record.key.shape == (3, 4, record.n, 8)
        assert reproduction_error(record.query, record.key, record.attention, causal=True) < 1e-4
