"""Per-head attention metrics: their corpus means, offset profiles and pattern labels (Clark et
al. 2019, §3). The per-example measures and the labels' rules are in measures.py, which other
analyses share; this analysis averages them over the corpus and labels each head.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from ..exact import ExactSum
from ..model import Record
from .base import Analysis, Result, RunInfo, per_head
from .measures import (
    BROAD_THRESHOLD,
    COLUMNS,
    LABEL_METRICS,
    LABEL_THRESHOLD,
    LABELS,
    METRICS,
    OFFSETS,
    label_head,
    layer_metrics,
    layer_profile,
    record_metrics,
)


class HeadMetrics(Analysis):
    """Corpus means of the per-head metrics, offset profiles, and each head's pattern label."""

    name = "heads"
    sections: ClassVar[Mapping[str, str]] = {
        "overview_cards": "sections/labels.html",
        "head": "sections/offsets.html",
    }

    def start(self, run: RunInfo) -> None:
        super().start(run)
        shape = (len(METRICS), run.layers, run.heads)  # metric by metric, in METRICS order
        self.sums = ExactSum(shape)  # order-independent, so that parts merge to the last bit
        self.counts = np.zeros(shape, np.int64)
        self.offsets = ExactSum((run.layers, run.heads, len(OFFSETS)))
        self.count = 0

    def _profile(self, record: Record) -> np.ndarray:
        """The example's offset profiles [layers, heads, offsets], filled layer by layer."""
        shape = (self.run.layers, self.run.heads, len(OFFSETS))
        return record.stash(self.name, lambda: np.empty(shape))

    def add_layer(self, record: Record, layer: int, attention: np.ndarray) -> None:
        layer_metrics(record, layer, attention, self.run)
        self._profile(record)[layer] = layer_profile(record, layer, attention)

    def add(self, record: Record) -> None:
        metrics = record_metrics(record, self.run)
        values = np.stack([metrics[key] for key in METRICS])
        defined = ~np.isnan(values)
        self.sums.add(np.where(defined, values, 0.0))
        self.counts += defined
        self.offsets.add(self._profile(record))
        self.count += 1

    def state(self) -> dict:
        return {"sums": self.sums.state(), "counts": self.counts,
                "offsets": self.offsets.state(), "count": self.count}  # fmt: skip

    def load_state(self, state) -> None:
        self.sums, self.offsets = (ExactSum.from_state(state[k]) for k in ("sums", "offsets"))
        self.counts, self.count = np.asarray(state["counts"], np.int64), int(state["count"])

    def merge(self, other: HeadMetrics) -> None:
        self.sums.merge(other.sums)
        self.offsets.merge(other.offsets)
        self.counts += other.counts
        self.count += other.count

    def means(self) -> dict[str, np.ndarray]:
        """Corpus value of each metric: the plain mean over the examples that define it."""
        means = self.sums.value() / np.maximum(self.counts, 1)
        return dict(zip(METRICS, means, strict=True))

    def finish(self, results) -> Result:
        means = self.means()
        columns = {key: per_head(means[key]) for key in METRICS}
        labels = [
            label_head({key: columns[key][flat] for key in METRICS})
            for flat in range(self.run.size)
        ]
        offsets = (self.offsets.value() / max(self.count, 1)).reshape(self.run.size, len(OFFSETS))
        return Result(
            catalogue=COLUMNS,
            columns=columns,
            parts={"label": labels, "offsets": offsets.tolist()},
            data={
                "labels": list(LABELS),
                # the share behind each one-target label: the overview's card names the heads
                # highest on a share that no head reaches the threshold on
                "label_metrics": {name: key for key, name in LABEL_METRICS.items()},
                "label_threshold": LABEL_THRESHOLD,
                "broad_threshold": BROAD_THRESHOLD,
                "offsets": list(OFFSETS),
            },
        )
