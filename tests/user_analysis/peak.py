"""An analysis of the user's, outside the package: how peaked each head's attention is.

    atlas build sentences.txt --analysis tests/user_analysis/peak.py:Peak

docs/design.md ("What an analysis is") walks through it."""

from pathlib import Path
from typing import ClassVar

import altair as alt
import numpy as np

from atlas.analyses import Analysis, Column, Result

PEAK = Column(
    "peak", "peak weight", "share", "", "the largest weight a query gives, averaged over queries",
    "peak", formula="Σ_i max_j A[i,j] / n",
)  # fmt: skip


def layer_peak(attention: np.ndarray) -> np.ndarray:
    """One layer's attention [heads, n, n] -> each head's mean largest weight per query."""
    return attention.max(-1).mean(-1)


class Peak(Analysis):
    name = "peak"
    templates = Path(__file__).parent / "templates"
    sections: ClassVar = {"overview": "sections/peak.html", "head": "sections/peak-head.html",
                          "sentence": "sections/peak-sentence.html"}  # fmt: skip

    def start(self, run):
        super().start(run)
        self.sum, self.count = np.zeros((run.layers, run.heads)), 0
        self.sentences = [0.0] * run.sentences  # one number per sentence, for its page

    def add(self, record):
        peaks = np.stack([layer_peak(layer) for layer in record.attention])
        self.sum, self.count = self.sum + peaks, self.count + 1
        self.sentences[record.index] = float(peaks.mean())

    def finish(self, results):
        mean = (self.sum / max(self.count, 1)).reshape(-1).tolist()
        return Result(catalogue=[PEAK], columns={"peak": mean}, data={"sentences": self.sentences})

    @classmethod
    def charts(cls):
        return {"peak_by_layer": peak_by_layer}

    @classmethod
    def page_data(cls, atlas, index):
        return {"peak": atlas.results["peak"]["sentences"][index]}


def peak_by_layer(atlas) -> dict:
    rows = [{"layer": i + 1, "peak": v} for i, v in enumerate(atlas.layer_means["peak"])]
    bars = alt.Chart(alt.Data(values=rows), title="Peak weight by layer").mark_bar()
    return bars.encode(x="layer:O", y=alt.Y("peak:Q", title="mean peak weight")).to_dict()
