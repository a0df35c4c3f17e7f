"""Which heads track which dependency relation (Clark et al. 2019, §4.2 and §6; Htut et al. 2019).

For sentences whose gold trees are known (CoNLL-U input, or JSONL with "heads"), at word level
(analyses/words.py):

- dependency accuracy of a head for relation r, dependent → head: the share of dependents of r
  whose most-attended other word is their gold head (special-token units and the word itself
  left out); head → dependent: the same on the transposed map (the word that attends most to
  the dependent), as Clark et al.'s code does;
- the baseline: the best fixed offset in −3..+3 (0 left out), as Clark et al.'s code places it: a
  guess before the first word is ROOT (so wrong), one past the last word is the last word;
- MST UUAS (Htut et al. 2019): each head's attention as a directed graph (an edge from each word
  to each word it attends to, the attended word the head), its maximum spanning arborescence
  from the gold root (Chu-Liu/Edmonds), edges compared with direction ignored; beside it our
  variant, the undirected maximum spanning tree of W + Wᵀ, and a right-branching tree;
- Clark §6's attention-only probe: a linear score of every candidate (every word, and ROOT) over
  every head's attention in both directions, a softmax over each word's candidates, trained on
  three quarters of the sentences and scored on the rest; beside it our variant with offset
  features ("attention + offsets").

Formulas: docs/metrics.md, "Syntax". Memory is bounded: counts per relation and head, a few
example sentences per relation and head, and a capped sample for the probe (at most
PROBE_BYTES of features).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from typing import ClassVar

import altair as alt
import numpy as np

from .. import charts, contract
from ..model import Record
from ..result import Atlas, Head
from .base import Analysis, Column, Result, RunInfo
from .measures import attended_units
from .words import layer_words, record_words

BASELINE_OFFSETS = (-3, -2, -1, 1, 2, 3)
HTUT, UNDIRECTED = "htut", "undirected"  # the two spanning trees: Htut et al.'s, and ours
TREES = (HTUT, UNDIRECTED)
MIN_RELATION = 20
ALL = "all"
DIRECTIONS = ("dependent → head", "head → dependent")
EXAMPLES = 2  # example sentences kept per relation, head, direction, and right or wrong
TOP_RELATIONS = 5  # relations listed on a head page
# The probe: every TEST_EVERY-th sentence is held out for scoring; the sample is capped.
TEST_EVERY = 4
PROBE_TRAIN_WORDS = 8000
PROBE_TEST_WORDS = 4000
PROBE_BYTES = 96 * 2**20  # features kept for the probe, train and test together
PROBE_ITERATIONS = 500  # L-BFGS iterations at most
ROOT = -1  # the head of a sentence's root word; also an offset guess before the first word
OFFSET_BUCKETS = (-4, -3, -2, -1, 1, 2, 3, 4)  # ≤ −4, −3, ..., +3, ≥ +4


def relation_of(deprel: str) -> str:
    """The relation a table groups by: the part before the colon (nmod:poss -> nmod)."""
    return deprel.split(":", 1)[0]


def offset_heads(count: int, offset: int) -> np.ndarray:
    """The baseline's predicted head of each word: the word ``offset`` away, placed as Clark et
    al.'s ``offset_predictor`` does (``max(0, min(i + offset + 1, len(words)))`` with ROOT at 0):
    a guess before the first word is ROOT (-1 here), never a scored dependent's head; a guess
    past the last word is the last word."""
    return np.clip(np.arange(count) + offset, ROOT, count - 1)


def _first_cycles(
    parent: np.ndarray, alive: np.ndarray, root: int, live: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per graph [G, size], the nodes of the cycle that a walk along the parent pointers meets
    first, starting from each live node in order (what a depth-first scan finds first): the
    graphs that have one [G'], and their cycles [G', size] bool. Each node's 2^k-th ancestor by
    pointer doubling (no walk is longer than
    ``live``, the most live nodes a graph has); a node whose walk does not end at the root ends
    on a cycle, which is then walked once. Pointers are indices into the flattened [G, size]
    arrays, so that each step is one gather."""
    g, size = parent.shape
    base = (np.arange(g) * size)[:, None]
    # the root (and dead nodes) stay put
    step = (np.where((parent < 0) | ~alive, root, parent) + base).reshape(-1)
    far = step
    for _ in range(int(live).bit_length()):  # 2^k > live steps: every walk has ended
        far = far[far]
    off = alive & (far.reshape(g, size) != base + root)
    found = np.flatnonzero(off.any(1))
    node = far[found * size + off[found].argmax(1)]
    cycle = np.zeros(g * size, bool)
    while not cycle[node].all():
        cycle[node] = True
        node = step[node]
    return found, cycle.reshape(g, size)[found]


def arborescences(scores: np.ndarray, root: int) -> np.ndarray:
    """The maximum spanning arborescence of each of K complete directed graphs rooted at
    ``root`` (Chu-Liu/Edmonds): ``scores[k, h, d]`` weighs the edge h → d; returns [K, n] parents,
    -1 for the root. Ties go to the lower index.

    All K graphs are contracted in lockstep, one cycle per graph and round, so that numpy works
    on every head of a sentence at once (on the UD sample, 2.4 times faster than the recursive
    contraction of one head at a time, with the same trees). A contracted cycle becomes a new
    node numbered after every node so far (2n slots: each round removes at least one node net),
    its rows and columns are set to -inf, and only the columns whose best parent was on the
    cycle are searched again. The first cycle of each graph is the one a depth-first scan from
    its lowest live node meets, found for all graphs at once (``_first_cycles``).

    Written here because neither numpy nor scipy has a directed maximum spanning tree, and
    networkx's (pure Python, one graph at a time; only a dependency of torch, not ours) would be
    slower still; sentences are short (n ≤ 512 words)."""
    k, n, _ = scores.shape
    size = 2 * n
    s = np.full((k, size, size), -np.inf)
    s[:, :n, :n] = scores
    s[:, np.arange(n), np.arange(n)] = -np.inf
    s[:, :, root] = -np.inf
    parent = s[:, :n].argmax(1)  # [K, size]: each node's best parent (0 for the slots)
    parent[:, root] = -1
    alive = np.zeros((k, size), bool)
    alive[:, :n] = True
    rounds = []
    at, new = np.arange(k), n
    while len(at):
        found, cycle = _first_cycles(parent[at], alive[at], root, n)
        if not len(found):
            break
        at, count = at[found], cycle.sum(1)
        alive[at] &= ~cycle
        alive[at, new] = True
        order = np.arange(len(at))[:, None]
        # Each cycle's nodes in order, padded with its last node (the same maxima and argmax).
        nodes = np.argsort(~cycle, axis=1, kind="stable")[:, : count.max()]
        last = nodes[order[:, 0], count - 1]
        nodes = np.where(np.arange(nodes.shape[1]) < count[:, None], nodes, last[:, None])
        before = parent[at]
        kept = s[at[:, None], before[order, nodes], nodes]  # the cycle's own edges
        gain = s[at[:, None], :, nodes] - kept[:, :, None]  # [K', width, size]: v enters c
        leave = s[at[:, None], nodes, :]  # [K', width, size]: c leaves to u
        enter_by = nodes[order, gain.argmax(1)]  # [K', size]: the cycle node v enters by
        leave_from = nodes[order, leave.argmax(1)]  # the cycle node u's edge leaves from
        s[at, :, new] = gain.max(1)
        s[at, new, :] = leave.max(1)
        s[at[:, None], nodes, :] = -np.inf
        s[at[:, None], :, nodes] = -np.inf
        s[at, new, new] = -np.inf
        # A column keeps its best parent unless that was on the cycle (the new node, numbered
        # last, wins only where no other node ties it); the new node's column is new.
        moved = cycle[order, before.clip(0)] & (before >= 0) & ~cycle
        moved[:, new] = True
        rows, columns = np.nonzero(moved)
        after = before.copy()
        after[rows, columns] = s[at[rows], :, columns].argmax(1)
        parent[at] = after
        rounds.append((at, before, cycle, enter_by, leave_from, new))
        new += 1
    for at, before, cycle, enter_by, leave_from, new in reversed(rounds):  # expand the cycles
        inner = parent[at]
        inner = np.where(inner == new, leave_from, inner)
        entry = inner[:, new]
        inner = np.where(cycle, before, inner)
        inner[np.arange(len(at)), enter_by[np.arange(len(at)), entry]] = entry
        inner[:, new] = -1
        parent[at] = inner
    parent[:, root] = -1
    return parent[:, :n]


def arborescence(scores: np.ndarray, root: int) -> np.ndarray:
    """The maximum spanning arborescence of one graph (``arborescences`` with K = 1)."""
    return arborescences(np.asarray(scores)[None], root)[0]


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

    @classmethod
    def charts(cls) -> Mapping[str, Callable[..., dict]]:
        return {"relation_heatmap": relation_heatmap}

    @classmethod
    def summary(cls, atlas: Atlas, head: Head) -> list[tuple[int, str]]:
        line = syntax_line(atlas, head)
        return [(10, line)] if line else []

    def __init__(self, min_relation: int = MIN_RELATION):
        self.min_relation = min_relation

    def start(self, run: RunInfo) -> None:
        super().start(run)
        k = run.size
        self.count: Counter = Counter()
        self.first_seen: dict[str, tuple[int, ...]] = {}  # relation -> where first seen
        self.subtypes: dict[str, Counter] = defaultdict(Counter)
        self.right = defaultdict(lambda: np.zeros((2, k), np.int64))  # [direction, head]
        self.baseline = defaultdict(lambda: np.zeros(len(BASELINE_OFFSETS), np.int64))
        self.examples = defaultdict(lambda: np.full((2, 2, k, EXAMPLES), -1, np.int64))
        self.tree_right = {variant: np.zeros(k, np.int64) for variant in TREES}
        self.tree_edges = dict.fromkeys(TREES, 0)
        self.branching = 0
        self.sentences = 0
        # The probe's sample: its sentences in the order a one-pass run sees them, each with
        # its words' candidates and, held out, the best single head's and offsets' hits.
        self.probe_sentences: list[ProbeSentence] = []
        self.probe_count = {"train": 0, "test": 0}
        self.probe_rows = 0
        self.row_bytes = 4 * (2 * k + len(OFFSET_BUCKETS))
        self.tokens: dict[int, int] = {}  # tokens of the sentences kept as examples

    def add_layer(self, record: Record, layer: int, attention: np.ndarray) -> None:
        """Keep a sentence's word-level attention, layer by layer, for ``add``: every head's
        [u, u] between its words (treebank sentences are short: kilobytes per head)."""
        if record.heads is None or record.word_of is None:
            return
        words = layer_words(record, layer, attention)
        record.stash(self.name, lambda: np.empty((self.run.layers, *words.shape)))[layer] = words

    def add(self, record: Record) -> None:
        if record.heads is None or record.word_of is None:
            return
        _, unit_word = record_words(record)
        words = record.stash(self.name)
        attention = words.reshape(self.run.size, *words.shape[-2:])
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
        forward = attended_units(attention, is_word)  # [K, u]
        backward = attended_units(attention.transpose(0, 2, 1), is_word)
        dep_units = np.array([unit_for[d] for d in deps])
        head_units = np.array([unit_for[int(heads[d])] for d in deps])
        right = np.stack([forward[:, dep_units], backward[:, dep_units]]) == head_units  # [2,K,D]
        relations = [relation_of(record.deprels[d]) for d in deps]
        baseline = np.stack(
            [offset_heads(len(heads), o)[deps] == heads[deps] for o in BASELINE_OFFSETS]
        )  # [offsets, D]
        at = self.run.stream_key(record.index, record.n)
        # Every relation of the sentence at once: a 0/1 membership of each dependent in each
        # relation (sorted, then ALL), so that the counts are two integer products.
        names, inverse = np.unique(relations, return_inverse=True)
        names = [*names.tolist(), ALL]
        member = np.zeros((len(deps), len(names)), np.int64)
        member[np.arange(len(deps)), inverse] = 1
        member[:, -1] = 1
        counts = member.sum(0)
        hits = right.astype(np.int64) @ member  # [2, K, relations]: dependents right
        baseline_hits = baseline.astype(np.int64) @ member  # [offsets, relations]
        happened = np.stack([hits > 0, hits < counts], axis=1)  # [2, right|wrong, K, relations]
        stored = False
        for rank, relation in enumerate(names):
            # ties of count list relations in the order first seen: kept for a merge
            self.first_seen.setdefault(relation, (*at, rank))
            self.count[relation] += int(counts[rank])
            self.right[relation] += hits[:, :, rank]
            self.baseline[relation] += baseline_hits[:, rank]
            stored |= self._remember(relation, record.index, happened[..., rank])
        if stored:
            self.tokens[record.index] = record.n  # kept: a merge orders the examples by it
        for d in deps:
            self.subtypes[relation_of(record.deprels[d])][record.deprels[d]] += 1
        self._trees(attention, unit_word, heads)
        self._probe(record, attention, unit_word, unit_for, forward)

    def _remember(self, relation: str, index: int, happened: np.ndarray) -> bool:
        """Keep up to EXAMPLES sentences per (direction, right or wrong, head): this one in the
        first free slot of each where it ``happened`` ([direction, right|wrong, K]: some
        dependent of the relation right, some wrong); whether it was kept anywhere."""
        slots = self.examples[relation]  # [direction, wrong?, K, EXAMPLES]
        empty = slots < 0
        room = empty.any(-1) & happened
        direction, wrong, heads = np.nonzero(room)
        slots[direction, wrong, heads, empty.argmax(-1)[direction, wrong, heads]] = index
        return len(heads) > 0

    def _trees(self, attention: np.ndarray, unit_word: np.ndarray, heads: np.ndarray) -> None:
        """UUAS of each head's spanning trees over the words present (Htut et al.'s directed
        tree from the gold root, and the undirected tree of W + Wᵀ), and of the right-branching
        tree."""
        present = np.flatnonzero(unit_word >= 0)
        position = {int(unit_word[u]): i for i, u in enumerate(present)}
        gold = {
            (min(position[d], position[int(h)]), max(position[d], position[int(h)]))
            for d, h in enumerate(heads)
            if h >= 0 and d in position and int(h) in position
        }
        words = attention[:, present][:, :, present]
        self.tree_right[UNDIRECTED] += tree_hits(
            spanning_trees(words + words.transpose(0, 2, 1)), gold
        )
        self.tree_edges[UNDIRECTED] += len(gold)
        self.branching += sum(b - a == 1 for a, b in gold)
        roots = [position[r] for r in np.flatnonzero(heads == ROOT) if r in position]
        if roots and len(present) > 1:  # a sentence cut before its root has no directed tree
            self.tree_right[HTUT] += tree_hits(directed_trees(words, roots[0]), gold)
            self.tree_edges[HTUT] += len(gold)

    def _probe(self, record: Record, attention, unit_word, unit_for, forward) -> None:
        """Keep the probe's candidates for each word of the sentence (bounded), and score the
        best single head and offset on the held-out words as the probe is scored."""
        held_out = record.index % TEST_EVERY == TEST_EVERY - 1
        part = "test" if held_out else "train"
        words = sorted(unit_for)
        heads = np.asarray(record.heads)
        kept = [w for w in words if heads[w] == ROOT or int(heads[w]) in unit_for]
        rows = len(kept) * (len(words) + 1)
        if not kept or not self._fits(part, len(kept), rows):
            return
        special = np.flatnonzero(unit_word < 0)
        column = {w: i for i, w in enumerate(words)}
        sentence = ProbeSentence(self.run.stream_key(record.index, record.n), part, rows)
        for w in kept:
            candidates = probe_candidates(attention, unit_for, words, w, special)
            candidates.gold = 0 if heads[w] == ROOT else 1 + column[int(heads[w])]
            candidates.scored = relation_of(record.deprels[w]) != "punct"
            sentence.words.append(candidates)
        if held_out:
            scored = [w for w in kept if relation_of(record.deprels[w]) != "punct"]
            unit_of_word = np.array([unit_for[w] for w in scored], dtype=np.int64)
            guessed = unit_word[forward[:, unit_of_word]]  # [K, words], a word for every head
            sentence.right = (guessed == heads[scored]).sum(-1)
            sentence.baseline = np.array(
                [int((offset_heads(len(heads), o)[scored] == heads[scored]).sum())
                 for o in BASELINE_OFFSETS], np.int64
            )  # fmt: skip
        self._take(sentence)

    def _fits(self, part: str, words: int, rows: int) -> bool:
        """Whether a sentence's words still fit the probe's caps (its part's words, and the
        features of both parts together)."""
        cap = PROBE_TEST_WORDS if part == "test" else PROBE_TRAIN_WORDS
        if self.probe_count[part] + words > cap:
            return False
        return (self.probe_rows + rows) * self.row_bytes <= PROBE_BYTES

    def _take(self, sentence: ProbeSentence) -> None:
        self.probe_sentences.append(sentence)
        self.probe_count[sentence.part] += len(sentence.words)
        self.probe_rows += sentence.rows

    def probe_words(self, part: str) -> list[Candidates]:
        return [c for s in self.probe_sentences if s.part == part for c in s.words]

    # -- mergeable state ----------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "count": dict(self.count),
            "first_seen": {r: list(at) for r, at in self.first_seen.items()},
            "subtypes": {r: dict(c) for r, c in self.subtypes.items()},
            "right": dict(self.right),
            "baseline": dict(self.baseline),
            "examples": dict(self.examples),
            "tokens": {str(i): n for i, n in self.tokens.items()},
            "tree_right": self.tree_right,
            "tree_edges": self.tree_edges,
            "branching": self.branching,
            "sentences": self.sentences,
            "probe": [s.state() for s in self.probe_sentences],
        }

    def load_state(self, state) -> None:
        self.count = Counter(state["count"])
        self.first_seen = {r: tuple(at) for r, at in state["first_seen"].items()}
        for relation, counts in state["subtypes"].items():
            self.subtypes[relation] = Counter(counts)
        for key in ("right", "baseline", "examples"):
            getattr(self, key).update({r: np.array(v, np.int64) for r, v in state[key].items()})
        self.tokens = {int(i): int(n) for i, n in state["tokens"].items()}
        self.tree_right = {v: np.array(a, np.int64) for v, a in state["tree_right"].items()}
        self.tree_edges = {v: int(n) for v, n in state["tree_edges"].items()}
        self.branching, self.sentences = int(state["branching"]), int(state["sentences"])
        for sentence in state["probe"]:
            self._take(ProbeSentence.from_state(sentence))

    def merge(self, other: Syntax) -> None:
        """Counts add. The example sentences of each slot are the first of both parts in a
        one-pass run's order. The probe's sample is taken again, by the same caps, from both
        parts' samples in that order: the one-pass sample exactly when no part's sample reached
        a cap (a sentence a part left out for want of room it would have had in one pass is
        gone)."""
        for relation, at in other.first_seen.items():
            self.first_seen[relation] = min(at, self.first_seen.get(relation, at))
        order = sorted(self.first_seen, key=self.first_seen.__getitem__)
        self.count = Counter({r: self.count[r] + other.count[r] for r in order})
        for relation, counts in other.subtypes.items():
            self.subtypes[relation] += counts
        for key in ("right", "baseline"):
            mine = getattr(self, key)
            for relation, value in getattr(other, key).items():
                mine[relation] = mine[relation] + value
        self.tokens.update(other.tokens)
        for relation, slots in other.examples.items():
            self.examples[relation] = self._first(self.examples[relation], slots)
        for variant in TREES:
            self.tree_right[variant] = self.tree_right[variant] + other.tree_right[variant]
            self.tree_edges[variant] += other.tree_edges[variant]
        self.branching += other.branching
        self.sentences += other.sentences
        sentences = sorted(self.probe_sentences + other.probe_sentences, key=lambda s: s.key)
        self.probe_sentences, self.probe_rows = [], 0
        self.probe_count = {"train": 0, "test": 0}
        for sentence in sentences:
            if self._fits(sentence.part, len(sentence.words), sentence.rows):
                self._take(sentence)

    def _first(self, mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
        """Per slot, the first EXAMPLES sentences of two slots' in a one-pass run's order."""
        both = np.concatenate([mine, theirs], -1)
        keys = sorted({int(i) for i in both.reshape(-1) if i >= 0},
                      key=lambda i: self.run.stream_key(i, self.tokens[i]))  # fmt: skip
        rank = {i: r for r, i in enumerate(keys)}
        ranks = np.vectorize(lambda i: rank.get(int(i), len(rank)))(both) if both.size else both
        first = np.argsort(ranks, axis=-1, kind="stable")[..., :EXAMPLES]
        return np.take_along_axis(both, first, -1)

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
            "uuas": self.tree_right[HTUT] / max(self.tree_edges[HTUT], 1),
            "uuas_undirected": self.tree_right[UNDIRECTED] / max(self.tree_edges[UNDIRECTED], 1),
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
                "right_branching_uuas": self.branching / max(self.tree_edges[UNDIRECTED], 1),
                "probe": self._fit_probe(names),
            },
            wanted=wanted,
            pages={"syntax.html": {"template": "syntax.html", "title": "Syntax"}},
        )

    def _row(self, relation: str, names: list[str]) -> dict:
        count = self.count[relation]
        right = self.right[relation]  # [2, K] dependents right
        best = int(right.max())
        direction, flat = np.unravel_index(int(right.argmax()), right.shape)
        tied = [
            {"head": names[f], "direction": DIRECTIONS[d]}
            for d, f in zip(*np.nonzero(right == best), strict=True)
            if (d, f) != (direction, flat)
        ]
        behind = np.sort(right, axis=None)[-2] if right.size > 1 else 0
        baseline = self.baseline[relation]
        best_offset = int(baseline.argmax())
        slots = self.examples[relation][direction]
        return {
            "relation": relation,
            "count": count,
            "subtypes": dict(sorted(self.subtypes[relation].items())) if relation != ALL else {},
            "head": names[flat],
            "direction": DIRECTIONS[direction],
            "accuracy": best / count,
            "tied": tied,
            "lead": int(best - behind),
            "baseline_offset": BASELINE_OFFSETS[best_offset],
            "baseline_accuracy": float(baseline[best_offset] / count),
            "beats_baseline": bool(best > baseline[best_offset]),
            "right": [int(i) for i in slots[0, flat] if i >= 0],
            "wrong": [int(i) for i in slots[1, flat] if i >= 0],
        }

    def _head_relations(self, flat: int, shown: list[str], accuracy: dict) -> list[dict]:
        """The relations this head tracks best, each against its baseline, and whether the
        head is the relation's best (ties included) and gets more right than the baseline."""
        rows = []
        for relation in shown:
            right = self.right[relation]
            direction = int(right[:, flat].argmax())
            base = float((self.baseline[relation] / self.count[relation]).max())
            rows.append(
                {
                    "relation": relation,
                    "direction": DIRECTIONS[direction],
                    "accuracy": float(accuracy[relation][direction, flat]),
                    "baseline": base,
                    "best": bool(right[direction, flat] == right.max()),
                    "beats_baseline": bool(right[direction, flat] > self.baseline[relation].max()),
                }
            )
        rows.sort(key=lambda r: (-(r["accuracy"] - r["baseline"]), r["relation"]))
        return rows[:TOP_RELATIONS]

    def _fit_probe(self, names: list[str]) -> dict:
        """Train the probe (Clark's attention-only, and attention + offsets) and score each on
        the held-out words (UAS, punctuation left out as Clark et al. do), beside the best single
        head and the best offset on the same words."""
        train, test = self.probe_words("train"), self.probe_words("test")
        held = [s for s in self.probe_sentences if s.right is not None]
        test_right = sum((s.right for s in held), np.zeros(self.run.size, np.int64))
        test_baseline = sum((s.baseline for s in held), np.zeros(len(BASELINE_OFFSETS), np.int64))
        scored = sum(c.scored for c in test)
        if not train or not scored:
            return {"available": False, "note": "too few sentences with trees for a probe"}
        uas = {}
        variants = ("attention_only", "attention_offsets")
        fits = zip(variants, (False, True), fit_probes(train), strict=True)
        for variant, offsets, weights in fits:
            hits = sum(c.scored and probe_scores(weights, c, offsets).argmax() == c.gold
                       for c in test)  # fmt: skip
            uas[variant] = hits / scored
        best = int(test_right.argmax())
        return {
            "available": True,
            "train_words": len(train),
            "test_words": scored,
            "uas": uas["attention_only"],
            "uas_offsets": uas["attention_offsets"],
            "best_head": names[best],
            "best_head_uas": float(test_right[best] / scored),
            "best_offset": BASELINE_OFFSETS[int(test_baseline.argmax())],
            "best_offset_uas": float(test_baseline.max() / scored),
        }


class Candidates:
    """One word's candidate heads for the probe: ROOT, then every word of its sentence (itself
    included, as in Clark et al.'s probe)."""

    __slots__ = ("attention", "end", "gold", "offsets", "scored", "start")

    def __init__(self, attention, start, end, offsets):
        self.attention = attention  # [words, 2K]: W[d, v] and W[v, d] for every head
        self.start = start  # [2K]: W[d, first special unit] and W[that unit, d] (0 if none)
        self.end = end  # [2K]: the same for the last special unit
        self.offsets = offsets  # [words, buckets]: one-hot of v − d (0 for v = d)
        self.gold = 0  # the gold head's row: 0 ROOT, 1 + its position among the words
        self.scored = True  # punctuation is trained on but not scored

    def state(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_state(cls, state: Mapping) -> Candidates:
        out = cls(*(np.asarray(state[k], np.float32) for k in ("attention", "start", "end",
                                                               "offsets")))  # fmt: skip
        out.gold, out.scored = int(state["gold"]), bool(state["scored"])
        return out


class ProbeSentence:
    """One sentence of the probe's sample: where a one-pass run sees it (``stream_key``), its
    part ("train" or "test"), its feature rows, its words' candidates, and, held out, the hits
    of every head and of every baseline offset on its scored words."""

    __slots__ = ("baseline", "key", "part", "right", "rows", "words")

    def __init__(self, key: tuple[int, int, int], part: str, rows: int):
        self.key, self.part, self.rows = tuple(key), part, rows
        self.words: list[Candidates] = []
        self.right: np.ndarray | None = None
        self.baseline: np.ndarray | None = None

    def state(self) -> dict:
        return {"key": list(self.key), "part": self.part, "rows": self.rows,
                "words": [c.state() for c in self.words], "right": self.right,
                "baseline": self.baseline}  # fmt: skip

    @classmethod
    def from_state(cls, state: Mapping) -> ProbeSentence:
        out = cls(tuple(state["key"]), state["part"], int(state["rows"]))
        out.words = [Candidates.from_state(c) for c in state["words"]]
        for key in ("right", "baseline"):
            if state[key] is not None:
                setattr(out, key, np.asarray(state[key], np.int64))
        return out


def probe_candidates(attention, unit_for, words, word, special) -> Candidates:
    """The features of ``word``'s candidates: attention both ways with every head, and the
    attention to and from the first and last special units, from which ROOT is scored."""
    k = attention.shape[0]
    u = unit_for[word]
    v = np.array([unit_for[w] for w in words])
    both = np.concatenate([attention[:, u, v].T, attention[:, v, u].T], axis=1)
    ends = [
        np.concatenate([attention[:, u, s], attention[:, s, u]]) if len(special) else
        np.zeros(2 * k) for s in (special[:1], special[-1:])
    ]  # fmt: skip
    ends = [e.reshape(-1) for e in ends]
    offsets = offset_features(np.array(words) - word)
    offsets[np.array(words) == word] = 0
    return Candidates(both.astype(np.float32), *(e.astype(np.float32) for e in ends), offsets)


def _unpack(params: np.ndarray, k2: int, offsets: bool):
    """(head weights [2K], ROOT's start and end weights, offset weights or None, ROOT bias)."""
    w, a, b = params[:k2], params[k2], params[k2 + 1]
    if not offsets:
        return w, a, b, None, 0.0
    return w, a, b, params[k2 + 2 : -1], params[-1]


def probe_scores(params: np.ndarray, c: Candidates, offsets: bool) -> np.ndarray:
    """The probe's score of each of a word's candidates: [ROOT, words...]."""
    w, a, b, v, r = _unpack(params, c.start.size, offsets)
    words = c.attention @ w + (c.offsets @ v if offsets else 0.0)
    return np.concatenate([[a * (c.start @ w) + b * (c.end @ w) + r], words])


def fit_probe(train: list[Candidates] | ProbeData, offsets: bool) -> np.ndarray:
    """Fit the probe by L-BFGS on the summed cross-entropy of a softmax over each word's
    candidates (Clark et al.'s objective: their code trains it with one epoch of Adam; a full
    deterministic fit is reproducible). Clark's ROOT score is the bilinear a·(w·start) +
    b·(w·end); the offsets variant adds one weight per offset bucket and a ROOT bias.

    Written here because scikit-learn has no softmax over a varying set of candidates."""
    from scipy.optimize import minimize

    loss = ProbeLoss(train if isinstance(train, ProbeData) else ProbeData(train), offsets)
    initial = np.zeros(loss.size)
    initial[loss.data.k2 : loss.data.k2 + 2] = 1.0
    fit = minimize(loss, initial, jac=True, method="L-BFGS-B",
                   options={"maxiter": PROBE_ITERATIONS})  # fmt: skip
    return fit.x


def fit_probes(train: list[Candidates]) -> tuple[np.ndarray, np.ndarray]:
    """The attention-only probe and the attention + offsets probe (``fit_probe``), fitted at
    the same time in two threads on one copy of the features: nearly all of a fit's time is in
    numpy's float32 products, which release the GIL, so on two free cores the pair takes about
    the time of the longer fit; each fit's arithmetic is unchanged (the same weights as one
    after the other), and on one core the two take turns."""
    from concurrent.futures import ThreadPoolExecutor

    data = ProbeData(train)
    with ThreadPoolExecutor(2, thread_name_prefix="atlas-probe") as pool:
        only, offsets = pool.map(lambda o: fit_probe(data, o), (False, True))
    return only, offsets


class ProbeData:
    """The training words' features for the probe, stacked once and read by both fits.

    The candidates' features stay float32 (the bulk of the probe's memory; the products are
    taken in float32 and everything after them in float64)."""

    def __init__(self, train: list[Candidates]):
        self.k2 = train[0].start.size
        self.x = np.concatenate([c.attention for c in train])
        self.o = np.concatenate([c.offsets for c in train])
        # Each row's offset bucket, len(OFFSET_BUCKETS) for none (the word itself): o @ v.
        self.bucket = np.where(self.o.any(1), self.o.argmax(1), len(OFFSET_BUCKETS))
        self.start = np.stack([c.start for c in train]).astype(np.float64)
        self.end = np.stack([c.end for c in train]).astype(np.float64)
        sizes = np.array([len(c.attention) + 1 for c in train])
        self.first = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # each word's ROOT row
        self.rows = int(sizes.sum())
        word_rows = np.ones(self.rows, bool)
        word_rows[self.first] = False
        self.word_rows = np.flatnonzero(word_rows)
        self.owner = np.repeat(np.arange(len(train)), sizes)  # each row's word
        self.gold = self.first + np.array([c.gold for c in train])


class ProbeLoss:
    """The probe's loss and its gradient at given weights (``fit_probe``'s objective).

    One evaluation reads the training features twice (scores, then gradient), so its cost is
    those two float32 products; the float64 arrays between them are this loss's own, kept from
    one evaluation to the next (``out=``) rather than allocated anew, and the offsets' one-hot
    product is a lookup of the bucket's weight (the same float32 value: one nonzero term).
    Every operation is the one it replaces, in the same order, so the weights are bit for bit
    those of the plain numpy expression (``tests/test_syntax.py`` checks)."""

    def __init__(self, data: ProbeData, offsets: bool):
        self.data, self.offsets = data, offsets
        self.size = data.k2 + 2 + (len(OFFSET_BUCKETS) + 1 if offsets else 0)
        self.logits, self.e = np.empty(data.rows), np.empty(data.rows)
        self.scores = np.empty(len(data.x), np.float32)
        self.root_features = np.empty_like(data.start)
        self.end_part = np.empty_like(data.end)

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        d = self.data
        w, a, b, v, r = _unpack(params, d.k2, self.offsets)
        x, first, word_rows, logits, e = d.x, d.first, d.word_rows, self.logits, self.e
        sw, ew = d.start @ w, d.end @ w
        logits[first] = a * sw + b * ew + r
        scores = np.matmul(x, w.astype(np.float32), out=self.scores)
        if self.offsets:  # float32 products, summed in float64 as the rest
            offset = np.append(v.astype(np.float32), np.float32(0))[d.bucket]
            scores = np.add(scores, offset, dtype=np.float64)
        logits[word_rows] = scores
        top = np.maximum.reduceat(logits, first)
        np.subtract(logits, top[d.owner], out=e)
        np.exp(e, out=e)
        total = np.add.reduceat(e, first)
        value = float(np.sum(np.log(total) + top) - logits[d.gold].sum())
        g = np.divide(e, total[d.owner], out=e)
        g[d.gold] -= 1.0
        root, rest32 = g[first], g[word_rows].astype(np.float32)
        features = np.multiply(d.start, a, out=self.root_features)
        features += np.multiply(d.end, b, out=self.end_part)
        grad = [(x.T @ rest32) + features.T @ root, [root @ sw], [root @ ew]]
        if self.offsets:
            grad += [d.o.T @ rest32, [root.sum()]]
        return value, np.concatenate(grad)


def directed_trees(words: np.ndarray, root: int) -> np.ndarray:
    """Htut et al.'s tree of each head [K, p, p]: the maximum spanning arborescence from the
    gold root of the graph with an edge from each word to each word it attends to, the attended
    word the head (W[d, h] weighs h → d, as a Chu-Liu/Edmonds decoder reads scores[dependent,
    head]), as [K, p - 1, 2] (child, parent) edges."""
    k, p, _ = words.shape
    edges = np.zeros((k, p - 1, 2), np.int64)
    children = np.flatnonzero(np.arange(p) != root)
    parent = arborescences(words.transpose(0, 2, 1), root)
    edges[:, :, 0], edges[:, :, 1] = children, parent[:, children]
    return edges


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
           "share of gold edges (direction ignored) in the maximum spanning arborescence of the "
           "word-level map from the gold root (Htut et al. 2019)", "syntax", "Syntax",
           "|CLE(W, gold root) ∩ gold edges| / |gold edges|",
           paper="Htut et al. 2019, Do Attention Heads in BERT Track Syntactic Dependencies?"),
    Column("uuas_undirected", "MST UUAS (W + Wᵀ)", "accuracy", "",
           "share of gold edges in the undirected maximum spanning tree of the symmetrised map",
           "syntax", "Syntax", "|MST(W + Wᵀ) ∩ gold edges| / |gold edges|",
           paper="Raganato and Tiedemann 2018 (our variant of Htut et al. 2019)"),
]  # fmt: skip


def relation_heatmap(atlas: Atlas, prefix: str = "../") -> dict:
    """Relation × head: each cell the head's accuracy on the relation, in the better of its two
    directions; a cell links to its head's page. Relations in the order of the table above it
    (``relations``, by frequency): the matrix is a dict, whose order atlas.json does not keep."""
    syntax = atlas.results["syntax"]
    relations = [r["relation"] for r in syntax["relations"] if r["relation"] in syntax["matrix"]]
    rows = [
        {
            "relation": relation,
            "name": h.name,
            "flat": flat,
            "accuracy": syntax["matrix"][relation][flat],
            "url": charts.head_url(h, prefix),
        }
        for relation in relations
        for flat, h in enumerate(atlas.heads)
    ]
    order = [h.name for h in atlas.heads]
    chart = (
        alt.Chart(charts.placeholder("relations", {"relations": rows}))
        .mark_rect()
        .encode(
            x=alt.X("name:N", sort=order, title="head", axis=alt.Axis(labelAngle=-90)),
            y=alt.Y("relation:N", sort=relations, title=None),
            color=alt.Color(
                "accuracy:Q",
                scale=alt.Scale(scheme=contract.SEQUENTIAL_SCHEME, domain=[0, 1]),
                title="accuracy",
            ),
            href="url:N",
            tooltip=[
                alt.Tooltip("relation:N"),
                alt.Tooltip("name:N", title="head"),
                alt.Tooltip("accuracy:Q", format=".3f"),
            ],
        )
        .properties(width=max(300, 11 * len(order)), height=14 * len(relations))
    )
    return charts.to_spec(chart, {"relations": rows})


def syntax_line(atlas: Atlas, head: Head) -> str | None:
    """With gold trees: the relation the head tracks best against the fixed-offset baseline,
    and whether it is the atlas's best head over all relations; None without trees."""
    relations = head.parts.get("syntax")
    if not relations:
        return None
    best = relations[0]  # the syntax analysis sorts them by accuracy less baseline
    line = (
        f"Tracks {best['relation']} best against its baseline: {best['accuracy']:.2f}"
        f" ({best['direction']}) where the best fixed offset gets {best['baseline']:.2f}."
    )
    overall = next(
        (r for r in atlas.results.get("syntax", {}).get("relations", []) if r["relation"] == "all"),
        None,
    )
    if overall and overall["head"] == head.name:
        line += (
            f" The best head over all relations: it gets {overall['accuracy']:.2f} of the"
            f" {overall['count']:,} dependents right ({overall['direction']})."
        )
    return line
