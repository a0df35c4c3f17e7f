"""How token vectors change from layer to layer (Ethayarajh 2019), from the hidden states.

Layer 0 is the embedding output (the static vector, plus position), layer l the output of
transformer layer l. Over the corpus's non-special tokens, per layer:

- drift: mean cos(h_l, h_0) over tokens (1 at layer 0);
- anisotropy: the mean cosine of two tokens from different sentences, over all such pairs,
  computed exactly from sums of unit vectors (what random pairs would estimate, without a seed);
- self-similarity: for each word type with at least ``MIN_OCCURRENCES`` occurrences, the mean
  cosine between its occurrences in different sentences, then the mean over types;
- intra-sentence similarity: per sentence, the mean cosine between each token and the
  sentence's mean vector, then the mean over sentences of two tokens or more;
- the last two again, less the anisotropy of their layer (Ethayarajh's adjustment).

Word types are the input's words (CoNLL-U, JSONL "words", ``--words``) or else words joined
from the model's pieces (``words.joined_pieces``); either way an occurrence's vector is the mean
of its pieces' (``occurrences``, the one rule for self-similarity and the explorer), the form
case-folded. Memory is bounded: every
statistic is a running sum, and the per-type sums are kept for at most as many types as fit in
``TYPE_BYTES`` (the first seen), all types being counted; atlas.json says how many types with
enough occurrences were not tracked.

The word explorer (the Layers page) takes the ``EXPLORER_TYPES`` most frequent tracked types and
the first ``OCCURRENCES`` occurrences of each among the sentences with a page (the first
``views``). Which types those are is known only at the end, so the vectors of the first
``OCCURRENCES`` occurrences of every tracked type in those sentences are kept as they pass
(float32, the model's own precision; once every sentence with a page has passed, those of types
seen in only one of them are let go, as they cannot be chosen): bounded by the ``views``
sentences, not the corpus, and no sentence is run again. From them: per layer, each
occurrence's nearest other occurrences, and
the context vector c = log(b / a) of a published analysis compared with plain cosine (see
``context_vector`` and docs/metrics.md, "Layers").

Sentence pages show, per token and layer, 1 − cos(h_l, h_0) for the first ``views`` sentences.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import ClassVar

import altair as alt
import numpy as np

from .. import charts
from ..exact import ExactSum
from ..model import Record
from ..ranking import rank_data
from ..result import Atlas
from .base import HIDDEN_STATES, Analysis, Result, RunInfo
from .words import joined_pieces

MIN_OCCURRENCES = 5
# per-type sums kept for at most this many bytes counted as float64 (held as ExactSum limbs,
# two int64 a value, they take twice that)
TYPE_BYTES = 128 * 2**20
EXPLORER_TYPES = 200
OCCURRENCES = 8  # occurrences of an explorer type whose vectors are kept
NEAREST = 3  # nearest other occurrences listed per occurrence and layer
DIGITS = 4  # rounding of the per-token drift on sentence pages


def unit(vectors: np.ndarray) -> np.ndarray:
    """Vectors scaled to length 1 along the last axis (a zero vector stays zero)."""
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norm > 0, norm, 1.0)


def context_vector(contextual: np.ndarray, static: np.ndarray) -> np.ndarray:
    """c = log(b / a) element-wise, for a contextual vector b and the static vector a; an
    element whose ratio is not positive and finite (a sign change, a = 0) is set to 0, as the
    published analysis did. Elements of a near 0 make c large: the measure is fragile."""
    b = np.asarray(contextual, dtype=np.float64)
    a = np.asarray(static, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = b / a
        c = np.log(ratio)
    return np.where(np.isfinite(c) & (ratio > 0), c, 0.0)


def pair_mean(total: np.ndarray, within: np.ndarray, count: float, count_within: float):
    """Mean dot product over pairs of unit vectors from different groups, from the sum of all
    unit vectors ``total`` [..., d], the sum over groups of each group's squared sum norm
    ``within`` [...], the number of vectors and the sum of squared group sizes:
    (‖Σu‖² − Σ_g ‖Σ_{g} u‖²) / (N² − Σ_g n_g²). NaN when no such pair exists."""
    pairs = count * count - count_within
    if pairs <= 0:
        return np.full(np.shape(within), np.nan)
    return ((total * total).sum(-1) - within) / pairs


def has_words(record: Record) -> bool:
    return record.word_of is not None and record.words is not None


def occurrences(record: Record, hidden: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The record's word occurrences: (type of each, vectors [layers + 1, m, d]) from its
    float64 hidden states, a word's vector the mean of its pieces' and its form case-folded:
    the input's words when known, else words joined from the tokenizer's pieces by the rule the
    word pairs and the pages use (``words.joined_pieces``), so the explorer lists "koerner", not
    "##er"."""
    if has_words(record):
        words, word_of = record.words, record.word_of
    else:
        words, word_of = joined_pieces(record.tokens, record.special, record.punct)
    word_of = np.asarray(word_of)
    tokens = np.flatnonzero(word_of >= 0)
    if not len(tokens):
        return [], hidden[:, :0]
    present, row = np.unique(word_of[tokens], return_inverse=True)  # each piece's word
    counts = np.bincount(row)
    # Each word's pieces added in token order, the first of every word at once, then the
    # second, ...: to the bit the sum of weight × piece over the tokens that a matrix of
    # weights (einsum over every token, 1.5 times slower) gave.
    order = np.argsort(row, kind="stable")
    rank = np.empty(len(tokens), np.int64)  # a piece's place in its word
    rank[order] = np.arange(len(tokens)) - (np.cumsum(counts) - counts)[row[order]]
    weights = 1.0 / counts
    vectors = np.zeros((hidden.shape[0], len(present), hidden.shape[-1]))
    for place in range(int(counts.max())):
        at = rank == place
        vectors[:, row[at]] += weights[row[at], None] * hidden[:, tokens[at]]
    return [words[w].casefold() for w in present.tolist()], vectors


class LayerEmbeddings(Analysis):
    """Per-layer drift, anisotropy, self- and intra-sentence similarity; the word explorer."""

    name = "layers"
    needs = frozenset({HIDDEN_STATES})  # no attention: the layers' hidden states only
    sections: ClassVar[Mapping[str, str]] = {
        "sentence": "sections/layers-sentence.html",
        "definitions": "sections/layers-definitions.html",
    }

    @classmethod
    def charts(cls) -> Mapping[str, Callable[..., dict]]:
        return {"embedding_curves": embedding_curves}

    def __init__(self, views: int = 200):
        self.views = views

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.depth = run.layers + 1
        self.dim = 0  # known from the first record
        # float sums are ExactSums: order-independent, so that parts merge to the last bit
        self.drift = ExactSum(self.depth)
        self.tokens = 0
        self.total: ExactSum | None = None  # Σ unit vectors, [depth, d]
        self.within = ExactSum(self.depth)  # Σ_sentences ‖Σ unit vectors‖²
        self.within_count = 0.0  # Σ_sentences n²
        self.intra = ExactSum(self.depth)
        self.intra_sentences = 0
        self.counts: Counter = Counter()  # every type
        self.cap = 0
        self.sums: dict[str, ExactSum] = {}  # type -> Σ unit vectors [depth, d]
        self.type_within: dict[str, ExactSum] = {}  # type -> Σ_sentences ‖Σ‖² [depth]
        self.type_within_count: Counter = Counter()  # type -> Σ_sentences k²
        self.first: dict[str, list[tuple[int, int]]] = {}  # type -> (sentence, occurrence)
        self.per_token: dict[int, list[list[float]]] = {}
        self.word_level = False  # whether types were the input's words (else joined pieces)
        # the vectors [depth, d] of the occurrences in ``first``, kept as they pass (float32)
        self.collected: dict[tuple[int, int], np.ndarray] = {}
        self.context_words: dict[int, set[str]] = {}  # sentence with a page -> its types
        self.with_page = min(self.views, run.sentences)  # sentences the explorer draws on
        self.seen_with_page = 0

    def add(self, record: Record) -> None:
        if record.hidden is None:
            return
        hidden = record.hidden.astype(np.float64)  # converted once: every measure reads it
        types, vectors = occurrences(record, hidden)
        self.word_level = self.word_level or has_words(record)
        if not self.dim:
            self.dim = record.hidden.shape[-1]
            self.total = ExactSum((self.depth, self.dim))
            self.cap = max(1, TYPE_BYTES // (self.depth * self.dim * 8))
        every = unit(hidden)  # [depth, n, d], special tokens too
        tokens, units = hidden[:, ~record.special], every[:, ~record.special]  # [depth, n', d]
        if record.index < self.views:
            moved = 1.0 - (every * every[0:1]).sum(-1)  # [depth, n]
            self.per_token[record.index] = np.round(moved.T, DIGITS).tolist()
        count = units.shape[1]
        if count:
            self.drift.add((units * units[0:1]).sum(-1).sum(-1))
            self.tokens += count
            sentence_sum = units.sum(1)
            self.total.add(sentence_sum)
            self.within.add((sentence_sum * sentence_sum).sum(-1))
            self.within_count += count * count
        if count >= 2:
            mean = unit(tokens.mean(1, keepdims=True))
            self.intra.add((units * mean).sum(-1).mean(-1))
            self.intra_sentences += 1
        self._add_types(record.index, types, unit(vectors))
        if record.index < self.views:
            self._collect(record.index, types, vectors)

    def _track(self, word: str) -> bool:
        """Whether the per-type sums hold ``word``, making its slots if the cap leaves room
        (new occurrences and merged parts meet the cap by one rule)."""
        if word not in self.sums:
            if len(self.sums) >= self.cap:
                return False
            self.sums[word] = ExactSum((self.depth, self.dim))
            self.type_within[word] = ExactSum(self.depth)
            self.first[word] = []
        return True

    def _add_types(self, index: int, types: list[str], units: np.ndarray) -> None:
        by_type: dict[str, list[int]] = {}
        for position, word in enumerate(types):
            by_type.setdefault(word, []).append(position)
        for word, positions in by_type.items():
            self.counts[word] += len(positions)
            if not self._track(word):
                continue
            group = units[:, positions].sum(1)
            self.sums[word].add(group)
            self.type_within[word].add((group * group).sum(-1))
            self.type_within_count[word] += len(positions) ** 2
            if index < self.views:  # the explorer's occurrences: in sentences with a page
                kept = sorted(self.first[word] + [(index, p) for p in positions])
                self.first[word] = kept[:OCCURRENCES]  # the first, in corpus order
                for occurrence in kept[OCCURRENCES:]:  # pushed out: their vectors let go
                    self.collected.pop(occurrence, None)

    def _collect(self, index: int, types: list[str], vectors: np.ndarray) -> None:
        """Keep the vectors of this sentence's occurrences that are among their type's first
        ``OCCURRENCES`` (``first``, just updated by ``_add_types``, which lets go of those
        pushed out) and, once every sentence with a page has passed, let go of the types that
        cannot be explorer types (seen in one of those sentences only)."""
        self.context_words[index] = set(types)
        for position, word in enumerate(types):
            if (index, position) in self.first.get(word, ()):
                self.collected[index, position] = vectors[:, position].astype(np.float32)
        self.seen_with_page += 1
        if self.seen_with_page == self.with_page:
            for found in self.first.values():
                if len({i for i, _ in found}) < 2:
                    for occurrence in found:
                        self.collected.pop(occurrence, None)

    def state(self) -> dict:
        return {
            "dim": self.dim,
            "cap": self.cap,
            "sums": {"drift": self.drift.state(), "within": self.within.state(),
                     "intra": self.intra.state(),
                     "total": self.total.state() if self.total else None},
            "tokens": self.tokens,
            "within_count": self.within_count,
            "intra_sentences": self.intra_sentences,
            "counts": dict(self.counts),
            "types": {word: {"sum": self.sums[word].state(),
                             "within": self.type_within[word].state(),
                             "within_count": self.type_within_count[word],
                             "first": [list(o) for o in self.first[word]]}
                      for word in self.sums},
            "per_token": {str(i): rows for i, rows in self.per_token.items()},
            "word_level": self.word_level,
            "collected": [[i, p, v] for (i, p), v in self.collected.items()],
            "context_words": {str(i): sorted(words) for i, words in self.context_words.items()},
            "seen_with_page": self.seen_with_page,
        }  # fmt: skip

    def load_state(self, state) -> None:
        self.dim, self.cap = int(state["dim"]), int(state["cap"])
        sums = state["sums"]
        self.drift, self.within, self.intra = (
            ExactSum.from_state(sums[k]) for k in ("drift", "within", "intra")
        )
        self.total = ExactSum.from_state(sums["total"]) if sums["total"] else None
        self.tokens, self.within_count = int(state["tokens"]), float(state["within_count"])
        self.intra_sentences = int(state["intra_sentences"])
        self.counts = Counter(state["counts"])
        for word, kept in state["types"].items():
            self.sums[word] = ExactSum.from_state(kept["sum"])
            self.type_within[word] = ExactSum.from_state(kept["within"])
            self.type_within_count[word] = int(kept["within_count"])
            self.first[word] = [(int(i), int(p)) for i, p in kept["first"]]
        self.per_token = {int(i): rows for i, rows in state["per_token"].items()}
        self.word_level = bool(state["word_level"])
        self.collected = {(int(i), int(p)): np.asarray(v, np.float32)
                          for i, p, v in state["collected"]}  # fmt: skip
        self.context_words = {int(i): set(w) for i, w in state["context_words"].items()}
        self.seen_with_page = int(state["seen_with_page"])

    def merge(self, other: LayerEmbeddings) -> None:
        """Sums add exactly; each type's first occurrences are the first of both parts in corpus
        order. Exact while the corpus has at most ``cap`` word types (the per-type sums kept);
        past that, the types tracked are this part's, then the other's new ones while room
        is left, where one pass tracks the first seen."""
        if not other.dim:
            return
        if not self.dim:
            self.dim, self.cap = other.dim, other.cap
            self.total = ExactSum((self.depth, self.dim))
        for mine, theirs in ((self.drift, other.drift), (self.within, other.within),
                             (self.intra, other.intra), (self.total, other.total)):  # fmt: skip
            mine.merge(theirs)
        self.tokens += other.tokens
        self.within_count += other.within_count
        self.intra_sentences += other.intra_sentences
        self.counts += other.counts
        for word, total in other.sums.items():
            if not self._track(word):
                continue
            self.sums[word].merge(total)
            self.type_within[word].merge(other.type_within[word])
            self.type_within_count[word] += other.type_within_count[word]
            self.first[word] = sorted(self.first[word] + other.first[word])[:OCCURRENCES]
        self.per_token.update(other.per_token)
        self.word_level = self.word_level or other.word_level
        self.context_words.update(other.context_words)
        self.seen_with_page += other.seen_with_page
        kept = {o for found in self.first.values() for o in found}
        self.collected = {o: v for o, v in {**self.collected, **other.collected}.items()
                          if o in kept}  # fmt: skip

    def explorer_types(self) -> list[str]:
        """The most frequent tracked types with occurrences in at least two sentences."""
        ranked = sorted(self.sums, key=lambda w: (-self.counts[w], w))
        chosen = [w for w in ranked if len({i for i, _ in self.first[w]}) >= 2]
        return chosen[:EXPLORER_TYPES]

    def finish(self, results: Mapping[str, Result]) -> Result:
        if not self.tokens:
            return Result()
        anisotropy = pair_mean(
            self.total.value(), self.within.value(), self.tokens, self.within_count
        )
        similarity = self._self_similarity()
        intra = self.intra.value() / max(self.intra_sentences, 1)
        curves = {
            "drift": self.drift.value() / self.tokens,
            "anisotropy": anisotropy,
            "self_similarity": similarity["mean"],
            "intra_similarity": intra,
            "self_similarity_adjusted": similarity["mean"] - anisotropy,
            "intra_similarity_adjusted": intra - anisotropy,
        }
        explorer = self._explorer(similarity["per_type"])
        return Result(
            pages={"layers.html": {"template": "layers.html", "title": "Layers"}},
            data={
                "layers": list(range(self.depth)),
                "curves": {key: _floats(value) for key, value in curves.items()},
                "tokens": self.tokens,
                "sentences": self.intra_sentences,
                "types": len(self.counts),
                "types_scored": similarity["scored"],
                "types_untracked": sum(
                    1
                    for word, n in self.counts.items()
                    if n >= MIN_OCCURRENCES and word not in self.sums
                ),
                "min_occurrences": MIN_OCCURRENCES,
                "word_level": self.word_level,
                "explorer": explorer["words"],
                "explorer_sentences": sorted(
                    {i for word in explorer["words"] for i, _ in word["occurrences"]}
                ),
                "context_vector": explorer["context_vector"],
                "per_token": {str(i): rows for i, rows in sorted(self.per_token.items())},
            },
        )

    def _self_similarity(self) -> dict:
        per_type: dict[str, np.ndarray] = {}
        for word, total in self.sums.items():
            k = self.counts[word]
            if k < MIN_OCCURRENCES:
                continue
            value = pair_mean(
                total.value(), self.type_within[word].value(), k, self.type_within_count[word]
            )
            if np.all(np.isfinite(value)):
                per_type[word] = value
        mean = np.mean(list(per_type.values()), axis=0) if per_type else np.full(self.depth, np.nan)
        return {"mean": mean, "per_type": per_type, "scored": len(per_type)}

    def _explorer(self, per_type: dict[str, np.ndarray]) -> dict:
        words = []
        wins = np.zeros(self.depth, int)
        compared = np.zeros(self.depth, int)
        for word in self.explorer_types():
            found = [(i, p) for i, p in self.first[word] if (i, p) in self.collected]
            if len(found) < 2:
                continue
            vectors = np.stack([self.collected[o] for o in found], axis=1).astype(np.float64)
            similarity = per_type.get(word)
            words.append(
                {
                    "word": word,
                    "count": self.counts[word],
                    "self_similarity": None if similarity is None else _floats(similarity),
                    "occurrences": [[i, p] for i, p in found],
                    "nearest": _nearest(vectors, [i for i, _ in found]),
                }
            )
            won, scored = self._context_contest(vectors, [i for i, _ in found], word)
            wins += won
            compared += scored
        share = [float(w / c) if c else None for w, c in zip(wins, compared, strict=True)]
        return {
            "words": words,
            "context_vector": {"wins": wins.tolist(), "compared": compared.tolist(),
                               "share": share},
        }  # fmt: skip

    def _context_contest(self, vectors, sentences: list[int], word: str):
        """Per layer: whether c = log(b / a) ranks this word's occurrence pairs by how much
        their sentences' words overlap better than the contextual vectors' cosine does
        (Spearman correlation with the Jaccard overlap, pairs from different sentences)."""
        won = np.zeros(self.depth, int)
        scored = np.zeros(self.depth, int)
        pairs = [
            (a, b)
            for a in range(len(sentences))
            for b in range(a + 1, len(sentences))
            if sentences[a] != sentences[b]
        ]
        if len(pairs) < 3:
            return won, scored
        overlap = np.array([_jaccard(self.context_words, sentences[a], sentences[b], word)
                            for a, b in pairs])  # fmt: skip
        if np.ptp(overlap) == 0:
            return won, scored
        rows, cols = np.array(pairs).T
        # every layer at once (layer 0 is a itself): [depth - 1, k, d]
        b = unit(vectors[1:])
        c = unit(context_vector(vectors[1:], vectors[0:1]))
        plain = (b[:, rows] * b[:, cols]).sum(-1)  # [depth - 1, pairs]
        contextual = (c[:, rows] * c[:, cols]).sum(-1)
        rho = spearman_rows(np.concatenate([plain, contextual]), overlap)
        rho_plain, rho_c = rho[: self.depth - 1], rho[self.depth - 1 :]
        valid = (np.ptp(plain, axis=1) > 0) & (np.ptp(contextual, axis=1) > 0)
        scored[1:] += valid
        won[1:] += valid & (rho_c > rho_plain)
        return won, scored


def spearman_rows(rows: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation of each row of ``rows`` [r, m] with ``target`` [m]: the
    Pearson correlation of their ranks (ties get their mean rank), as scipy.stats.spearmanr,
    for all rows in one call (spearmanr, called per row, was most of the analysis's finish).
    NaN for a constant row."""
    ranks = rank_data(rows)
    ranks -= ranks.mean(1, keepdims=True)
    own = rank_data(target)
    own -= own.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ranks @ own) / np.sqrt((ranks * ranks).sum(1) * (own @ own))


def _jaccard(words: dict[int, set[str]], a: int, b: int, word: str) -> float:
    first, second = words.get(a, set()) - {word}, words.get(b, set()) - {word}
    union = first | second
    return len(first & second) / len(union) if union else 0.0


def _nearest(vectors: np.ndarray, sentences: list[int]) -> list[list[list[list[float]]]]:
    """Per layer, per occurrence: its ``NEAREST`` most similar other occurrences from other
    sentences, as [occurrence, cosine] (ties to the earlier occurrence)."""
    other = np.array(sentences)[:, None] != np.array(sentences)[None, :]
    u = unit(vectors)
    cos = u @ u.transpose(0, 2, 1)  # [depth, k, k]
    # occurrences in the same sentence sort last (stable: ties keep the earlier occurrence)
    order = np.argsort(np.where(other, -cos, np.inf), axis=-1, kind="stable")[..., :NEAREST]
    valid = np.minimum(other.sum(1), NEAREST)
    picked = np.take_along_axis(cos, order, axis=-1).tolist()
    order = order.tolist()
    return [
        [
            [[j, round(c, DIGITS)] for j, c in zip(o[:v], p[:v], strict=True)]
            for o, p, v in zip(layer_order, layer_cos, valid.tolist(), strict=True)
        ]
        for layer_order, layer_cos in zip(order, picked, strict=True)
    ]


def _floats(values) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, float)]


# The layers analysis's curves, in the order of their legend, with their titles.
EMBEDDING_CURVES = {
    "drift": "drift: cos(h_l, h_0)",
    "anisotropy": "anisotropy",
    "self_similarity": "self-similarity",
    "intra_similarity": "intra-sentence similarity",
    "self_similarity_adjusted": "self-similarity − anisotropy",
    "intra_similarity_adjusted": "intra-sentence − anisotropy",
}


def embedding_curves(atlas: Atlas) -> dict:
    """The layers analysis's per-layer measures as lines, layer 0 (embeddings) to the last."""
    curves = atlas.results["layers"]["curves"]
    rows = [
        {"layer": layer, "measure": title, "value": value}
        for key, title in EMBEDDING_CURVES.items()
        for layer, value in enumerate(curves[key])
        if value is not None
    ]
    order = list(EMBEDDING_CURVES.values())
    chart = (
        alt.Chart(charts.placeholder("curves", {"curves": rows}))
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:Q", axis=alt.Axis(tickMinStep=1, format="d"), title="layer"),
            y=alt.Y("value:Q", title="mean cosine"),
            color=alt.Color(
                "measure:N",
                sort=order,
                scale=charts.CATEGORIES,
                title=None,
                legend=alt.Legend(orient="right"),
            ),
            strokeDash=alt.condition(
                "indexof(datum.measure, '−') >= 0", alt.value([4, 3]), alt.value([1, 0])
            ),
            tooltip=["measure:N", "layer:Q", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(width=charts.WIDTH * 1.6, height=240)
    )
    return charts.to_spec(chart, {"curves": rows})
