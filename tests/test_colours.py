"""The colour scales are readable with any colour vision deficiency: the head palette's colours
stay apart, the diverging scale's two sides stay apart (blue against orange, never red against
green) and the sequential scale's lightness falls steadily, under simulated protanopia,
deuteranopia and tritanopia (Machado, Oliveira & Fernandes 2009, severity 1). The charts of a
built site use only the contract's scales."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest

from atlas import contract

# Machado et al. (2009), severity 1.0, on linear RGB.
SIMULATIONS = {
    "normal": np.eye(3),
    "protan": np.array(
        [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
         [-0.003882, -0.048116, 1.051998]]
    ),
    "deutan": np.array(
        [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
         [-0.011820, 0.042940, 0.968881]]
    ),
    "tritan": np.array(
        [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
         [0.004733, 0.691367, 0.303900]]
    ),
}  # fmt: skip
SRGB_TO_XYZ = np.array(
    [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
)
WHITE = np.array([0.95047, 1.0, 1.08883])

# The smallest CIELAB distance between two head colours, under every simulation. Okabe & Ito's
# own palette reaches 16; d3's category10 (the old head colours) has orange and green 4.6 apart
# for a protanope.
HEAD_DISTANCE = 15.0


def lab(hex_colour: str, simulation: str = "normal") -> np.ndarray:
    """CIELAB (D65) of an sRGB colour as seen under a simulated colour vision deficiency."""
    c = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    linear = np.clip(SIMULATIONS[simulation] @ linear, 0, 1)
    xyz = SRGB_TO_XYZ @ linear / WHITE
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def distance(a: str, b: str, simulation: str) -> float:
    return float(np.linalg.norm(lab(a, simulation) - lab(b, simulation)))


def closest_pair(palette: list[str]) -> tuple[float, str, str, str]:
    """The two colours of a palette closest under any simulation: (distance, a, b, simulation)."""
    return min(
        (distance(a, b, s), a, b, s)
        for a, b in itertools.combinations(palette, 2)
        for s in SIMULATIONS
    )


def test_the_check_finds_the_red_green_pairs_of_a_classic_palette():
    category10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    worst = closest_pair(category10)
    assert worst[0] < HEAD_DISTANCE / 2 and worst[3] in ("protan", "deutan"), worst
    # and red against green by itself: far apart for most readers, close for a deuteranope
    assert distance("#d62728", "#2ca02c", "normal") > 60
    assert distance("#d62728", "#2ca02c", "deutan") < 25


def test_head_colours_stay_apart_for_every_colour_vision():
    palette = contract.HEAD_COLOURS
    assert len(palette) >= 12 and len(set(palette)) == len(palette)  # the default model's 12 heads
    worst = closest_pair(palette)
    assert worst[0] >= HEAD_DISTANCE, worst
    # Okabe & Ito first (its yellow left out: too faint as a line on white)
    okabe_ito = ["#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#000000"]
    assert palette[:7] == okabe_ito


def test_diverging_scale_is_blue_against_orange_and_its_sides_stay_apart():
    stops = contract.DIVERGING
    assert len(stops) % 2 == 1
    mid = len(stops) // 2
    assert lab(stops[mid])[0] > 93  # near white at 0
    for k in range(1, mid + 1):
        below, above = stops[mid - k], stops[mid + k]
        for s in SIMULATIONS:
            assert distance(below, above, s) > 8 + 4 * k, (below, above, s)
    blue, orange = lab(stops[0]), lab(stops[-1])
    assert blue[2] < -25 and orange[2] > 25  # b*: blue below 0, orange (yellowish) above
    assert abs(blue[0] - orange[0]) < 12  # the two ends about as dark
    for side in (stops[: mid + 1], stops[mid:][::-1]):  # lighter towards 0, for every reader
        for s in SIMULATIONS:
            lightness = [lab(c, s)[0] for c in side]
            assert all(np.diff(lightness) > 0), (side, s)


def test_sequential_scale_darkens_steadily_for_every_colour_vision():
    stops = contract.SEQUENTIAL
    assert stops[0] == "#ffffff"
    for s in SIMULATIONS:
        lightness = [lab(c, s)[0] for c in stops]
        steps = -np.diff(lightness)
        assert all(steps > 3), (s, lightness)


def test_the_page_config_carries_the_scales():
    config = contract.page_config(2, 3, {})
    assert config["colours"] == {
        "heads": contract.HEAD_COLOURS,
        "sequential": contract.SEQUENTIAL,
        "diverging": contract.DIVERGING,
    }


SCHEMES = {
    contract.SEQUENTIAL_SCHEME,
    contract.UNBOUNDED_SCHEME,
    contract.DIVERGING_SCHEME,
    contract.LAYER_SCHEME,
}


def colour_encodings(spec: object):
    """Every colour encoding of a Vega-Lite spec (nested views included)."""
    if isinstance(spec, dict):
        encoding = spec.get("encoding")
        if isinstance(encoding, dict) and "color" in encoding:
            yield encoding["color"]
        for value in spec.values():
            yield from colour_encodings(value)
    elif isinstance(spec, list):
        for value in spec:
            yield from colour_encodings(value)


@pytest.mark.parametrize(
    "page", ["index.html", "heads/L01-H01.html", "layers.html", "sentences/0001.html"]
)
def test_every_chart_of_a_site_uses_the_contract_scales(default_site, page):
    html = (default_site / page).read_text()
    specs = re.findall(r'<script type="application/json" id="spec-[^"]*">(.*?)</script>', html)
    encodings = [e for s in specs for e in colour_encodings(json.loads(s))]
    if page != "sentences/0001.html":
        assert encodings, page
    assert {"redblue", "redyellowgreen", "category10", "tableau10"}.isdisjoint(SCHEMES)
    for encoding in encodings:
        if "condition" in encoding or "value" in encoding:
            continue
        scale = encoding.get("scale", {})
        if encoding.get("type") == "nominal":
            assert scale.get("range") == contract.HEAD_COLOURS, encoding
        else:
            assert scale.get("scheme") in SCHEMES, encoding
