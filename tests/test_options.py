"""One options object: the command line becomes one BuildOptions, which reaches the pipeline
and configures every analysis; the library's keyword form builds the same object."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest
from test_build import SENTENCES, write

import atlas
from atlas.analyses import default_analyses
from atlas.cli import build_options, parser
from atlas.options import BuildOptions

build_module = importlib.import_module("atlas.build")  # the module, not atlas.build()


def test_the_command_line_becomes_one_options_object(tmp_path):
    args = parser().parse_args(
        [
            "build",
            "in.txt",
            "--model",
            "m",
            "--compare",
            "b",
            "--views",
            "7",
            "--neuron",
            "all",
            "--importance",
            "9",
            "--importance-ablation",
            "3",
            "--min-relation",
            "2",
            "--max-site-mb",
            "0",
            "--batch-size",
            "4",
            "--limit",
            "11",
            "--words",
            "--clean",
            "--analysis",
            "mine.py:Mine",
            "--analysis",
            "lab.more:More",
            "-q",
        ]
    )
    options = build_options(args)
    assert options == BuildOptions(
        model="m",
        compare="b",
        views=7,
        neuron="all",
        importance=9,
        ablation=3,
        min_relation=2,
        max_site_mb=None,  # 0 on the command line: no limit
        batch_size=4,
        limit=11,
        words=True,
        clean=True,
        analysis=("mine.py:Mine", "lab.more:More"),
    )
    assert build_options(parser().parse_args(["build", "in.txt"])) == BuildOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.views = 3  # type: ignore[misc]


def test_each_analysis_reads_its_options():
    options = BuildOptions(views=7, neuron="none", min_relation=3, importance=9, ablation=2)
    analyses = {a.name: a for a in default_analyses(options)}
    assert (analyses["views"].limit, analyses["views"].neuron) == (7, "none")
    assert analyses["syntax"].min_relation == 3
    assert analyses["layers"].views == 7
    importance = analyses["importance"]
    assert (importance.sample, importance.ablation, importance.views) == (9, 2, 7)
    assert "importance" not in {a.name for a in default_analyses(options.replace(importance=0))}
    with pytest.raises(TypeError, match=r"BuildOptions\(views=50\); got int"):
        default_analyses(50)  # type: ignore[arg-type]
    assert [a.name for a in default_analyses()] == [
        a.name for a in default_analyses(BuildOptions())
    ]


def test_options_no_build_could_use_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^neuron: one of views, all, none, not 'some'$"):
        BuildOptions(neuron="some")
    with pytest.raises(ValueError, match=r"^batch_size: must be at least 1, got 0$"):
        BuildOptions(batch_size=0)
    with pytest.raises(ValueError, match=r"^views: must be 0 or more, got -1$"):
        BuildOptions(views=-1)
    with pytest.raises(TypeError, match="colour"):
        BuildOptions().replace(colour="red")


def test_keywords_and_an_options_object_build_the_same(tiny_model, tmp_path, monkeypatch):
    """``atlas.build(input, out, views=3)`` is ``atlas.build(input, out, BuildOptions(views=3))``,
    and the pipeline gets that one object: the options atlas.json records come from it."""
    source = write(tmp_path, SENTENCES)
    seen: list[BuildOptions] = []
    real = build_module.measure

    def spy(examples, runner, analyses, options, **rest):
        seen.append(options)
        return real(examples, runner, analyses, options, **rest)

    monkeypatch.setattr(build_module, "measure", spy)
    model = str(tiny_model("bert"))
    by_keyword = atlas.build(source, model=model, views=3, importance=0, batch_size=2)
    given = BuildOptions(model=model, views=3, importance=0, batch_size=2)
    by_object = atlas.build(Path(source), None, given)
    assert seen == [given, given]
    assert by_keyword.to_json() == by_object.to_json()
    assert (by_object.options.views, by_object.options.batch_size) == (3, 2)
    assert sum(s.has_view for s in by_object.sentences) == 3
    assert "importance" not in by_object.results
    overridden = atlas.build(source, None, given, views=1)
    assert sum(s.has_view for s in overridden.sentences) == 1
