"""The charts are built around placeholder rows (and the offset profile once per process) for
speed: each spec must be exactly the one Altair builds with the rows themselves."""

from __future__ import annotations

import json

import altair as alt
import pytest
from conftest import ROOT, build

from atlas import charts
from atlas.analyses import distances, heads, syntax
from atlas.result import load

pytestmark = pytest.mark.slow  # the module's atlas: the UD sample, a tiny model (about 20 s)

SAMPLE = ROOT / "examples" / "ud-ewt-sample.conllu"


@pytest.fixture(scope="module")
def sample_atlas(tiny_model, tmp_path_factory):
    """A tiny model's atlas of the UD sample, so that every kind of chart has data."""
    out = tmp_path_factory.mktemp("charts") / "site"
    model = str(tiny_model("bert"))
    assert build([str(SAMPLE), "-o", str(out), "--model", model, "--min-relation", "1"]) == 0
    return load(out / "atlas.json")


@pytest.fixture
def with_rows(monkeypatch):
    """Make the chart functions build the straightforward way: Altair is given the rows."""

    def rows(name, rows=None):
        return alt.Data(values=rows[name])

    def spec(chart, rows=None):
        out = chart.to_dict()
        out.pop("$schema", None)
        return out

    def offset_profile(atlas, head):
        rows = {"offsets": heads._offset_rows(atlas, head)}
        return heads._offset_chart(head.name, f"layer {head.layer} mean", rows)

    monkeypatch.setattr(charts, "placeholder", rows)
    monkeypatch.setattr(charts, "to_spec", spec)
    monkeypatch.setattr(heads, "offset_profile", offset_profile)


def all_charts(atlas) -> dict[str, str]:
    """Every chart of a site (one offset profile per head), as JSON text."""
    specs = {
        **{c.key: charts.metric_heatmap(atlas, c, "") for c in atlas.catalogue},
        "curves": charts.layer_curves(atlas, ""),
        "map": distances.head_map_chart(atlas, "../"),
        "relations": syntax.relation_heatmap(atlas),
        **{h.name: heads.offset_profile(atlas, h) for h in atlas.heads},
    }
    return {name: json.dumps(spec, sort_keys=True) for name, spec in specs.items()}


def test_charts_are_those_altair_builds_with_the_rows(sample_atlas, monkeypatch, with_rows):
    reference = all_charts(sample_atlas)
    monkeypatch.undo()  # the real chart functions again
    fast = all_charts(sample_atlas)
    assert len(fast) > len(sample_atlas.heads) + 4
    assert all(charts.PLACEHOLDER not in text for text in fast.values())
    for name, text in reference.items():
        assert fast[name] == text, name


def test_offset_profiles_differ_by_head_and_leave_the_template_alone(sample_atlas):
    first, second = sample_atlas.heads[0], sample_atlas.heads[-1]
    a = heads.offset_profile(sample_atlas, first)
    b = heads.offset_profile(sample_atlas, second)
    assert first.name in json.dumps(a) and second.name not in json.dumps(a)
    assert f"layer {second.layer} mean" in json.dumps(b)
    assert [row["head"] for row in a["data"]["values"]] == first.parts["offsets"]
    template = json.dumps(heads._offset_template())
    assert heads.HEAD_TITLE in template and charts.PLACEHOLDER in template


def test_metric_heatmaps_span_the_column_range_and_rank_its_heads(sample_atlas):
    for column in sample_atlas.catalogue:
        values = [h.metrics[column.key] for h in sample_atlas.heads]
        low, high = min(values), max(values)
        assert charts.metric_range(sample_atlas, column) == (low, high)
        spec = charts.metric_heatmap(sample_atlas, column, "")
        if low < high:
            assert spec["encoding"]["color"]["scale"]["domain"] == [low, high], column.key
        top = charts.top_heads(sample_atlas, column, 3)
        assert [v for _, v in top] == sorted(values, reverse=True)[:3]
        assert all(head.metrics[column.key] == v for head, v in top)
