"""Exact-value tests of word-level attention and the syntax analysis on hand-made attention."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from atlas.analyses.base import RunInfo
from atlas.analyses.syntax import (
    ALL,
    BASELINE_OFFSETS,
    Syntax,
    offset_heads,
    spanning_trees,
    tree_hits,
)
from atlas.analyses.words import units, word_level
from atlas.build import build as build_atlas
from atlas.model import Record

# [CLS] ko ##ern ##er said it [SEP]: "Koerner" is three pieces.
WORD_OF = np.array([-1, 0, 0, 0, 1, 2, -1])


def test_units_keep_specials_alone_and_join_pieces():
    unit_of, unit_word = units(WORD_OF)
    assert unit_of.tolist() == [0, 1, 1, 1, 2, 3, 4]
    assert unit_word.tolist() == [-1, 0, 1, 2, -1]


def test_word_level_sums_columns_and_averages_rows_of_split_words():
    rng = np.random.default_rng(0)
    a = rng.random((7, 7))
    a /= a.sum(-1, keepdims=True)
    unit_of, _ = units(WORD_OF)
    w = word_level(a, unit_of)
    assert w.shape == (5, 5)
    # TO the split word: the sum of its pieces' columns; FROM it: the mean of its pieces' rows.
    assert w[0, 1] == pytest.approx(a[0, 1] + a[0, 2] + a[0, 3])
    assert w[1, 2] == pytest.approx((a[1, 4] + a[2, 4] + a[3, 4]) / 3)
    assert w[1, 1] == pytest.approx(a[1:4, 1:4].sum() / 3)
    assert w[2, 3] == pytest.approx(a[4, 5])
    np.testing.assert_allclose(w.sum(-1), 1.0)


SENTENCE = {  # words, 0-based heads (-1 root), relations
    "words": ["the", "old", "dog", "chased", "a", "cat", "home"],
    "heads": [2, 2, 3, -1, 5, 3, 3],
    "deprels": ["det", "amod", "nsubj", "root", "det", "obj", "advmod"],
}


def record(index: int, attention_of) -> Record:
    """A record with [CLS] w0 .. wm [SEP], one token per word except "chased" (2 pieces), and
    per-head word-level attention given by attention_of(m) -> [heads, m, m] over words."""
    words = SENTENCE["words"]
    word_of = np.array([-1, 0, 1, 2, 3, 3, 4, 5, 6, -1])
    n = len(word_of)
    wanted = attention_of(len(words))
    heads = wanted.shape[0]
    a = np.zeros((1, heads, n, n))
    for k in range(heads):
        for t in range(n):
            if word_of[t] < 0:
                a[0, k, t, t] = 1.0
                continue
            for v, share in enumerate(wanted[k, word_of[t]]):
                pieces = np.flatnonzero(word_of == v)
                a[0, k, t, pieces] = share / len(pieces)
    special = word_of < 0
    return Record(
        index=index,
        tokens=["[CLS]", *words[:3], "chas", "##ed", *words[4:], "[SEP]"],
        cls=np.eye(n, dtype=bool)[0],
        sep=np.eye(n, dtype=bool)[-1],
        special=special,
        punct=np.zeros(n, bool),
        segments=np.where(special, -1, 0).astype(np.int8),
        attention=a.astype(np.float32),
        words=words,
        word_of=word_of,
        heads=np.array(SENTENCE["heads"]),
        deprels=SENTENCE["deprels"],
    )


def gold_head(m: int) -> np.ndarray:
    """A head attending from each word to its gold head (the root to itself)."""
    out = np.zeros((m, m))
    for d, h in enumerate(SENTENCE["heads"]):
        out[d, h if h >= 0 else d] = 1.0
    return out


def next_word(m: int) -> np.ndarray:
    return np.eye(m, k=1) + np.diag([0.0] * (m - 1) + [1.0])


def run(heads_of, sentences: int = 3, min_relation: int = 1) -> Syntax:
    syntax = Syntax(min_relation)
    syntax.start(RunInfo(layers=1, heads=2, causal=False, sentences=sentences))
    for i in range(sentences):
        syntax.add(record(i, lambda m: np.stack([f(m) for f in heads_of])))
    return syntax


def test_a_head_attending_to_the_gold_head_scores_one_on_every_relation():
    syntax = run([gold_head, next_word])
    result = syntax.finish({})
    for row in result.data["relations"]:
        assert row["accuracy"] == 1.0 and row["head"] == "L1-H1", row
        assert row["direction"] == "dependent → head"
    assert result.columns["dep_to_head"][0] == 1.0
    assert result.columns["uuas"][0] == 1.0  # its spanning tree is the gold tree
    assert {r["relation"] for r in result.data["relations"]} == {"det", "amod", "nsubj", "obj",
                                                                 "advmod", ALL}  # fmt: skip


def test_a_next_word_head_scores_exactly_the_plus_one_baseline():
    syntax = run([gold_head, next_word])
    heads = np.array(SENTENCE["heads"])
    deps = [d for d in range(len(heads)) if heads[d] >= 0]
    plus_one = offset_heads(len(heads), 1)[deps] == heads[deps]
    expected = plus_one.mean()
    assert syntax.finish({}).columns["dep_to_head"][1] == pytest.approx(expected)
    assert syntax.baseline[ALL][BASELINE_OFFSETS.index(1)] / syntax.count[ALL] == expected
    # per relation too: det and amod point one word right, nsubj too; obj and advmod do not
    for relation, right in {"det": 0.5, "amod": 1.0, "nsubj": 1.0, "obj": 0.0}.items():
        assert syntax.right[relation][0, 1] / syntax.count[relation] == right, relation


def test_relations_below_the_minimum_are_not_listed():
    result = run([gold_head, next_word], min_relation=4).finish({})
    assert [r["relation"] for r in result.data["relations"]] == ["det", ALL]  # 2 × 3 sentences


def test_no_trees_no_columns():
    syntax = Syntax()
    syntax.start(RunInfo(layers=1, heads=2, causal=False, sentences=1))
    plain = record(0, lambda m: np.stack([gold_head(m), next_word(m)]))
    plain.heads = None
    syntax.add(plain)
    assert syntax.finish({}).catalogue == []


def test_spanning_tree_of_a_hand_made_map_recovers_its_tree():
    """Weights high on the edges of a known tree, low elsewhere: Prim recovers the tree, and
    agrees with scipy's minimum spanning tree on random symmetric weights."""
    from scipy.sparse.csgraph import minimum_spanning_tree

    tree = {(0, 1), (1, 2), (1, 3), (3, 4), (2, 5)}
    w = np.full((6, 6), 0.1)
    for a, b in tree:
        w[a, b] = w[b, a] = 0.9
    edges = spanning_trees(w[None])
    assert {tuple(sorted(e)) for e in edges[0].tolist()} == tree
    assert tree_hits(edges, tree).tolist() == [5]
    rng = np.random.default_rng(1)
    for _ in range(20):
        r = rng.random((9, 9))
        r = r + r.T
        ours = spanning_trees(r[None])[0]
        theirs = minimum_spanning_tree(3.0 - r).toarray()
        assert {tuple(sorted(e)) for e in ours.tolist()} == {
            tuple(sorted(e)) for e in zip(*np.nonzero(theirs), strict=True)
        }


def test_probe_learns_a_gold_head_signal():
    """With one head that always attends to the gold head, the probe's held-out UAS is 1."""
    result = run([gold_head, next_word], sentences=12).finish({})
    probe = result.data["probe"]
    assert probe["available"] and probe["uas"] == 1.0 and probe["best_head"] == "L1-H1"
    assert probe["best_head_uas"] == 1.0
    assert probe["test_words"] == 3 * 6  # sentences 3, 7, 11 held out, 6 dependents each


def test_a_treebank_builds_a_syntax_page(tiny_model, tmp_path):
    """End to end on the UD sample: the syntax results in atlas.json, a Syntax page whose
    example links open existing sentence pages, head pages listing relations, arcs in data."""
    import json
    import re
    from pathlib import Path

    from conftest import ROOT, build

    out = tmp_path / "site"
    sample = ROOT / "examples" / "ud-ewt-sample.conllu"
    args = [str(sample), "-o", str(out), "--model", str(tiny_model("bert")), "--limit", "40"]
    assert build([*args, "--views", "2", "--min-relation", "5"]) == 0
    data = json.loads((out / "atlas.json").read_text())
    syntax = data["results"]["syntax"]
    from atlas.corpus import read_corpus

    trees = [e for e in read_corpus(sample, limit=40) if any(h > 0 for h in e.heads)]
    assert syntax["sentences"] == len(trees) and syntax["relations"][-1]["relation"] == ALL
    # the tiny model keeps 64 tokens, so dependents cut off by truncation are left out
    assert 0 < syntax["dependents"] <= sum(sum(h > 0 for h in e.heads) for e in trees)
    assert all(r["count"] >= 5 for r in syntax["relations"])
    assert {"dep_to_head", "head_to_dep", "uuas"} <= {c["key"] for c in data["catalogue"]}
    page = (out / "syntax.html").read_text()
    links = re.findall(r'href="(sentences/\d+\.html)#L\d+-H\d+"', page)
    assert links and all((out / link).is_file() for link in links)
    assert 'href="syntax.html" aria-current="page"' in page
    head_page = (out / "heads" / "L01-H01.html").read_text()
    assert "Dependency relations" in head_page
    script = (out / "data" / "0001.js").read_text()
    assert '"arcs":[[0,' in script and '"wordOf":[-1,' in script
    assert Path(out / "sentences" / "0001.html").is_file()


def test_the_log_says_why_it_runs_sentences_again(tiny_model, caplog):
    """Issue 22: "running 38 sentences again for the views analysis" did not say why: the
    Syntax page links to sentences beyond --views, known only once every sentence is scored."""
    treebank = Path(__file__).resolve().parent.parent / "examples" / "ud-ewt-sample.conllu"
    with caplog.at_level(logging.INFO, logger="atlas"):
        build_atlas(treebank, model=str(tiny_model("bert")), limit=12, views=1, importance=0)
    again = [r.getMessage() for r in caplog.records if " again for the " in r.getMessage()]
    assert len(again) == 1 and again[0].startswith("running ")
    assert again[0].endswith(
        "again for the views analysis: other pages link to them or show them as examples,"
        " which is known only after every sentence has been measured"
    )
