"""How alike heads attend: Jensen-Shannon distances between heads, the 2-D head map, neighbours.

D(h, g) = Σ_examples Σ_i JS(P_h[i,:], P_g[i,:]) / Σ_examples n, with P = 0.999·A + 0.001/n and JS
in nats: the mean Jensen-Shannon divergence per token (Clark et al. 2019 §6 sum it, which only
rescales). It is 0 for identical heads, symmetric, and at most ln 2. Of an example too long for
every head's rows to be held at once (``sampled_rows``), an even sample of its rows i is summed,
and counted in place of n.

Past ``EXACT_HEADS`` heads (K² pairs a row: 1,000 heads are 4 times the work of 500) the sum is
estimated instead (``row_rate``, docs/metrics.md): each row i of each example is measured with a
known probability p (the same for every row of a run, lower only for an example too long for
its sampled rows to be held), drawn from a generator seeded by the example's index, so a corpus
split into parts samples the same rows. D̂ = Σ_examples Σ_{i sampled} JS_i / p / Σ_examples n
(Horvitz-Thompson: unbiased), with standard error √(Σ_{i sampled} (1 − p)·JS_i² / p²) / Σ n.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import altair as alt
import numpy as np

from .. import charts
from ..exact import ExactSum
from ..model import Record
from ..result import Atlas
from .base import Analysis, Result, RunInfo

JS_SMOOTHING = 1e-3
MAP_SEED = 0
MAP_RANDOM_STARTS = 4  # besides the classical start; the best stress wins
NEAREST_HEADS = 5
# Values per block of head pairs in js_sums on the CPU, and the most threads it uses: a block's
# sums, logarithms (float32) and products (float64), 1 MB at 2¹⁶ values, stay in a core's L2
# cache (2¹⁸ did not: 20% slower on the UD sentences, docs/performance.md); on a GPU, blocks of
# GPU_PAIR_TILE.
PAIR_TILE = 1 << 16
GPU_PAIR_TILE = 1 << 24
MAX_THREADS = 4
# What one example's rows may take while its heads are compared (``sampled_rows``), in values.
ROW_VALUES = 1 << 26
FLOAT32 = np.dtype(np.float32)
# Up to this many heads every row is measured; past it, rows are sampled at EXACT_HEADS² / K²,
# so the work stays that of EXACT_HEADS heads (``row_rate``).
EXACT_HEADS = 512
ROW_SEED = 0


def js_sums(
    attention: np.ndarray,
    smoothing: float = JS_SMOOTHING,
    device: str = "cpu",
    precision: str = "float32",
    other: np.ndarray | None = None,
) -> np.ndarray:
    """Σ_i JS(P_h[i,:], P_g[i,:]) for every pair of heads of one example: [K, K], K = L·H.

    With ``other`` (a second model's attention on the same tokens, same shape), the heads g
    are ``other``'s: entry [h, g] compares head h of ``attention`` with head g of ``other``
    (every pair, K² of them, not symmetric); its diagonal is the compare analysis's change.

    JS(p, q) = ½ Σ p ln p + ½ Σ q ln q − Σ m ln m, m = (p + q)/2. Adding ln n·(½Σp + ½Σq − Σm),
    which is 0, and writing u = n·P/2, s = u_h + u_g = n·M:

        JS_i(h, g) = e_h[i] + e_g[i] − (1/n) Σ_j s_j ln s_j,  e_h[i] = ½ Σ_j P_h[i,j] ln(n·P_h[i,j])

    So a pair costs one logarithm per element, of values near 1 where attention is broad (which
    keeps float32 accurate). e (K·n values) and all sums are float64; s and its logarithm (the
    K²·n²/2 logarithms that are nearly all the work) are ``precision``: float32 by default,
    within 3e-7 per token of float64 (tests/test_distances.py checks < 1e-6 on real and
    hand-made attention); "float64" gives the reference. On a CUDA ``device`` this runs in
    torch there; on the CPU in numpy, whose float32 logarithm is 3 times faster per core than
    torch's, in blocks shared among ``_threads()`` threads (docs/performance.md)."""
    dtype = np.dtype(precision)
    u, half_kl = _scaled(attention, smoothing, dtype)
    v, half_v = _scaled(other, smoothing, dtype) if other is not None else (u, half_kl)
    return js_totals(u, half_kl, device, v, half_v)


def js_totals(
    u: np.ndarray,
    half_kl: np.ndarray,
    device: str = "cpu",
    v: np.ndarray | None = None,
    half_v: np.ndarray | None = None,
) -> np.ndarray:
    """``js_sums`` from the heads' scaled rows (``_scaled``): u [K, r, n] and half_kl [K, r]
    of r rows of an n-token example (every row, or a sample of them), and those of a second
    model, v and half_v, if given (every pair [h, g], not symmetric)."""
    cross = v is not None and v is not u
    if not cross:
        v, half_v = u, half_kl
    k = u.shape[0]
    if device.startswith("cuda"):
        totals = _js_torch(u, half_kl, device, v, half_v, full=cross)
    else:
        totals = np.zeros((k, k))
        tiles = _tiles(k, u.shape[-2] * u.shape[-1], PAIR_TILE, full=cross)
        threads = min(_threads(), len(tiles))
        parts = [tiles[t::threads] for t in range(threads)]
        pending = [_pool().submit(_fill, u, half_kl, totals, part, v, half_v) for part in parts[1:]]
        _fill(u, half_kl, totals, parts[0], v, half_v)
        for future in pending:
            future.result()
    if cross:
        return totals
    totals = np.triu(totals, 1)
    return totals + totals.T


def _scaled(attention: np.ndarray, smoothing: float, dtype: np.dtype = FLOAT32):
    """u = n·P/2 as [K, r, n] in ``dtype``, and e_h[i] = (1/n) Σ_j u ln 2u: [K, r] float64, of
    attention [..., r, n]: every row of an n-token example's heads, or some of its rows."""
    n = attention.shape[-1]
    u = attention.reshape(-1, *attention.shape[-2:]).astype(dtype)
    u *= dtype.type((1.0 - smoothing) * n / 2)
    u += dtype.type(smoothing / 2)
    wide = u.astype(np.float64)
    return u, (wide * np.log(2.0 * wide)) @ np.ones(n) / n


def _tiles(k: int, size: int, tile: int, full: bool = False) -> list[tuple[int, int, int, int]]:
    """Blocks (h0, h1, g0, g1) of head pairs covering every h < g (every h, g if ``full``),
    each of about ``tile`` values: rows of heads against all later heads, so short sentences
    need few blocks and long ones little memory. Blocks do not overlap; one may also hold pairs
    with g ≤ h, which are computed like the others and not used. ``size``: values per head."""
    out = []
    h0 = 0
    last = k if full else k - 1
    while h0 < last:
        width = k if full else k - 1 - h0
        rows = max(1, min(last - h0, tile // (width * size)))
        step = max(1, tile // (rows * size))
        first = 0 if full else h0 + 1
        out += [(h0, h0 + rows, g0, min(k, g0 + step)) for g0 in range(first, k, step)]
        h0 += rows
    return out


def _fill(
    u: np.ndarray,
    half_kl: np.ndarray,
    totals: np.ndarray,
    tiles: list[tuple[int, int, int, int]],
    v: np.ndarray,
    half_v: np.ndarray,
) -> None:
    """Σ_i JS_i(h, g) of the pairs of each block into ``totals``, in reused buffers (numpy
    lets go of the GIL, so blocks can run in threads); heads h from ``u``, heads g from ``v``
    (``u`` itself within one model). Σ_j s log₂ s is summed in float64: summed in float32, a
    one-hot row's large term swallowed the rounding of its many small ones (1.5e-6 per token
    at n = 128)."""
    r, n = u.shape[-2:]
    ones = np.ones(n)
    scale = np.log(2.0) / n
    largest = max((h1 - h0) * (g1 - g0) for h0, h1, g0, g1 in tiles) * r * n
    buffers = np.empty((2, largest), dtype=u.dtype)
    wide = np.empty(largest)
    for h0, h1, g0, g1 in tiles:
        shape = (h1 - h0, g1 - g0, r, n)
        size = shape[0] * shape[1] * r * n
        s = np.add(u[h0:h1, None], v[None, g0:g1], out=buffers[0, :size].reshape(shape))
        logs = np.log2(s, out=buffers[1, :size].reshape(shape))
        logs *= s
        products = wide[:size].reshape(shape)
        np.copyto(products, logs)
        mixed = (products.reshape(-1, n) @ ones).reshape(shape[:3])  # Σ_j s log₂ s
        js = half_kl[h0:h1, None] + half_v[None, g0:g1] - scale * mixed  # [rows, cols, n]
        totals[h0:h1, g0:g1] = np.maximum(js, 0.0) @ np.ones(r)  # clip rounding below 0, per token


def _js_torch(
    u: np.ndarray,
    half_kl: np.ndarray,
    device: str,
    v: np.ndarray | None = None,
    half_v: np.ndarray | None = None,
    full: bool = False,
) -> np.ndarray:
    """The totals of ``_fill``, in torch on ``device`` (a GPU), in larger blocks; heads g from
    ``v`` when given (``full``: every pair, as for two models)."""
    import torch

    t = torch.as_tensor(u).to(device)
    half = torch.as_tensor(half_kl).to(device)
    w = t if v is None or v is u else torch.as_tensor(v).to(device)
    half_w = half if half_v is None or half_v is half_kl else torch.as_tensor(half_v).to(device)
    k, r, n = t.shape
    totals = torch.zeros((k, k), dtype=torch.float64, device=t.device)
    for h0, h1, g0, g1 in _tiles(k, r * n, GPU_PAIR_TILE, full=full):
        s = t[h0:h1, None] + w[None, g0:g1]
        mixed = torch.log(s).mul_(s).sum(-1, dtype=torch.float64)
        js = half[h0:h1, None] + half_w[None, g0:g1] - mixed / n
        totals[h0:h1, g0:g1] = js.clamp_(min=0.0).sum(-1)
    return totals.cpu().numpy()


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=MAX_THREADS - 1, thread_name_prefix="atlas-js")


def _threads() -> int:
    """As many threads as torch is allowed (OMP_NUM_THREADS, torch.set_num_threads), at most
    MAX_THREADS."""
    import torch

    return max(1, min(MAX_THREADS, torch.get_num_threads()))


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


def sampled_rows(n: int, heads: int, budget: int = ROW_VALUES) -> np.ndarray:
    """The rows of an n-token example that head distances measure: every row while every head's
    rows fit in ``budget`` values (float32: 256 MB by default, n ≤ 682 tokens at 144 heads),
    else as many rows as fit, spread evenly from the first to the last."""
    if heads * n * n <= budget:
        return np.arange(n)
    count = max(1, budget // (heads * n))
    return np.unique(np.linspace(0, n - 1, count).round().astype(np.int64))


def row_rate(heads: int, exact_heads: int = EXACT_HEADS) -> float:
    """The probability each row is measured with: 1 up to ``exact_heads`` heads, then
    exact_heads² / heads², which keeps the pairs' work that of ``exact_heads`` heads."""
    return 1.0 if heads <= exact_heads else (exact_heads / heads) ** 2


def sampled_query_rows(
    index: int, n: int, heads: int, rate: float, budget: int = ROW_VALUES
) -> tuple[np.ndarray, float]:
    """The rows of example ``index`` the estimate measures and their probability p: each row
    with probability ``rate`` (lowered so that the rows expected fit ``budget`` values), drawn
    from a generator seeded by (ROW_SEED, index), so the same rows whatever part of a split
    corpus the example is in."""
    p = min(rate, max(budget // (heads * n), 1) / n)
    draws = np.random.default_rng([ROW_SEED, index]).random(n)
    return np.flatnonzero(draws < p), p


class HeadDistances(Analysis):
    """Streaming sum of per-token JS divergences between all pairs of heads; at the end the
    distance matrix, the head map and each head's nearest heads. An example's rows are kept
    until its last layer has passed (``sampled_rows`` bounds them for long examples)."""

    name = "distances"
    sections: ClassVar[Mapping[str, str]] = {
        "overview": "sections/head-map.html",
        "head": "sections/nearest.html",
    }

    def __init__(self, exact_heads: int = EXACT_HEADS):
        self.exact_heads = exact_heads

    @classmethod
    def charts(cls) -> Mapping[str, Callable[..., dict]]:
        return {
            "head_map": head_map_chart,
            "head_map_colours": head_map_colours,
            "highlighted": highlighted,
        }

    @classmethod
    def shared(cls, atlas: Atlas) -> Mapping[str, Any]:
        """The head map, built once per site; each head page rings its head on a copy."""
        return {"head_map": head_map_chart(atlas, "../")}

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.total = ExactSum((run.size, run.size))  # order-independent: parts merge exactly
        self.tokens = 0  # rows measured: every token of each example but the longest ones
        # Past exact_heads heads: rows sampled at this rate, the weighted sum in ``total``,
        # Σ (1 − p)·JS_i² / p² in ``variance``, and ``tokens`` every token (module docstring).
        self.rate = row_rate(run.size, self.exact_heads)
        self.variance = ExactSum((run.size, run.size))

    def _rows(self, record: Record) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """The example's rows measured (``sampled_rows``, or ``sampled_query_rows`` past
        ``exact_heads``), every head's scaled rows (``_scaled``: u [K, rows, n], half_kl
        [K, rows]), filled layer by layer, and the rows' probability p (1: every row)."""

        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
            if self.rate < 1:
                rows, p = sampled_query_rows(record.index, record.n, self.run.size, self.rate)
            else:
                rows, p = sampled_rows(record.n, self.run.size), 1.0
            shape = (self.run.size, len(rows))
            return rows, np.empty((*shape, record.n), np.float32), np.empty(shape), p

        return record.stash(self.name, make)

    def add_layer(self, record: Record, layer: int, attention: np.ndarray) -> None:
        """Keep this layer's heads' scaled rows for ``add``, which compares every head with
        every other: all rows of the example, or a sample of a long one's."""
        rows, u, half, _p = self._rows(record)
        if not len(rows):  # a sampled example none of whose rows was drawn
            return
        at = slice(layer * self.run.heads, (layer + 1) * self.run.heads)
        u[at], half[at] = _scaled(attention if len(rows) == record.n else attention[:, rows],
                                  JS_SMOOTHING)  # fmt: skip

    def add(self, record: Record) -> None:
        rows, u, half, p = self._rows(record)
        if self.rate == 1:
            self.total.add(js_totals(u, half, self.run.device))
            self.tokens += len(rows)
            return
        sums, squares = np.zeros((2, self.run.size, self.run.size))
        for row in range(len(rows)):  # each row's JS, for the variance
            js = js_totals(u[:, row : row + 1], half[:, row : row + 1], self.run.device)
            sums += js
            squares += js * js
        self.total.add(sums / p)
        self.variance.add(squares * (1 - p) / p**2)
        self.tokens += record.n

    def state(self) -> dict:
        return {"total": self.total.state(), "tokens": self.tokens,
                "variance": self.variance.state()}  # fmt: skip

    def load_state(self, state) -> None:
        self.total, self.tokens = ExactSum.from_state(state["total"]), int(state["tokens"])
        self.variance = ExactSum.from_state(state["variance"])

    def merge(self, other: HeadDistances) -> None:
        self.total.merge(other.total)
        self.variance.merge(other.variance)
        self.tokens += other.tokens

    def distances(self) -> np.ndarray:
        """Mean JS divergence per token, [K, K]: exact, or past ``exact_heads`` heads its
        unbiased estimate from sampled rows."""
        return self.total.value() / max(self.tokens, 1)

    def standard_error(self) -> np.ndarray | None:
        """The estimate's standard error per pair [K, K]; None when every row was measured."""
        if self.rate == 1:
            return None
        return np.sqrt(np.maximum(self.variance.value(), 0.0)) / max(self.tokens, 1)

    def finish(self, results) -> Result:
        distance = self.distances()
        error = self.standard_error()
        sampled = {} if error is None else {
            "standard_error": error.tolist(),
            "row_rate": self.rate,
            "largest_standard_error": float(error.max(initial=0.0)),
        }  # fmt: skip
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
            data={"matrix": distance.tolist(), "stress": stress, **sampled},
        )


# The head map coloured by a catalogue column: a sequential scale that stays visible on white at
# both ends (the heatmaps' light low end would hide points).
MAP_COLUMN_SCHEME = charts.LAYER_SCHEME


def head_map_chart(atlas: Atlas, prefix: str = "") -> dict:
    """Heads placed by MDS on their Jensen-Shannon distances; colour = layer, shape = label.
    Built once per site; ``highlighted`` rings one head for its page."""
    rows = {"heads": charts.head_rows(atlas, prefix)}
    points = (
        alt.Chart(charts.placeholder("heads", rows))
        .mark_point(size=70, filled=True, opacity=0.85)
        .encode(
            x=alt.X("x:Q", axis=None),
            y=alt.Y("y:Q", axis=None),
            color=_layer_colour(),
            shape=alt.Shape(
                "family:N", scale=alt.Scale(domain=list(atlas.labels)), title="pattern"
            ),
            href="url:N",
            tooltip=[
                alt.Tooltip("name:N", title="head"),
                alt.Tooltip("label:N", title="pattern"),
                *[
                    alt.Tooltip(f"{c.key}:Q", format=".2f", title=c.title)
                    for c in atlas.catalogue
                    if c.kind == "share"
                ],
            ],
        )
    )
    chart = points.properties(
        width=460, height=380, title=f"Head map (MDS, stress-1 {atlas.map_stress:.3f})"
    )
    return charts.to_spec(chart.configure_view(stroke="#ddd"), rows)


def _layer_colour() -> alt.Color:
    return alt.Color(
        "layer:O", scale=alt.Scale(scheme=charts.LAYER_SCHEME), legend=alt.Legend(title="layer")
    )


def head_map_colours(atlas: Atlas) -> dict[str, dict]:
    """What the overview's head map can be coloured by: the layer, then every catalogue column
    with a value, each as {title, range (text), encoding (Vega-Lite colour), tooltip}; the page
    puts ``encoding`` in place of the map's colour (assets/head-map.js). A column's scale spans
    its range, and its legend is labelled at both ends."""
    colours = {
        "layer": {
            "title": "layer",
            "range": f"layers 1 – {atlas.model.layers}",
            "encoding": _layer_colour().to_dict(),
            "tooltip": alt.Tooltip("layer:O", title="layer").to_dict(),
        }
    }
    for column in atlas.catalogue:
        span = charts.metric_range(atlas, column)
        if span is None:
            continue
        low, high = charts.colour_span(atlas, column)
        legend = alt.Legend(
            title=column.title, values=[low, high], format=".3f", gradientLength=160
        )
        colours[column.key] = {
            "title": column.title,
            "range": f"{column.title}: {span[0]:.3f} – {span[1]:.3f}",
            "encoding": alt.Color(
                f"{column.key}:Q",
                scale=alt.Scale(scheme=MAP_COLUMN_SCHEME, domain=[low, high]),
                legend=legend,
            ).to_dict(),
            "tooltip": alt.Tooltip(f"{column.key}:Q", title=column.title, format=".3f").to_dict(),
        }
    return colours


def highlighted(head_map_spec: dict, name: str) -> dict:
    """A copy of the head map with one head ringed in black (seen on every layer colour): a
    copy, not a rebuild, so the map is built (and schema-checked) once per site, not once per
    head page. Only what changes is copied (the spec's top level and its legend's config): the
    heads' rows and the encodings are shared with the map, which nothing changes."""
    spec = dict(head_map_spec)
    points = {key: spec.pop(key) for key in ("mark", "encoding")}
    ring = {
        "mark": {"type": "point", "size": 300, "shape": "circle", "color": "#000000",
                 "strokeWidth": 2.5},
        "encoding": {key: points["encoding"][key] for key in ("x", "y")},
        "transform": [{"filter": {"field": "name", "equal": name}}],
    }  # fmt: skip
    spec["layer"] = [points, ring]
    # A head page shows it in a card beside other cards: narrower, its legends below the plot
    # (to its right they would be cut at the card's edge).
    spec.update(width=290, height=260)
    config = spec["config"] = dict(spec.get("config", {}))
    legend = config["legend"] = dict(config.get("legend", {}))
    legend.update(orient="bottom", direction="horizontal", columns=3, symbolLimit=0)
    return spec
