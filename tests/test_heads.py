"""Exact-value tests of the heads and examples analyses on hand-made attention, against
the design's definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from atlas.analyses.base import RunInfo, feed
from atlas.analyses.examples import MIN_EXAMPLE_TOKENS, ExampleSentences
from atlas.analyses.heads import HeadMetrics
from atlas.analyses.measures import (
    COMPOUND_LABELS,
    LABELS,
    OFFSETS,
    PATTERNS,
    example_metrics,
    label_head,
    label_strength,
    offset_profile,
)
from atlas.analyses.measures import (
    pattern as canonical_pattern,
)
from atlas.model import Record

S = 1e-4  # DESIGN: A' = 0.9999·A + 0.0001/n for entropies


def one_head(matrix: np.ndarray) -> np.ndarray:
    """Wrap an [n, n] attention matrix as [layers=1, heads=1, n, n]."""
    return np.asarray(matrix, dtype=np.float64)[None, None]


def mask(n: int, *positions: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[list(positions)] = True
    return out


def metrics_of(matrix, cls=(), sep=(), punct=(), causal=False) -> dict[str, float]:
    """example_metrics of a single head, as plain floats."""
    n = len(matrix)
    out = example_metrics(
        one_head(matrix), mask(n, *cls), mask(n, *sep), mask(n, *punct), causal=causal
    )
    for value in out.values():
        assert value.shape == (1, 1)
    return {key: float(value[0, 0]) for key, value in out.items()}


def profile_of(matrix) -> dict[int, float]:
    values = offset_profile(one_head(matrix))
    assert values.shape == (1, 1, len(OFFSETS))
    return dict(zip(OFFSETS, values[0, 0].tolist(), strict=True))


def previous_token_head(n: int) -> np.ndarray:
    a = np.zeros((n, n))
    a[0, 0] = 1.0
    for i in range(1, n):
        a[i, i - 1] = 1.0
    return a


def next_token_head(n: int) -> np.ndarray:
    a = np.zeros((n, n))
    for i in range(n - 1):
        a[i, i + 1] = 1.0
    a[n - 1, n - 1] = 1.0
    return a


def random_attention(rng, layers: int, heads: int, n: int) -> np.ndarray:
    """Rows sum to 1; cubing makes some rows peaky so the metrics are not all alike."""
    a = rng.random((layers, heads, n, n)) ** 3 + 1e-6
    return a / a.sum(-1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# Reference implementation: plain Python loops, written from DESIGN.md "Definitions".


def smoothed_entropy(row: list[float]) -> float:
    n = len(row)
    total = 0.0
    for x in row:
        p = (1 - S) * x + S / n
        total -= p * math.log(p)
    return total


def reference_metrics(a: np.ndarray, cls, sep, punct, causal=False) -> dict[str, float]:
    """DESIGN's per-example formulas for one head's [n, n] matrix, loop by loop."""
    a = a.tolist()
    n = len(a)
    out = {
        "to_cls": sum(sum(a[i][j] for j in range(n) if cls[j]) for i in range(n)) / n,
        "to_sep": sum(sum(a[i][j] for j in range(n) if sep[j]) for i in range(n)) / n,
        "to_punct": sum(sum(a[i][j] for j in range(n) if punct[j]) for i in range(n)) / n,
        "self": sum(a[i][i] for i in range(n)) / n,
        "prev": sum(a[i][i - 1] for i in range(1, n)) / n,
        "next": sum(a[i][i + 1] for i in range(n - 1)) / n,
    }
    rows = [smoothed_entropy(a[i]) for i in range(n)]
    out["entropy"] = sum(rows) / n
    out["cls_entropy"] = rows[0]
    # normalised entropy: H(row) / ln(keys the row sees), capped at 1 (smoothing leaks a little
    # mass to unseen keys in a decoder); rows that see one key are left out
    ratios = []
    for i in range(n):
        visible = i + 1 if causal else n
        if visible >= 2:
            ratios.append(min(rows[i] / math.log(visible), 1.0))
    out["entropy_norm"] = sum(ratios) / len(ratios) if ratios else 0.0
    return out


def reference_profile(a: np.ndarray) -> list[float]:
    n = len(a)
    return [sum(a[i][i + d] for i in range(n) if 0 <= i + d < n) / n for d in range(-8, 9)]


# ---------------------------------------------------------------------------------------------
# Hand-made heads with exact values.


def test_previous_token_head_exact_shares():
    """Pure previous-token head: prev = (n-1)/n, self = 1/n, next = 0, profile at -1 and 0."""
    n = 6
    m = metrics_of(previous_token_head(n))
    # DESIGN normalises by n, not n-1: row 0 has no previous token (it attends to itself),
    # so even a perfect previous-token head scores (n-1)/n, not 1.
    assert m["prev"] == pytest.approx((n - 1) / n, abs=1e-15)
    assert m["self"] == pytest.approx(1 / n, abs=1e-15)
    assert m["next"] == 0.0
    profile = profile_of(previous_token_head(n))
    assert profile[-1] == pytest.approx((n - 1) / n, abs=1e-15)
    assert profile[0] == pytest.approx(1 / n, abs=1e-15)
    assert all(value == 0.0 for d, value in profile.items() if d not in (-1, 0))


def test_next_token_head_exact_shares():
    """Pure next-token head (last row attends to itself): next = (n-1)/n, self = 1/n."""
    n = 5
    m = metrics_of(next_token_head(n))
    assert m["next"] == pytest.approx((n - 1) / n, abs=1e-15)
    assert m["self"] == pytest.approx(1 / n, abs=1e-15)
    assert m["prev"] == 0.0
    profile = profile_of(next_token_head(n))
    assert profile[1] == pytest.approx((n - 1) / n, abs=1e-15)
    assert profile[0] == pytest.approx(1 / n, abs=1e-15)


def test_uniform_head_exact_values():
    """Uniform head: entropy = ln n, normalised 1, to_cls 1/n, to_sep 2/n, prev (n-1)/n²."""
    n = 7
    uniform = np.full((n, n), 1 / n)
    m = metrics_of(uniform, cls=[0], sep=[3, n - 1])
    # smoothing a uniform row gives the same uniform row, so the entropy is exactly ln n
    assert m["entropy"] == pytest.approx(math.log(n), abs=1e-12)
    assert m["entropy_norm"] == pytest.approx(1.0, abs=1e-12)
    assert m["cls_entropy"] == pytest.approx(math.log(n), abs=1e-12)
    assert m["to_cls"] == pytest.approx(1 / n, abs=1e-15)
    assert m["to_sep"] == pytest.approx(2 / n, abs=1e-15)
    assert m["to_punct"] == 0.0
    assert m["self"] == pytest.approx(1 / n, abs=1e-15)
    assert m["prev"] == pytest.approx((n - 1) / n**2, abs=1e-15)
    assert m["next"] == pytest.approx((n - 1) / n**2, abs=1e-15)


def test_uniform_head_offset_profile():
    """Uniform head: profile at d is (n-|d|)/n² for |d| < n and 0 for offsets past the sentence."""
    n = 6  # so offsets ±6, ±7, ±8 fall outside the sentence
    profile = profile_of(np.full((n, n), 1 / n))
    for d, value in profile.items():
        expected = (n - abs(d)) / n**2 if abs(d) < n else 0.0
        assert value == pytest.approx(expected, abs=1e-15), d


def test_one_hot_cls_head_entropy_by_hand():
    """Every row on token 0: to_cls = 1, entropy = entropy of the smoothed one-hot row."""
    n = 9
    a = np.zeros((n, n))
    a[:, 0] = 1.0
    m = metrics_of(a, cls=[0], sep=[n - 1])
    high = 0.9999 + 0.0001 / n
    low = 0.0001 / n
    expected = -(high * math.log(high) + (n - 1) * low * math.log(low))
    assert m["to_cls"] == 1.0
    assert m["to_sep"] == 0.0
    assert m["entropy"] == pytest.approx(expected, rel=1e-12)
    assert m["cls_entropy"] == pytest.approx(expected, rel=1e-12)
    assert m["entropy_norm"] == pytest.approx(expected / math.log(n), rel=1e-12)
    assert m["self"] == pytest.approx(1 / n, abs=1e-15)  # only row 0 attends to itself


def test_to_punct_matches_loop():
    """to_punct = mean over rows of the attention to punctuation columns."""
    rng = np.random.default_rng(7)
    n = 8
    a = random_attention(rng, 1, 1, n)[0, 0]
    punct = [2, 5, 7]
    expected = sum(sum(a[i, j] for j in punct) for i in range(n)) / n
    assert metrics_of(a, punct=punct)["to_punct"] == pytest.approx(expected, abs=1e-14)


def test_random_attention_every_metric_matches_reference():
    """Seeded random attention, 2 layers × 3 heads: every metric equals the loop reference."""
    rng = np.random.default_rng(2019)
    layers, heads = 2, 3
    for n in (2, 5, 11):
        a = random_attention(rng, layers, heads, n)
        cls, sep, punct = mask(n, 0), mask(n, n - 1), mask(n, *range(1, n, 3))
        for causal in (False, True):
            got = example_metrics(a, cls, sep, punct, causal=causal)
            profile = offset_profile(a)
            assert set(got) == set(reference_metrics(a[0, 0], cls, sep, punct))
            for layer in range(layers):
                for head in range(heads):
                    want = reference_metrics(a[layer, head], cls, sep, punct, causal)
                    for key, value in want.items():
                        assert got[key][layer, head] == pytest.approx(value, abs=1e-12), (
                            key,
                            n,
                            causal,
                            layer,
                            head,
                        )
                    np.testing.assert_allclose(
                        profile[layer, head], reference_profile(a[layer, head]), atol=1e-12
                    )


def test_causal_uniform_prefix_head_normalised_entropy_is_one():
    """Row i uniform over tokens 0..i: causal normalised entropy ≈ 1; non-causal is much lower."""
    n = 12
    a = np.zeros((n, n))
    for i in range(n):
        a[i, : i + 1] = 1 / (i + 1)
    # within 1e-3 only: the smoothing puts 0.0001/n on each future token
    assert metrics_of(a, causal=True)["entropy_norm"] == pytest.approx(1.0, abs=1e-3)
    assert metrics_of(a, causal=False)["entropy_norm"] < 0.8


def test_single_token_example_normalised_entropy_is_undefined():
    """A one-token example has no row that can choose: its normalised entropy is undefined
    (NaN), and the corpus mean leaves it out rather than counting a 0."""
    m = metrics_of(np.ones((1, 1)), cls=[0])
    assert math.isnan(m["entropy_norm"])
    assert m["to_cls"] == 1.0
    assert m["prev"] == 0.0 and m["next"] == 0.0


# ---------------------------------------------------------------------------------------------
# Labels.


def means(**values: float) -> dict[str, float]:
    base = dict.fromkeys(
        ("to_cls", "to_sep", "to_punct", "self", "prev", "next", "entropy", "cls_entropy"), 0.1
    )
    base["entropy_norm"] = 0.5
    base.update(values)
    return base


@pytest.mark.parametrize(
    ("values", "label"),
    [
        ({"prev": 0.6}, "previous-token"),
        ({"next": 0.6}, "next-token"),
        ({"self": 0.55}, "self"),
        ({"to_cls": 0.8}, "[CLS]"),
        ({"to_sep": 0.7}, "[SEP]"),
        ({"to_punct": 0.51}, "punctuation"),
        ({"to_sep": 0.7, "to_cls": 0.6}, "[SEP]"),  # the largest share wins
        ({"prev": 0.49, "entropy_norm": 0.9}, "broad"),
        ({"prev": 0.49, "entropy_norm": 0.3}, "previous + next"),  # 0.49 + 0.1: two shares
        ({"to_cls": 0.3, "next": 0.25}, "[CLS] + next"),
        ({"next": 0.3, "to_cls": 0.25}, "next + [CLS]"),  # the larger share first
        ({"to_cls": 0.3, "to_sep": 0.2}, "[CLS] + [SEP]"),  # together exactly 0.5: labelled
        ({"to_cls": 0.3, "to_sep": 0.19}, "mixed"),  # together under 0.5
        ({"to_cls": 0.3, "next": 0.3, "entropy_norm": 0.8}, "broad"),  # broad before two shares
        ({"prev": 0.5}, "previous-token"),  # exactly on the threshold: labelled
        ({"entropy_norm": 0.75}, "broad"),  # exactly on the broad threshold
        ({"entropy_norm": 0.7499}, "mixed"),
        ({"to_sep": 0.9, "entropy_norm": 0.1}, "[SEP]"),  # a share beats entropy
    ],
)
def test_label_head(values, label):
    """label_head picks the largest share ≥ 0.5, else broad (entropy_norm ≥ 0.75), else the two
    largest shares when together ≥ 0.5, else mixed."""
    assert label_head(means(**values)) == label


# ---------------------------------------------------------------------------------------------
# Streaming accumulation.


def make_record(index: int, attention: np.ndarray, punct_every: int = 4) -> Record:
    """A Record with [CLS] first, [SEP] last and punctuation every few tokens."""
    n = attention.shape[-1]
    tokens = ["[CLS]", *(f"w{i}" if i % punct_every else "," for i in range(1, n - 1)), "[SEP]"]
    cls, sep = mask(n, 0), mask(n, n - 1)
    return Record(
        index=index,
        tokens=tokens,
        cls=cls,
        sep=sep,
        special=cls | sep,
        punct=np.array([t == "," for t in tokens]),
        segments=np.where(cls | sep, -1, 0).astype(np.int8),
        attention=attention.astype(np.float32),
    )


def started(analysis, layers: int, heads: int, causal: bool = False):
    analysis.start(RunInfo(layers=layers, heads=heads, causal=causal, sentences=0))
    return analysis


def test_head_metrics_means_are_plain_means_over_examples():
    """HeadMetrics.means() is the plain mean of example_metrics over records of different n."""
    rng = np.random.default_rng(3)
    layers, heads = 2, 3
    records = [
        make_record(i, random_attention(rng, layers, heads, n))
        for i, n in enumerate((4, 9, 13, 6, 20))
    ]
    stats = started(HeadMetrics(), layers, heads)
    for record in records:
        feed(stats, record)
    expected = [example_metrics(r.attention, r.cls, r.sep, r.punct) for r in records]
    got = stats.means()
    assert stats.count == len(records)
    for key, value in got.items():
        assert value.shape == (layers, heads)
        mean = sum(e[key] for e in expected) / len(records)
        np.testing.assert_allclose(value, mean, rtol=0, atol=1e-12, err_msg=key)
    # the prev share of a plain mean differs from a token-weighted mean on these records
    tokens = sum(r.n for r in records)
    weighted = sum(e["prev"] * r.n for e, r in zip(expected, records, strict=True)) / tokens
    assert not np.allclose(got["prev"], weighted)
    profile = sum(offset_profile(r.attention) for r in records) / len(records)
    result = stats.finish({})
    np.testing.assert_allclose(
        np.array(result.parts["offsets"]).reshape(layers, heads, -1), profile, atol=1e-12
    )
    assert result.columns["prev"] == pytest.approx(got["prev"].reshape(-1).tolist(), abs=1e-15)
    assert result.parts["label"] == [
        label_head({k: v[flat] for k, v in result.columns.items()}) for flat in range(6)
    ]


def test_head_metrics_empty_means_are_zero():
    """Before any record, means are zeros rather than a division by zero."""
    stats = started(HeadMetrics(), 1, 2)
    assert all((value == 0).all() for value in stats.means().values())
    assert (np.array(stats.finish({}).parts["offsets"]) == 0).all()


def test_decoder_one_token_examples_leave_normalised_entropy_alone():
    """A decoder's one-token example has no row that sees two tokens: it is left out of
    entropy_norm's mean instead of counting as 0, and of no other metric."""
    one = Record(
        index=0,
        tokens=["Hello"],
        cls=mask(1),
        sep=mask(1),
        special=mask(1),
        punct=mask(1),
        segments=np.zeros(1, np.int8),
        attention=np.ones((1, 1, 1, 1), np.float32),
    )
    n = 6
    uniform = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]  # causal, uniform
    many = make_record(1, uniform[None, None])
    stats = started(HeadMetrics(), 1, 1, causal=True)
    feed(stats, one)
    feed(stats, many)
    means = stats.means()
    alone = example_metrics(many.attention, many.cls, many.sep, many.punct, causal=True)
    assert means["entropy_norm"][0, 0] == pytest.approx(alone["entropy_norm"][0, 0], abs=1e-12)
    assert means["entropy_norm"][0, 0] > 0.99
    # every other metric still averages over both examples
    assert means["self"][0, 0] == pytest.approx((1.0 + alone["self"][0, 0]) / 2, abs=1e-12)


def test_best_examples_ranks_by_score_and_prefers_long_records():
    """best_examples: highest score first, records under MIN_EXAMPLE_TOKENS ranked last."""
    short = MIN_EXAMPLE_TOKENS - 3
    assert short >= 2
    # (index, n, pattern) — head 0 gets the pattern, head 1 is always uniform
    plan = [
        (0, short, "prev"),  # prev share (n-1)/n = 0.8 but too short
        (1, 10, "uniform"),  # prev share 9/100
        (2, 10, "prev"),  # 0.9
        (3, 9, "prev"),  # 8/9
        (4, 12, "uniform"),  # 11/144
        (5, 10, "prev"),  # 0.9 again: ties go to the earlier record
    ]
    stats3 = started(ExampleSentences(keep=3), 1, 2)
    stats9 = started(ExampleSentences(keep=9), 1, 2)
    for index, n, pattern in plan:
        first = previous_token_head(n) if pattern == "prev" else np.full((n, n), 1 / n)
        attention = np.stack([first, np.full((n, n), 1 / n)])[None]
        record = make_record(index, attention)
        feed(stats3, record)
        feed(stats9, record)
    assert stats3.best("previous-token", 0) == [2, 5, 3]
    assert stats9.best("previous-token", 0) == [2, 5, 3, 1, 4, 0]
    # head 1 is uniform everywhere: prev share (n-1)/n² is largest for the shortest long record
    assert stats3.best("previous-token", 1) == [3, 1, 2]


@pytest.mark.parametrize("keep", [3, 40])
def test_example_sentences_match_a_heap_per_head(keep):
    """Against the plain reference, one heap per (label, head) fed item by item: the same
    sentences in the same order for every label and head, records arriving out of order, with
    tied scores (identical records), short records and undefined (NaN) scores; with 40 kept,
    more than there are records."""
    import heapq

    rng = np.random.default_rng(23)
    layers, heads = 2, 3
    records = []
    for index in rng.permutation(30).tolist():
        n = 1 if index % 10 == 3 else int(rng.integers(2, 14))  # n = 1: no entropy_norm
        if index % 7 == 0 and records:  # a copy of an earlier record: every score ties
            attention = records[-1].attention
        else:
            attention = random_attention(rng, layers, heads, n)
        record = make_record(index, attention)
        if attention.shape[-1] == 1:
            record.tokens, record.punct = ["Hi"], mask(1)
            record.cls = record.sep = record.special = mask(1)
        records.append(record)
    examples = started(ExampleSentences(keep=keep), layers, heads, causal=True)
    expected = {(label, flat): [] for label in PATTERNS for flat in range(layers * heads)}
    undefined = 0
    for record in records:
        feed(examples, record)
        metrics = example_metrics(record.attention, record.cls, record.sep, record.punct, True)
        for label in PATTERNS:
            scores = np.asarray(label_strength(label, metrics)).reshape(-1)
            for flat, score in enumerate(scores.tolist()):
                if math.isnan(score):
                    undefined += 1
                    continue
                item = (record.n >= MIN_EXAMPLE_TOKENS, score, -record.index)
                heap = expected[label, flat]
                if len(heap) < keep:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
    assert undefined > 0
    for (label, flat), heap in expected.items():
        assert examples.best(label, flat) == [-i for _, _, i in sorted(heap, reverse=True)]
    # A compound label in either order ranks by its two shares together.
    assert examples.best("next + [CLS]", 0) == examples.best("[CLS] + next", 0)


def test_compound_labels_rank_by_their_two_shares_together():
    rng = np.random.default_rng(3)
    metrics = {key: rng.random((2, 3)) for key in ("to_cls", "next", "entropy_norm")}
    for label in ("[CLS] + next", "next + [CLS]"):
        assert np.array_equal(label_strength(label, metrics), metrics["to_cls"] + metrics["next"])
        assert canonical_pattern(label) == "next + [CLS]"  # LABEL_METRICS order: next before to_cls
    assert len(COMPOUND_LABELS) == 30 and len(set(COMPOUND_LABELS)) == 30
    assert len(PATTERNS) == len(LABELS) + 15
    assert all(canonical_pattern(label) in PATTERNS for label in COMPOUND_LABELS)
    assert np.array_equal(label_strength("mixed", metrics), 1.0 - metrics["entropy_norm"])
    # A broad head's examples are where it is most focused, not its near-uniform sentences.
    assert np.array_equal(label_strength("broad", metrics), 1.0 - metrics["entropy_norm"])


def test_compound_labels_keep_a_css_class():
    from atlas.contract import label_class

    assert label_class("[CLS] + next") == label_class("mixed") == "label-mixed"
    assert label_class("[SEP]") == "label-sep"
    assert label_class("previous-token") == "label-previous-token"
