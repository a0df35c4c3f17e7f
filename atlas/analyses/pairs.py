"""Frequent (from → to) token pairs of each head: for every ordinary token, the token it attends
to most, counted over the corpus in a bounded summary (docs/metrics.md, "Frequent token
pairs")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from ..model import Record
from .base import Analysis, Result, RunInfo

TOP_PAIRS = 10
PAIR_CAPACITY = 200


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


class TokenPairs(Analysis):
    """Each head's most frequent (token → the token it attends to most) pairs."""

    name = "pairs"
    sections: ClassVar[Mapping[str, str]] = {"head": "sections/pairs.html"}

    def __init__(self, capacity: int = PAIR_CAPACITY, top: int = TOP_PAIRS):
        self.capacity, self.top = capacity, top

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.counters = [PairCounter(self.capacity) for _ in range(run.size)]

    def add(self, record: Record) -> None:
        """Count (from → to) for each ordinary token and the token it attends to most, when that
        token is ordinary too (attention to special tokens has metrics of its own)."""
        ordinary = np.flatnonzero(~record.special)
        if len(ordinary) == 0:
            return
        targets = record.attention[:, :, ordinary, :].argmax(-1)  # [L, H, m]
        targets = targets.reshape(self.run.size, -1)
        tokens, special = record.tokens, record.special
        for flat, row in enumerate(targets):
            self.counters[flat].update(
                (tokens[i], tokens[j])
                for i, j in zip(ordinary.tolist(), row.tolist(), strict=True)
                if not special[j]
            )

    def finish(self, results) -> Result:
        return Result(
            parts={
                "pairs": [
                    [{"source": a, "target": b, "count": c} for (a, b), c in counter.top(self.top)]
                    for counter in self.counters
                ],
                "pairs_error": [counter.error for counter in self.counters],
            }
        )
