"""Mergeable analyses (issue 19, item 2): a corpus measured in parts, each part's analysis states
written to a folder and read back, merged in corpus order and finished, gives the atlas.json of
one pass, byte for byte, for every built-in analysis and for the user analysis of
docs/design.md; and so does a compare build (two models, the analysis across them).

Parts are uneven, and one is empty; the corpus fits one of the runner's sorting windows, so the
parts' records interleave in a one-pass run's order (what the syntax examples, the probe's
sample and the label breakdown's shift are "first" by). The head-importance sample crosses the
cuts, so each part ablates its own share of it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from test_compare import copy_model, perturb_queries
from tiny_models import make_tiny_task_model

from atlas.analyses import default_analyses
from atlas.analyses.base import Analysis, Column, Result
from atlas.analyses.heads import HeadMetrics
from atlas.analyses.states import StateError
from atlas.comparison import (
    finish_compare_states,
    load_compare_part,
    measure_compare,
    measure_compare_states,
    save_compare_part,
)
from atlas.corpus import read_corpus
from atlas.exact import ExactSum
from atlas.model import PairedRunner, Runner
from atlas.options import BuildOptions
from atlas.pipeline import finish_states, load_part, measure, measure_states, save_part

ROOT = Path(__file__).resolve().parent.parent
UD = ROOT / "examples" / "ud-ewt-sample.conllu"
BATCH = 4
OPTIONS = BuildOptions(
    views=6, min_relation=3, importance=12, ablation=5, batch_size=BATCH, probe_sequences=5
)
# Cuts of a corpus of n sentences into parts [cuts[i], cuts[i + 1]).
SPLITS = {
    "two uneven": lambda n: [0, 7, n],
    "three, one empty": lambda n: [0, 11, 11, n],
    "three uneven": lambda n: [0, 3, n - 9, n],
}


class Reach(Analysis):
    """docs/design.md's worked example: per head, the mean distance from a token to the token it
    attends to most; mergeable."""

    name = "reach"

    def start(self, run):
        super().start(run)
        self.total, self.count = ExactSum(run.size), 0

    def add(self, record):
        a = record.attention.reshape(self.run.size, record.n, record.n)
        self.total.add(np.abs(a.argmax(-1) - np.arange(record.n)).mean(-1))
        self.count += 1

    def state(self):
        return {"total": self.total.state(), "count": self.count}

    def load_state(self, state):
        self.total, self.count = ExactSum.from_state(state["total"]), state["count"]

    def merge(self, other):
        self.total.merge(other.total)
        self.count += other.count

    def finish(self, results):
        column = Column("reach", "reach", "count", "tokens", "mean distance to the top", "reach")
        return Result(catalogue=[column], columns={"reach": self.total.value() / self.count})


def analyses(extra: bool = False) -> list[Analysis]:
    made = default_analyses(OPTIONS)
    return [*made, Reach()] if extra else made


def one_pass(examples, runner, extra=False) -> str:
    atlas = measure(examples, runner, analyses(extra), OPTIONS, title="t", input_name="in")
    return atlas.to_json()


def in_parts(examples, runner, cuts, folder: Path, extra=False) -> str:
    """Measure each part with fresh analyses, write its states, read them back, merge, finish."""
    parts = []
    for number, (start, stop) in enumerate(itertools.pairwise(cuts)):
        part = measure_states(examples, runner, analyses(extra), start, stop, OPTIONS)
        save_part(part, folder / f"part-{number}", analyses(extra))
        parts.append(load_part(folder / f"part-{number}", analyses(extra)))
    atlas = finish_states(examples, runner, analyses(extra), parts[::-1], OPTIONS, title="t",
                          input_name="in")  # fmt: skip
    return atlas.to_json()


@pytest.fixture(scope="module")
def treebank(tiny_model):
    """The UD sample's first 40 sentences (trees: syntax and its probe run), the tiny BERT."""
    examples = read_corpus(UD, limit=40)
    runner = Runner(str(tiny_model("bert")))
    return examples, runner, one_pass(examples, runner, extra=True)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A JSONL of 30 labelled sentences and a tiny sequence classifier: gold labels (the label
    breakdown), predictions, and head importance with gradients and gradient × input."""
    folder = tmp_path_factory.mktemp("labelled")
    texts = [e.text for e in read_corpus(UD, limit=30)]
    lines = [json.dumps({"text": t, "label": "positive" if i % 3 else "negative"})
             for i, t in enumerate(texts)]  # fmt: skip
    (folder / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    examples = read_corpus(folder / "in.jsonl")
    runner = Runner(str(make_tiny_task_model("sequence-classification", folder / "model")))
    return examples, runner, one_pass(examples, runner)


@pytest.mark.parametrize("split", SPLITS)
def test_a_treebank_in_parts_gives_the_one_pass_atlas(treebank, split, tmp_path):
    examples, runner, whole = treebank
    data = json.loads(whole)
    assert data["results"]["syntax"]["probe"]["available"]  # the probe ran
    assert data["results"]["layers"]["explorer"]  # so did the layers' explorer
    assert data["results"]["importance"]["ablated"] == [0, 1, 2, 3, 4]
    assert data["results"]["types"]["probe"]["sequences"] == OPTIONS.probe_sequences  # once
    assert {h["metrics"]["reach"] > 0 for h in data["heads"]} == {True}
    assert in_parts(examples, runner, SPLITS[split](len(examples)), tmp_path, extra=True) == whole


@pytest.fixture(scope="module")
def compared(treebank, tiny_model, tmp_path_factory):
    """The treebank's sentences through the tiny BERT (A) and a copy with layer 2's queries
    perturbed (B), in one pass: the compare atlas."""
    examples, _, _ = treebank
    b = copy_model(tiny_model("bert"), tmp_path_factory.mktemp("b") / "bert-b", perturb_queries(1))
    runner = PairedRunner(Runner(str(tiny_model("bert"))), Runner(str(b)))
    atlas = measure_compare(examples, runner, analyses(True), OPTIONS, title="t", input_name="in")
    return examples, runner, atlas


@pytest.mark.parametrize("split", ["two uneven", "three, one empty"])
def test_a_compare_build_in_parts_gives_the_one_pass_atlas(compared, split, tmp_path):
    """Each part runs both models and keeps A's states, B's and the compare analysis's; merged,
    they give the one-pass compare atlas.json, and B's attention of the same pages."""
    examples, runner, whole = compared
    data = json.loads(whole.to_json())
    assert data["results"]["compare"]["change"] and "reach" in data["results"]["compare"]["columns"]
    assert max(h["metrics"]["change"] for h in data["heads"]) > 1e-3
    pages = [s["index"] for s in data["sentences"] if s["has_view"]]
    assert data["results"]["compare"]["sentences"] == pages and len(pages) > OPTIONS.views
    parts = []
    for number, (start, stop) in enumerate(itertools.pairwise(SPLITS[split](len(examples)))):
        part = measure_compare_states(examples, runner, analyses(True), start, stop, OPTIONS)
        save_compare_part(part, tmp_path / f"part-{number}", analyses(True))
        parts.append(load_compare_part(tmp_path / f"part-{number}", analyses(True)))
    atlas = finish_compare_states(examples, runner, analyses(True), parts[::-1], OPTIONS,
                                  title="t", input_name="in")  # fmt: skip
    assert atlas.to_json() == whole.to_json()
    assert atlas.views_b == whole.views_b


@pytest.mark.parametrize("split", ["two uneven", "three, one empty"])
def test_labelled_sentences_in_parts_give_the_one_pass_atlas(labelled, split, tmp_path):
    examples, runner, whole = labelled
    data = json.loads(whole)
    assert data["results"]["by_label"]["available"]
    assert data["results"]["importance"]["gradient"]  # a classifier: gradients and saliency
    assert data["results"]["importance"]["saliency"]
    assert data["results"]["predictions"]["task"]
    assert in_parts(examples, runner, SPLITS[split](len(examples)), tmp_path) == whole


def test_a_decoder_in_parts_runs_the_head_types_probe_once(tiny_model, tmp_path):
    """A decoder (the tiny GPT-2): the head types' probe runs in the part holding the first
    sentence only, the first-token shares merge, and the atlas is the one-pass atlas."""
    examples = read_corpus(ROOT / "examples" / "sentences.txt", limit=20)
    runner = Runner(str(tiny_model("gpt2")))
    whole = one_pass(examples, runner)
    types = json.loads(whole)["results"]["types"]
    assert types["probe"]["sequences"] == OPTIONS.probe_sequences
    assert in_parts(examples, runner, [0, 9, 20], tmp_path) == whole


def test_exact_sums_do_not_depend_on_order():
    """Terms whose float sums differ with their order give one ExactSum, the correctly rounded
    sum (math.fsum's), in every order and split."""
    import math

    rng = np.random.default_rng(0)
    terms = rng.standard_normal((200, 3)) * 10.0 ** rng.integers(-6, 4, (200, 3))
    whole = ExactSum(3)
    for t in terms:
        whole.add(t)
    parts = [ExactSum(3) for _ in range(3)]
    for i, t in enumerate(terms[::-1]):
        parts[i % 3].add(t)
    parts[2].merge(parts[0])
    parts[2].merge(parts[1])
    assert whole.value().tolist() == parts[2].value().tolist()
    assert whole.value().tolist() == pytest.approx([math.fsum(terms[:, j]) for j in range(3)],
                                                   rel=1e-15)  # fmt: skip


def test_a_part_ablates_its_share_of_the_whole_corpus_sample(treebank, tmp_path):
    """The ablation sample is the first sentences of the whole corpus: a part holding some of
    them ablates those, one past them none, and a part's state says which."""
    examples, runner, _ = treebank
    shares = {}
    for start, stop in ((0, 3), (3, 20), (20, len(examples))):
        part = measure_states(examples, runner, analyses(), start, stop, OPTIONS)
        shares[start] = sorted(int(i) for i in part.states["importance"]["each"])
    assert shares == {0: [0, 1, 2], 3: [3, 4], 20: []}


def test_a_state_of_another_version_is_refused(treebank, tmp_path, monkeypatch):
    examples, runner, _ = treebank
    part = measure_states(examples, runner, analyses(), 0, 2, OPTIONS)
    save_part(part, tmp_path / "part", analyses())
    monkeypatch.setattr(HeadMetrics, "state_version", 2)
    with pytest.raises(StateError, match="the heads state is version 1, this atlas reads 2"):
        load_part(tmp_path / "part", analyses())


def test_a_range_runs_the_one_pass_batches_and_yields_its_own_records(treebank):
    """A range's records are the one-pass records of its sentences, bit for bit: its sentences
    run in the batches (and padding) a one-pass run gives them, and no other record comes out."""
    examples, runner, _ = treebank
    whole = {r.index: r.attention for r in runner.run(examples, batch_size=BATCH)}
    part = list(runner.run(examples, indices=range(7, 23), batch_size=BATCH))
    assert sorted(r.index for r in part) == list(range(7, 23))
    assert all(np.array_equal(r.attention, whole[r.index]) for r in part)
    assert list(runner.run(examples, indices=range(11, 11), batch_size=BATCH)) == []
