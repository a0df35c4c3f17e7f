"""Altair chart specs for the site: pure functions from the Atlas to Vega-Lite dicts.

Pages embed each spec as JSON and draw it with the one vega bundle in assets/ (see site.py), so
nothing is fetched from outside the site. Every per-head chart is driven by the catalogue, so a
new analysis's columns get charts without a change here. Links in charts are relative to the
page showing them.

Altair is slow with data (it walks every row as it builds a chart: 150 ms for the layer curves)
and builds a chart in about 10 ms even without, so each chart is built around a one-row
placeholder that ``_spec`` replaces by the rows, and the offset profile, drawn on every head
page, is built once per process and filled in for each head. The specs are the same, byte for
byte, as Altair building each chart with its rows (tests/test_charts.py).
"""

from __future__ import annotations

import copy
import functools
import math

import altair as alt

from . import contract
from .analyses.base import Column
from .result import Atlas, Head

WIDTH = 260
# Colours come from the contract (contract.HEAD_COLOURS and the schemes), as in the views.
LAYER_SCHEME = contract.LAYER_SCHEME
CATEGORIES = alt.Scale(range=contract.HEAD_COLOURS)
# The head map coloured by a catalogue column: a sequential scale that stays visible on white at
# both ends (the heatmaps' light low end would hide points).
MAP_COLUMN_SCHEME = contract.LAYER_SCHEME


# The key of the one row of a placeholder dataset; its value names the rows that replace it.
PLACEHOLDER = "__atlas_rows__"


def _rows(name: str, rows: dict[str, list] | None = None) -> alt.Data:
    """A placeholder for ``rows[name]``, which ``_spec`` puts in (``rows`` is there for tests
    that build the charts with their rows)."""
    return alt.Data(values=[{PLACEHOLDER: name}])


def _spec(chart: alt.TopLevelMixin, rows: dict[str, list] | None = None) -> dict:
    """The Vega-Lite dict, without the $schema URL (vega-embed is told the mode instead), with
    each placeholder's rows put in."""
    spec = chart.to_dict()
    spec.pop("$schema", None)
    return _filled(spec, rows or {})


def _filled(node, rows: dict[str, list]):
    """A copy of ``node`` with each placeholder dataset named in ``rows`` replaced by its rows
    (the rows themselves, not copies) and nothing else changed."""
    if isinstance(node, dict):
        values = node.get("values")
        if isinstance(values, list) and len(values) == 1 and isinstance(values[0], dict):
            name = values[0].get(PLACEHOLDER)
            if name in rows:
                return {**node, "values": rows[name]}
        return {key: _filled(value, rows) for key, value in node.items()}
    if isinstance(node, list):
        return [_filled(value, rows) for value in node]
    return node


def head_url(head: Head, prefix: str) -> str:
    return prefix + contract.head_page(head.layer, head.head)


def _head_rows(atlas: Atlas, prefix: str) -> list[dict]:
    return [
        {
            "name": h.name,
            "layer": h.layer,
            "head": h.head,
            "label": h.label,
            # the head map's shapes: a compound label ("[CLS] + next") is drawn as "mixed"
            "family": h.label if h.label in atlas.labels or not atlas.labels else "mixed",
            "url": head_url(h, prefix),
            **h.metrics,
            **dict(zip(("x", "y"), h.parts.get("map", (0.0, 0.0)), strict=True)),
        }
        for h in atlas.heads
    ]


def _format(column: Column) -> str:
    return ".3f" if column.kind != "count" else "d"


def _values(atlas: Atlas, column: Column) -> list[tuple[float, Head]]:
    """The column's finite values, each with its head (a metric some heads leave undefined)."""
    values = [(h.metrics.get(column.key), h) for h in atlas.heads]
    return [
        (float(v), h)
        for v, h in values
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]


def metric_range(atlas: Atlas, column: Column) -> tuple[float, float] | None:
    """The smallest and largest value of a column over the heads (None: no head has one).
    Its heatmap spans this range, not the kind's fixed one: on a fixed 0–1 scale a metric whose
    heads all stay under 0.12 looks the same everywhere."""
    values = [v for v, _ in _values(atlas, column)]
    return (min(values), max(values)) if values else None


def top_heads(atlas: Atlas, column: Column, count: int = 3) -> list[tuple[Head, float]]:
    """The ``count`` heads with the largest values of a column, largest first (in model order
    where they tie)."""
    ranked = sorted(enumerate(_values(atlas, column)), key=lambda item: (-item[1][0], item[0]))
    return [(head, value) for _, (value, head) in ranked[:count]]


def _colour_span(atlas: Atlas, column: Column) -> tuple[float, float] | None:
    """The range a column's colours span: its own (``metric_range``), or, where every head has
    one value, its kind's range (a scale of no width draws nothing)."""
    span = metric_range(atlas, column)
    if span is not None and span[0] == span[1]:
        span = column.domain or (min(span[0], 0.0), max(span[1], 0.0) or 1.0)
    return span


def metric_heatmap(atlas: Atlas, column: Column, prefix: str = "") -> dict:
    """Layer x head grid of one catalogue column; a cell links to its head's page. The colours
    span the column's own range (``metric_range``); the overview prints it beside the chart."""
    rows = {"heads": _head_rows(atlas, prefix)}
    span = _colour_span(atlas, column)
    scheme = contract.SEQUENTIAL_SCHEME if column.domain is not None else contract.UNBOUNDED_SCHEME
    scale = (
        alt.Scale(scheme=scheme, domain=list(span))
        if span is not None
        else alt.Scale(scheme=scheme, zero=True)
    )
    chart = (
        alt.Chart(_rows("heads", rows), title=column.title)
        .mark_rect(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("head:O", title="head"),
            y=alt.Y("layer:O", title="layer"),
            color=alt.Color(
                f"{column.key}:Q", scale=scale, title=None, legend=alt.Legend(gradientLength=80)
            ),
            href="url:N",
            tooltip=[
                alt.Tooltip("name:N", title="head"),
                alt.Tooltip(f"{column.key}:Q", title=column.description, format=_format(column)),
                alt.Tooltip("label:N", title="pattern"),
            ],
        )
        .properties(width=WIDTH * 0.8, height=WIDTH * 0.5)
    )
    return _spec(chart, rows)


def delta_heatmap(atlas: Atlas, column: Column, prefix: str = "") -> dict:
    """Layer x head grid of B − A of one catalogue column in a compare atlas (the head parts'
    ``compare.delta``): a diverging scale centred on 0, orange where B is higher."""
    rows = {
        "heads": [
            {
                "name": h.name,
                "layer": h.layer,
                "head": h.head,
                "url": head_url(h, prefix),
                "a": h.metrics[column.key],
                "b": h.parts["compare"]["b"][column.key],
                "delta": h.parts["compare"]["delta"][column.key],
            }
            for h in atlas.heads
        ]
    }
    top = atlas.results["compare"]["delta_range"][column.key] or 1.0
    tooltip_format = _format(column) if column.kind != "count" else ".3f"
    chart = (
        alt.Chart(_rows("heads", rows), title=f"{column.title}: B − A")
        .mark_rect(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("head:O", title="head"),
            y=alt.Y("layer:O", title="layer"),
            color=alt.Color(
                "delta:Q",
                scale=alt.Scale(scheme=contract.DIVERGING_SCHEME, domain=[-top, top]),
                title=None,
                legend=alt.Legend(gradientLength=80),
            ),
            href="url:N",
            tooltip=[
                alt.Tooltip("name:N", title="head"),
                alt.Tooltip("a:Q", title="A", format=tooltip_format),
                alt.Tooltip("b:Q", title="B", format=tooltip_format),
                alt.Tooltip("delta:Q", title="B − A", format="+.3f"),
            ],
        )
        .properties(width=WIDTH * 0.8, height=WIDTH * 0.5)
    )
    return _spec(chart, rows)


def layer_curves(atlas: Atlas, prefix: str = "") -> dict | None:
    """Per-layer means as lines, with every head as a dot (Clark et al. 2019, Fig. 2): one
    chart per group of catalogue columns. None when no column has a group."""
    groups: dict[str, list[Column]] = {}
    for column in atlas.catalogue:
        if column.group:
            groups.setdefault(column.group, []).append(column)
    if not groups:
        return None
    x = alt.X(
        "layer:Q",
        axis=alt.Axis(tickMinStep=1, format="d"),
        scale=alt.Scale(domain=[0.5, atlas.model.layers + 0.5]),
    )
    charts, rows = [], {}
    for group, columns in groups.items():
        dots = [
            {
                "layer": h.layer,
                "name": h.name,
                "metric": c.title,
                "value": h.metrics[c.key],
                "url": head_url(h, prefix),
            }
            for h in atlas.heads
            for c in columns
        ]
        lines = [
            {"layer": layer + 1, "metric": c.title, "value": atlas.layer_means[c.key][layer]}
            for c in columns
            for layer in range(atlas.model.layers)
        ]
        order = [c.title for c in columns]
        color = alt.Color(
            "metric:N", sort=order, scale=CATEGORIES, title=None, legend=alt.Legend(orient="bottom")
        )
        rows[f"{group} lines"], rows[f"{group} dots"] = lines, dots
        line = (
            alt.Chart(_rows(f"{group} lines", rows))
            .mark_line(point=True)
            .encode(x=x, y=alt.Y("value:Q", title=None), color=color)
        )
        dot = (
            alt.Chart(_rows(f"{group} dots", rows))
            .mark_circle(size=18, opacity=0.35)
            .encode(
                x=x,
                y="value:Q",
                color=color,
                href="url:N",
                tooltip=["name:N", "metric:N", alt.Tooltip("value:Q", format=".3f")],
            )
        )
        charts.append((dot + line).properties(title=group, width=WIDTH, height=180))
    return _spec(alt.hconcat(*charts).resolve_scale(color="independent"), rows)


def head_map(atlas: Atlas, prefix: str = "") -> dict:
    """Heads placed by MDS on their Jensen-Shannon distances; colour = layer, shape = label.
    Built once per site; ``highlighted`` rings one head for its page."""
    rows = {"heads": _head_rows(atlas, prefix)}
    points = (
        alt.Chart(_rows("heads", rows))
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
    return _spec(chart.configure_view(stroke="#ddd"), rows)


def _layer_colour() -> alt.Color:
    return alt.Color(
        "layer:O", scale=alt.Scale(scheme=LAYER_SCHEME), legend=alt.Legend(title="layer")
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
        span = metric_range(atlas, column)
        if span is None:
            continue
        low, high = _colour_span(atlas, column)
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
    head page."""
    spec = copy.deepcopy(head_map_spec)
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
    legend = spec.setdefault("config", {}).setdefault("legend", {})
    legend.update(orient="bottom", direction="horizontal", columns=3, symbolLimit=0)
    return spec


def offset_profile(atlas: Atlas, head: Head) -> dict:
    """Attention at relative offsets -8..8: this head as bars, its layer's mean as ticks.

    Built once per process (``_offset_template``) and filled in for each head."""
    titles = {HEAD_TITLE: head.name, LAYER_TITLE: f"layer {head.layer} mean"}
    rows = {"offsets": _offset_rows(atlas, head)}
    return _filled(_titled(_offset_template(), titles), rows)  # copies, not changes


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
    base = alt.Chart(_rows("offsets", rows)).encode(
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
    return _spec(chart, rows)


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


def relation_heatmap(atlas: Atlas, prefix: str = "../") -> dict:
    """Relation × head: each cell the head's accuracy on the relation, in the better of its two
    directions; a cell links to its head's page. Relations in the order of the table above it
    (``relations``, by frequency): the matrix is a dict, whose order atlas.json does not keep."""
    syntax = atlas.results["syntax"]
    relations = [r["relation"] for r in syntax["relations"] if r["relation"] in syntax["matrix"]]
    rows = [
        {
            "relation": relation,
            "name": h.name,
            "flat": flat,
            "accuracy": syntax["matrix"][relation][flat],
            "url": head_url(h, prefix),
        }
        for relation in relations
        for flat, h in enumerate(atlas.heads)
    ]
    order = [h.name for h in atlas.heads]
    chart = (
        alt.Chart(_rows("relations", {"relations": rows}))
        .mark_rect()
        .encode(
            x=alt.X("name:N", sort=order, title="head", axis=alt.Axis(labelAngle=-90)),
            y=alt.Y("relation:N", sort=relations, title=None),
            color=alt.Color(
                "accuracy:Q",
                scale=alt.Scale(scheme=contract.SEQUENTIAL_SCHEME, domain=[0, 1]),
                title="accuracy",
            ),
            href="url:N",
            tooltip=[
                alt.Tooltip("relation:N"),
                alt.Tooltip("name:N", title="head"),
                alt.Tooltip("accuracy:Q", format=".3f"),
            ],
        )
        .properties(width=max(300, 11 * len(order)), height=14 * len(relations))
    )
    return _spec(chart, {"relations": rows})


# The layers analysis's curves, in the order of their legend, with their titles.
EMBEDDING_CURVES = {
    "drift": "drift: cos(h_l, h_0)",
    "anisotropy": "anisotropy",
    "self_similarity": "self-similarity",
    "intra_similarity": "intra-sentence similarity",
    "self_similarity_adjusted": "self-similarity − anisotropy",
    "intra_similarity_adjusted": "intra-sentence − anisotropy",
}


def embedding_curves(atlas: Atlas) -> dict:
    """The layers analysis's per-layer measures as lines, layer 0 (embeddings) to the last."""
    curves = atlas.results["layers"]["curves"]
    rows = [
        {"layer": layer, "measure": title, "value": value}
        for key, title in EMBEDDING_CURVES.items()
        for layer, value in enumerate(curves[key])
        if value is not None
    ]
    order = list(EMBEDDING_CURVES.values())
    chart = (
        alt.Chart(_rows("curves", {"curves": rows}))
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:Q", axis=alt.Axis(tickMinStep=1, format="d"), title="layer"),
            y=alt.Y("value:Q", title="mean cosine"),
            color=alt.Color(
                "measure:N",
                sort=order,
                scale=CATEGORIES,
                title=None,
                legend=alt.Legend(orient="right"),
            ),
            strokeDash=alt.condition(
                "indexof(datum.measure, '−') >= 0", alt.value([4, 3]), alt.value([1, 0])
            ),
            tooltip=["measure:N", "layer:Q", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(width=WIDTH * 1.6, height=240)
    )
    return _spec(chart, {"curves": rows})


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
            "url": head_url(h, prefix),
        }
        for h in atlas.heads
    ]
    chart = (
        alt.Chart(_rows("importance", {"importance": rows}))
        .mark_circle(size=60, opacity=0.8)
        .encode(
            x=alt.X("attention:Q", title=f"attention to {title}", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("importance:Q", title="importance (ablation)"),
            color=alt.Color("layer:O", scale=alt.Scale(scheme=LAYER_SCHEME), title="layer"),
            href="url:N",
            tooltip=[
                alt.Tooltip("name:N", title="head"),
                alt.Tooltip("attention:Q", format=".3f", title=f"to {title}"),
                alt.Tooltip("importance:Q", format=".5f"),
            ],
        )
        .properties(width=320, height=260)
    )
    return _spec(chart, {"importance": rows})
