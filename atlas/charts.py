"""Altair chart specs for the site: pure functions from the Atlas to Vega-Lite dicts.

Pages embed each spec as JSON and draw it with the one vega bundle in assets/ (see site.py), so
nothing is fetched from outside the site. Links in charts are relative to the page showing them.
"""

from __future__ import annotations

import altair as alt

from .report import Atlas, Head
from .stats import LABELS, METRICS, OFFSETS

WIDTH = 260
LAYER_SCHEME = "viridis"


def _spec(chart: alt.TopLevelMixin) -> dict:
    """The Vega-Lite dict, without the $schema URL (vega-embed is told the mode instead)."""
    spec = chart.to_dict()
    spec.pop("$schema", None)
    return spec


def head_url(head: Head, prefix: str) -> str:
    return f"{prefix}heads/{head.slug}.html"


def _head_rows(atlas: Atlas, prefix: str) -> list[dict]:
    return [
        {
            "name": h.name,
            "layer": h.layer,
            "head": h.head,
            "label": h.label,
            "url": head_url(h, prefix),
            **{key: h.metrics[key] for key in METRICS},
            "x": h.x,
            "y": h.y,
        }
        for h in atlas.heads
    ]


def metric_heatmap(atlas: Atlas, key: str, prefix: str = "") -> dict:
    """Layer x head grid of one metric; a cell links to its head's page."""
    title, description = METRICS[key]
    scale = (
        alt.Scale(scheme="blues", domain=[0, 1])
        if key not in ("entropy", "cls_entropy")
        else alt.Scale(scheme="purples", zero=True)
    )
    chart = (
        alt.Chart(alt.Data(values=_head_rows(atlas, prefix)), title=title)
        .mark_rect(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("head:O", title="head"),
            y=alt.Y("layer:O", title="layer"),
            color=alt.Color(
                f"{key}:Q", scale=scale, title=None, legend=alt.Legend(gradientLength=80)
            ),
            href="url:N",
            tooltip=[
                alt.Tooltip("name:N", title="head"),
                alt.Tooltip(f"{key}:Q", title=description, format=".3f"),
                alt.Tooltip("label:N", title="pattern"),
            ],
        )
        .properties(width=WIDTH * 0.8, height=WIDTH * 0.5)
    )
    return _spec(chart)


CURVE_GROUPS = {
    "Attention to special tokens": ("to_cls", "to_sep", "to_punct"),
    "Attention by position": ("prev", "self", "next"),
    "Entropy (nats)": ("entropy", "cls_entropy"),
}


def layer_curves(atlas: Atlas, prefix: str = "") -> dict:
    """Per-layer means as lines, with every head as a dot (Clark et al. 2019, Fig. 2)."""
    charts = []
    for group, keys in CURVE_GROUPS.items():
        dots = [
            {
                "layer": h.layer,
                "name": h.name,
                "metric": METRICS[k][0],
                "value": h.metrics[k],
                "url": head_url(h, prefix),
            }
            for h in atlas.heads
            for k in keys
        ]
        lines = [
            {"layer": layer + 1, "metric": METRICS[k][0], "value": atlas.layer_means[k][layer]}
            for k in keys
            for layer in range(atlas.model.layers)
        ]
        order = [METRICS[k][0] for k in keys]
        color = alt.Color("metric:N", sort=order, title=None, legend=alt.Legend(orient="bottom"))
        x = alt.X(
            "layer:Q",
            axis=alt.Axis(tickMinStep=1, format="d"),
            scale=alt.Scale(domain=[0.5, atlas.model.layers + 0.5]),
        )
        line = (
            alt.Chart(alt.Data(values=lines))
            .mark_line(point=True)
            .encode(x=x, y=alt.Y("value:Q", title=None), color=color)
        )
        dot = (
            alt.Chart(alt.Data(values=dots))
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
    return _spec(alt.hconcat(*charts).resolve_scale(color="independent"))


def head_map(atlas: Atlas, prefix: str = "", highlight: str | None = None) -> dict:
    """Heads placed by MDS on their Jensen-Shannon distances; colour = layer, shape = label."""
    rows = _head_rows(atlas, prefix)
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("x:Q", axis=None),
        y=alt.Y("y:Q", axis=None),
    )
    points = base.mark_point(size=70, filled=True, opacity=0.85).encode(
        color=alt.Color(
            "layer:O", scale=alt.Scale(scheme=LAYER_SCHEME), legend=alt.Legend(title="layer")
        ),
        shape=alt.Shape("label:N", scale=alt.Scale(domain=list(LABELS)), title="pattern"),
        href="url:N",
        tooltip=[
            alt.Tooltip("name:N", title="head"),
            alt.Tooltip("label:N", title="pattern"),
            alt.Tooltip("to_cls:Q", format=".2f", title="[CLS]"),
            alt.Tooltip("to_sep:Q", format=".2f", title="[SEP]"),
            alt.Tooltip("prev:Q", format=".2f", title="previous"),
            alt.Tooltip("entropy:Q", format=".2f", title="entropy"),
        ],
    )
    layers = [points]
    if highlight:
        ring = base.transform_filter(alt.datum.name == highlight).mark_point(
            size=300, shape="circle", color="#d62728", strokeWidth=2.5
        )
        layers.append(ring)
    chart = alt.layer(*layers).properties(
        width=460, height=380, title=f"Head map (MDS, stress-1 {atlas.map_stress:.3f})"
    )
    return _spec(chart.configure_view(stroke="#ddd"))


def offset_profile(atlas: Atlas, head: Head) -> dict:
    """Attention at relative offsets -8..8: this head as bars, its layer's mean as ticks."""
    layer_heads = [h for h in atlas.heads if h.layer == head.layer]
    rows = [
        {
            "offset": d,
            "head": head.offsets[i],
            "layer": sum(h.offsets[i] for h in layer_heads) / len(layer_heads),
        }
        for i, d in enumerate(OFFSETS)
    ]
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("offset:O", title="offset (key position − query position)")
    )
    bars = base.mark_bar(color="#4c78a8").encode(
        y=alt.Y("head:Q", title="mean attention", scale=alt.Scale(domain=[0, 1])),
        tooltip=[
            "offset:O",
            alt.Tooltip("head:Q", format=".3f", title=head.name),
            alt.Tooltip("layer:Q", format=".3f", title=f"layer {head.layer} mean"),
        ],
    )
    ticks = base.mark_tick(color="#e45756", thickness=2, size=14).encode(y="layer:Q")
    return _spec((bars + ticks).properties(width=420, height=180, title="Offset profile"))
