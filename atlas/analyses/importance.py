"""Head importance (ablation, gradient) and token importance (rollout, gradient × input).

Heads, on a sample of sentences (``--importance N``: the first N of the corpus, so with the
default ``--views`` they are sentences with a page):

- ablation: the change in the model's output when one head's context vector is zeroed
  (atlas/probe.py says how), on the first ``ablation`` sentences of the sample, since it costs
  about L·H·(L+1)/(2L) forward passes a sentence (docs/performance.md); kept per sentence, so
  that a percentile bootstrap over those sentences gives each head an interval for its
  importance and for its rank (``parts.importance``);
- gradient: |∂loss/∂ξ_h| for a head gate ξ_h = 1, divided by its layer's L2 norm as Michel et
  al. (2019) do in their code (``importance_grad``; ``importance_grad_raw`` without), and
  Clark et al.'s Fig. 3 split of the attention-weighted gradient by where the attention goes,
  per layer. A gradient needs a loss (masked-LM or task loss); for a bare encoder it is not
  defined (the distance to its own output has zero gradient where nothing is removed), and
  ablation stands alone.

Tokens: attention rollout (Abnar and Zuidema 2020) is a function of a sentence's attention,
computed from the float attention with the page data (``viewdata.rollout``) and drawn by
assets/rollout.js; gradient × input saliency needs the model, so it is computed here for the
sentences with a page, when the model has a loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

import altair as alt
import numpy as np

from .. import charts
from ..exact import ExactSum
from ..model import Record
from ..probe import ENCODER
from ..ranking import competition_ranks, ordinal, rank_rows, ranked, spearman
from ..result import DIGITS, Atlas, Head
from .base import PROBE, Analysis, Column, Result, RunInfo, per_head

DEFAULT_SAMPLE = 200  # --importance: sentences for the gradient measures
DEFAULT_ABLATION = 32  # the first this many are ablated: ρ ≥ 0.95 (docs/importance.md)
RESAMPLES, SEED, LEVEL = 1000, 0, 0.95  # the bootstrap over the ablated sentences
BOOTSTRAP_KEYS = ("rank", "low", "high", "rank_low", "rank_high")
ROLES = ("[CLS]", "[SEP]", "punctuation", "other")

MICHEL = "Michel, Levy and Neubig 2019, Are Sixteen Heads Really Better than One?"
ABLATION_MEASURE = {
    ENCODER: "1 − cos(mean-pooled last layer, same without the head)",
    "masked-lm": "masked-LM loss without the head − with it",
    "classifier": "p(predicted class) with the head − without it",
}


class HeadImportance(Analysis):
    """Per-head importance by ablation (and by gradient where the model has a loss); gradient ×
    input per token on the sentences with a page."""

    name = "importance"
    uses = ("heads",)  # correlations with attention to [SEP] and [CLS], where measured
    needs = frozenset({PROBE})
    sections: ClassVar[Mapping[str, str]] = {
        "overview": "sections/importance.html",
        "head": "sections/importance-head.html",
        "sentence": "sections/importance-sentence.html",
    }

    @classmethod
    def charts(cls) -> Mapping[str, Callable[..., dict]]:
        return {"importance_scatter": importance_scatter}

    @classmethod
    def summary(cls, atlas: Atlas, head: Head) -> list[tuple[int, str]]:
        line = importance_line(atlas, head)
        return [(30, line)] if line else []

    def __init__(
        self, sample: int = DEFAULT_SAMPLE, ablation: int = DEFAULT_ABLATION, views: int = 200
    ):
        if sample < 0 or ablation < 0:
            raise ValueError("importance: sample sizes cannot be negative")
        self.sample, self.ablation, self.views = sample, ablation, views

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.probe = run.probe
        self.used = list(range(min(self.sample, run.sentences)))
        self.ablated = self.used[: self.ablation]
        self.with_page = min(self.views, run.sentences)  # sentences given gradient × input
        self.seen: list[int] = []  # sentences of the probe's passes this run (or range) holds
        # What ``settle`` measures on them: the probe's kind, each ablated sentence's change
        # per head, the gradient sums, and gradient × input of the sentences with a page.
        self.kind = ""
        self.each: dict[int, np.ndarray] = {}
        self.gate = ExactSum((run.layers, run.heads))
        self.split = ExactSum((run.layers, 4))
        self.saliency: dict[int, list[float]] = {}

    def add(self, record: Record) -> None:
        if record.index < max(len(self.used), self.with_page):  # some probe pass needs it
            self.seen.append(record.index)

    def settle(self) -> None:
        """Ablate, and take the gradients of, the sentences of the sample that this run holds
        (all of them in one pass; a range's share of them in a split build)."""
        if self.probe is None:
            raise ValueError("the importance analysis needs the runner's probe")
        probe, seen = self.probe, set(self.seen)
        self.kind = probe.kind
        # the batches of the whole sample that hold this run's sentences, as one pass runs them
        rows = probe.ablation_per_example(self.ablated, only=seen)
        ablated = [i for i in self.ablated if i in seen]
        self.each = dict(zip(ablated, rows.reshape(len(ablated), self.run.size), strict=True))
        if probe.kind != ENCODER:
            sums = probe.gradient_sums(self.used, only=seen)
            self.gate, self.split = sums["gate"], sums["split"]
            self.saliency = probe.saliency(range(self.with_page), only=seen)

    def state(self) -> dict:
        return {
            "kind": self.kind,
            "seen": self.seen,
            "each": {str(i): row for i, row in self.each.items()},
            "gate": self.gate.state(),
            "split": self.split.state(),
            "saliency": {str(i): values for i, values in self.saliency.items()},
        }

    def load_state(self, state) -> None:
        self.kind, self.seen = state["kind"], list(state["seen"])
        self.each = {int(i): np.asarray(row, np.float64) for i, row in state["each"].items()}
        self.gate, self.split = (
            ExactSum.from_state(state["gate"]),
            ExactSum.from_state(state["split"]),
        )
        self.saliency = {int(i): list(values) for i, values in state["saliency"].items()}

    def merge(self, other: HeadImportance) -> None:
        """Exact: per-sentence values are united, gradient sums are ``ExactSum``s."""
        self.kind = self.kind or other.kind
        self.seen += other.seen
        self.each.update(other.each)
        self.gate.merge(other.gate)
        self.split.merge(other.split)
        self.saliency.update(other.saliency)

    def finish(self, results: Mapping[str, Result]) -> Result:
        kind = self.kind
        each = np.array([self.each[i] for i in self.ablated])
        each = each.reshape(len(self.ablated), self.run.size)
        ablation = each.mean(0) if len(self.ablated) else np.zeros(self.run.size)
        columns = {"importance": ablation.tolist()}
        catalogue = [
            Column(
                "importance", "importance", "score", "",
                f"head ablation: {ABLATION_MEASURE[kind]}", "head-importance",
                "", "mean over the ablation sample of the output's change when the head's"
                " context vector is zeroed", paper=MICHEL,
            )
        ]  # fmt: skip
        data: dict = {
            "kind": kind,
            "measure": ABLATION_MEASURE[kind],
            "sample": self.used,
            "ablated": self.ablated,
            "gradient": kind != ENCODER,
            "roles": list(ROLES),
            "bootstrap": {"resamples": RESAMPLES, "seed": SEED, "level": LEVEL},
        }
        parts = {"importance": bootstrap(each)}
        if kind != ENCODER:
            count = max(len(self.used), 1)
            grads = {"gate": self.gate.value() / count, "split": self.split.value() / count}
            columns["importance_grad"] = per_head(by_layer_norm(grads["gate"]))
            columns["importance_grad_raw"] = per_head(grads["gate"])
            catalogue += [
                Column(
                    "importance_grad", "gradient importance", "score", "",
                    "|∂loss/∂ξ_h| for a head gate ξ_h = 1, divided by its layer's L2 norm "
                    "(Michel et al. 2019)", "head-importance-gradient",
                    "", "mean over the sample of |∂loss/∂ξ_h| at ξ = 1 (ξ_h gates head h's context"
                    " vector), then I_h / ‖I_layer‖₂", paper=MICHEL,
                ),
                Column(
                    "importance_grad_raw", "gradient importance, raw", "score", "",
                    "|∂loss/∂ξ_h| for a head gate ξ_h = 1, not normalised by layer",
                    "head-importance-gradient", "", "mean over the sample of |∂loss/∂ξ_h| at ξ = 1",
                    paper=MICHEL,
                ),
            ]  # fmt: skip
            split = grads["split"]
            data["clark"] = [[round(float(v), 6) for v in row] for row in split]
            data["saliency"] = {
                str(i): [round(v, 4) for v in values] for i, values in sorted(self.saliency.items())
            }
        data["correlation"] = correlations(columns, results)
        return Result(catalogue=catalogue, columns=columns, parts=parts, data=data)


def by_layer_norm(scores: np.ndarray) -> np.ndarray:
    """Michel et al.'s per-layer normalisation ([L, H]): each layer's scores divided by their
    L2 norm (their code's ``--normalize_pruning_by_layer``, exponent 2, + 1e-20), so that heads
    are compared across layers whose gradients differ in scale."""
    scores = np.asarray(scores, float)
    return scores / (np.sqrt((scores**2).sum(-1, keepdims=True)) + 1e-20)


def bootstrap(
    each: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL
) -> list[dict]:
    """Per head, the percentile bootstrap over the ablated sentences ([N, heads], one row a
    sentence): the importance (the mean over the N) and its rank (competition ranks, 1 = the
    most important) recomputed on ``resamples`` resamples of N sentences drawn with
    replacement (fixed ``seed``); returns, per head, its rank on all N and the ``level``
    intervals of score and rank. The rank on all N is taken on the importance as atlas.json
    stores it (DIGITS decimals), as every page ranks it. With no sentence ablated every value
    is None."""
    n, size = each.shape
    if n == 0:
        return [dict.fromkeys(BOOTSTRAP_KEYS) for _ in range(size)]
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1 / n), size=resamples)  # [resamples, N]
    means = counts @ each / n  # [resamples, heads]
    ranks = rank_rows(means)
    tails = [(1 - level) / 2, (1 + level) / 2]
    low, high = np.quantile(means, tails, axis=0, method="inverted_cdf")
    rank_low, rank_high = np.quantile(ranks, tails, axis=0, method="inverted_cdf")
    rank = competition_ranks(np.round(each.mean(0), DIGITS))  # as pages rank atlas.json's
    return [
        {
            "rank": rank[h],
            "low": float(low[h]),
            "high": float(high[h]),
            "rank_low": int(rank_low[h]),
            "rank_high": int(rank_high[h]),
        }
        for h in range(size)
    ]


def correlations(columns: Mapping[str, list[float]], results: Mapping[str, Result]) -> dict:
    """Spearman's rank correlation of each importance with attention to [SEP] and to [CLS]
    (Clark et al.: heads that attend to [SEP] act as no-ops, so a negative correlation)."""
    heads = results.get("heads")
    out: dict = {}
    if heads is None:
        return out
    for key, values in columns.items():
        for target in ("to_sep", "to_cls"):
            if target not in heads.columns:
                continue
            other = np.asarray(heads.columns[target], float)
            if np.ptp(values) == 0 or np.ptp(other) == 0:  # e.g. GPT-2: no [SEP], all 0
                out[f"{key}~{target}"] = {"rho": None, "p": None}
                continue
            rho, p = spearman(values, other)
            out[f"{key}~{target}"] = {
                "rho": None if np.isnan(rho) else round(float(rho), 4),
                "p": None if np.isnan(p) else float(f"{p:.3g}"),
            }
    return out


def importance_scatter(atlas: Atlas, target: str = "to_sep", prefix: str = "") -> dict:
    """Each head's importance (by ablation) against its attention to [SEP] (or ``target``):
    Clark et al.'s claim that heads attending to [SEP] act as no-ops, tested on this model. A
    point links to its head's page; colour is the layer."""
    title = next((c.title for c in atlas.catalogue if c.key == target), target)
    rows = [
        {
            "name": h.name,
            "layer": h.layer,
            "attention": h.metrics[target],
            "importance": h.metrics["importance"],
            "url": charts.head_url(h, prefix),
        }
        for h in atlas.heads
    ]
    chart = (
        alt.Chart(charts.placeholder("importance", {"importance": rows}))
        .mark_circle(size=60, opacity=0.8)
        .encode(
            x=alt.X("attention:Q", title=f"attention to {title}", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("importance:Q", title="importance (ablation)"),
            color=alt.Color("layer:O", scale=alt.Scale(scheme=charts.LAYER_SCHEME), title="layer"),
            href="url:N",
            tooltip=[
                alt.Tooltip("name:N", title="head"),
                alt.Tooltip("attention:Q", format=".3f", title=f"to {title}"),
                alt.Tooltip("importance:Q", format=".5f"),
            ],
        )
        .properties(width=320, height=260)
    )
    return charts.to_spec(chart, {"importance": rows})


TOP_IMPORTANT = 10  # "among the ten heads that matter most"


def importance_line(atlas: Atlas, head: Head) -> str | None:
    """With head importance: its rank, and whether it is among the TOP_IMPORTANT that matter
    most (where the model has more heads than that); None without."""
    if head.metrics.get("importance") is None:
        return None
    rank, of = ranked(atlas, "importance", head)
    among = ""
    if of > TOP_IMPORTANT:
        among = f", {'among' if rank <= TOP_IMPORTANT else 'not among'} the {TOP_IMPORTANT}"
        among += " that matter most"
    return (
        f"Importance {head.metrics['importance']:.3f}: {ordinal(rank)} of {of} heads{among}"
        " (how much the output changes without it)."
    )
