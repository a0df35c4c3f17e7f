"""Frequent (from → to) token pairs of each head: for every ordinary token, the token it attends
to most, counted over the corpus in a bounded summary (docs/metrics.md, "Frequent token
pairs")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import ClassVar

import numpy as np

from ..model import Record
from .base import Analysis, Result, RunInfo

TOP_PAIRS = 10
PAIR_CAPACITY = 200


class PairCounter:
    """Frequent (from, to) token pairs in bounded memory (Misra-Gries summary).

    Counts of pairs seen fewer than ``capacity`` distinct times are exact; otherwise each count
    may be low by at most ``error``, which the site reports beside them. Keys are pairs, or
    codes of pairs that ``decode`` turns into pairs (so the hot loop counts plain ints)."""

    def __init__(self, capacity: int, decode: Callable[[Hashable], tuple] | None = None):
        self.capacity = capacity
        self.decode = decode
        self.counts: Counter = Counter()
        self.error = 0
        self.total = 0

    def update(self, pairs: Iterable[Hashable]) -> None:
        """Count each pair once; shrink when more than twice ``capacity`` pairs are held."""
        counts, total = self.counts, 0
        for pair in pairs:  # a plain loop: Counter.update costs more in its checks, per call
            counts[pair] = counts.get(pair, 0) + 1
            total += 1
        self.total += total
        if len(counts) > 2 * self.capacity:
            self._shrink()

    def _shrink(self) -> None:
        ranked = sorted(self.counts.values(), reverse=True)
        cut = ranked[self.capacity]
        self.error += cut
        self.counts = Counter({k: v - cut for k, v in self.counts.items() if v > cut})

    def top(self, k: int) -> list[tuple[tuple[str, str], int]]:
        """The k most frequent pairs, ties broken by the pair itself so output is stable."""
        decode = self.decode or (lambda key: key)
        items = [(decode(key), count) for key, count in self.counts.items()]
        return sorted(items, key=lambda kv: (-kv[1], kv[0]))[:k]


class TokenPairs(Analysis):
    """Each head's most frequent (token → the token it attends to most) pairs."""

    name = "pairs"
    sections: ClassVar[Mapping[str, str]] = {"head": "sections/pairs.html"}

    def __init__(self, capacity: int = PAIR_CAPACITY, top: int = TOP_PAIRS):
        self.capacity, self.top = capacity, top

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.codes: dict[str, int] = {}  # token -> its number, in order of first sight
        self.tokens: list[str] = []
        self.counters = [PairCounter(self.capacity, self._pair) for _ in range(run.size)]

    def _pair(self, code: int) -> tuple[str, str]:
        return self.tokens[code >> 32], self.tokens[code & 0xFFFFFFFF]

    def _numbers(self, tokens: list[str]) -> np.ndarray:
        """Each token's number; a pair (i, j) is counted as the int i·2³² + j."""
        for token in tokens:
            if token not in self.codes:
                self.codes[token] = len(self.tokens)
                self.tokens.append(token)
        return np.array([self.codes[t] for t in tokens], dtype=np.int64)

    def add(self, record: Record) -> None:
        """Count (from → to) for each ordinary token and the token it attends to most, when that
        token is ordinary too (attention to special tokens has metrics of its own)."""
        ordinary = np.flatnonzero(~record.special)
        if len(ordinary) == 0:
            return
        targets = record.attention.argmax(-1)[:, :, ordinary].reshape(self.run.size, -1)
        numbers = self._numbers(record.tokens)
        codes = (numbers[ordinary] << 32)[None, :] | numbers[targets]  # [K, m]
        counted = ~record.special[targets]
        kept = codes[counted].tolist()  # row by row: each head's pairs, one run after another
        ends = np.cumsum(counted.sum(1)).tolist()
        for counter, start, end in zip(self.counters, [0, *ends[:-1]], ends, strict=True):
            counter.update(kept[start:end])

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
