"""The sentences a head page shows: where the head's pattern is strongest.

A head's label is known only at the end, so one bounded heap per (label, head) is kept while the
records stream by; at the end each head takes the heap of its own label (docs/metrics.md,
"Example sentences of a head")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..model import Record
from .base import Analysis, Result, RunInfo
from .measures import PATTERNS, label_strength, layer_metrics, pattern, record_metrics

if TYPE_CHECKING:
    from ..result import Atlas

EXAMPLES_PER_HEAD = 3
# Example sentences shorter than this are shown only when too few longer ones exist.
MIN_EXAMPLE_TOKENS = 8


class ExampleSentences(Analysis):
    """For each head, the ``keep`` sentences where its label's pattern is strongest."""

    name = "examples"
    requires = ("heads",)  # a head's examples show its label's pattern
    sections: ClassVar[Mapping[str, str]] = {"head": "sections/examples.html"}

    def __init__(self, keep: int = EXAMPLES_PER_HEAD):
        self.keep = keep

    def start(self, run: RunInfo) -> None:
        super().start(run)
        # The kept items of each (label, head, slot), compared as the tuple (long enough, score,
        # -index); an empty slot is below every real item, so the worst slot is replaced first.
        shape = (len(PATTERNS), run.size, self.keep)
        self._long = np.full(shape, -1, dtype=np.int64)
        self._score = np.full(shape, -np.inf)
        self._order = np.full(shape, np.iinfo(np.int64).min, dtype=np.int64)
        self._worst_slots: np.ndarray | None = None  # ``_worst``

    def add_layer(self, record: Record, layer: int, attention: np.ndarray) -> None:
        layer_metrics(record, layer, attention, self.run)

    def add(self, record: Record) -> None:
        """Replace the worst kept item of every (label, head) that this example beats (a
        streaming top-k for all heads at once: the same items as a heap per head)."""
        metrics = record_metrics(record, self.run)
        scores = np.stack(
            [np.asarray(label_strength(label, metrics), float).reshape(-1) for label in PATTERNS]
        )  # [labels, K]; NaN: the example does not define this pattern
        long, order = int(record.n >= MIN_EXAMPLE_TOKENS), -record.index
        worst = self._worst()
        kept_long, kept_score, kept_order = (
            np.take_along_axis(x, worst, -1)[..., 0] for x in (self._long, self._score, self._order)
        )
        beats = (long > kept_long) | (
            (long == kept_long)
            & ((scores > kept_score) | ((scores == kept_score) & (order > kept_order)))
        )
        labels, heads = np.nonzero(beats & ~np.isnan(scores))
        slots = worst[labels, heads, 0]
        self._long[labels, heads, slots] = long
        self._score[labels, heads, slots] = scores[labels, heads]
        self._order[labels, heads, slots] = order
        if len(labels):  # the worst slot of the (label, head)s that changed, found again
            worst[labels, heads] = self._lowest(labels, heads)

    def _worst(self) -> np.ndarray:
        """The slot of the worst kept item of each (label, head), [labels, K, 1]: found once,
        then kept up to date by ``add`` for what changed (a sort of every slot per record was
        most of the analysis's time; late in a corpus few (label, head)s change)."""
        if self._worst_slots is None:
            keys = (self._order, self._score, self._long)
            self._worst_slots = np.lexsort(keys, axis=-1)[..., :1]
        return self._worst_slots

    def _lowest(self, labels: np.ndarray, heads: np.ndarray) -> np.ndarray:
        """The worst slot of each (label, head) given, [m, 1], as ``_worst`` finds it."""
        kept = (self._order[labels, heads], self._score[labels, heads], self._long[labels, heads])
        return np.lexsort(kept, axis=-1)[..., :1]

    def state(self) -> dict:
        return {"long": self._long, "score": self._score, "order": self._order}

    def load_state(self, state) -> None:
        self._long = np.array(state["long"], np.int64)
        self._score = np.array(state["score"], np.float64)
        self._order = np.array(state["order"], np.int64)
        self._worst_slots = None

    def merge(self, other: ExampleSentences) -> None:
        """The ``keep`` best of both parts' kept items: items are ordered by (long enough,
        score, -index), a total order, so the top ``keep`` of a corpus do not depend on its
        split."""
        both = [np.concatenate([a, b], -1) for a, b in
                ((self._long, other._long), (self._score, other._score),
                 (self._order, other._order))]  # fmt: skip
        top = np.lexsort((both[2], both[1], both[0]), axis=-1)[..., -self.keep :]
        self._long, self._score, self._order = (np.take_along_axis(x, top, -1) for x in both)
        self._worst_slots = None

    def best(self, label: str, flat: int) -> list[int]:
        """Corpus indices of the examples where head ``flat`` shows ``label`` most, best first."""
        row = PATTERNS.index(pattern(label))
        items = zip(
            self._long[row, flat].tolist(),
            self._score[row, flat].tolist(),
            self._order[row, flat].tolist(),
            strict=True,
        )
        return [-order for long, _, order in sorted(items, reverse=True) if long >= 0]

    def finish(self, results: Mapping[str, Result]) -> Result:
        labels = results["heads"].parts["label"]
        examples = [self.best(label, flat) for flat, label in enumerate(labels)]
        return Result(parts={"examples": examples}, figures=example_heads(examples))

    @classmethod
    def figures(cls, atlas: Atlas) -> dict[int, set[int]]:
        """Each head page draws its examples' attention."""
        return example_heads([h.parts.get("examples", ()) for h in atlas.heads])


def example_heads(examples: Sequence[Sequence[int]]) -> dict[int, set[int]]:
    """Sentence index -> the heads (flat) whose pages draw it, from each head's examples."""
    figures: dict[int, set[int]] = {}
    for flat, indices in enumerate(examples):
        for index in indices:
            figures.setdefault(index, set()).add(flat)
    return figures
