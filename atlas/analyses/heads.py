"""Per-head attention metrics: their corpus means, offset profiles and pattern labels (Clark et
al. 2019, §3). The per-example measures and the labels' rules are in measures.py, which other
analyses share; this analysis averages them over the corpus and labels each head.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import altair as alt
import numpy as np

from .. import charts, contract
from ..exact import ExactSum
from ..model import Record
from ..ranking import ordinal, ranked
from ..result import Atlas, Head
from .base import Analysis, Result, RunInfo, per_head
from .measures import (
    BROAD_THRESHOLD,
    COLUMNS,
    DECODER_COLUMNS,
    LABEL_METRICS,
    LABEL_THRESHOLD,
    LABELS,
    METRICS,
    OFFSETS,
    PART_NAMES,
    decoder_label,
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

    @classmethod
    def charts(cls) -> Mapping[str, Callable[..., dict]]:
        return {"offset_profile": offset_profile}

    @classmethod
    def summary(cls, atlas: Atlas, head: Head) -> list[tuple[int, str]]:
        return summary_lines(atlas, head)

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
        # a decoder's pages say BOS and EOS where an encoder's say [CLS] and [SEP]
        shown = decoder_label if self.run.causal else str
        labels = [
            shown(label_head({key: columns[key][flat] for key in METRICS}))
            for flat in range(self.run.size)
        ]
        offsets = (self.offsets.value() / max(self.count, 1)).reshape(self.run.size, len(OFFSETS))
        return Result(
            catalogue=DECODER_COLUMNS if self.run.causal else COLUMNS,
            columns=columns,
            parts={"label": labels, "offsets": offsets.tolist()},
            data={
                "labels": [shown(label) for label in LABELS],
                # the share behind each one-target label: the overview's card names the heads
                # highest on a share that no head reaches the threshold on
                "label_metrics": {shown(name): key for key, name in LABEL_METRICS.items()},
                "label_threshold": LABEL_THRESHOLD,
                "broad_threshold": BROAD_THRESHOLD,
                "offsets": list(OFFSETS),
            },
        )


def offset_profile(atlas: Atlas, head: Head) -> dict:
    """Attention at relative offsets -8..8: this head as bars, its layer's mean as ticks.

    Built once per process (``_offset_template``) and filled in for each head."""
    titles = {HEAD_TITLE: head.name, LAYER_TITLE: f"layer {head.layer} mean"}
    rows = {"offsets": _offset_rows(atlas, head)}
    return charts.filled(_titled(_offset_template(), titles), rows)  # copies, not changes


# Stand-ins for a head's tooltip titles in the offset profile built once.
HEAD_TITLE, LAYER_TITLE = "__atlas_head__", "__atlas_layer__"


def _offset_rows(atlas: Atlas, head: Head) -> list[dict]:
    offsets = atlas.results["heads"]["offsets"]
    layer_heads = [h for h in atlas.heads if h.layer == head.layer]
    return [
        {
            "offset": d,
            "head": head.parts["offsets"][i],
            "layer": sum(h.parts["offsets"][i] for h in layer_heads) / len(layer_heads),
        }
        for i, d in enumerate(offsets)
    ]


@functools.lru_cache(maxsize=1)
def _offset_template() -> dict:
    """The offset profile with stand-ins for its titles and rows (never changed)."""
    return _offset_chart(HEAD_TITLE, LAYER_TITLE)


def _offset_chart(head_title: str, layer_title: str, rows: dict | None = None) -> dict:
    base = alt.Chart(charts.placeholder("offsets", rows)).encode(
        x=alt.X("offset:O", title="offset (key position − query position)")
    )
    bars = base.mark_bar(color=contract.HEAD_COLOURS[0]).encode(
        y=alt.Y("head:Q", title="mean attention", scale=alt.Scale(zero=True)),  # its own range
        tooltip=[
            "offset:O",
            alt.Tooltip("head:Q", format=".3f", title=head_title),
            alt.Tooltip("layer:Q", format=".3f", title=layer_title),
        ],
    )
    ticks = base.mark_tick(color=contract.HEAD_COLOURS[3], thickness=2, size=14).encode(y="layer:Q")
    chart = (bars + ticks).properties(width=290, height=180, title="Offset profile")
    return charts.to_spec(chart, rows)


def _titled(node, titles: dict[str, str]):
    """A copy of ``node`` with every "title" that is one of ``titles``' keys replaced by its
    value."""
    if isinstance(node, dict):
        return {
            key: titles.get(value, value)
            if key == "title" and isinstance(value, str)
            else _titled(value, titles)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_titled(value, titles) for value in node]
    return node


SHARES = tuple(LABEL_METRICS)  # the six shares a label is made of, in the rule's order
FOCUSED_BELOW = 0.4  # entropy / max under this reads as "focused" (broad is BROAD_THRESHOLD up)


@dataclass(frozen=True)
class Share:
    """One share of the head's attention, with what to compare it with."""

    name: str  # previous, next, self, [CLS], [SEP], punctuation (a decoder: BOS, EOS)
    value: float
    layer_mean: float
    model_mean: float
    rank: int  # 1 = the largest of all heads
    of: int  # how many heads have a value


def top_shares(atlas: Atlas, head: Head, count: int = 2) -> list[Share]:
    """The head's ``count`` largest shares, largest first (ties in the rule's order)."""
    present = [k for k in SHARES if head.metrics.get(k) is not None]
    order = sorted(present, key=lambda k: (-head.metrics[k], SHARES.index(k)))
    return [
        Share(
            decoder_label(PART_NAMES[k]) if atlas.model.causal else PART_NAMES[k],
            head.metrics[k],
            atlas.layer_means[k][head.layer - 1],
            atlas.model_means[k],
            *ranked(atlas, k, head),
        )
        for k in order[:count]
    ]


def spread(value: float) -> str:
    """How spread its attention is, from entropy / max (the thresholds of the labels)."""
    if value >= BROAD_THRESHOLD:
        return "broad"
    return "focused" if value < FOCUSED_BELOW else "moderately spread"


def summary_lines(atlas: Atlas, head: Head) -> list[tuple[int, str]]:
    """Where its attention goes (place 20) and how spread it is (place 40)."""
    lines = []
    shares = top_shares(atlas, head)
    if shares:
        lines.append(
            (
                20,
                "Attention goes to "
                + " and ".join(
                    f"{s.name} {s.value:.2f} (layer mean {s.layer_mean:.2f}, model mean"
                    f" {s.model_mean:.2f}; {ordinal(s.rank)} of {s.of} heads)"
                    for s in shares
                )
                + ".",
            )
        )
    if "entropy_norm" in head.metrics:
        value = head.metrics["entropy_norm"]
        lines.append(
            (
                40,
                f"{spread(value).capitalize()}: entropy {value:.2f} of its maximum"
                f" (model mean {atlas.model_means['entropy_norm']:.2f}).",
            )
        )
    return lines
