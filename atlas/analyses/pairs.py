"""Frequent (from → to) word pairs of each head: for every ordinary word, the other word it
attends to most (word level, Clark et al. 2019 §4.1), counted over word types (lower-cased),
exactly for corpora of up to ``EXACT_SENTENCES`` sentences and in a bounded summary beyond
(docs/metrics.md, "Frequent word pairs").

Counts live in numpy arrays, not dicts: a pair is one int64 code (group · 2⁴⁸ + from · 2²⁴ +
to, where a group is a head, or the last group, which counts each word type's occurrences),
and the codes are kept sorted and unique with their counts, new codes merged in by the batch.
An exact count costs 12 bytes per distinct (head, from, to) (an int64 code, an int32 count:
10,000 sentences of at most 512 tokens cannot reach 2³¹); a dict would cost about five times that
(docs/performance.md, "Word pairs").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from ..model import Record
from ..result import Atlas, Head
from .base import Analysis, Result, RunInfo
from .measures import attended_units, by_heads
from .words import layer_units, record_units, word_level

TOP_PAIRS = 10
EXACT_SENTENCES = 10_000  # corpora up to this many sentences are counted exactly
PAIR_CAPACITY = 1000  # past EXACT_SENTENCES: the counters each group keeps (Misra-Gries)
BUFFER = 1 << 18  # new codes held (at least) before they are merged into the counts
TYPE_BITS = 24  # a word type's number takes 24 bits of a code
GROUP_SHIFT = 2 * TYPE_BITS
TYPE_MASK = (1 << TYPE_BITS) - 1
GC_TYPES = 1 << 16  # past EXACT_SENTENCES, the type table is pruned when it is larger than this


class GroupCounts:
    """Counts of int64 codes in groups (code >> GROUP_SHIFT), exact until ``summarise`` is
    called; after that a Misra-Gries summary of ``capacity`` counters per group, whose counts
    may each be low by at most ``error[group]`` (a group holding more than 2·capacity codes
    loses its (capacity+1)-th largest count from every count, which is added to its error).

    Each group has its own sorted arrays, so a merge copies one group at a time: the memory a
    merge needs beyond the counts is one group's arrays and the pending codes, which are at
    most an eighth of the counts (or ``buffer``)."""

    def __init__(self, groups: int, capacity: int, buffer: int = BUFFER):
        self.groups, self.capacity, self.buffer = groups, capacity, buffer
        self.keys = [np.empty(0, np.int64) for _ in range(groups)]  # sorted, unique
        self.counts = [np.empty(0, np.int32) for _ in range(groups)]  # int64 once a summary
        self.pending: list[np.ndarray] = []
        self.held = 0
        self.size = 0  # codes counted, in all groups
        self.error = np.zeros(groups, np.int64)
        self.summary = False

    def add(self, codes: np.ndarray) -> None:
        self.pending.append(codes)
        self.held += len(codes)
        # exact counts merge less often as they grow, so merging costs O(codes) in all
        if self.held >= max(self.buffer, 0 if self.summary else self.size // 8):
            self.merge()

    def merge(self) -> None:
        """Fold the pending codes into each group's sorted counts (then shrink, in a summary)."""
        if self.pending:
            new, counts = np.unique(np.concatenate(self.pending), return_counts=True)
            self.pending, self.held = [], 0
            bounds = np.searchsorted(new >> GROUP_SHIFT, np.arange(self.groups + 1))
            for group in np.flatnonzero(np.diff(bounds)).tolist():
                lo, hi = bounds[group], bounds[group + 1]
                self._merge(group, new[lo:hi], counts[lo:hi])
        if self.summary:
            for group in range(self.groups):
                self._shrink(group)
        self.size = sum(len(k) for k in self.keys)

    def _merge(self, group: int, new: np.ndarray, counts: np.ndarray) -> None:
        keys = self.keys[group]
        at = np.searchsorted(keys, new)
        found = at < len(keys)
        found[found] = keys[at[found]] == new[found]
        self.counts[group][at[found]] += counts[found]
        self.keys[group] = np.insert(keys, at[~found], new[~found])
        self.counts[group] = np.insert(self.counts[group], at[~found], counts[~found])

    def summarise(self) -> None:
        """From now on, keep a bounded summary (counts in int64; shrunk group by group, so
        that only one group's counts are ever copied at a time)."""
        self.merge()
        for group in range(self.groups):
            self.counts[group] = self.counts[group].astype(np.int64)
            self._shrink(group)
        self.summary = True
        self.size = sum(len(k) for k in self.keys)

    def _shrink(self, group: int) -> None:
        counts = self.counts[group]
        if len(counts) <= 2 * self.capacity:
            return
        rank = len(counts) - self.capacity - 1  # the (capacity+1)-th largest, ascending
        cut = int(np.partition(counts, rank)[rank])
        counts -= cut
        keep = counts > 0
        self.keys[group], self.counts[group] = self.keys[group][keep], counts[keep]
        self.error[group] += cut

    def group(self, group: int) -> tuple[np.ndarray, np.ndarray]:
        """(codes, counts) of one group, after a merge."""
        return self.keys[group], self.counts[group]

    def renumber(self, new_of_old: np.ndarray) -> None:
        """Map the type numbers inside every code through ``new_of_old`` (after a merge)."""
        for group, keys in enumerate(self.keys):
            source = new_of_old[(keys >> TYPE_BITS) & TYPE_MASK]
            target = new_of_old[keys & TYPE_MASK]
            keys = (np.int64(group) << GROUP_SHIFT) | (source << TYPE_BITS) | target
            order = np.argsort(keys, kind="stable")
            self.keys[group], self.counts[group] = keys[order], self.counts[group][order]

    @property
    def nbytes(self) -> int:
        held = sum(k.nbytes + c.nbytes for k, c in zip(self.keys, self.counts, strict=True))
        return held + sum(p.nbytes for p in self.pending)


class WordPairs(Analysis):
    """Each head's most frequent (word → the other word it attends to most) pairs."""

    name = "pairs"
    sections: ClassVar[Mapping[str, str]] = {"head": "sections/pairs.html"}

    @classmethod
    def summary(cls, atlas: Atlas, head: Head) -> list[tuple[int, str]]:
        line = pairs_line(head)
        return [(50, line)] if line else []

    def __init__(
        self,
        exact_sentences: int = EXACT_SENTENCES,
        capacity: int = PAIR_CAPACITY,
        top: int = TOP_PAIRS,
        buffer: int = BUFFER,
    ):
        self.exact_sentences, self.capacity, self.top = exact_sentences, capacity, top
        self.buffer = buffer

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.types: dict[str, int] = {}  # word type -> its number, in order of first sight
        self.names: list[str] = []
        # one group per head, then one for the occurrences of each type (as a from-word)
        self.counts = GroupCounts(run.size + 1, self.capacity, self.buffer)
        self.sentences = 0

    def _numbers(self, words: list[str]) -> np.ndarray:
        """Each word's type number (its lower-cased form)."""
        numbers = np.empty(len(words), np.int64)
        for position, word in enumerate(words):
            key = word.lower()
            number = self.types.get(key)
            if number is None:
                number = self.types[key] = len(self.names)
                self.names.append(key)
            numbers[position] = number
        if len(self.names) > TYPE_MASK:
            raise OverflowError("more word types than a pair code holds")  # not reachable
        return numbers

    def add_layer(self, record: Record, layer: int, attention: np.ndarray) -> None:
        """Each ordinary word's most attended other ordinary word, for this layer's heads: kept
        for ``add`` as unit numbers [layers · heads, words] (a few bytes per word)."""
        _, unit_word, _ = record_units(record)
        ordinary = unit_word >= 0
        if ordinary.sum() < 2:
            return
        units = np.flatnonzero(ordinary)
        # a causal model's first word can attend to no other word: it has no pair
        sources = units[1:] if self.run.causal else units
        shape = (self.run.layers, self.run.heads, len(sources))
        targets = record.stash(self.name, lambda: np.empty(shape, np.int64))
        _, _, unit_of = record_units(record)

        def most(part: np.ndarray) -> np.ndarray:
            # the whole layer's unit attention is shared (syntax reads it too); a long
            # example's layer is taken a few heads at a time, each group's on its own
            whole = part is attention
            units = layer_units(record, layer, part) if whole else word_level(part, unit_of)
            return attended_units(units, ordinary)

        targets[layer] = by_heads(attention, most)[:, sources]

    def add(self, record: Record) -> None:
        """Count (from → to) for each ordinary word and the other ordinary word it attends to
        most; special-token units are neither (they have metrics of their own). In a causal
        model the first word is not a from-word (it sees no other word)."""
        self.sentences += 1
        words, unit_word, _ = record_units(record)
        ordinary = unit_word >= 0
        if ordinary.sum() >= 2:
            k = self.run.size
            units = np.flatnonzero(ordinary)
            number = np.zeros(len(unit_word), np.int64)
            number[units] = self._numbers([words[w] for w in unit_word[units]])
            sources = units[1:] if self.run.causal else units
            targets = record.stash(self.name).reshape(k, len(sources))  # [K, m]
            source = number[sources] << TYPE_BITS
            heads = np.arange(k + 1, dtype=np.int64)[:, None] << GROUP_SHIFT
            codes = heads[:k] | source | number[targets]
            occurrences = heads[k] | source | number[sources]
            self.counts.add(np.concatenate([codes.ravel(), occurrences]))
        if self.sentences == self.exact_sentences + 1:  # the corpus is larger: from now on
            self.counts.summarise()
        if self.counts.summary and not self.counts.pending:
            self._prune_types()

    def _prune_types(self) -> None:
        """In a summary, forget the types no count refers to any more, so that the table of
        types stays bounded too."""
        if len(self.names) <= GC_TYPES:
            return
        keys = np.concatenate(self.counts.keys)
        used = np.unique(np.concatenate([(keys >> TYPE_BITS) & TYPE_MASK, keys & TYPE_MASK]))
        if len(self.names) <= 2 * len(used):
            return
        new_of_old = np.zeros(len(self.names), np.int64)
        new_of_old[used] = np.arange(len(used))
        self.counts.renumber(new_of_old)
        self.names = [self.names[i] for i in used.tolist()]
        self.types = {name: i for i, name in enumerate(self.names)}

    def state(self) -> dict:
        self.counts.merge()
        return {
            "names": self.names,
            "keys": self.counts.keys,
            "counts": self.counts.counts,
            "error": self.counts.error,
            "summary": self.counts.summary,
            "sentences": self.sentences,
        }

    def load_state(self, state) -> None:
        self.names = list(state["names"])
        self.types = {name: i for i, name in enumerate(self.names)}
        self.counts.keys = [np.asarray(k, np.int64) for k in state["keys"]]
        self.counts.counts = list(state["counts"])
        self.counts.error = np.asarray(state["error"], np.int64)
        self.counts.summary = bool(state["summary"])
        self.counts.size = sum(len(k) for k in self.counts.keys)
        self.sentences = int(state["sentences"])

    def merge(self, other: WordPairs) -> None:
        """Add the other part's counts (its word types renumbered into this table, new ones
        after, as a one-pass run first sees them). Exact counts add exactly: a corpus of up to
        ``exact_sentences`` sentences merges to its one-pass counts. Past that, the two parts'
        Misra-Gries summaries are added and shrunk (Agarwal et al. 2012, "Mergeable
        summaries"): the same error bound, but not the counts one pass would give."""
        self.counts.merge()
        other.counts.merge()
        numbers = self._numbers(other.names)
        for group in range(self.counts.groups):
            keys, counts = other.counts.group(group)
            source, target = numbers[(keys >> TYPE_BITS) & TYPE_MASK], numbers[keys & TYPE_MASK]
            codes = (np.int64(group) << GROUP_SHIFT) | (source << TYPE_BITS) | target
            order = np.argsort(codes, kind="stable")
            self.counts._merge(group, codes[order], counts[order])
        self.counts.error += other.counts.error
        self.sentences += other.sentences
        self.counts.size = sum(len(k) for k in self.counts.keys)
        if other.counts.summary or self.sentences > self.exact_sentences:
            self.counts.summarise()

    def finish(self, results) -> Result:
        self.counts.merge()
        k = self.run.size
        codes, counts = self.counts.group(k)
        occurrences = dict(
            zip((codes >> TYPE_BITS & TYPE_MASK).tolist(), counts.tolist(), strict=True)
        )
        pairs = []
        for head in range(k):
            codes, counts = self.counts.group(head)
            if len(counts) > self.top:  # the candidates: every code tied with the top-th
                floor = np.partition(counts, len(counts) - self.top)[len(counts) - self.top]
                codes, counts = codes[counts >= floor], counts[counts >= floor]
            rows = []
            for code, count in zip(codes.tolist(), counts.tolist(), strict=True):
                source, target = code >> TYPE_BITS & TYPE_MASK, code & TYPE_MASK
                rows.append((-count, self.names[source], self.names[target], source))
            rows.sort()
            pairs.append(
                [
                    {"source": a, "target": b, "count": -c, "source_count": occurrences.get(s)}
                    for c, a, b, s in rows[: self.top]
                ]
            )
        return Result(
            parts={"pairs": pairs},
            data={
                "exact_sentences": self.exact_sentences,
                "summary": self.counts.summary,
                "error": int(self.counts.error.max()),
            },
        )


SUMMARY_PAIRS = 2  # word pairs named in the summary
MIN_PAIR_SOURCE = 5  # a pair whose from-word occurs fewer times is not named: too few to say


def pairs_line(head: Head) -> str | None:
    """Its most frequent word pairs whose from-word is common enough to say (None: none)."""
    pairs = [
        p for p in head.parts.get("pairs", []) if (p.get("source_count") or 0) >= MIN_PAIR_SOURCE
    ][:SUMMARY_PAIRS]
    if not pairs:
        return None
    return (
        "Most frequent word pairs: "
        + "; ".join(
            f"“{p['source']}” → “{p['target']}” ({p['count']} of {p['source_count']})"
            for p in pairs
        )
        + "."
    )
