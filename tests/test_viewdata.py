"""The encoding of the pages' data (atlas/viewdata.py): exact round trips on hand-made values."""

from __future__ import annotations

import numpy as np
import pytest

from atlas import viewdata
from atlas.model import Record


def softmax(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    p = np.exp(scores - scores.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def test_attention_deflates_and_comes_back_within_its_rounding():
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(7) * 0.2, size=(2, 3, 7)).astype(np.float32)
    text = viewdata.deflate(viewdata.quantise(a))
    back = np.frombuffer(viewdata.inflate(text), np.uint8).reshape(2, 3, 7, 7) / 255
    assert np.abs(back - a).max() <= 1 / 510 + 1e-7


def test_vectors_keep_the_softmax_within_tolerance_and_say_their_error():
    """Head 0 has small logits (a coarse block is enough); head 1 has a large query against
    keys that differ a little (only int16 keeps its softmax within 0.01). Both come back within
    the tolerance, the reported error is the real one, and the block widths say which is which."""
    rng = np.random.default_rng(1)
    layers, heads, n, d = 1, 2, 9, 8
    q = rng.normal(0, 0.3, (layers, heads, n, d))
    k = rng.normal(0, 0.3, (layers, heads, n, d)) + 5.0  # a shared offset, as BERT keys have
    q[0, 1] *= 400
    attention = softmax(q, k)
    text, error = viewdata.pack_vectors(q, k, attention, causal=False)
    q2, k2 = viewdata.unpack_vectors(text, layers, heads, n, d)
    real = viewdata.softmax_error(q2, k2, attention, False)
    assert abs(real.max() - error) < 1e-12
    assert error <= viewdata.VECTOR_TOLERANCE
    bits = viewdata.inflate(text)[: 2 * layers * heads]
    assert list(bits) == [8, 16, 8, 16]  # queries of heads 0, 1; keys of heads 0, 1
    # The coarse head is quantised coarsely: its values move, but by less than one step of 7.
    spread = np.ptp(q[0, 0], axis=0)
    moved = np.abs(q2[0, 0] - q[0, 0])
    assert np.all(moved <= spread / 2 / 7 * 1.01 + 1e-3)
    assert moved.max() > spread.max() / 2 / 127  # coarser than int8's finest


def record(attention: np.ndarray) -> Record:
    """A record of hand-made attention [L, H, n, n] (no words, no vectors)."""
    n = attention.shape[-1]
    flags = np.zeros(n, dtype=bool)
    return Record(index=0, tokens=[f"t{i}" for i in range(n)], cls=flags, sep=flags,
                  special=flags, punct=flags, segments=np.zeros(n, dtype=np.int8),
                  attention=attention.astype(np.float32))  # fmt: skip


def test_rollout_exact_on_hand_made_attention():
    """One head a layer (two in layer 2, whose mean is the first's): R = M2 · M1 by hand."""
    a1 = np.array([[[1.0, 0.0], [0.5, 0.5]]])
    a2 = np.array([[[0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])
    r = viewdata.rollout(np.stack([np.concatenate([a1, a1]), a2]))  # [2 layers, 2 heads, 2, 2]
    np.testing.assert_allclose(r[0], [[1.0, 0.0], [0.25, 0.75]])
    # M2 = [[.5, .5], [0, 1]]; M2 · M1 = [[.5 + .125, .375], [.25, .75]]
    np.testing.assert_allclose(r[1], [[0.625, 0.375], [0.25, 0.75]])
    rng = np.random.default_rng(0)
    raw = rng.random((4, 3, 7, 7))
    r = viewdata.rollout(raw / raw.sum(-1, keepdims=True) * 0.9)  # rows of 0.9: renormalised
    np.testing.assert_allclose(r.sum(-1), 1.0, atol=1e-12)
    assert (r >= 0).all()
    # stored as round(value × 65535): 0.625 × 65535 = 40959.375, 0.375 × 65535 = 24575.625, ...
    view = viewdata.make_view(record(np.stack([np.concatenate([a1, a1]), a2])), vectors=False,
                              causal=False)  # fmt: skip
    stored = np.array([[40959, 24576], [16384, 49151]]) / 65535
    np.testing.assert_array_equal(view.rollout_matrix(), stored)


def test_the_page_gets_the_float_rollout_not_one_from_its_uint8_attention(tmp_path):
    """Issue 18: the page rolled out its uint8 attention, whose error compounds over the
    layers. The data script now holds the float rollout, each value within 1/131070, and it
    comes back from the data file as stored; a view of only some heads holds none."""
    rng = np.random.default_rng(3)
    layers, heads, n = 12, 12, 80
    # as BERT's heads often do: most of each row to the last token ([SEP]), the rest spread
    # thinly, each value below uint8's step, so the stored rows lose it all
    peak = rng.uniform(0.8, 0.99, size=(layers, heads, n, 1))
    attention = np.concatenate([np.repeat((1 - peak) / (n - 1), n - 1, axis=-1), peak], axis=-1)
    view = viewdata.make_view(record(attention), vectors=False, causal=False)
    exact = viewdata.rollout(attention.astype(np.float32))[-1]
    assert np.abs(view.rollout_matrix() - exact).max() <= 1 / 131070 + 1e-12
    from_uint8 = viewdata.rollout(view.matrix(layers, heads))[-1]
    assert np.abs(from_uint8 - exact).max() > 0.04  # what the page used to draw
    path = tmp_path / "0001.js"
    path.write_text(viewdata.data_script(view, key="0001", sentence_id="s1", layers=layers,
                                         heads=heads, causal=False, neuron={}))  # fmt: skip
    back = viewdata.read_view(path)
    assert back.rollout == view.rollout
    np.testing.assert_array_equal(back.rollout_matrix(), view.rollout_matrix())
    some = viewdata.make_view(record(attention), vectors=False, causal=False, heads_kept=[3])
    assert some.rollout == "" and some.rollout_matrix() is None


def reference_blocks(q: np.ndarray, k: np.ndarray, attention: np.ndarray, causal: bool):
    """The level search as written first: each head, level after level, on its own, with the
    quantisation spelt out; the first level within the tolerance (or the finest) wins."""
    scores = viewdata.Scores.plain(q.shape[0], q.shape[-1])

    def quantised(x: np.ndarray, levels: int):
        low, high = x.min(-2), x.max(-2)
        offset = ((low + high) / 2).astype(np.float16)
        spread = np.maximum(high - offset, offset - low) / levels
        scale = (spread * (1 + 2**-9)).astype(np.float16)
        scale = np.where(scale > 0, scale, np.float16(1))
        raw = np.rint((x - offset[None, :].astype(np.float64)) / scale[None, :])
        raw = np.clip(raw, -levels, levels).astype(np.int8 if levels <= 127 else np.int16)
        return raw, scale, offset, raw * scale[None, :].astype(np.float64) + offset[None, :]

    chosen = []
    for layer in range(q.shape[0]):
        for head in range(q.shape[1]):
            for levels in viewdata.LEVELS:
                *qb, q_ = quantised(q[layer, head], levels)
                *kb, k_ = quantised(k[layer, head], levels)
                error = scores.layer_error(layer, q_, k_, attention[layer, head], causal)
                if error <= viewdata.VECTOR_TOLERANCE or levels == viewdata.LEVELS[-1]:
                    chosen.append((levels, qb, kb, error))
                    break
    return chosen


def test_level_search_chooses_as_trying_each_head_level_after_level(monkeypatch):
    """Heads that need every level from 7 to int16 (queries scaled up head by head): the search
    that tries several levels at once, on the heads still open, chooses each head's level,
    blocks and error exactly as the plain search does, whether it may try one level at a time
    or all of them, layer by layer or every layer at once."""
    rng = np.random.default_rng(5)
    layers, heads, n, d = 2, 8, 11, 8
    q = rng.normal(0, 0.3, (layers, heads, n, d)).astype(np.float32)
    k = (rng.normal(0, 0.3, (layers, heads, n, d)) + 5.0).astype(np.float32)
    q *= np.geomspace(1, 600, heads, dtype=np.float32)[None, :, None, None]
    for causal in (False, True):
        attention = softmax(q.astype(np.float64), k.astype(np.float64))
        if causal:
            attention = viewdata.Scores.plain(layers, d).probabilities(q, k, True)
        attention = attention.astype(np.float32)
        want = reference_blocks(q, k, attention, causal)
        assert {c[0] for c in want} >= {7, 127, 32767}  # the heads span the levels
        for at_once, values in ((1, 10**9), (2, 10**9), (6, 10**9), (6, 1)):
            monkeypatch.setattr(viewdata, "LEVELS_AT_ONCE", at_once)
            monkeypatch.setattr(viewdata, "TRIED_VALUES", values)
            by_layer = [
                c
                for at in range(layers)
                for c in viewdata.choose_blocks(q[at], k[at], attention[at], causal, layer=at)
            ]
            for got in (by_layer, viewdata.choose_blocks(q, k, attention, causal)):
                assert len(got) == len(want)
                for mine, theirs in zip(got, want, strict=True):
                    assert mine[0] == theirs[0] and mine[3] == theirs[3]  # levels, error
                    for a, b in zip([*mine[1], *mine[2]], [*theirs[1], *theirs[2]], strict=True):
                        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_only_a_checking_maker_measures_how_its_vectors_reproduce_the_attention():
    """Uniform attention that the vectors do not give: a maker with ``check`` (the record that
    decides for the run) finds the error and the head, and the note says so; one without skips
    that softmax, and cannot be asked for the note."""
    from atlas.analyses.views import not_reproduced

    rng = np.random.default_rng(2)
    layers, heads, n, d = 2, 3, 6, 4
    attention = np.full((layers, heads, n, n), 1 / n, dtype=np.float32)
    made = record(attention)
    made.query = rng.normal(0, 3, (layers, heads, n, d)).astype(np.float32)
    made.key = rng.normal(0, 3, (layers, heads, n, d)).astype(np.float32)
    makers = {}
    for check in (True, False):
        makers[check] = viewdata.ViewMaker(made, layers=layers, heads=heads, vectors=True,
                                           causal=False, check=check)  # fmt: skip
        for layer in range(layers):
            makers[check].layer(layer, attention[layer])
    assert makers[True].error > 0.1 and "differs from the model's" in not_reproduced(makers[True])
    assert makers[False].error == 0.0
    with pytest.raises(ValueError, match="without checking"):
        not_reproduced(makers[False])
    assert makers[True].view() == makers[False].view()  # the same data either way
