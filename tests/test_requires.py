"""Declared inputs: an analysis names the analyses whose results it reads (``requires``,
``uses``); the pipeline finishes them first, keeps the given order where it is free, and
refuses a missing requirement or a cycle in one line. Analyses share measures.py, not each
other's modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_analyses import Reach
from test_build import SENTENCES, write

import atlas
from atlas.analyses import default_analyses
from atlas.analyses.base import EVERY, Analysis, Result
from atlas.analyses.examples import ExampleSentences
from atlas.analyses.heads import HeadMetrics
from atlas.analyses.views import ViewData
from atlas.pipeline import AnalysisError, order

ANALYSES = Path(atlas.__file__).parent / "analyses"


def toy(name: str, requires: tuple[str, ...] = (), uses: tuple[str, ...] = ()) -> Analysis:
    """An analysis of no columns that records which results its finish saw."""

    class Toy(Analysis):
        def finish(self, results):
            self.saw = list(results)
            return Result(data={"saw": self.saw})

    Toy.name, Toy.requires, Toy.uses = name, requires, uses
    return Toy()


def names(analyses) -> list[str]:
    return [a.name for a in analyses]


def test_the_given_order_is_kept_where_it_is_free():
    built_in = default_analyses()
    assert names(order(built_in)) == names(built_in)
    assert names(order([toy("c"), toy("a"), toy("b")])) == ["c", "a", "b"]


def test_an_analysis_finishes_after_what_it_requires_and_uses():
    assert names(order([ExampleSentences(), HeadMetrics()])) == ["heads", "examples"]
    chain = [toy("x", requires=("z",)), toy("y"), toy("z", uses=("y", "absent"))]
    assert names(order(chain)) == ["y", "z", "x"]  # "uses" of an absent analysis: no matter


def test_every_puts_an_analysis_after_all_the_others():
    """The view data keeps the pages every other analysis links to, so a user's analysis given
    after it still finishes before it (and its linked sentences get pages)."""
    assert names(order([ViewData(), Reach(), toy("last", uses=(EVERY, "views"))])) == [
        "reach",
        "views",
        "last",
    ]


def test_a_missing_requirement_is_refused_in_one_line():
    with pytest.raises(AnalysisError) as err:
        order([ExampleSentences(), ViewData()])
    assert str(err.value) == (
        "the examples analysis requires the heads analysis, which this build does not run"
    )
    with pytest.raises(AnalysisError, match=r"requires the p, q analyses, which"):
        order([toy("o", requires=("p", "q"))])


def test_two_analyses_of_one_name_are_refused_in_one_line():
    with pytest.raises(AnalysisError) as err:
        order([Reach(), Reach()])
    assert str(err.value) == "every analysis needs a name of its own, got ['reach', 'reach']"


def test_a_cycle_is_refused_in_one_line():
    cycle = [toy("free"), toy("a", requires=("b",)), toy("b", requires=("c",)), toy("c", ("a",))]
    with pytest.raises(AnalysisError) as err:
        order(cycle)
    assert str(err.value) == "analyses that require each other: a → b → c → a"
    with pytest.raises(AnalysisError, match=r"each other: self → self$"):
        order([toy("self", requires=("self",))])


def test_the_pipeline_finishes_in_that_order(tiny_model, tmp_path):
    """A finish sees exactly the results of what was ordered before it, whatever the list."""
    source = write(tmp_path, SENTENCES)
    late = toy("late", requires=("early",))
    early = toy("early", uses=("heads",))
    result = atlas.build(
        source, model=str(tiny_model("bert")), analyses=[late, early, HeadMetrics()]
    )
    assert (early.saw, late.saw) == (["heads"], ["heads", "early"])
    assert result.results["late"] == {"saw": ["heads", "early"]}
    with pytest.raises(AnalysisError, match=r"^the examples analysis requires the heads"):
        atlas.build(source, model=str(tiny_model("bert")), analyses=[ExampleSentences()])


def test_analyses_share_measures_not_each_others_modules():
    """An analysis module imports, of its siblings, only base, measures and words (compare,
    which re-runs other analyses on model B, is the one exception)."""
    shared = {"base", "measures", "words"}
    for path in sorted(ANALYSES.glob("*.py")):
        if path.stem in {"__init__", "compare", *shared}:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        siblings = {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        }
        assert siblings <= shared, f"{path.name} imports {sorted(siblings - shared)}"
