"""One rank, one tie rule, wherever the atlas shows a head's rank.

Ranks are competition ranks ("1224" ranking, scipy's ``rankdata(method="min")``): the largest
value is 1, and heads with equal values share the best rank of their group, so the next head
is ranked by how many heads are strictly above it. A head's summary, its importance section,
its compare section and the bootstrap's rank intervals all use ``competition_ranks``, so one
head cannot be "31st" in one place and "32nd" in another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .result import Atlas, Head


def competition_ranks(values: Sequence[float | None] | np.ndarray) -> list[int | None]:
    """Rank of each value, 1 = the largest; ties share the best rank ("1224"); None (no
    value) is not ranked and takes no place. ``values`` may hold NaN, read as None."""
    present = [i for i, v in enumerate(values) if v is not None and not np.isnan(float(v))]
    out: list[int | None] = [None] * len(values)
    if present:
        ranks = rank_data(np.array([-float(values[i]) for i in present]), ties="min")
        for i, rank in zip(present, ranks, strict=True):
            out[i] = int(rank)
    return out


def rank_rows(values: np.ndarray) -> np.ndarray:
    """Competition ranks (1 = the largest) along the last axis of a float array without NaN,
    e.g. [resamples, heads] → the rank of each head in each resample."""
    return rank_data(-np.asarray(values, float), ties="min").astype(int)


def rank_data(values: np.ndarray, ties: str = "average") -> np.ndarray:
    """Ranks along the last axis, 1 = the smallest, as float64, of values without NaN:
    scipy.stats.rankdata's, ties sharing their ``"average"`` rank or the ``"min"`` (the best)
    of their group. Here because importing scipy.stats for it took 0.8 s of a build's CPU
    time (docs/performance.md)."""
    values = np.asarray(values, float)
    if values.shape[-1] == 0:
        return np.zeros(values.shape)
    order = np.argsort(values, axis=-1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=-1)
    places = np.broadcast_to(np.arange(values.shape[-1]), values.shape)
    starts = np.ones(values.shape, bool)  # where a group of equal values starts
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    first = np.maximum.accumulate(np.where(starts, places, 0), axis=-1)
    if ties == "min":
        ranked = first + 1.0
    elif ties == "average":
        ends = np.ones(values.shape, bool)  # where a group ends
        ends[..., :-1] = starts[..., 1:]
        at = np.where(ends, places, values.shape[-1] - 1)
        last = np.minimum.accumulate(at[..., ::-1], axis=-1)[..., ::-1]
        ranked = (first + last) / 2.0 + 1.0
    else:
        raise ValueError(f"ties={ties!r}: 'average' or 'min'")
    out = np.empty(values.shape)
    np.put_along_axis(out, order, ranked, axis=-1)
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's ρ of two samples and its two-sided p-value (Student's t with n − 2 degrees
    of freedom), computed as scipy.stats.spearmanr computes them, to the bit: average ranks,
    numpy's corrcoef, then ``scipy.special.stdtr``. Here so that a default build need not
    import scipy.stats for one call (0.6 s of its CPU time, docs/performance.md)."""
    from scipy.special import stdtr  # light beside scipy.stats

    ranks = np.column_stack((rank_data(np.asarray(x, float)), rank_data(np.asarray(y, float))))
    rho = np.corrcoef(ranks, rowvar=False)[1, 0]
    dof = len(ranks) - 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t = rho * np.sqrt(np.clip(dof / ((rho + 1.0) * (1.0 - rho)), 0, None))
    return float(rho), float(2 * stdtr(dof, -np.abs(t)))


def ranked(atlas: Atlas, key: str, head: Head) -> tuple[int, int]:
    """(rank of ``head`` on column ``key`` among the heads with a value, 1 = largest, ties
    sharing the best rank; 0 if it has none; count)."""
    ranks = competition_ranks([h.metrics.get(key) for h in atlas.heads])
    mine = ranks[[h.name for h in atlas.heads].index(head.name)]
    return mine or 0, sum(r is not None for r in ranks)


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
