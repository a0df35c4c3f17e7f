"""The sentences a head page shows: where the head's pattern is strongest.

A head's label is known only at the end, so one bounded heap per (label, head) is kept while the
records stream by; at the end each head takes the heap of its own label (docs/metrics.md,
"Example sentences of a head")."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from ..model import Record
from .base import Analysis, Result, RunInfo
from .heads import LABELS, label_strength, record_metrics

EXAMPLES_PER_HEAD = 3
# Example sentences shorter than this are shown only when too few longer ones exist.
MIN_EXAMPLE_TOKENS = 8


class ExampleSentences(Analysis):
    """For each head, the ``keep`` sentences where its label's pattern is strongest."""

    name = "examples"
    sections: ClassVar[Mapping[str, str]] = {"head": "sections/examples.html"}

    def __init__(self, keep: int = EXAMPLES_PER_HEAD):
        self.keep = keep

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self._best: dict[str, list[list[tuple]]] = {
            label: [[] for _ in range(run.size)] for label in LABELS
        }

    def add(self, record: Record) -> None:
        metrics = record_metrics(record, self.run.causal)
        long_enough = record.n >= MIN_EXAMPLE_TOKENS
        for label, heaps in self._best.items():
            scores = np.asarray(label_strength(label, metrics)).reshape(-1)
            for flat, heap in enumerate(heaps):
                score = float(scores[flat])
                if score != score:  # NaN: the example does not define this pattern
                    continue
                item = (long_enough, score, -record.index)
                if len(heap) < self.keep:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)

    def best(self, label: str, flat: int) -> list[int]:
        """Corpus indices of the examples where head ``flat`` shows ``label`` most, best first."""
        return [-item[2] for item in sorted(self._best[label][flat], reverse=True)]

    def finish(self, results: Mapping[str, Result]) -> Result:
        labels = results["heads"].parts["label"]
        examples = [self.best(label, flat) for flat, label in enumerate(labels)]
        figures: dict[int, set[int]] = {}
        for flat, indices in enumerate(examples):
            for index in indices:
                figures.setdefault(index, set()).add(flat)
        return Result(parts={"examples": examples}, figures=figures)
