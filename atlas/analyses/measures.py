"""Measures that analyses share: what one example's attention (or output) says, per head.

An analysis folds these into corpus results; two analyses that need the same quantity (the
example sentences rank heads by the same metrics the heads analysis averages; the label
breakdown averages them per class) import it from here rather than from each other, so no
analysis depends on another's internals, and one that reads another's *result* says so in its
``requires``. Word-level units are in words.py.

Every per-head function takes one example's attention ``A`` of shape [..., heads, n, n] (one
layer, or every layer) whose rows (the attending token) sum to 1, and returns one number per
head; analyses compute them layer by layer (``layer_metrics``), the same numbers. The corpus
value of a metric is the plain mean over examples of its per-example value, as in Clark et al.
The formulas are in docs/metrics.md and match the design notes exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Mapping

import numpy as np

from ..model import Record
from .base import Column, RunInfo

OFFSETS = tuple(range(-8, 9))
# The most attention values a reduction copies to float64 at once (128 MiB): a long example's
# heads are reduced a few at a time (``by_heads``).
CHUNK_VALUES = 1 << 24
ENTROPY_SMOOTHING = 1e-4  # A' = (1 - s)·A + s/n, so log 0 never happens

_SPECIAL = "Attention to special tokens"
_POSITION = "Attention by position"
_ENTROPY = "Entropy (nats)"
_CLARK = "Clark et al. 2019, What Does BERT Look At?, §3"
COLUMNS = [
    Column("to_cls", "[CLS]", "share", "", "attention to the [CLS]/BOS token",
           "per-head-metrics", _SPECIAL, "mean_i Σ_j A[i,j]·[j is CLS/BOS]",
           paper=_CLARK),
    Column("to_sep", "[SEP]", "share", "", "attention to [SEP]/EOS tokens",
           "per-head-metrics", _SPECIAL, "mean_i Σ_j A[i,j]·[j is SEP/EOS]",
           paper=_CLARK),
    Column("to_punct", "punct.", "share", "", "attention to punctuation tokens",
           "per-head-metrics", _SPECIAL, "mean_i Σ_j A[i,j]·[j is punctuation]",
           paper=_CLARK),
    Column("self", "self", "share", "", "attention to the token itself",
           "per-head-metrics", _POSITION, "mean_i A[i,i]",
           paper=_CLARK),
    Column("prev", "previous", "share", "", "attention to the previous token",
           "per-head-metrics", _POSITION, "(1/n) Σ_{i≥1} A[i,i−1]",
           paper=_CLARK),
    Column("next", "next", "share", "", "attention to the next token",
           "per-head-metrics", _POSITION, "(1/n) Σ_{i<n−1} A[i,i+1]",
           paper=_CLARK),
    Column("entropy", "entropy", "nats", "nats", "mean entropy of a token's attention",
           "per-head-metrics", _ENTROPY,
           f"mean_i H(A'[i,:]), A' = {1 - ENTROPY_SMOOTHING}·A + {ENTROPY_SMOOTHING}/n",
           paper=_CLARK),
    Column("entropy_norm", "entropy / max", "ratio", "",
           "entropy over its maximum ln(n); 1 = uniform", "per-head-metrics", "",
           "mean_i min(1, H(A'[i,:]) / ln v_i), v_i = keys row i can see",
           paper="this atlas: Clark et al. 2019's entropy over its maximum, so lengths compare"),
    Column("cls_entropy", "[CLS] entropy", "nats", "nats",
           "entropy of the first token's attention", "per-head-metrics", _ENTROPY,
           "H(A'[0,:])",
           paper=_CLARK),
]  # fmt: skip
METRICS = tuple(c.key for c in COLUMNS)
# A decoder has no [CLS] or [SEP]: its columns and labels name what its tokenizer may add
# instead (GPT-2's adds nothing, so its BOS and EOS shares are 0), and its first row sees only
# itself.
DECODER_NAMES = {"[CLS]": "BOS", "[SEP]": "EOS"}
DECODER_COLUMNS = [
    dataclasses.replace(column, **changes.get(column.key, {}))
    for column in COLUMNS
    for changes in [{
        "to_cls": {"title": "BOS", "formula": "mean_i Σ_j A[i,j]·[j is BOS]",
                   "description": "attention to the BOS token (0 where the tokenizer adds none)"},
        "to_sep": {"title": "EOS", "formula": "mean_i Σ_j A[i,j]·[j is EOS]",
                   "description": "attention to EOS tokens (0 where the tokenizer adds none)"},
        "cls_entropy": {"title": "first-row entropy",
                        "description": "entropy of the first token's attention (about 0 in a "
                                       "decoder: the first token sees only itself)"},
    }]
]  # fmt: skip
# Metrics an example can leave undefined (NaN): they are averaged over the examples that define
# them. A decoder's one-token example has no row that sees two tokens, so no normalised entropy.
LENGTH_NORMALISED = ("entropy_norm",)

# Pattern labels: a head gets the label of the largest of these shares when it reaches
# LABEL_THRESHOLD; otherwise "broad" if its normalised entropy reaches BROAD_THRESHOLD; otherwise
# a compound label of its two largest shares ("[CLS] + next", larger first) when together they
# reach LABEL_THRESHOLD; else "mixed". Shares and normalised entropy are fractions, so the
# thresholds do not depend on sentence length.
LABEL_METRICS = {
    "prev": "previous-token",
    "next": "next-token",
    "self": "self",
    "to_cls": "[CLS]",
    "to_sep": "[SEP]",
    "to_punct": "punctuation",
}
LABELS = (*LABEL_METRICS.values(), "broad", "mixed")
LABEL_THRESHOLD = 0.5
BROAD_THRESHOLD = 0.75
# A share's name inside a compound label, and what joins the two.
PART_NAMES = {
    "prev": "previous",
    "next": "next",
    "self": "self",
    "to_cls": "[CLS]",
    "to_sep": "[SEP]",
    "to_punct": "punctuation",
}
JOIN = " + "
# Every compound label (larger share first, so both orders), and the patterns the example
# sentences are ranked by: one per label, a compound once (its two shares in LABEL_METRICS order).
COMPOUND_LABELS = tuple(
    PART_NAMES[a] + JOIN + PART_NAMES[b] for a in LABEL_METRICS for b in LABEL_METRICS if a != b
)
PATTERNS = (
    *LABELS,
    *(PART_NAMES[a] + JOIN + PART_NAMES[b] for a, b in itertools.combinations(LABEL_METRICS, 2)),
)


def example_metrics(
    attention: np.ndarray,
    cls: np.ndarray,
    sep: np.ndarray,
    punct: np.ndarray,
    causal: bool = False,
    rows: np.ndarray | None = None,
    profile: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every per-head metric of one example: ``{key: array [layers, heads]}``.

    ``rows``: the row entropies (``row_entropy``) and ``profile`` the offset profile
    (``offset_profile``), if already computed. Sums are float64: the shares of token roles in
    one matrix product, Σ_ij A[i,j]·[j has the role]; self, prev and next are the offset
    profile at 0, −1 and +1, which are exactly their formulas."""
    a = attention
    n = a.shape[-1]
    roles = np.tile(np.stack([cls, sep, punct], -1).astype(np.float64), (n, 1))  # [n·n, 3]

    def share(part: np.ndarray) -> np.ndarray:
        return part.reshape(*part.shape[:-2], n * n).astype(np.float64) @ roles

    shares = by_heads(a, share) / n  # [L, H, 3]
    if profile is None:
        profile = offset_profile(a)
    middle = OFFSETS.index(0)
    out = {
        "to_cls": shares[..., 0],
        "to_sep": shares[..., 1],
        "to_punct": shares[..., 2],
        "self": profile[..., middle],
        "prev": profile[..., middle - 1],
        "next": profile[..., middle + 1],
    }
    if rows is None:
        rows = by_heads(a, row_entropy)
    out["entropy"] = rows.mean(-1)
    out["cls_entropy"] = rows[..., 0]
    out["entropy_norm"] = normalised_entropy(rows, causal)
    return out


def head_chunks(heads: int, n: int) -> list[slice]:
    """The heads of an n-token example's layer in groups of at most ``CHUNK_VALUES`` attention
    values (one group for any example of up to 1,182 tokens at 12 heads)."""
    step = max(1, CHUNK_VALUES // (n * n))
    return [slice(h, min(heads, h + step)) for h in range(0, heads, step)]


def by_heads(attention: np.ndarray, reduce: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``reduce`` of attention [..., H, n, n] that keeps the head axis (to [..., H, ...]),
    applied to a few heads at a time (``head_chunks``), so that its float64 copies of a long
    example stay small."""
    chunks = head_chunks(attention.shape[-3], attention.shape[-1])
    if len(chunks) == 1:
        return reduce(attention)
    axis = attention.ndim - 3
    return np.concatenate([reduce(attention[..., c, :, :]) for c in chunks], axis=axis)


def row_entropy(attention: np.ndarray, smoothing: float = ENTROPY_SMOOTHING) -> np.ndarray:
    """Entropy in nats of each row of A' = (1 - s)·A + s/n: shape [..., n].

    float64 (float32 logarithms put uniform rows 4.7e-7 off), computed in place: one copy of
    the attention and one of its logarithm; rows summed by a matrix product, which numpy does
    faster than a sum over a short last axis."""
    n = attention.shape[-1]
    p = np.array(attention, dtype=np.float64)
    p *= 1.0 - smoothing
    p += smoothing / n
    logs = np.log(p)
    logs *= p
    return -(logs @ np.ones(n))


def normalised_entropy(rows: np.ndarray, causal: bool = False) -> np.ndarray:
    """Mean over rows of H(row) / ln(keys the row can see): 1 = uniform, 0 = one token.

    An encoder's row sees all n tokens; a decoder's row i sees i + 1. Rows that see one token
    carry no information and are left out; an example with none of them gives NaN, and is left
    out of the corpus mean."""
    n = rows.shape[-1]
    visible = np.arange(1, n + 1) if causal else np.full(n, n)
    keep = visible >= 2
    if not keep.any():
        return np.full(rows.shape[:-1], np.nan)
    # Capped at 1: for a decoder, smoothing puts a little mass on keys the row cannot see.
    return np.minimum(rows[..., keep] / np.log(visible[keep]), 1.0).mean(-1)


def offset_profile(attention: np.ndarray) -> np.ndarray:
    """(1/n) Σ_i A[i, i+d] for d in -8..8: shape [layers, heads, 17].

    All diagonals in one gather and one float64 ``reduceat`` (offsets past the sentence are 0)."""
    n = attention.shape[-1]
    index, starts, inside = _diagonals(n)
    flat = attention.reshape(*attention.shape[:-2], n * n)
    out = np.zeros((*attention.shape[:-2], len(OFFSETS)))
    if len(index):
        out[..., inside] = np.add.reduceat(flat[..., index], starts, axis=-1, dtype=np.float64)
    return out / n


@functools.lru_cache(maxsize=1024)
def _diagonals(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For an n × n matrix flattened: the positions of the diagonals d in OFFSETS with |d| < n,
    one after another, where each starts, and which offsets they are."""
    inside = np.array([abs(d) < n for d in OFFSETS])
    runs = [np.arange(max(0, -d), min(n, n - d)) * (n + 1) + d for d in OFFSETS if abs(d) < n]
    starts = np.cumsum([0] + [len(r) for r in runs[:-1]])
    index = np.concatenate(runs) if runs else np.zeros(0, dtype=np.int64)
    return index, starts, inside


def label_head(means: Mapping[str, float]) -> str:
    """The pattern label of one head from its corpus means (docs/metrics.md, "Labels")."""
    order = list(LABEL_METRICS)
    first, second = sorted(order, key=lambda k: (-means[k], order.index(k)))[:2]
    if means[first] >= LABEL_THRESHOLD:
        return LABEL_METRICS[first]
    if means["entropy_norm"] >= BROAD_THRESHOLD:
        return "broad"
    if means[first] + means[second] >= LABEL_THRESHOLD:
        return PART_NAMES[first] + JOIN + PART_NAMES[second]
    return "mixed"


def decoder_label(label: str) -> str:
    """A label as a decoder's pages say it: "[CLS] + next" -> "BOS + next"."""
    for name, shown in DECODER_NAMES.items():
        label = label.replace(name, shown)
    return label


def canonical_label(label: str) -> str:
    """The label of ``decoder_label``'s, as the rules name it: "BOS + next" -> "[CLS] + next"."""
    names = {shown: name for name, shown in DECODER_NAMES.items()}
    return JOIN.join(names.get(part, part) for part in label.split(JOIN))


def compound_parts(label: str) -> tuple[str, ...]:
    """The share keys of a compound label, in LABEL_METRICS order (() for any other label)."""
    label = canonical_label(label)
    if JOIN not in label:
        return ()
    keys = {name: key for key, name in PART_NAMES.items()}
    parts = {keys[name] for name in label.split(JOIN)}
    return tuple(key for key in LABEL_METRICS if key in parts)


def pattern(label: str) -> str:
    """The pattern in PATTERNS that ranks a head's example sentences: the label itself, or a
    compound label with its shares in LABEL_METRICS order (both orders rank alike); a decoder's
    label as its canonical one."""
    label = canonical_label(label)
    parts = compound_parts(label)
    return JOIN.join(PART_NAMES[key] for key in parts) if parts else label


def label_strength(label: str, metrics: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-head score of how strongly one example shows a label's pattern (NaN: undefined)."""
    keys = _strength_keys(label)
    if len(keys) == 1:
        return metrics[keys[0]]
    if keys:
        return metrics[keys[0]] + metrics[keys[1]]  # the two shares together
    # broad and mixed: where the head is most focused. A broad head's broadest sentences are
    # near-uniform heatmaps that show nothing; where it does focus is what a reader wants.
    return 1.0 - metrics["entropy_norm"]


@functools.lru_cache(maxsize=256)
def _strength_keys(label: str) -> tuple[str, ...]:
    """The metrics ``label_strength`` reads for a label: its share, its compound's two shares,
    or none (broad, mixed). Cached: the examples analysis asks for every pattern per record."""
    label = canonical_label(label)
    for key, name in LABEL_METRICS.items():
        if name == label:
            return (key,)
    return compound_parts(label)


def layer_metrics(
    record: Record, layer: int, attention: np.ndarray, run: RunInfo
) -> dict[str, np.ndarray]:
    """``example_metrics`` of one layer of a record ({key: [heads]}), computed once per layer
    and shared by every analysis that asks (``add_layer``); each layer's values are also filed
    into the record's ``record_metrics``."""

    def compute() -> dict[str, np.ndarray]:
        profile = layer_profile(record, layer, attention)[None]
        a, causal = attention[None], run.causal
        values = example_metrics(a, record.cls, record.sep, record.punct, causal, profile=profile)
        every = record_metrics(record, run)
        for key, value in values.items():
            every[key][layer] = value[0]
        return {key: value[0] for key, value in values.items()}

    return record.derived("metrics", compute, layer=layer)


def record_metrics(record: Record, run: RunInfo) -> dict[str, np.ndarray]:
    """``example_metrics`` of a record, {key: [layers, heads]}, filled layer by layer by
    ``layer_metrics``: whole in ``add`` once an analysis asked for every layer's."""
    shape = (run.layers, run.heads)
    return record.derived("metrics", lambda: {key: np.full(shape, np.nan) for key in METRICS})


def layer_profile(record: Record, layer: int, attention: np.ndarray) -> np.ndarray:
    """``offset_profile`` of one layer of a record, [heads, 17], computed once and shared."""
    return record.derived("offset_profile", lambda: offset_profile(attention), layer=layer)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def predicted_class(record: Record) -> int:
    """The sequence classifier's class id for a record (the argmax of its logits)."""
    return int(np.argmax(record.logits))


def attended_units(attention: np.ndarray, words: np.ndarray) -> np.ndarray:
    """For each unit, the unit it attends to most among word units other than itself:
    argmax over [..., u, u] rows with special-token units and the diagonal masked."""
    scores = np.array(attention, dtype=np.float64)
    scores[..., ~words] = -np.inf
    u = scores.shape[-1]
    scores[..., np.arange(u), np.arange(u)] = -np.inf
    return scores.argmax(-1)
