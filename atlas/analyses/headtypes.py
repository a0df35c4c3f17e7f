"""Head types that matter for decoders: attention sinks, duplicate-token and induction heads.

Three per-head columns (exact definitions in docs/metrics.md, "Head types"):

- ``first``, a decoder's first-token share: attention to position 0, the first token the
  model sees (Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks":
  models dump attention there whatever the token). Measured on the corpus, over the rows that
  see more than one token. Where the tokenizer puts a BOS in front, position 0 is that BOS; the
  BOS column ([CLS]/BOS share) counts BOS tokens wherever they are, over every row, and stays
  apart. An encoder has no such column: its position 0 is always [CLS], and over every row (an
  encoder's row 0 sees every token) the share would be the [CLS] column to the last bit; its
  [CLS] heads have their pattern label.
- ``duplicate`` and ``induction``: the share of attention to the earlier copies of the current
  token, and to the tokens right after them (Olsson et al. 2022, "In-context Learning and
  Induction Heads"; the detection patterns of TransformerLens's head detector,
  transformer_lens/head_detector.py). A natural corpus repeats few tokens, so they are measured
  on a probe of their own: ``sequences`` sequences of T random tokens repeated once, drawn from
  the vocabulary with a fixed seed, wrapped in the tokenizer's special tokens, and run through
  the model beside the corpus (``settle``).

A head whose value reaches TYPE_THRESHOLD on a column gets that column's type ("sink",
"duplicate-token", "induction"); a head can have several, and they sit beside its pattern
label (heads.py), which is from the corpus.

Merging: the sink sums are exact sums over the corpus's records. The probe does not depend on
the corpus: the part that holds the corpus's first example runs it (a one-pass run always
does), every other part leaves its probe sums empty, and ``merge`` adds them, so the probe runs
once and its sequences are the same however the corpus is split.

Per-layer: ``add`` works layer by layer on one layer's [heads, n, n], as the runner's planned
``add_layer`` hands it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ..exact import ExactSum
from ..model import Record
from .base import ATTENTION, SEQUENCES, Analysis, Column, Result, RunInfo, per_head

DEFAULT_SEQUENCES = 32  # probe sequences (--probe-sequences)
PROBE_LENGTH = 24  # random tokens T in each half of a probe sequence (fewer if the model's
# length limit leaves less room)
PROBE_SEED = 0
TYPE_THRESHOLD = 0.4  # a column's value from which a head gets its type

_GROUP = "Head types"
_OLSSON = (
    "Olsson et al. 2022, In-context Learning and Induction Heads; the detection pattern of "
    "TransformerLens's head detector, scored over the rows it gives a target (its 'mul' score "
    "× n / those rows)"
)
COLUMNS = [
    Column("first", "first token", "share", "",
           "attention to position 0 (the attention sink), the BOS where the tokenizer adds one",
           "head-types", _GROUP, "mean_{i ∈ S} A[i,0], S = rows that see two tokens or more",
           paper="Xiao et al. 2023, Efficient Streaming Language Models with Attention Sinks, §3"),
    Column("duplicate", "duplicate token", "share", "",
           "on repeated random tokens: attention to earlier copies of the current token",
           "head-types", _GROUP,
           "mean_{i ∈ R} Σ_{j<i} A[i,j]·[t_j = t_i], R = rows with such a j",
           paper=_OLSSON),
    Column("induction", "induction", "share", "",
           "on repeated random tokens: attention to the token after an earlier copy of the "
           "current token", "head-types", _GROUP,
           "mean_{i ∈ R} Σ_{1≤j≤i} A[i,j]·[t_{j−1} = t_i], R = rows with such a j",
           paper=_OLSSON),
]  # fmt: skip
TYPES = {"first": "sink", "duplicate": "duplicate-token", "induction": "induction"}


# -- per-layer measures: one layer's attention [heads, n, n], rows summing to 1 ---------------


def first_token_share(attention: np.ndarray) -> np.ndarray:
    """Per head of a decoder, the mean over rows 1..n−1 (those that see two tokens or more) of
    the attention to position 0 (row 0 sees only itself, and puts all of it there): [heads],
    NaN for a one-token example."""
    rows = attention[:, 1:, 0]
    if rows.shape[-1] == 0:
        return np.full(attention.shape[0], np.nan)
    return rows.astype(np.float64).mean(-1)


def duplicate_targets(ids: Sequence[int]) -> np.ndarray:
    """bool [n, n]: [j < i and t_j = t_i], TransformerLens's duplicate-token pattern."""
    t = np.asarray(ids)
    return np.tril(t[:, None] == t[None, :], -1)


def induction_targets(ids: Sequence[int]) -> np.ndarray:
    """bool [n, n]: [1 ≤ j ≤ i and t_{j−1} = t_i], TransformerLens's induction pattern (the
    duplicate pattern moved one column right)."""
    duplicate = duplicate_targets(ids)
    out = np.zeros_like(duplicate)
    out[:, 1:] = duplicate[:, :-1]
    return np.tril(out)


def pattern_score(attention: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per head, the mean over the rows that have a target of the attention on the targets:
    [heads], NaN when no row has one."""
    rows = targets.any(-1)
    if not rows.any():
        return np.full(attention.shape[0], np.nan)
    on = (attention[:, rows].astype(np.float64) * targets[rows]).sum(-1)
    return on.mean(-1)


# -- the probe ---------------------------------------------------------------------------------


def probe_bodies(vocabulary: np.ndarray, sequences: int, length: int, seed: int = PROBE_SEED):
    """The probe's token ids without special tokens: [sequences, 2·length], each row T =
    ``length`` tokens drawn uniformly (with replacement) from ``vocabulary`` and repeated."""
    rng = np.random.default_rng(seed)
    half = vocabulary[rng.integers(0, len(vocabulary), (sequences, length))]
    return np.concatenate([half, half], 1)


class HeadTypes(Analysis):
    """A decoder's first-token share over the corpus; duplicate-token and induction scores
    over a probe of repeated random tokens; and each head's types."""

    name = "types"
    needs: ClassVar[frozenset[str]] = frozenset({ATTENTION, SEQUENCES})
    sections: ClassVar[Mapping[str, str]] = {
        "overview_cards": "sections/types.html",
        "head": "sections/types-head.html",
    }

    def __init__(self, sequences: int = DEFAULT_SEQUENCES):
        self.sequences = sequences

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.first = ExactSum((run.layers, run.heads))
        self.counts = np.zeros((run.layers, run.heads), np.int64)
        self.scores = ExactSum((2, run.layers, run.heads))  # duplicate, induction; per sequence
        self.defined = np.zeros((2, run.layers, run.heads), np.int64)
        self.probed = 0  # sequences run (0 in every part but the one that ran the probe)
        self.length = 0  # T of the probe's sequences
        self.seen_first = False  # whether this part holds the corpus's first example

    def add(self, record: Record) -> None:
        self.seen_first |= record.index == 0  # its layers came to ``add_layer`` before

    def add_layer(self, record: Record, layer: int, attention: np.ndarray) -> None:
        """One layer of one example: [heads, n, n] (a decoder's first-token share)."""
        if not self.run.causal:
            return
        share = first_token_share(attention)
        defined = ~np.isnan(share)
        row = np.zeros(self.first.shape)
        row[layer] = np.where(defined, share, 0.0)
        self.first.add(row)
        self.counts[layer] += defined

    def settle(self) -> None:
        """Run the probe, in the part that holds the corpus's first example only."""
        passes = self.run.sequences
        if not self.seen_first or passes is None or self.sequences == 0 or self.probed:
            return
        self.length = min(PROBE_LENGTH, passes.room // 2)
        if self.length < 2 or len(passes.vocabulary) < 2:
            return
        bodies = probe_bodies(passes.vocabulary, self.sequences, self.length)
        for ids, attention in passes.attention(bodies.tolist()):
            self.add_probe(ids, attention)

    def add_probe(self, ids: Sequence[int], attention: np.ndarray) -> None:
        """One probe sequence: its token ids (special tokens included) and attention [L, H, n,
        n]."""
        targets = (duplicate_targets(ids), induction_targets(ids))
        scores = np.stack(
            [np.stack([pattern_score(a, t) for a in attention]) for t in targets]
        )  # [2, L, H]
        defined = ~np.isnan(scores)
        self.scores.add(np.where(defined, scores, 0.0))
        self.defined += defined
        self.probed += 1

    def state(self) -> dict[str, Any]:
        return {"first": self.first.state(), "counts": self.counts,
                "scores": self.scores.state(), "defined": self.defined,
                "probed": self.probed, "length": self.length,
                "seen_first": self.seen_first}  # fmt: skip

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.first, self.scores = (ExactSum.from_state(state[k]) for k in ("first", "scores"))
        self.counts = np.asarray(state["counts"], np.int64)
        self.defined = np.asarray(state["defined"], np.int64)
        self.probed, self.length = int(state["probed"]), int(state["length"])
        self.seen_first = bool(state["seen_first"])

    def merge(self, other: HeadTypes) -> None:
        """Add the sums: the probe's are another part's only if that part ran it."""
        self.first.merge(other.first)
        self.counts += other.counts
        self.scores.merge(other.scores)
        self.defined += other.defined
        if other.probed:
            self.probed, self.length = self.probed + other.probed, other.length
        self.seen_first |= other.seen_first

    def finish(self, results: Mapping[str, Result]) -> Result:
        columns, catalogue = {}, []
        if self.run.causal:
            columns["first"] = per_head(self.first.value() / np.maximum(self.counts, 1))
            catalogue.append(COLUMNS[0])
        if self.probed:
            scores = self.scores.value() / np.maximum(self.defined, 1)
            columns["duplicate"], columns["induction"] = per_head(scores[0]), per_head(scores[1])
            catalogue += COLUMNS[1:]
        types = [
            [TYPES[key] for key in columns if columns[key][flat] >= TYPE_THRESHOLD]
            for flat in range(self.run.size)
        ]
        return Result(
            catalogue=catalogue,
            columns=columns,
            parts={"types": types},
            data={
                "types": [TYPES[c.key] for c in catalogue],
                "columns": {TYPES[c.key]: c.key for c in catalogue},
                # each type's heads, flat indices in model order
                "heads": {
                    TYPES[c.key]: [k for k in range(self.run.size) if TYPES[c.key] in types[k]]
                    for c in catalogue
                },
                "threshold": TYPE_THRESHOLD,
                "probe": {
                    "sequences": self.probed,
                    "asked": self.sequences,
                    "length": self.length,
                    "seed": PROBE_SEED,
                },
            },
        )
