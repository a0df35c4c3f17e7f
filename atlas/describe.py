"""A head in plain words: the first lines of its page, so "what does this head do?" is answered
before any table is read.

Everything here is read off the Atlas (the head's corpus values, its layer's and the model's
means, its word pairs), and each claim carries its number and what to compare it with, so the
sentence cannot say more than the figures do. The label is the pattern rule of docs/metrics.md;
these lines show what stands behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .analyses.measures import BROAD_THRESHOLD, LABEL_METRICS, PART_NAMES, decoder_label
from .ranking import competition_ranks
from .result import Atlas, Head

SHARES = tuple(LABEL_METRICS)  # the six shares a label is made of, in the rule's order
FOCUSED_BELOW = 0.4  # entropy / max under this reads as "focused" (broad is BROAD_THRESHOLD up)
SUMMARY_PAIRS = 2  # word pairs named in the summary
MIN_PAIR_SOURCE = 5  # a pair whose from-word occurs fewer times is not named: too few to say
TOP_IMPORTANT = 10  # "among the ten heads that matter most"


@dataclass(frozen=True)
class Share:
    """One share of the head's attention, with what to compare it with."""

    name: str  # previous, next, self, [CLS], [SEP], punctuation (a decoder: BOS, EOS)
    value: float
    layer_mean: float
    model_mean: float
    rank: int  # 1 = the largest of all heads
    of: int  # how many heads have a value


def ranked(atlas: Atlas, key: str, head: Head) -> tuple[int, int]:
    """(rank of ``head`` on column ``key`` among the heads with a value, 1 = largest, ties
    sharing the best rank as everywhere (atlas/ranking.py); 0 if it has none; count)."""
    ranks = competition_ranks([h.metrics.get(key) for h in atlas.heads])
    mine = ranks[[h.name for h in atlas.heads].index(head.name)]
    return mine or 0, sum(r is not None for r in ranks)


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


def syntax_line(atlas: Atlas, head: Head) -> str | None:
    """With gold trees: the relation the head tracks best against the fixed-offset baseline,
    and whether it is the atlas's best head over all relations; None without trees."""
    relations = head.parts.get("syntax")
    if not relations:
        return None
    best = relations[0]  # the syntax analysis sorts them by accuracy less baseline
    line = (
        f"Tracks {best['relation']} best against its baseline: {best['accuracy']:.2f}"
        f" ({best['direction']}) where the best fixed offset gets {best['baseline']:.2f}."
    )
    overall = next(
        (r for r in atlas.results.get("syntax", {}).get("relations", []) if r["relation"] == "all"),
        None,
    )
    if overall and overall["head"] == head.name:
        line += (
            f" The best head over all relations: it gets {overall['accuracy']:.2f} of the"
            f" {overall['count']:,} dependents right ({overall['direction']})."
        )
    return line


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
        f"Importance {head.metrics['importance']:.3f}: {_ordinal(rank)} of {of} heads{among}"
        " (how much the output changes without it)."
    )


def head_summary(atlas: Atlas, head: Head) -> list[str]:
    """Two to six short lines, each with its comparison: the relation it tracks best (with
    trees) first, then where its attention goes, how much the model misses it (with
    importance), how spread it is and its most frequent word pairs."""
    lines = [line for line in (syntax_line(atlas, head),) if line]
    shares = top_shares(atlas, head)
    if shares:
        lines.append(
            "Attention goes to "
            + " and ".join(
                f"{s.name} {s.value:.2f} (layer mean {s.layer_mean:.2f}, model mean"
                f" {s.model_mean:.2f}; {_ordinal(s.rank)} of {s.of} heads)"
                for s in shares
            )
            + "."
        )
    importance = importance_line(atlas, head)
    if importance:
        lines.append(importance)
    if "entropy_norm" in head.metrics:
        value = head.metrics["entropy_norm"]
        lines.append(
            f"{spread(value).capitalize()}: entropy {value:.2f} of its maximum"
            f" (model mean {atlas.model_means['entropy_norm']:.2f})."
        )
    pairs = [
        p for p in head.parts.get("pairs", []) if (p.get("source_count") or 0) >= MIN_PAIR_SOURCE
    ][:SUMMARY_PAIRS]
    if pairs:
        lines.append(
            "Most frequent word pairs: "
            + "; ".join(
                f"“{p['source']}” → “{p['target']}” ({p['count']} of {p['source_count']})"
                for p in pairs
            )
            + "."
        )
    return lines


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
