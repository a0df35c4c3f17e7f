"""Head importance (ablation, gradient) and token importance (rollout, gradient × input).

Heads, on a sample of sentences (``--importance N``: the first N of the corpus, so with the
default ``--views`` they are sentences with a page):

- ablation: the change in the model's output when one head's context vector is zeroed
  (atlas/probe.py says how), on the first ``ablation`` sentences of the sample, since it costs
  about L·H·(L+1)/(2L) forward passes a sentence (docs/performance.md);
- gradient: |∂loss/∂ξ_h| for a head gate ξ_h = 1 (Michel et al. 2019), and Clark et al.'s
  Fig. 3 split of the attention-weighted gradient by where the attention goes, per layer. A
  gradient needs a loss (masked-LM or task loss); for a bare encoder it is not defined (the
  distance to its own output has zero gradient where nothing is removed), and ablation stands
  alone.

Tokens: attention rollout (Abnar and Zuidema 2020) is a function of a sentence's attention,
which its page already holds, so the page computes it (assets/rollout.js; ``rollout`` here is
the reference the tests hold it to); gradient × input saliency needs the model, so it is
computed here for the sentences with a page, when the model has a loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from ..probe import ENCODER
from .base import PROBE, Analysis, Column, Result, RunInfo, per_head

DEFAULT_SAMPLE = 200  # --importance: sentences for the gradient measures
DEFAULT_ABLATION = 16  # the first this many of them are ablated (see docs/performance.md)
ROLES = ("[CLS]", "[SEP]", "punctuation", "other")

MICHEL = "Michel, Levy and Neubig 2019, Are Sixteen Heads Really Better than One?"
ABLATION_MEASURE = {
    ENCODER: "1 − cos(mean-pooled last layer, same without the head)",
    "masked-lm": "masked-LM loss without the head − with it",
    "classifier": "p(predicted class) with the head − without it",
}


def rollout(attention: np.ndarray) -> np.ndarray:
    """Attention rollout R = Π_l (0.5·Ā_l + 0.5·I), layer 1 applied first (R = M_L ··· M_1),
    Ā_l = the layer's mean over heads with rows renormalised. ``attention``: [L, H, n, n];
    returns [L, n, n], the rollout up to each layer; row i of the last says how much token i's
    last-layer vector draws on each input token."""
    attention = np.asarray(attention, dtype=np.float64)
    n = attention.shape[-1]
    mean = attention.mean(1)
    mean = mean / mean.sum(-1, keepdims=True)
    out = np.empty_like(mean)
    current = np.eye(n)
    for layer, a in enumerate(mean):
        current = (0.5 * a + 0.5 * np.eye(n)) @ current
        out[layer] = current
    return out


class HeadImportance(Analysis):
    """Per-head importance by ablation (and by gradient where the model has a loss); gradient ×
    input per token on the sentences with a page."""

    name = "importance"
    needs = frozenset({PROBE})
    sections: ClassVar[Mapping[str, str]] = {
        "overview": "sections/importance.html",
        "head": "sections/importance-head.html",
        "sentence": "sections/importance-sentence.html",
    }

    def __init__(
        self, sample: int = DEFAULT_SAMPLE, ablation: int = DEFAULT_ABLATION, views: int = 200
    ):
        if sample < 0 or ablation < 0:
            raise ValueError("importance: sample sizes cannot be negative")
        self.sample, self.ablation, self.views = sample, ablation, views

    def start(self, run: RunInfo) -> None:
        super().start(run)
        if run.probe is None:
            raise ValueError("the importance analysis needs the runner's probe")
        self.probe = run.probe
        self.used = list(range(min(self.sample, run.sentences)))
        self.ablated = self.used[: self.ablation]

    def finish(self, results: Mapping[str, Result]) -> Result:
        probe = self.probe
        ablation = probe.ablation(self.ablated)
        columns = {"importance": per_head(ablation)}
        catalogue = [
            Column(
                "importance", "importance", "score", "",
                f"head ablation: {ABLATION_MEASURE[probe.kind]}", "head-importance",
                "", "mean over the ablation sample of the output's change when the head's"
                " context vector is zeroed", paper=MICHEL,
            )
        ]  # fmt: skip
        data: dict = {
            "kind": probe.kind,
            "measure": ABLATION_MEASURE[probe.kind],
            "sample": self.used,
            "ablated": self.ablated,
            "gradient": probe.kind != ENCODER,
            "roles": list(ROLES),
        }
        if probe.kind != ENCODER:
            grads = probe.gradients(self.used)
            columns["importance_grad"] = per_head(grads["gate"])
            catalogue.append(
                Column(
                    "importance_grad", "gradient importance", "score", "",
                    "|∂loss/∂ξ_h| for a head gate ξ_h = 1", "head-importance-gradient",
                    "", "mean over the sample of |∂loss/∂ξ_h| at ξ = 1 (ξ_h gates head h's"
                    " context vector)", paper=MICHEL,
                )
            )  # fmt: skip
            split = grads["split"]
            data["clark"] = [[round(float(v), 6) for v in row] for row in split]
            with_page = [i for i in range(min(self.views, self.run.sentences))]
            data["saliency"] = {
                str(i): [round(v, 4) for v in values]
                for i, values in sorted(probe.saliency(with_page).items())
            }
        data["correlation"] = correlations(columns, results)
        return Result(catalogue=catalogue, columns=columns, data=data)


def correlations(columns: Mapping[str, list[float]], results: Mapping[str, Result]) -> dict:
    """Spearman's rank correlation of each importance with attention to [SEP] and to [CLS]
    (Clark et al.: heads that attend to [SEP] act as no-ops, so a negative correlation)."""
    from scipy.stats import spearmanr

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
            rho, p = spearmanr(values, other)
            out[f"{key}~{target}"] = {
                "rho": None if np.isnan(rho) else round(float(rho), 4),
                "p": None if np.isnan(p) else float(f"{p:.3g}"),
            }
    return out
