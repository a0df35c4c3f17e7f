"""Per-head attention statistics (Clark et al. 2019, §3), per example and accumulated.

Every function here takes one example's attention ``A`` of shape [layers, heads, n, n] whose rows
(the attending token) sum to 1, and returns one number per head. The corpus value of a metric is
the plain mean over examples of its per-example value, as in Clark et al. The formulas are in
docs/metrics.md and match DESIGN.md exactly.
"""

from __future__ import annotations

import heapq
from collections import Counter

import numpy as np

from .model import Record

OFFSETS = tuple(range(-8, 9))
ENTROPY_SMOOTHING = 1e-4  # A' = (1 - s)·A + s/n, so log 0 never happens

# Per-head metrics, in the order the site shows them: key -> (title, what it measures).
METRICS: dict[str, tuple[str, str]] = {
    "to_cls": ("[CLS]", "attention to the [CLS]/BOS token"),
    "to_sep": ("[SEP]", "attention to [SEP]/EOS tokens"),
    "to_punct": ("punct.", "attention to punctuation tokens"),
    "self": ("self", "attention to the token itself"),
    "prev": ("previous", "attention to the previous token"),
    "next": ("next", "attention to the next token"),
    "entropy": ("entropy", "mean entropy of a token's attention, in nats"),
    "entropy_norm": ("entropy / max", "entropy over its maximum ln(n); 1 = uniform"),
    "cls_entropy": ("[CLS] entropy", "entropy of the first token's attention, in nats"),
}

# Pattern labels: a head gets the label of the largest of these shares when it reaches
# LABEL_THRESHOLD; otherwise "broad" if its normalised entropy reaches BROAD_THRESHOLD, else
# "mixed". Shares and normalised entropy are fractions, so the thresholds do not depend on
# sentence length.
LABEL_METRICS = {
    "prev": "previous-token",
    "next": "next-token",
    "self": "self",
    "to_cls": "[CLS]",
    "to_sep": "[SEP]",
    "to_punct": "punctuation",
}
LABELS = (*LABEL_METRICS.values(), "broad", "mixed")
LABEL_THRESHOLD = 0.5
BROAD_THRESHOLD = 0.75


def example_metrics(
    attention: np.ndarray,
    cls: np.ndarray,
    sep: np.ndarray,
    punct: np.ndarray,
    causal: bool = False,
) -> dict[str, np.ndarray]:
    """Every per-head metric of one example: ``{key: array [layers, heads]}``."""
    a = np.asarray(attention, dtype=np.float64)
    n = a.shape[-1]
    diag = np.diagonal(a, axis1=-2, axis2=-1)  # [L, H, n]
    out = {
        "to_cls": a[..., cls].sum(-1).mean(-1),
        "to_sep": a[..., sep].sum(-1).mean(-1),
        "to_punct": a[..., punct].sum(-1).mean(-1),
        "self": diag.mean(-1),
        "prev": np.diagonal(a, offset=-1, axis1=-2, axis2=-1).sum(-1) / n,
        "next": np.diagonal(a, offset=1, axis1=-2, axis2=-1).sum(-1) / n,
    }
    rows = row_entropy(a)  # [L, H, n]
    out["entropy"] = rows.mean(-1)
    out["cls_entropy"] = rows[..., 0]
    out["entropy_norm"] = normalised_entropy(rows, causal)
    return out


def row_entropy(attention: np.ndarray, smoothing: float = ENTROPY_SMOOTHING) -> np.ndarray:
    """Entropy in nats of each row of A' = (1 - s)·A + s/n: shape [..., n]."""
    n = attention.shape[-1]
    p = (1.0 - smoothing) * attention + smoothing / n
    return -(p * np.log(p)).sum(-1)


def normalised_entropy(rows: np.ndarray, causal: bool = False) -> np.ndarray:
    """Mean over rows of H(row) / ln(keys the row can see): 1 = uniform, 0 = one token.

    An encoder's row sees all n tokens; a decoder's row i sees i + 1. Rows that see one token
    carry no information and are left out; an example with none of them gives 0."""
    n = rows.shape[-1]
    visible = np.arange(1, n + 1) if causal else np.full(n, n)
    keep = visible >= 2
    if not keep.any():
        return np.zeros(rows.shape[:-1])
    # Capped at 1: for a decoder, smoothing puts a little mass on keys the row cannot see.
    return np.minimum(rows[..., keep] / np.log(visible[keep]), 1.0).mean(-1)


def offset_profile(attention: np.ndarray) -> np.ndarray:
    """(1/n) Σ_i A[i, i+d] for d in -8..8: shape [layers, heads, 17]."""
    a = np.asarray(attention, dtype=np.float64)
    n = a.shape[-1]
    return np.stack(
        [np.diagonal(a, offset=d, axis1=-2, axis2=-1).sum(-1) / n for d in OFFSETS], axis=-1
    )


def label_head(means: dict[str, float]) -> str:
    """The pattern label of one head from its corpus means."""
    key = max(LABEL_METRICS, key=lambda k: (means[k], -list(LABEL_METRICS).index(k)))
    if means[key] >= LABEL_THRESHOLD:
        return LABEL_METRICS[key]
    return "broad" if means["entropy_norm"] >= BROAD_THRESHOLD else "mixed"


def label_strength(label: str, metrics: dict[str, np.ndarray]) -> np.ndarray:
    """Per-head score of how strongly one example shows a label's pattern."""
    for key, name in LABEL_METRICS.items():
        if name == label:
            return metrics[key]
    if label == "broad":
        return metrics["entropy_norm"]
    return 1.0 - metrics["entropy_norm"]  # mixed: where the head is most focused


# Example sentences shorter than this are shown only when too few longer ones exist.
MIN_EXAMPLE_TOKENS = 8


class HeadStats:
    """Streaming per-head means, offset profiles, example rankings and token pairs.

    Memory is fixed by the model's size and ``keep`` / ``pair_capacity``, not by the number of
    examples."""

    def __init__(
        self,
        layers: int,
        heads: int,
        causal: bool = False,
        keep: int = 3,
        pair_capacity: int = 200,
    ):
        self.layers, self.heads, self.causal = layers, heads, causal
        self.keep = keep
        self.count = 0
        self.tokens = 0
        self.sums = {key: np.zeros((layers, heads)) for key in METRICS}
        self.offsets = np.zeros((layers, heads, len(OFFSETS)))
        # One bounded heap per (label, head): the label is known only at the end.
        self._best: dict[str, list[list[tuple]]] = {
            label: [[] for _ in range(layers * heads)] for label in LABELS
        }
        self.pairs = [PairCounter(pair_capacity) for _ in range(layers * heads)]

    def add(self, record: Record) -> dict[str, np.ndarray]:
        """Fold one example in; return its per-head metrics."""
        metrics = example_metrics(
            record.attention, record.cls, record.sep, record.punct, self.causal
        )
        for key, value in metrics.items():
            self.sums[key] += value
        self.offsets += offset_profile(record.attention)
        self.count += 1
        self.tokens += record.n
        self._rank(record, metrics)
        self._count_pairs(record)
        return metrics

    def _rank(self, record: Record, metrics: dict[str, np.ndarray]) -> None:
        long_enough = record.n >= MIN_EXAMPLE_TOKENS
        for label, heaps in self._best.items():
            scores = label_strength(label, metrics).reshape(-1)
            for flat, heap in enumerate(heaps):
                item = (long_enough, float(scores[flat]), -record.index)
                if len(heap) < self.keep:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)

    def _count_pairs(self, record: Record) -> None:
        """Count (from → to) for each ordinary token and the token it attends to most, when that
        token is ordinary too (attention to special tokens has metrics of its own)."""
        ordinary = np.flatnonzero(~record.special)
        if len(ordinary) == 0:
            return
        targets = record.attention[:, :, ordinary, :].argmax(-1)  # [L, H, m]
        targets = targets.reshape(self.layers * self.heads, -1)
        tokens, special = record.tokens, record.special
        for flat, row in enumerate(targets):
            self.pairs[flat].update(
                (tokens[i], tokens[j])
                for i, j in zip(ordinary.tolist(), row.tolist(), strict=True)
                if not special[j]
            )

    def means(self) -> dict[str, np.ndarray]:
        """Corpus value of each metric: the plain mean over examples, [layers, heads]."""
        return {key: total / max(self.count, 1) for key, total in self.sums.items()}

    def offset_means(self) -> np.ndarray:
        return self.offsets / max(self.count, 1)

    def best_examples(self, label: str, flat: int) -> list[int]:
        """Corpus indices of the examples where head ``flat`` shows ``label`` most, best first."""
        return [-item[2] for item in sorted(self._best[label][flat], reverse=True)]


class PairCounter:
    """Frequent (from, to) token pairs in bounded memory (Misra-Gries summary).

    Counts of pairs seen fewer than ``capacity`` distinct times are exact; otherwise each count
    may be low by at most ``error``, which the site reports beside them."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.counts: Counter = Counter()
        self.error = 0
        self.total = 0

    def update(self, pairs) -> None:
        for pair in pairs:
            self.counts[pair] += 1
            self.total += 1
        if len(self.counts) > 2 * self.capacity:
            self._shrink()

    def _shrink(self) -> None:
        ranked = sorted(self.counts.values(), reverse=True)
        cut = ranked[self.capacity]
        self.error += cut
        self.counts = Counter({k: v - cut for k, v in self.counts.items() if v > cut})

    def top(self, k: int) -> list[tuple[tuple[str, str], int]]:
        """The k most frequent pairs, ties broken by the pair itself so output is stable."""
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
