"""The search index (assets/search-index.js) and the head map's colours, from the Atlas: every
sentence once with its key and whether it has a page, each column's top heads, a size of about
the corpus's text; the map's colours are the layer and every catalogue column with values."""

from __future__ import annotations

import json

import pytest
from test_charts import sample_atlas  # noqa: F401 (the fixture, found by pytest here)

from atlas import charts, contract
from atlas.analyses import distances
from atlas.site import SEARCH_TOP, render, search_index

pytestmark = pytest.mark.slow  # test_charts' atlas of the UD sample (about 20 s)


@pytest.fixture(scope="module")
def atlas(request):
    """A tiny model's atlas of the UD sample (test_charts.sample_atlas): syntax columns too."""
    return request.getfixturevalue("sample_atlas")


def test_the_index_holds_every_sentence_once_and_each_column_top_heads(atlas):
    index = search_index(atlas)
    total = len(atlas.sentences)
    assert index["sentences"] == [
        [contract.sentence_key(s.index, total), s.text, s.text_b, int(s.has_view)]
        for s in atlas.sentences
    ]
    assert any(not s.has_view for s in atlas.sentences) or total <= 200
    assert [title for title, *_ in index["columns"]] == [c.title for c in atlas.catalogue]
    for column, (_, top, key, description) in zip(atlas.catalogue, index["columns"], strict=True):
        expected = charts.top_heads(atlas, column, SEARCH_TOP)
        assert top == [[h.name, round(v, 3)] for h, v in expected]
        assert (key, description) == (column.key, column.description)  # its definition's entry


def test_the_site_writes_the_index_once_at_the_contract_path(atlas):
    files = dict(render(atlas))
    script = files[contract.SEARCH_SCRIPT].decode("utf-8")
    prefix = f"window.{contract.SEARCH_GLOBAL} = "
    assert script.startswith(prefix) and script.endswith(";\n")
    assert json.loads(script[len(prefix) : -2]) == json.loads(json.dumps(search_index(atlas)))
    config = files[contract.CONFIG_SCRIPT].decode("utf-8")
    assert f'"search":"{contract.SEARCH_SCRIPT}"' in config
    assert f'"search":"{contract.SEARCH_GLOBAL}"' in config


def test_the_index_costs_the_text_plus_a_few_bytes_a_sentence(atlas):
    size = len(contract.search_script(search_index(atlas)).encode("utf-8"))
    text = sum(len(contract.script_json([s.text, s.text_b]).encode()) for s in atlas.sentences)
    columns = len(contract.script_json(search_index(atlas)["columns"]).encode())
    overhead = size - text - columns
    assert 0 < overhead <= 14 * len(atlas.sentences) + 64


def test_the_head_map_can_be_coloured_by_the_layer_and_every_column(atlas):
    colours = distances.head_map_colours(atlas)
    with_values = [c for c in atlas.catalogue if charts.metric_range(atlas, c)]
    assert list(colours) == ["layer", *(c.key for c in with_values)]
    assert {c.analysis for c in with_values} >= {"heads", "syntax"}  # syntax columns too
    layer = colours["layer"]
    assert layer["encoding"] == distances.head_map_chart(atlas)["encoding"]["color"]
    assert layer["range"] == f"layers 1 – {atlas.model.layers}"
    for column in with_values:
        low, high = charts.metric_range(atlas, column)
        colour = colours[column.key]
        encoding = colour["encoding"]
        assert encoding["field"] == column.key and encoding["type"] == "quantitative"
        if low < high:
            assert encoding["scale"]["domain"] == encoding["legend"]["values"] == [low, high]
        assert encoding["legend"]["title"] == column.title
        assert colour["range"] == f"{column.title}: {low:.3f} – {high:.3f}"
        assert colour["tooltip"]["field"] == column.key
