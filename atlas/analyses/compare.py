"""Two models, head by head: what changed between model A (the atlas's model) and model B.

A compare build (``atlas build --compare B``, atlas/comparison.py) is two atlases and one
analysis across them. Model A and model B each run the same analyses over the same batches,
on the same tokens; the B − A of every catalogue column, B's labels and B's attention of the
sentences with a page then come from the two atlases, by the code path ``atlas compare`` takes
for two finished atlas.json files (``comparison.compare_atlases``, which calls
``compare_heads`` here). The one number that needs both models' attention of the same example
at once is this module's ``Compare``, the analysis across the two models:

- change(h) = Σ_examples Σ_i JS(P^A_h[i,:], P^B_h[i,:]) / Σ_examples n, P = 0.999·A + 0.001/n,
  in nats: the head distance of distances.py taken across the two models (``js_sums`` with
  ``other``), so 0 when B's head attends exactly as A's;
- B's nearest head in A: the head g of A with the smallest cross distance to B's head h; g = h
  means the head kept its role, another g that it took that head's.

Its sums are exact (``ExactSum``), so a compare build split into parts merges to the one-pass
atlas, as every other analysis does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from .. import contract
from ..exact import ExactSum
from ..model import ModelInfo, Record
from ..ranking import competition_ranks
from .base import Analysis, Column, Result, RunInfo
from .distances import js_sums

PAGE = {contract.COMPARE_PAGE: {"template": "compare.html", "title": "Compare"}}
SECTIONS = {
    "overview_cards": "sections/compare-card.html",
    "head": "sections/compare-head.html",
}
CHANGE = Column(
    "change",
    "change A→B",
    "nats",
    "nats",
    "mean Jensen-Shannon divergence per token between the head in model A and the same head "
    "in model B",
    "change",
    formula="Σ_i JS(P^A_h[i,:], P^B_h[i,:]) / n, P = 0.999·A + 0.001/n",
    paper="Clark et al. 2019, What Does BERT Look At?, §6: their head distance, across two models",
)
# B's attention files (data/NNNN.b.js) never carry queries and keys: B's card says so, whatever
# B's own atlas kept.
B_NEURON_NOTE = "queries and keys are kept for model A only"


def model_card(card: Mapping[str, Any] | ModelInfo) -> dict[str, Any]:
    """Model B's card as a compare atlas holds it: B's ModelCard (or ModelInfo) fields, without
    the neuron view."""
    fields = dataclasses.asdict(card) if dataclasses.is_dataclass(card) else dict(card)
    return {**fields, "neuron_view": False, "neuron_note": B_NEURON_NOTE}


def compare_heads(
    catalogue: Sequence[Column],
    a: Mapping[str, Sequence[float]],
    b: Mapping[str, Sequence[float]],
    labels_b: Sequence[str],
) -> tuple[list[dict], dict]:
    """Per head (model order): B's value and the delta B − A of each catalogue column both
    models have, and B's label. Returns (parts, data): what two atlases give, with or without
    the models."""
    keys = [c.key for c in catalogue if c.key in a and c.key in b]
    delta = {k: np.asarray(b[k], float) - np.asarray(a[k], float) for k in keys}
    parts: list[dict] = [
        {
            "b": {k: float(b[k][h]) for k in keys},
            "delta": {k: float(delta[k][h]) for k in keys},
            "label_b": labels_b[h],
        }
        for h in range(len(labels_b))
    ]
    data: dict[str, Any] = {
        "columns": keys,
        "delta_range": {k: float(np.abs(delta[k]).max(initial=0.0)) for k in keys},
        "model_means_b": {k: float(np.mean(b[k])) for k in keys},
    }
    return parts, data


def cross_heads(cross: np.ndarray) -> tuple[list[float], list[dict], dict]:
    """From the cross distances [A head, B head]: the change per head (the diagonal), and per
    head its rank (1: the largest, ties sharing the best: atlas/ranking.py) and B's nearest head
    in A (the first of ties). Returns (change, parts, data)."""
    size = len(cross)
    change = np.diag(cross)
    ranks = competition_ranks(change)
    nearest = [int(np.argmin(cross[:, h])) for h in range(size)]
    parts = [
        {
            "change": float(change[h]),
            "rank": ranks[h],
            "nearest": nearest[h],
            "nearest_distance": float(cross[nearest[h], h]),
            "kept_role": nearest[h] == h,
        }
        for h in range(size)
    ]
    data = {
        "ranking": sorted(range(size), key=lambda h: (-change[h], h)),
        "kept_role": sum(nearest[h] == h for h in range(size)),
    }
    return change.tolist(), parts, data


class Compare(Analysis):
    """Change per head between model A and model B, and B's nearest head in A: the analysis
    across two models. In a compare build (atlas/comparison.py) it takes model A's and model B's
    records of the same example, on the same tokens, together (``add_pair``); it is started on
    A's run and finished with A's results. Its ``wanted`` sentences are A's sentences with a
    page, whose B attention the pages' A/B switch shows: B's view data keeps them."""

    name = "compare"
    sections: ClassVar[Mapping[str, str]] = SECTIONS

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.cross = ExactSum((run.size, run.size))  # [A head, B head]; parts merge exactly
        self.tokens = 0

    def add(self, record: Record) -> None:
        raise ValueError(
            "the compare analysis compares two models' records (atlas build --compare)"
        )

    def add_pair(self, a: Record, b: Record) -> None:
        """Fold in one example as model A (``a``) and model B (``b``) saw it. Every head of A
        meets every head of B, so this takes whole records, every layer of both at once."""
        self.cross.add(js_sums(a.attention, device=self.run.device, other=b.attention))
        self.tokens += a.n

    def state(self) -> dict:
        return {"cross": self.cross.state(), "tokens": self.tokens}

    def load_state(self, state) -> None:
        self.cross, self.tokens = ExactSum.from_state(state["cross"]), int(state["tokens"])

    def merge(self, other: Compare) -> None:
        self.cross.merge(other.cross)
        self.tokens += other.tokens

    def finish(self, results: Mapping[str, Result]) -> Result:
        """``results``: model A's, of which the view data's says which sentences have a page."""
        change, parts, data = cross_heads(self.cross.value() / max(self.tokens, 1))
        kept = results["views"].sentences if "views" in results else {}
        return Result(
            catalogue=[CHANGE],
            columns={"change": change},
            parts={"compare": parts},
            data=data,
            wanted={i for i, view in kept.items() if view.heads_kept is None},
        )
