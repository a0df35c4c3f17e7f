"""Altair chart specs for the site: pure functions from the Atlas to Vega-Lite dicts.

Pages embed each spec as JSON and draw it with the one vega bundle in assets/ (see site.py), so
nothing is fetched from outside the site. The charts here name no analysis: every per-head
chart is driven by the catalogue, so a new analysis's columns get charts without a change here;
an analysis's own charts live in its module (``Analysis.charts``: the offset profile in
heads.py, the head map in distances.py, ...), built with the helpers below. Links in charts are
relative to the page showing them.

Altair is slow with data (it walks every row as it builds a chart: 150 ms for the layer curves)
and builds a chart in about 10 ms even without, so each chart is built around a one-row
``placeholder`` that ``to_spec`` replaces by the rows (an analysis's chart that is drawn on
every head page, as the offset profile, is built once per process and ``filled`` in for each
head). The specs are the same, byte for byte, as Altair building each chart with its rows
(tests/test_charts.py).
"""

from __future__ import annotations

import math

import altair as alt

from . import contract
from .analyses.base import Column
from .result import Atlas, Head

WIDTH = 260
# Colours come from the contract (contract.HEAD_COLOURS and the schemes), as in the views.
LAYER_SCHEME = contract.LAYER_SCHEME
CATEGORIES = alt.Scale(range=contract.HEAD_COLOURS)


# The key of the one row of a placeholder dataset; its value names the rows that replace it.
PLACEHOLDER = "__atlas_rows__"


def placeholder(name: str, rows: dict[str, list] | None = None) -> alt.Data:
    """A placeholder for ``rows[name]``, which ``_spec`` puts in (``rows`` is there for tests
    that build the charts with their rows)."""
    return alt.Data(values=[{PLACEHOLDER: name}])


def to_spec(chart: alt.TopLevelMixin, rows: dict[str, list] | None = None) -> dict:
    """The Vega-Lite dict, without the $schema URL (vega-embed is told the mode instead), with
    each placeholder's rows put in."""
    spec = chart.to_dict()
    spec.pop("$schema", None)
    return filled(spec, rows or {})


def filled(node, rows: dict[str, list]):
    """A copy of ``node`` with each placeholder dataset named in ``rows`` replaced by its rows
    (the rows themselves, not copies) and nothing else changed."""
    if isinstance(node, dict):
        values = node.get("values")
        if isinstance(values, list) and len(values) == 1 and isinstance(values[0], dict):
            name = values[0].get(PLACEHOLDER)
            if name in rows:
                return {**node, "values": rows[name]}
        return {key: filled(value, rows) for key, value in node.items()}
    if isinstance(node, list):
        return [filled(value, rows) for value in node]
    return node


def head_url(head: Head, prefix: str) -> str:
    return prefix + contract.head_page(head.layer, head.head)


def head_rows(atlas: Atlas, prefix: str) -> list[dict]:
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


def number_format(column: Column) -> str:
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


def colour_span(atlas: Atlas, column: Column) -> tuple[float, float] | None:
    """The range a column's colours span: its own (``metric_range``), or, where every head has
    one value, its kind's range (a scale of no width draws nothing)."""
    span = metric_range(atlas, column)
    if span is not None and span[0] == span[1]:
        span = column.domain or (min(span[0], 0.0), max(span[1], 0.0) or 1.0)
    return span


def metric_heatmap(atlas: Atlas, column: Column, prefix: str = "") -> dict:
    """Layer x head grid of one catalogue column; a cell links to its head's page. The colours
    span the column's own range (``metric_range``); the overview prints it beside the chart."""
    rows = {"heads": head_rows(atlas, prefix)}
    span = colour_span(atlas, column)
    scheme = contract.SEQUENTIAL_SCHEME if column.domain is not None else contract.UNBOUNDED_SCHEME
    scale = (
        alt.Scale(scheme=scheme, domain=list(span))
        if span is not None
        else alt.Scale(scheme=scheme, zero=True)
    )
    chart = (
        alt.Chart(placeholder("heads", rows), title=column.title)
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
                alt.Tooltip(
                    f"{column.key}:Q", title=column.description, format=number_format(column)
                ),
                alt.Tooltip("label:N", title="pattern"),
            ],
        )
        .properties(width=WIDTH * 0.8, height=WIDTH * 0.5)
    )
    return to_spec(chart, rows)


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
    tooltip_format = number_format(column) if column.kind != "count" else ".3f"
    chart = (
        alt.Chart(placeholder("heads", rows), title=f"{column.title}: B − A")
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
    return to_spec(chart, rows)


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
            alt.Chart(placeholder(f"{group} lines", rows))
            .mark_line(point=True)
            .encode(x=x, y=alt.Y("value:Q", title=None), color=color)
        )
        dot = (
            alt.Chart(placeholder(f"{group} dots", rows))
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
    return to_spec(alt.hconcat(*charts).resolve_scale(color="independent"), rows)
