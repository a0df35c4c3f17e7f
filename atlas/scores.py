"""How a model turns one head's queries and keys into attention, layer by layer: the one
definition the neuron view's data is checked against and the page (neuronview.js) computes.

For query token i and key token j of a head in layer l, with q and k as the model uses them
(after its q/k norms and rotary position encoding; grouped-query attention: each query head
paired with the key head it shares):

    s_ij = q_i · k_j · scale_l
    s_ij = cap_l · tanh(s_ij / cap_l)                  where layer l soft-caps (Gemma 2)
    a_ij = softmax over the visible keys j of s_ij
    visible: j ≤ i (a causal model) and, where layer l has a sliding window w,
             i − w < j (causal, as transformers' masks) or |i − j| ≤ w (bidirectional)

``scale`` is 1/√d for most models; Gemma's is 1/√query_pre_attn_scalar, GPT-2's may also divide
by the layer's number. The JSON form (``to_json``) is what atlas.json's model card and the
page's data hold (contract.SCORES_FIELDS): one value per layer, null where a layer has no cap or
no window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import contract


@dataclass(frozen=True)
class Scores:
    """Per layer: the scale of q·k, the soft-cap (None: none) and the sliding window (None:
    every earlier key visible)."""

    scale: tuple[float, ...]
    softcap: tuple[float | None, ...]
    window: tuple[int | None, ...]

    @classmethod
    def plain(cls, layers: int, head_dim: int) -> Scores:
        """softmax(q·k/√d) in every layer, without cap or window (BERT, most models)."""
        scale = head_dim**-0.5 if head_dim else 1.0  # as transformers computes it
        return cls((scale,) * layers, (None,) * layers, (None,) * layers)

    @classmethod
    def from_json(cls, data: dict | None, layers: int, head_dim: int) -> Scores:
        """The inverse of ``to_json``; ``plain`` for an empty or missing one (an atlas whose
        model card predates them)."""
        if not data:
            return cls.plain(layers, head_dim)
        return cls(
            tuple(float(s) for s in data["scale"]),
            tuple(None if c is None else float(c) for c in data["softcap"]),
            tuple(None if w is None else int(w) for w in data["window"]),
        )

    def to_json(self) -> dict:
        return dict(
            zip(
                contract.SCORES_FIELDS,
                (list(self.scale), list(self.softcap), list(self.window)),
                strict=True,
            )
        )

    def visible(self, layer: int, n: int, causal: bool) -> np.ndarray:
        """bool [n, n]: which keys (columns) each query (row) of ``layer`` sees."""
        i, j = np.arange(n)[:, None], np.arange(n)[None, :]
        seen = j <= i if causal else np.ones((n, n), bool)
        window = self.window[layer]
        if window is not None:
            seen = seen & ((j > i - window) if causal else (np.abs(i - j) <= window))
        return seen

    def layer_probabilities(
        self, layer: int, query: np.ndarray, key: np.ndarray, causal: bool
    ) -> np.ndarray:
        """The attention [..., n, n] of one layer's queries and keys [..., n, d], in float64."""
        query, key = np.asarray(query, np.float64), np.asarray(key, np.float64)
        scores = query @ np.swapaxes(key, -1, -2) * self.scale[layer]
        cap = self.softcap[layer]
        if cap:
            scores = cap * np.tanh(scores / cap)
        scores = np.where(self.visible(layer, scores.shape[-1], causal), scores, -np.inf)
        scores -= scores.max(-1, keepdims=True)
        weights = np.exp(scores)
        return weights / weights.sum(-1, keepdims=True)

    def probabilities(self, query: np.ndarray, key: np.ndarray, causal: bool) -> np.ndarray:
        """The attention [L, H, n, n] of queries and keys [L, H, n, d], in float64."""
        out = np.empty((*query.shape[:-1], query.shape[-2]))
        for layer in range(query.shape[0]):
            out[layer] = self.layer_probabilities(layer, query[layer], key[layer], causal)
        return out

    def layer_error(
        self, layer: int, query: np.ndarray, key: np.ndarray, attention: np.ndarray, causal: bool
    ) -> np.ndarray:
        """[...]: per head of one layer, the largest |``layer_probabilities`` − attention|."""
        probabilities = self.layer_probabilities(layer, query, key, causal)
        return np.abs(probabilities - attention).max(axis=(-2, -1))

    def error(
        self, query: np.ndarray, key: np.ndarray, attention: np.ndarray, causal: bool
    ) -> np.ndarray:
        """[L, H]: the largest |``probabilities`` − attention| of each head over all rows."""
        return np.abs(self.probabilities(query, key, causal) - attention).max(axis=(-2, -1))
