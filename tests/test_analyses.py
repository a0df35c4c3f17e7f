"""The analysis protocol: a toy analysis of a few lines, registered here, adds a per-head column
that reaches atlas.json, the overview heatmaps, the heads table, every head page and
`atlas render`, with no template of its own."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from test_build import SENTENCES, write

import atlas
from atlas.analyses import default_analyses
from atlas.analyses.base import Analysis, Column, Result
from atlas.cli import main
from atlas.corpus import read_corpus
from atlas.model import Runner
from atlas.pipeline import AnalysisError


class Reach(Analysis):
    """Toy: per head, the mean distance from a token to the token it attends to most."""

    name = "reach"

    def start(self, run):
        super().start(run)
        self.total, self.count = np.zeros(run.size), 0

    def add(self, record):
        a = record.attention.reshape(self.run.size, record.n, record.n)
        self.total += np.abs(a.argmax(-1) - np.arange(record.n)).mean(-1)
        self.count += 1

    def finish(self, results):
        column = Column("reach", "reach", "count", "tokens", "mean distance to the top", "reach")
        return Result(catalogue=[column], columns={"reach": self.total / max(self.count, 1)})


def expected_reach(source, model_dir) -> list[float]:
    """The toy's numbers computed straight from the runner's records."""
    runner = Runner(str(model_dir))
    total, count = 0, 0
    for record in runner.run(read_corpus(source)):
        a = record.attention.reshape(-1, record.n, record.n)
        total = total + np.abs(a.argmax(-1) - np.arange(record.n)).mean(-1)
        count += 1
    return list(total / count)


@pytest.mark.slow  # a build with an extra analysis
def test_a_new_analysis_is_one_class(tiny_model, tmp_path):
    source = write(tmp_path, SENTENCES)
    out = tmp_path / "site"
    model_dir = tiny_model("bert")
    result = atlas.build(source, out, model=str(model_dir), analyses=[*default_analyses(), Reach()])
    want = expected_reach(source, model_dir)
    assert [h.metrics["reach"] for h in result.heads] == pytest.approx(want, abs=1e-6)

    data = json.loads((out / "atlas.json").read_text())
    column = next(c for c in data["catalogue"] if c["key"] == "reach")
    assert column["analysis"] == "reach" and column["kind"] == "count"
    assert [h["metrics"]["reach"] for h in data["heads"]] == pytest.approx(want, abs=1e-6)

    again = tmp_path / "again"
    assert main(["render", str(out), "-o", str(again), "-q"]) == 0
    for site in (out, again):
        index = (site / "index.html").read_text()
        assert 'data-spec="spec-heatmap-reach"' in index
        assert '<dt><a class="metric-name" href="definitions.html#reach">reach</a></dt>' in index
        assert 'id="reach"' in (site / "definitions.html").read_text()
        table = (site / "heads" / "index.html").read_text()
        assert '<th data-sort="number" data-column="reach"' in table
        assert table.count('class="num" data-value=') == len(result.heads) * len(data["catalogue"])
        for head in result.heads:
            page = (site / "heads" / f"{head.slug}.html").read_text()
            row = re.search(r'<tr data-column="reach">(.*?)</tr>', page, re.S)
            assert row and f"{head.metrics['reach']:.3f}" in row.group(1), head.name


def test_two_analyses_may_not_define_one_column(tiny_model, tmp_path):
    class Twin(Reach):
        name = "twin"

    source = write(tmp_path, SENTENCES)
    with pytest.raises(AnalysisError, match="columns defined by two analyses: reach"):
        atlas.build(source, model=str(tiny_model("bert")), analyses=[Reach(), Twin()])


def test_only_the_analyses_given_run(tiny_model, tmp_path):
    """Without the view data analysis the runner keeps no queries and keys, and no sentence
    gets a page; the heads analysis alone still labels every head."""
    from atlas.analyses.heads import HeadMetrics

    source = write(tmp_path, SENTENCES)
    result = atlas.build(source, model=str(tiny_model("bert")), analyses=[HeadMetrics()])
    assert result.views == [] and not any(s.has_view for s in result.sentences)
    assert all(h.label for h in result.heads)
    assert set(result.results) == {"heads"}
