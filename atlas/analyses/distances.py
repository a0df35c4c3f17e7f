"""How alike heads attend: Jensen-Shannon distances between heads, the 2-D head map, neighbours.

D(h, g) = Σ_examples Σ_i JS(P_h[i,:], P_g[i,:]) / Σ_examples n, with P = 0.999·A + 0.001/n and JS
in nats: the mean Jensen-Shannon divergence per token (Clark et al. 2019 §6 sum it, which only
rescales). It is 0 for identical heads, symmetric, and at most ln 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from ..model import Record
from .base import Analysis, Result, RunInfo

JS_SMOOTHING = 1e-3
MAP_SEED = 0
MAP_RANDOM_STARTS = 4  # besides the classical start; the best stress wins
NEAREST_HEADS = 5


def js_sums(attention: np.ndarray, smoothing: float = JS_SMOOTHING) -> np.ndarray:
    """Σ_i JS(P_h[i,:], P_g[i,:]) for every pair of heads of one example: [K, K], K = L·H.

    Uses JS(p, q) = H((p + q)/2) - (H(p) + H(q))/2, one head against all later heads at a time,
    so memory stays at K·n² values."""
    layers, heads, n, _ = attention.shape
    k = layers * heads
    p = (1.0 - smoothing) * attention.reshape(k, n, n).astype(np.float64) + smoothing / n
    entropy = -(p * np.log(p)).sum(-1)  # [K, n]
    out = np.zeros((k, k))
    for h in range(k - 1):
        m = 0.5 * (p[h] + p[h + 1 :])  # [K-h-1, n, n]
        mixed = -(m * np.log(m)).sum(-1)  # [K-h-1, n]
        js = mixed - 0.5 * (entropy[h] + entropy[h + 1 :])
        out[h, h + 1 :] = np.maximum(js, 0.0).sum(-1)  # clip rounding below zero
    return out + out.T


def head_map(distances: np.ndarray, seed: int = MAP_SEED) -> tuple[np.ndarray, float]:
    """Place heads in 2-D by metric MDS on the distance matrix; return (coords [K, 2], stress-1).

    SMACOF from classical-MDS (Torgerson) starts and from ``MAP_RANDOM_STARTS`` seeded random
    starts, keeping the lowest stress: random starts alone stop at local optima (stress 0.219
    where 0.207 is reachable on 500 sentences). The classical starts, the top two axes and the
    two other pairs of the top three (a map sometimes settles better along the third), are
    deterministic and usually already the best. Plain numpy, so the map does not depend on
    scikit-learn's changing MDS arguments. Same input, same coordinates, bit for bit.

    Stress-1 (Kruskal) = sqrt(Σ (d_map - D)² / Σ D²) over head pairs: 0 is a perfect map, and
    under about 0.2 the map is a fair picture of the distances."""
    k = distances.shape[0]
    if k < 3:
        coords = np.zeros((k, 2))
        if k == 2:
            coords[1, 0] = distances[0, 1]
        return coords, 0.0
    d = np.asarray(distances, dtype=np.float64)
    rng = np.random.default_rng(seed)
    scale = float(d.max()) or 1.0
    axes = classical_mds(d, 3)
    starts = [axes[:, [0, 1]], axes[:, [0, 2]], axes[:, [1, 2]]]
    starts += [rng.uniform(0.0, scale, size=(k, 2)) for _ in range(MAP_RANDOM_STARTS)]
    best, best_stress = starts[0], np.inf
    for start in starts:
        coords = smacof(d, start)
        stress = stress1(d, coords)
        if stress < best_stress:  # strictly lower: ties keep the earlier start
            best, best_stress = coords, stress
    return best, best_stress


def classical_mds(distances: np.ndarray, dims: int = 2) -> np.ndarray:
    """Torgerson's classical MDS: the top ``dims`` eigenvectors of the double-centred -D²/2,
    scaled by the root of their eigenvalues.

    Each axis' sign is fixed (largest |coordinate| positive) so the layout does not flip with
    the linear-algebra library."""
    k = distances.shape[0]
    centre = np.eye(k) - 1.0 / k
    b = -0.5 * centre @ (distances**2) @ centre
    values, vectors = np.linalg.eigh((b + b.T) / 2)
    top = np.argsort(values)[::-1][:dims]
    coords = vectors[:, top] * np.sqrt(np.maximum(values[top], 0.0))
    signs = np.sign(coords[np.abs(coords).argmax(0), np.arange(coords.shape[1])])
    return coords * np.where(signs == 0, 1.0, signs)


def smacof(
    distances: np.ndarray, start: np.ndarray, max_iter: int = 3000, eps: float = 1e-9
) -> np.ndarray:
    """Metric SMACOF (Guttman transform, unit weights) from ``start``: each step cannot raise
    the raw stress Σ (d_map - D)²; stop when it falls by less than ``eps`` relative."""
    k = distances.shape[0]
    coords = start - start.mean(0)
    previous = np.inf
    for _ in range(max_iter):
        squares = (coords**2).sum(1)
        mapped = np.sqrt(np.maximum(squares[:, None] + squares[None, :] - 2 * coords @ coords.T, 0))
        np.fill_diagonal(mapped, 0.0)
        stress = float(((mapped - distances) ** 2).sum()) / 2
        if stress == 0.0 or (np.isfinite(previous) and previous - stress <= eps * previous):
            break
        previous = stress
        ratio = np.divide(distances, mapped, out=np.zeros_like(mapped), where=mapped > 0)
        b = -ratio
        b[np.diag_indices(k)] = ratio.sum(1)
        coords = b @ coords / k
    return coords


def stress1(distances: np.ndarray, coords: np.ndarray) -> float:
    """Kruskal's stress-1 of a 2-D layout against the distances it should keep."""
    upper = np.triu_indices(distances.shape[0], 1)
    mapped = np.sqrt(((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1))[upper]
    target = distances[upper]
    denominator = float((target**2).sum())
    return float(np.sqrt(((mapped - target) ** 2).sum() / denominator)) if denominator else 0.0


def nearest(distances: np.ndarray, count: int = NEAREST_HEADS) -> list[list[int]]:
    """For each head, the ``count`` other heads closest to it (ties by head order)."""
    k = distances.shape[0]
    out = []
    for h in range(k):
        others = [g for g in range(k) if g != h]
        others.sort(key=lambda g: (distances[h, g], g))
        out.append(others[:count])
    return out


class HeadDistances(Analysis):
    """Streaming sum of per-token JS divergences between all pairs of heads; at the end the
    distance matrix, the head map and each head's nearest heads."""

    name = "distances"
    sections: ClassVar[Mapping[str, str]] = {
        "overview": "sections/head-map.html",
        "head": "sections/nearest.html",
    }

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.total = np.zeros((run.size, run.size))
        self.tokens = 0

    def add(self, record: Record) -> None:
        self.total += js_sums(record.attention)
        self.tokens += record.n

    def distances(self) -> np.ndarray:
        """Mean JS divergence per token, [K, K]."""
        return self.total / max(self.tokens, 1)

    def finish(self, results) -> Result:
        distance = self.distances()
        coords, stress = head_map(distance)
        neighbours = nearest(distance)
        return Result(
            parts={
                "map": coords.tolist(),
                "nearest": [
                    [{"head": g, "distance": float(distance[h, g])} for g in row]
                    for h, row in enumerate(neighbours)
                ],
            },
            data={"matrix": distance.tolist(), "stress": stress},
        )
