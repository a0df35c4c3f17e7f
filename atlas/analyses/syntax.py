"""Which heads track which dependency relation (Clark et al. 2019, §4.2 and §6; Htut et al. 2019).

For sentences whose gold trees are known (CoNLL-U input, or JSONL with "heads"), at word level
(analyses/words.py):

- dependency accuracy of a head for relation r, dependent → head: the share of dependents of r
  whose most-attended other word is their gold head (special-token units and the word itself
  left out); head → dependent: the same on the transposed map (the word that attends most to
  the dependent), as Clark et al.'s code does;
- the baseline: the best fixed offset in −3..+3 (0 left out), clamped at the sentence's ends;
- UUAS of the maximum spanning tree of each head's symmetrised word-level attention, beside the
  UUAS of a right-branching tree;
- Clark §6's attention-only probe: a logistic regression over every head's attention in both
  directions plus offset features, predicting each word's head, trained on three quarters of
  the sentences and scored on the rest.

Formulas: docs/metrics.md, "Syntax". Memory is bounded: counts per relation and head, a few
example sentences per relation and head, and a capped sample for the probe.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from .. import contract
from ..model import Record
from .base import Analysis, Column, Result, RunInfo
from .words import record_words

BASELINE_OFFSETS = (-3, -2, -1, 1, 2, 3)
MIN_RELATION = 20
ALL = "all"
DIRECTIONS = ("dependent → head", "head → dependent")
EXAMPLES = 2  # example sentences kept per relation, head, direction, and right or wrong
TOP_RELATIONS = 5  # relations listed on a head page
# The probe: every TEST_EVERY-th sentence is held out for scoring; the sample is capped.
TEST_EVERY = 4
PROBE_TRAIN_WORDS = 8000
PROBE_TEST_WORDS = 4000
PROBE_NEGATIVES = 8  # candidate heads sampled per training word, besides the gold one
PROBE_SEED = 0
OFFSET_BUCKETS = (-4, -3, -2, -1, 1, 2, 3, 4)  # ≤ −4, −3, ..., +3, ≥ +4


def relation_of(deprel: str) -> str:
    """The relation a table groups by: the part before the colon (nmod:poss -> nmod)."""
    return deprel.split(":", 1)[0]


def predictions(attention: np.ndarray, words: np.ndarray) -> np.ndarray:
    """For each unit, the unit it attends to most among word units other than itself:
    argmax over [..., u, u] rows with special-token units and the diagonal masked."""
    scores = np.array(attention, dtype=np.float64)
    scores[..., ~words] = -np.inf
    u = scores.shape[-1]
    scores[..., np.arange(u), np.arange(u)] = -np.inf
    return scores.argmax(-1)


def offset_heads(count: int, offset: int) -> np.ndarray:
    """The baseline's predicted head of each word: the word ``offset`` away, clamped to the
    sentence (as in Clark et al.'s code)."""
    return np.clip(np.arange(count) + offset, 0, count - 1)


def spanning_trees(weights: np.ndarray) -> np.ndarray:
    """Maximum spanning trees of symmetric [K, p, p] weights, one per k, by Prim's algorithm
    run on all K at once: [K, p - 1, 2] edges (child, parent), ties to the lower index."""
    k, p, _ = weights.shape
    rows = np.arange(k)
    inside = np.zeros((k, p), bool)
    inside[:, 0] = True
    best = weights[:, 0, :].copy()
    parent = np.zeros((k, p), np.int64)
    edges = np.zeros((k, max(p - 1, 0), 2), np.int64)
    for step in range(p - 1):
        chosen = np.where(inside, -np.inf, best).argmax(-1)
        edges[:, step, 0] = chosen
        edges[:, step, 1] = parent[rows, chosen]
        inside[rows, chosen] = True
        closer = weights[rows, chosen, :] > best
        best = np.where(closer, weights[rows, chosen, :], best)
        parent = np.where(closer, chosen[:, None], parent)
    return edges


def tree_hits(edges: np.ndarray, gold: set[tuple[int, int]]) -> np.ndarray:
    """How many of each tree's undirected edges are gold edges: [K]."""
    if not gold or edges.shape[1] == 0:
        return np.zeros(edges.shape[0], np.int64)
    low, high = np.minimum(edges[..., 0], edges[..., 1]), np.maximum(edges[..., 0], edges[..., 1])
    p = int(edges.max()) + 1
    gold_codes = np.array([a * p + b for a, b in gold if max(a, b) < p])
    return np.isin(low * p + high, gold_codes).sum(-1)


def offset_features(distance: np.ndarray) -> np.ndarray:
    """One-hot bucket of (candidate − word) position: ≤ −4, −3, −2, −1, +1, +2, +3, ≥ +4."""
    clipped = np.clip(distance, OFFSET_BUCKETS[0], OFFSET_BUCKETS[-1])
    return (clipped[:, None] == np.array(OFFSET_BUCKETS)[None, :]).astype(np.float32)


class Syntax(Analysis):
    """Dependency accuracy per head, relation and direction; MST UUAS; the attention probe."""

    name = "syntax"
    sections: ClassVar[Mapping[str, str]] = {"head": "sections/syntax-head.html"}

    def __init__(self, min_relation: int = MIN_RELATION):
        self.min_relation = min_relation

    def start(self, run: RunInfo) -> None:
        super().start(run)
        k = run.size
        self.count: Counter = Counter()
        self.subtypes: dict[str, Counter] = defaultdict(Counter)
        self.right = defaultdict(lambda: np.zeros((2, k), np.int64))  # [direction, head]
        self.baseline = defaultdict(lambda: np.zeros(len(BASELINE_OFFSETS), np.int64))
        self.examples = defaultdict(lambda: np.full((2, 2, k, EXAMPLES), -1, np.int64))
        self.tree_right, self.tree_edges, self.branching = np.zeros(k, np.int64), 0, 0
        self.sentences = 0
        self.test_right = np.zeros(k, np.int64)
        self.test_dependents = 0
        self.test_baseline = np.zeros(len(BASELINE_OFFSETS), np.int64)
        self.train: list[tuple[np.ndarray, np.ndarray]] = []  # (features, is gold head)
        self.test: list[tuple[np.ndarray, int]] = []  # (features of every candidate, gold row)
        self.train_words = self.test_words = 0
        self.rng = np.random.default_rng(PROBE_SEED)

    def add(self, record: Record) -> None:
        if record.heads is None or record.word_of is None:
            return
        _, unit_word, attention = record_words(record)
        attention = attention.reshape(self.run.size, *attention.shape[-2:])
        unit_for = {int(w): u for u, w in enumerate(unit_word) if w >= 0}
        heads = np.asarray(record.heads)
        deps = [
            d
            for d in range(len(heads))
            if heads[d] >= 0 and d in unit_for and int(heads[d]) in unit_for
        ]
        if not deps:
            return
        self.sentences += 1
        is_word = unit_word >= 0
        forward = predictions(attention, is_word)  # [K, u]
        backward = predictions(attention.transpose(0, 2, 1), is_word)
        dep_units = np.array([unit_for[d] for d in deps])
        head_units = np.array([unit_for[int(heads[d])] for d in deps])
        right = np.stack([forward[:, dep_units], backward[:, dep_units]]) == head_units  # [2,K,D]
        relations = [relation_of(record.deprels[d]) for d in deps]
        baseline = np.stack(
            [offset_heads(len(heads), o)[deps] == heads[deps] for o in BASELINE_OFFSETS]
        )  # [offsets, D]
        for relation in (*sorted(set(relations)), ALL):
            mask = np.array([relation in (r, ALL) for r in relations])
            self.count[relation] += int(mask.sum())
            self.right[relation] += right[:, :, mask].sum(-1)
            self.baseline[relation] += baseline[:, mask].sum(-1)
            self._remember(relation, record.index, right[:, :, mask])
        for d in deps:
            self.subtypes[relation_of(record.deprels[d])][record.deprels[d]] += 1
        self._trees(attention, unit_word, heads)
        self._probe(record.index, attention, unit_word, unit_for, deps, heads, right[0])

    def _remember(self, relation: str, index: int, right: np.ndarray) -> None:
        """Keep up to EXAMPLES sentences per (direction, right or wrong, head)."""
        slots = self.examples[relation]  # [direction, wrong?, K, EXAMPLES]
        for direction in range(2):
            outcomes = (right[direction].any(-1), (~right[direction]).any(-1))
            for wrong, happened in enumerate(outcomes):
                free = (slots[direction, wrong] < 0).argmax(-1)
                room = (slots[direction, wrong] < 0).any(-1) & happened
                heads = np.flatnonzero(room)
                slots[direction, wrong, heads, free[heads]] = index

    def _trees(self, attention: np.ndarray, unit_word: np.ndarray, heads: np.ndarray) -> None:
        """UUAS of each head's maximum spanning tree over the words present, and of the
        right-branching tree."""
        present = np.flatnonzero(unit_word >= 0)
        position = {int(unit_word[u]): i for i, u in enumerate(present)}
        gold = {
            (min(position[d], position[int(h)]), max(position[d], position[int(h)]))
            for d, h in enumerate(heads)
            if h >= 0 and d in position and int(h) in position
        }
        words = attention[:, present][:, :, present]
        hits = tree_hits(spanning_trees(words + words.transpose(0, 2, 1)), gold)
        self.tree_right += hits
        self.tree_edges += len(gold)
        self.branching += sum(b - a == 1 for a, b in gold)

    def _probe(self, index, attention, unit_word, unit_for, deps, heads, right) -> None:
        """Features of (word, candidate head) pairs for the probe; bounded samples."""
        held_out = index % TEST_EVERY == TEST_EVERY - 1
        if held_out:
            self.test_dependents += len(deps)
            self.test_right += right.sum(-1)
            for i, offset in enumerate(BASELINE_OFFSETS):
                hits = offset_heads(len(heads), offset)[deps] == heads[deps]
                self.test_baseline[i] += int(hits.sum())
        words = sorted(unit_for)
        for d in deps:
            if held_out and self.test_words >= PROBE_TEST_WORDS:
                return
            if not held_out and self.train_words >= PROBE_TRAIN_WORDS:
                return
            candidates = np.array([w for w in words if w != d])
            features = self._features(attention, unit_for, d, candidates)
            gold = candidates == heads[d]
            if held_out:
                self.test.append((features, int(np.flatnonzero(gold)[0])))
                self.test_words += 1
            else:
                negatives = np.flatnonzero(~gold)
                keep = self.rng.permutation(negatives)[:PROBE_NEGATIVES]
                rows = np.concatenate([np.flatnonzero(gold), keep])
                self.train.append((features[rows], gold[rows]))
                self.train_words += 1

    def _features(self, attention, unit_for, word, candidates) -> np.ndarray:
        u = unit_for[word]
        v = np.array([unit_for[int(c)] for c in candidates])
        return np.concatenate(
            [attention[:, u, v].T, attention[:, v, u].T, offset_features(candidates - word)],
            axis=1,
        ).astype(np.float32)

    def finish(self, results) -> Result:
        if not self.count[ALL]:
            return Result()
        k = self.run.size
        names = contract.head_names(self.run.layers, self.run.heads)
        shown = [r for r, c in self.count.most_common() if r != ALL and c >= self.min_relation]
        rows = [self._row(r, names) for r in (*shown, ALL)]
        accuracy = {r: (self.right[r] / self.count[r]) for r in (*shown, ALL)}
        wanted = {i for row in rows for side in ("right", "wrong") for i in row[side]}
        columns = {
            "dep_to_head": accuracy[ALL][0],
            "head_to_dep": accuracy[ALL][1],
            "uuas": self.tree_right / max(self.tree_edges, 1),
        }
        return Result(
            catalogue=COLUMNS,
            columns={key: value.tolist() for key, value in columns.items()},
            parts={"syntax": [self._head_relations(f, shown, accuracy) for f in range(k)]},
            data={
                "sentences": self.sentences,
                "dependents": self.count[ALL],
                "min_relation": self.min_relation,
                "relations": rows,
                "matrix": {r: accuracy[r].max(0).tolist() for r in shown},
                "right_branching_uuas": self.branching / max(self.tree_edges, 1),
                "probe": self._fit_probe(names),
            },
            wanted=wanted,
            pages={"syntax.html": {"template": "syntax.html", "title": "Syntax"}},
        )

    def _row(self, relation: str, names: list[str]) -> dict:
        count = self.count[relation]
        accuracy = self.right[relation] / count  # [2, K]
        direction, flat = np.unravel_index(int(accuracy.argmax()), accuracy.shape)
        base = self.baseline[relation] / count
        best_offset = int(base.argmax())
        slots = self.examples[relation][direction]
        return {
            "relation": relation,
            "count": count,
            "subtypes": dict(sorted(self.subtypes[relation].items())) if relation != ALL else {},
            "head": names[flat],
            "direction": DIRECTIONS[direction],
            "accuracy": float(accuracy[direction, flat]),
            "baseline_offset": BASELINE_OFFSETS[best_offset],
            "baseline_accuracy": float(base[best_offset]),
            "right": [int(i) for i in slots[0, flat] if i >= 0],
            "wrong": [int(i) for i in slots[1, flat] if i >= 0],
        }

    def _head_relations(self, flat: int, shown: list[str], accuracy: dict) -> list[dict]:
        """The relations this head tracks best, each against its baseline."""
        rows = []
        for relation in shown:
            direction = int(accuracy[relation][:, flat].argmax())
            base = float((self.baseline[relation] / self.count[relation]).max())
            value = float(accuracy[relation][direction, flat])
            rows.append(
                {
                    "relation": relation,
                    "direction": DIRECTIONS[direction],
                    "accuracy": value,
                    "baseline": base,
                }
            )
        rows.sort(key=lambda r: (-(r["accuracy"] - r["baseline"]), r["relation"]))
        return rows[:TOP_RELATIONS]

    def _fit_probe(self, names: list[str]) -> dict:
        """Train the attention-only probe and score it on the held-out words (UAS), beside the
        best single head and the best offset on the same words."""
        if not self.train or not self.test:
            return {"available": False, "note": "too few sentences with trees for a probe"}
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = np.concatenate([f for f, _ in self.train])
        y = np.concatenate([g for _, g in self.train])
        if y.all() or not y.any():
            return {"available": False, "note": "the training sample has one class only"}
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        probe.fit(x, y)
        hits = sum(int(probe.decision_function(f).argmax() == gold) for f, gold in self.test)
        words = len(self.test)
        best = int(self.test_right.argmax())
        return {
            "available": True,
            "train_words": self.train_words,
            "test_words": words,
            "uas": hits / words,
            "best_head": names[best],
            "best_head_uas": float(self.test_right[best] / self.test_dependents),
            "best_offset": BASELINE_OFFSETS[int(self.test_baseline.argmax())],
            "best_offset_uas": float(self.test_baseline.max() / self.test_dependents),
        }


COLUMNS = [
    Column("dep_to_head", "dep → head", "accuracy", "",
           "share of dependents whose most-attended other word is their gold head", "syntax",
           "Syntax", "mean over dependents of [argmax_v W[d, v] = head(d)]",
           paper="Clark et al. 2019, What Does BERT Look At?, §4.2"),
    Column("head_to_dep", "head → dep", "accuracy", "",
           "the same on the transposed map: the word attending most to a dependent is its head",
           "syntax", "Syntax", "mean over dependents of [argmax_v W[v, d] = head(d)]",
           paper="Clark et al. 2019, What Does BERT Look At?, §4.2 (their other direction)"),
    Column("uuas", "MST UUAS", "accuracy", "",
           "share of gold edges in the maximum spanning tree of the symmetrised word-level map",
           "syntax", "Syntax", "|MST(W + Wᵀ) ∩ gold edges| / |gold edges|",
           paper="Raganato and Tiedemann 2018; Htut et al. 2019, Do Attention Heads in BERT "
           "Track Syntactic Dependencies?"),
]  # fmt: skip
