"""The encoding of the pages' data (atlas/viewdata.py): exact round trips on hand-made values."""

from __future__ import annotations

import numpy as np

from atlas import viewdata


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
