"""Two models, head by head: what changed between model A (the atlas's model) and model B.

In a compare build (``atlas build --compare B``) the runner is a ``PairedRunner``: every record
is model A's and carries model B's record of the same example, on the same tokens, as
``Record.b``. This analysis is the only one that reads it:

- change(h) = Σ_examples Σ_i JS(P^A_h[i,:], P^B_h[i,:]) / Σ_examples n, P = 0.999·A + 0.001/n,
  in nats: the head distance of distances.py taken across the two models (``js_sums`` with
  ``other``), so 0 when B's head attends exactly as A's;
- B's nearest head in A: the head g of A with the smallest cross distance to B's head h; g = h
  means the head kept its role, another g that it took that head's;
- the delta B − A of every per-head catalogue column: ``mirrors_of`` makes fresh instances, for
  B, of the build's analyses that give columns (head metrics, syntax, head importance, and any
  analysis of the user's that reads attention only); they are fed B's records, and head
  importance gets B's own probe (``runner_b``). The layers analysis has no per-head column;
  ``change`` is this analysis's own;
- B's attention of the sentences that have a page (``Result.sentences``), for the sentence
  pages' A/B switch and difference map.

``compare_heads`` builds the per-head comparison from columns alone; ``atlas compare`` uses it
to compare two atlas.json files without a model (deltas only: no change, no nearest head).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from .. import contract
from ..model import ModelInfo, Record
from ..probe import ProbeError
from ..ranking import competition_ranks
from ..viewdata import View, make_view
from .base import ATTENTION, EVERY, PROBE, Analysis, Column, Result, RunInfo, feed
from .distances import js_sums
from .heads import HeadMetrics
from .importance import HeadImportance
from .syntax import MIN_RELATION, Syntax

log = logging.getLogger(__name__)
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
B_NEURON_NOTE = "queries and keys are kept for model A only"
B_NEEDS = frozenset({ATTENTION, PROBE})  # what B's records (and B's probe) can give a mirror


def model_card(info: ModelInfo) -> dict[str, Any]:
    """Model B's card as atlas.json holds it (a ModelCard's fields)."""
    return {**dataclasses.asdict(info), "neuron_view": False, "neuron_note": B_NEURON_NOTE}


def compare_heads(
    catalogue: Sequence[Column],
    a: Mapping[str, Sequence[float]],
    b: Mapping[str, Sequence[float]],
    labels_b: Sequence[str],
    cross: np.ndarray | None = None,
) -> tuple[list[dict], dict]:
    """Per head (model order): B's value and the delta B − A of each catalogue column both
    models have, B's label, and, given the cross distances [A head, B head], the change, its
    rank (1: the largest, ties sharing the best: atlas/ranking.py) and B's nearest head in A.
    Returns (parts, data)."""
    keys = [c.key for c in catalogue if c.key in a and c.key in b]
    size = len(labels_b)
    delta = {k: np.asarray(b[k], float) - np.asarray(a[k], float) for k in keys}
    parts: list[dict] = [
        {
            "b": {k: float(b[k][h]) for k in keys},
            "delta": {k: float(delta[k][h]) for k in keys},
            "label_b": labels_b[h],
        }
        for h in range(size)
    ]
    data: dict[str, Any] = {
        "columns": keys,
        "change": cross is not None,
        "delta_range": {k: float(np.abs(delta[k]).max(initial=0.0)) for k in keys},
        "model_means_b": {k: float(np.mean(b[k])) for k in keys},
    }
    if cross is not None:
        change = np.diag(cross)
        ranking = sorted(range(size), key=lambda h: (-change[h], h))
        ranks = competition_ranks(change)
        nearest = [int(np.argmin(cross[:, h])) for h in range(size)]  # first of ties
        for h in ranking:
            parts[h].update(
                change=float(change[h]),
                rank=ranks[h],
                nearest=nearest[h],
                nearest_distance=float(cross[nearest[h], h]),
                kept_role=nearest[h] == h,
            )
        data["ranking"] = ranking
        data["kept_role"] = sum(nearest[h] == h for h in range(size))
    return parts, data


def mirrors_of(analyses: Sequence[Analysis]) -> list[Analysis]:
    """Fresh copies, to run on model B, of the analyses in ``analyses`` (not yet started) that
    give per-head columns: head metrics, syntax, head importance (without gradient × input per
    token, which has no column), and every analysis from outside atlas that reads attention
    only (or the probe), so that a column a user adds is compared too. The built-in analyses
    without columns (pages, distances, examples, ...) are not run again."""
    out: list[Analysis] = []
    for analysis in analyses:
        own = type(analysis).__module__.startswith("atlas.")
        if isinstance(analysis, HeadImportance):
            out.append(HeadImportance(analysis.sample, analysis.ablation, views=0))
        elif isinstance(analysis, HeadMetrics | Syntax) or (
            not own and not isinstance(analysis, Compare) and analysis.needs <= B_NEEDS
        ):
            out.append(copy.deepcopy(analysis))
    return out


class Compare(Analysis):
    """Change per head between model A and model B, B's nearest head in A, B − A of every
    column, and B's attention of the sentences with a page."""

    name = "compare"
    uses = (EVERY, "views")  # compares every column; B's attention where A has pages
    revisit_reason = "model B's attention of sentences given a page only after the first pass"
    sections: ClassVar[Mapping[str, str]] = SECTIONS

    def __init__(
        self,
        model: ModelInfo,
        views: int = 200,
        min_relation: int = MIN_RELATION,
        mirrors: Sequence[Analysis] | None = None,
        runner_b: Any = None,
    ):
        """``model``: B's info (its card); ``views``: as ViewData's limit, so B's attention of
        the first pages is kept on the first pass; ``mirrors``: the column analyses run on B
        (default: head metrics and syntax; ``mirrors_of`` the build's analyses); ``runner_b``:
        B's runner, whose probe the mirrors that need one get (without it they are left out)."""
        self.model, self.limit, self.runner_b = model, views, runner_b
        self.mirrors = (
            list(mirrors)
            if mirrors is not None
            else [
                HeadMetrics(),
                Syntax(min_relation),
            ]
        )

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.cross = np.zeros((run.size, run.size))
        self.tokens = 0
        self.kept: dict[int, View] = {}
        self.pages: frozenset[int] | None = None  # known once the view data has finished
        self.probe_b = None
        if any(PROBE in m.needs for m in self.mirrors):
            if self.runner_b is not None and run.probe is not None:
                try:
                    self.probe_b = self.runner_b.probe(run.probe.examples, run.probe.batch_size)
                except ProbeError as err:  # as the pipeline does for A: compare the rest
                    log.warning("model B: %s; its importance is not compared", err)
            if self.probe_b is None:
                self.mirrors = [m for m in self.mirrors if PROBE not in m.needs]
        for mirror in self.mirrors:
            mirror.start(dataclasses.replace(run, causal=self.model.causal, probe=self.probe_b))

    def add(self, record: Record) -> None:
        other = record.b
        if other is None:
            raise ValueError("the compare analysis needs model B's records (a PairedRunner)")
        if self.pages is None:  # the first pass: every example, once
            # A's heads against B's: reads both models' every layer (``record.attention``)
            self.cross += js_sums(record.attention, device=self.run.device, other=other.attention)
            self.tokens += record.n
            for mirror in self.mirrors:
                feed(mirror, other)
        if record.index < self.limit or (self.pages and record.index in self.pages):
            self.kept[record.index] = make_view(other, vectors=False, causal=self.model.causal)

    def settle(self) -> None:
        for mirror in self.mirrors:
            mirror.settle()

    def revisit(self, results: Mapping[str, Result]) -> list[int]:
        """B's attention of the sentences with a page that the first pass did not keep."""
        kept = results["views"].sentences if "views" in results else {}
        self.pages = frozenset(i for i, view in kept.items() if view.heads_kept is None)
        return sorted(self.pages - set(self.kept))

    def finish(self, results: Mapping[str, Result]) -> Result:
        mirrored: dict[str, Result] = {}
        try:
            for mirror in self.mirrors:
                mirrored[mirror.name] = mirror.finish(mirrored)
        finally:
            if self.probe_b is not None:
                self.probe_b.close()
        catalogue = [c for result in results.values() for c in result.catalogue]
        a = {key: v for result in results.values() for key, v in result.columns.items()}
        b = {key: v for result in mirrored.values() for key, v in result.columns.items()}
        labels = mirrored["heads"].parts["label"] if "heads" in mirrored else [""] * self.run.size
        cross = self.cross / max(self.tokens, 1)
        parts, data = compare_heads(catalogue, a, b, labels, cross)
        pages = self.pages if self.pages is not None else frozenset(self.kept)
        kept = {i: view for i, view in sorted(self.kept.items()) if i in pages}
        return Result(
            catalogue=[CHANGE],
            columns={"change": np.diag(cross).tolist()},
            parts={"compare": parts},
            data={**data, "model": model_card(self.model), "sentences": sorted(kept)},
            sentences=kept,
            pages=dict(PAGE),
        )
