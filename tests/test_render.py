"""``atlas render site/atlas.json`` gives the build's site byte for byte (issue 18: the syntax
page's relation × head heatmap came back sorted by name, not by frequency): every page and
data file of sites with syntax, layers, compare and labels, rendered again into another folder
and compared file by file."""

from __future__ import annotations

import json
import pathlib

import pytest
from conftest import ROOT, build

from atlas.analyses.syntax import relation_heatmap
from atlas.cli import main
from atlas.corpus import read_corpus
from atlas.result import load

TREEBANK = ROOT / "examples" / "ud-ewt-sample.conllu"


def files(folder: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_render_reproduces(site: pathlib.Path, again: pathlib.Path) -> dict[str, bytes]:
    assert main(["render", str(site / "atlas.json"), "-o", str(again), "-q"]) == 0
    built, rendered = files(site), files(again)
    assert sorted(rendered) == sorted(built)
    differ = [path for path in built if built[path] != rendered[path]]
    assert not differ, f"render differs from the build in {differ}"
    return built


@pytest.fixture(scope="module")
def model_b(tiny_model, tmp_path_factory) -> pathlib.Path:
    from test_compare import copy_model, perturb_queries

    return copy_model(tiny_model("bert"), tmp_path_factory.mktemp("b") / "b", perturb_queries(0))


def test_render_reproduces_a_treebank_compare_build(tiny_model, model_b, tmp_path):
    site = tmp_path / "site"
    argv = [str(TREEBANK), "-o", str(site), "--model", str(tiny_model("bert")),
            "--compare", str(model_b), "--limit", "120", "--views", "6"]  # fmt: skip
    assert build(argv) == 0
    built = assert_render_reproduces(site, tmp_path / "again")
    for page in ("syntax.html", "layers.html", "compare.html"):
        assert page in built
    # the heatmap's rows are in the table's order (by frequency), not by name
    atlas = load(site)
    syntax = atlas.results["syntax"]
    by_count = [r["relation"] for r in syntax["relations"] if r["relation"] in syntax["matrix"]]
    assert by_count != sorted(by_count)
    assert relation_heatmap(atlas)["encoding"]["y"]["sort"] == by_count


def test_render_reproduces_a_labelled_build(tiny_model, tmp_path):
    source = tmp_path / "labelled.jsonl"
    examples = read_corpus(TREEBANK)[:60]
    source.write_text(
        "".join(
            json.dumps({"text": e.text, "label": "long" if len(e.words) > 12 else "short"}) + "\n"
            for e in examples
        ),
        encoding="utf-8",
    )
    site = tmp_path / "site"
    assert build([str(source), "-o", str(site), "--model", str(tiny_model("bert")),
                  "--views", "4"]) == 0  # fmt: skip
    built = assert_render_reproduces(site, tmp_path / "again")
    assert json.loads(built["atlas.json"])["results"]["by_label"]["available"]


def test_atlas_json_and_rounding_are_those_of_dataclasses_asdict():
    """``Atlas.tree`` walks the dataclasses once (``dataclasses.asdict`` deep-copied every leaf,
    most of the build's time in ``rounded``): atlas.json and the rounded Atlas are still
    exactly those of asdict, then rounding each float to DIGITS decimals (-0.0 as 0.0)."""
    import dataclasses
    import math

    from atlas.result import DIGITS, from_dict, rounded

    atlas = load(ROOT / "tests" / "snapshots" / "stored-atlas")
    atlas.heads[0].metrics["entropy"] = 0.123456789123
    atlas.heads[1].metrics["entropy"] = -0.0000000001  # rounds to -0.0, kept as 0.0
    atlas.results["extra"] = {"pairs": [(1, 2.5), (3, -4.0000004)], "at": {7: [math.pi]}}

    def asdict(value) -> dict:  # the sentences, a compact Sequence, as a list of dataclasses
        data = dataclasses.asdict(dataclasses.replace(value, sentences=[]))
        data["sentences"] = [dataclasses.asdict(s) for s in value.sentences]
        return data

    def asdict_json(value) -> str:  # the definition, as atlas.json was written before
        data = asdict(value)
        del data["views"], data["views_b"]
        return json.dumps(data, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"

    def walk(value):
        if isinstance(value, float):
            return round(value, DIGITS) + 0.0
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    assert atlas.to_json() == asdict_json(atlas)
    expected = walk(asdict(atlas))
    expected["views"] = expected["views_b"] = []
    stored = rounded(atlas)
    assert stored.to_json() == asdict_json(from_dict(expected))
    assert stored.heads[1].metrics["entropy"] == 0.0
    assert math.copysign(1.0, stored.heads[1].metrics["entropy"]) == 1.0
    assert stored.results["extra"] == {"pairs": [[1, 2.5], [3, -4.0]], "at": {"7": [3.141593]}}
    assert stored.views is atlas.views
