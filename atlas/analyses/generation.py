"""Prompt rows and generated rows apart (``--generate``): the main per-head statistics over the
query rows of the prompt and, separately, over the rows of the tokens the model generated, and
how much of a generated token's attention goes back to the prompt.

A head that reads the previous token while the model reads the prompt may do something else
while it writes; one average over every row would hide it. The formulas are in docs/metrics.md
("Prompt and generation"). Each per-example value is a function of one layer's attention
[heads, n, n] (``layer_split``), so that the analysis takes layers one at a time as easily as a
whole record; the corpus value is the plain mean over the examples that define it (an example
has prompt rows always, generated rows when the model wrote at least one token).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..exact import ExactSum
from ..model import Record
from .base import Analysis, Column, Result, RunInfo, per_head
from .measures import row_entropy

_GROUP = "Prompt rows and generated rows"
_PAPER = "this atlas: Clark et al. 2019's shares and normalised entropy, over a subset of rows"
# (statistic, title, kind, description, formula over a set R of query rows)
_STATISTICS = (
    ("to_cls", "[CLS]", "share", "attention to the first (BOS) token",
     "mean_{i∈R} Σ_j A[i,j]·[j is CLS/BOS]"),
    ("prev", "previous", "share", "attention to the previous token",
     "mean_{i∈R} A[i,i−1] (0 for i = 0)"),
    ("self", "self", "share", "attention to the token itself", "mean_{i∈R} A[i,i]"),
    ("entropy_norm", "entropy / max", "ratio", "entropy over its maximum; 1 = uniform",
     "mean_{i∈R, v_i≥2} min(1, H(A'[i,:]) / ln v_i)"),
)  # fmt: skip
SIDES = (("prompt", "prompt rows", "R = the prompt's rows"),
         ("gen", "generated rows", "R = the generated tokens' rows"))  # fmt: skip
COLUMNS = [
    Column(f"{side}_{key}", f"{title} ({rows})", kind, "", f"{text} (mean over the {rows})",
           "prompt-and-generation", _GROUP, f"{formula}; {where}", paper=_PAPER)
    for side, rows, where in SIDES
    for key, title, kind, text, formula in _STATISTICS
] + [
    Column("gen_to_prompt", "to prompt (generated rows)", "share", "",
           "share of a generated token's attention that goes to the prompt",
           "prompt-and-generation", _GROUP, "mean_{i∈G} Σ_{j∈P} A[i,j]", paper="this atlas"),
]  # fmt: skip
KEYS = tuple(c.key for c in COLUMNS)


def layer_split(
    attention: np.ndarray,
    entropies: np.ndarray,
    cls: np.ndarray,
    generated: np.ndarray,
    causal: bool,
) -> np.ndarray:
    """Every column of ``COLUMNS`` for one layer of one example: float64 [len(KEYS), heads],
    NaN where the example leaves one undefined (no generated row; no row that sees two keys).

    ``attention``: [heads, n, n], rows summing to 1; ``entropies``: its row entropies [heads, n]
    (``measures.row_entropy``); ``cls``, ``generated``: bool [n]."""
    a = np.asarray(attention, np.float64)
    heads, n = a.shape[0], a.shape[-1]
    to_cls = a @ cls.astype(np.float64)  # [heads, n]: each row's share on CLS/BOS
    previous = np.zeros((heads, n))
    previous[:, 1:] = np.diagonal(a, -1, axis1=1, axis2=2)
    itself = np.diagonal(a, 0, axis1=1, axis2=2)
    out = np.full((len(KEYS), heads), np.nan)
    at = 0
    for rows in (~generated, generated):
        if rows.any():
            out[at : at + 3] = [v[:, rows].mean(-1) for v in (to_cls, previous, itself)]
            out[at + 3] = _entropy_of(entropies, rows, causal)
        at += len(_STATISTICS)
    if generated.any():
        out[at] = a[:, generated][:, :, ~generated].sum(-1).mean(-1)
    return out


def _entropy_of(entropies: np.ndarray, rows: np.ndarray, causal: bool) -> np.ndarray:
    """``normalised_entropy`` over the chosen rows only: each row keeps the keys it sees."""
    n = entropies.shape[-1]
    visible = np.arange(1, n + 1) if causal else np.full(n, n)
    keep = rows & (visible >= 2)
    if not keep.any():
        return np.full(entropies.shape[:-1], np.nan)
    return np.minimum(entropies[..., keep] / np.log(visible[keep]), 1.0).mean(-1)


class PromptGeneration(Analysis):
    """Corpus means of the per-head statistics over prompt rows and over generated rows."""

    name = "generation"

    def start(self, run: RunInfo) -> None:
        super().start(run)
        shape = (len(KEYS), run.layers, run.heads)
        self.sums = ExactSum(shape)
        self.counts = np.zeros(shape, np.int64)

    def add_layer(self, record: Record, layer: int, attention: np.ndarray) -> None:
        if record.generated is None:
            return
        entropy = record.derived("row_entropy", lambda: row_entropy(attention), layer=layer)
        values = record.stash(
            self.name, lambda: np.full((len(KEYS), self.run.layers, self.run.heads), np.nan)
        )
        values[:, layer] = layer_split(
            attention, entropy, record.cls, record.generated, self.run.causal
        )

    def add(self, record: Record) -> None:
        if record.generated is None:
            return
        values = record.stash(self.name)  # [keys, layers, heads], from ``add_layer``
        defined = ~np.isnan(values)
        self.sums.add(np.where(defined, values, 0.0))
        self.counts += defined

    def state(self) -> dict:
        return {"sums": self.sums.state(), "counts": self.counts}

    def load_state(self, state) -> None:
        self.sums = ExactSum.from_state(state["sums"])
        self.counts = np.asarray(state["counts"], np.int64)

    def merge(self, other: PromptGeneration) -> None:
        self.sums.merge(other.sums)
        self.counts += other.counts

    def finish(self, results: Mapping[str, Result]) -> Result:
        # as the heads analysis: 0 where no example defines a value (JSON has no NaN)
        means = self.sums.value() / np.maximum(self.counts, 1)
        return Result(
            catalogue=COLUMNS,
            columns={key: per_head(means[k]) for k, key in enumerate(KEYS)},
            data={"examples": int(self.counts[len(_STATISTICS)].max(initial=0))},
        )
