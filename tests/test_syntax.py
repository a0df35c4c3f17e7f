"""Exact-value tests of word-level attention and the syntax analysis on hand-made attention."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from atlas.analyses.base import RunInfo, feed
from atlas.analyses.syntax import (
    ALL,
    BASELINE_OFFSETS,
    OFFSET_BUCKETS,
    ROOT,
    Candidates,
    ProbeData,
    ProbeLoss,
    Syntax,
    arborescence,
    arborescences,
    directed_trees,
    fit_probe,
    fit_probes,
    offset_heads,
    probe_scores,
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
        feed(syntax, record(i, lambda m: np.stack([f(m) for f in heads_of])))
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
    feed(syntax, plain)
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
    """With one head that always attends to the gold head, the probe's held-out UAS is 1; as in
    Clark et al., the root word is scored too (ROOT is a candidate), which no single head can
    get right."""
    result = run([gold_head, next_word], sentences=12).finish({})
    probe = result.data["probe"]
    assert probe["available"] and probe["uas"] == 1.0 and probe["best_head"] == "L1-H1"
    assert probe["uas_offsets"] == 1.0
    assert probe["best_head_uas"] == 6 / 7
    assert probe["test_words"] == 3 * 7  # sentences 3, 7, 11 held out, 7 words each


def test_offset_guesses_off_the_sentence_are_placed_as_in_clarks_code():
    """Clark et al.'s offset_predictor: max(0, min(i + offset + 1, n)) with ROOT at 0. Before
    the first word is ROOT (wrong for every scored dependent); past the last word is the last
    word. Clamping at the first word, as the atlas did, credited "the" → "dog"-style guesses."""
    assert offset_heads(4, -2).tolist() == [ROOT, ROOT, 0, 1]
    assert offset_heads(4, 3).tolist() == [3, 3, 3, 3]
    # "a b c": b's head is a; with offset -2 the old clamp guessed a for b... and for a's own
    # dependent: here word 1 (head 0) is right with -1 and wrong with -2 (ROOT, not word 0).
    syntax = Syntax(1)
    syntax.start(RunInfo(layers=1, heads=2, causal=False, sentences=1))
    feed(syntax, record(0, lambda m: np.stack([gold_head(m), next_word(m)])))
    # heads [2, 2, 3, -1, 5, 3, 3]; offset -3 guesses ROOT for words 0..2 and 3 -> 0 (word 0,
    # not a head), 4 -> 1, 5 -> 2, 6 -> 3: only "home" → "chased" is right: 1 of 6.
    assert syntax.baseline[ALL][BASELINE_OFFSETS.index(-3)] == 1
    # offset +3: 0 -> 3, 1 -> 4, 2 -> 5, 4..6 -> 6 (the last word): none right.
    assert syntax.baseline[ALL][BASELINE_OFFSETS.index(3)] == 0


def brute_force_arborescence(scores: np.ndarray, root: int) -> tuple[float, list[int]]:
    """The best tree by trying every parent assignment (small n only)."""
    import itertools

    n = len(scores)
    others = [i for i in range(n) if i != root]
    best = (-np.inf, [])
    for parents in itertools.product(range(n), repeat=len(others)):
        parent = dict(zip(others, parents, strict=True))
        ok = True
        for d in others:
            seen, node = set(), d
            while node != root and ok:
                ok = node not in seen and parent[node] != node
                seen.add(node)
                node = parent[node]
        if ok:
            score = sum(scores[parent[d], d] for d in others)
            if score > best[0]:
                best = (score, [parent.get(i, -1) for i in range(n)])
    return best


def test_chu_liu_edmonds_agrees_with_brute_force():
    rng = np.random.default_rng(2)
    for _ in range(200):
        n = int(rng.integers(2, 7))
        scores, root = rng.random((n, n)), int(rng.integers(n))
        parent = arborescence(scores, root)
        score, expected = brute_force_arborescence(scores, root)
        assert parent.tolist() == expected
        assert sum(scores[parent[d], d] for d in range(n) if d != root) == pytest.approx(score)


def test_heads_contracted_in_lockstep_get_each_its_own_best_tree():
    """All heads of a sentence are solved at once, each with its own cycles and number of
    rounds: every one must be the brute-force best, as if solved alone; and a graph of 40
    nodes (many rounds, cycles of every size) must match the one-graph call."""
    rng = np.random.default_rng(5)
    for _ in range(30):
        n = int(rng.integers(2, 7))
        scores, root = rng.random((8, n, n)), int(rng.integers(n))
        parents = arborescences(scores, root)
        for graph, parent in zip(scores, parents, strict=True):
            assert parent.tolist() == brute_force_arborescence(graph, root)[1]
    big = rng.random((6, 40, 40)) ** 8  # peaked, as attention is: long chains of cycles
    together = arborescences(big, 3)
    assert [arborescence(g, 3).tolist() for g in big] == together.tolist()
    for parent in together:  # a tree: every node reaches the root
        for node in range(40):
            for _ in range(40):
                node = parent[node] if node != 3 else 3
            assert node == 3


def test_ties_are_broken_as_they_always_were():
    """300 batches of graphs whose scores are small integers (ties everywhere: many trees are
    equally best, and which one comes out depends on the order of contraction and the lower
    index winning each argmax): the trees are those the first lockstep implementation gave
    (their digest, taken from it), so a faster contraction keeps every UUAS."""
    import hashlib

    rng = np.random.default_rng(11)
    digest = hashlib.sha256()
    for _ in range(300):
        n, k = int(rng.integers(2, 16)), int(rng.integers(1, 12))
        scores = rng.integers(0, int(rng.integers(1, 5)), size=(k, n, n)).astype(float)
        digest.update(arborescences(scores, int(rng.integers(n))).astype(np.int64).tobytes())
    assert digest.hexdigest()[:16] == "891bd51314cf77f8"


def test_directed_tree_contracts_a_cycle_and_differs_from_the_undirected_tree():
    """Four words, root 0; w[d, h] is how much d attends to h, so h → d weighs w[d, h]. Words 1
    and 2 attend to each other most (a cycle), 3 attends to 2. The best tree, 0→1, 1→2, 2→3
    (0.40 + 0.50 + 0.50 = 1.40), beats entering the cycle from 3 (0→3, 3→2, 2→1: 1.25).
    W + Wᵀ instead links 0–3 (0.45 + 0.30 = 0.75 beats 0–1's 0.45): one gold edge lost."""
    w = np.array(
        [
            [0.00, 0.05, 0.05, 0.45],
            [0.40, 0.00, 0.55, 0.05],
            [0.10, 0.50, 0.00, 0.40],
            [0.30, 0.20, 0.50, 0.00],
        ]
    )
    assert arborescence(w.T, 0).tolist() == [-1, 0, 1, 2]
    edges = directed_trees(w[None], 0)
    assert edges[0].tolist() == [[1, 0], [2, 1], [3, 2]]
    gold = {(0, 1), (1, 2), (2, 3)}
    assert tree_hits(edges, gold).tolist() == [3]
    undirected = spanning_trees((w + w.T)[None])
    assert {tuple(sorted(e)) for e in undirected[0].tolist()} == {(0, 3), (1, 2), (2, 3)}
    assert tree_hits(undirected, gold).tolist() == [2]


def test_a_sentence_gets_htut_uuas_and_the_undirected_variant():
    result = run([gold_head, next_word]).finish({})
    assert result.columns["uuas"][0] == result.columns["uuas_undirected"][0] == 1.0


def toy_word(scores: list[float], gold: int, start: float, end: float) -> Candidates:
    """One word with one head (K = 1): its attention to each candidate word, none back."""
    attention = np.array([[s, 0.0] for s in scores], np.float32)
    ends = np.array([start, 0.0], np.float32), np.array([end, 0.0], np.float32)
    c = Candidates(attention, *ends, np.zeros((len(scores), 8), np.float32))
    c.gold = gold
    return c


def test_softmax_probe_scores_root_from_the_special_tokens_and_words_by_attention():
    """Words whose head is the word they attend to most, and root words that attend most to
    [SEP]: the fitted probe ranks the gold candidate first for all, and its scores are the
    linear form Clark et al. wrote: ROOT a·(w·start) + b·(w·end), a word w·features."""
    train = [
        toy_word([0.1, 0.7, 0.2], 2, 0.0, 0.0),
        toy_word([0.6, 0.1, 0.1], 1, 0.1, 0.1),
        toy_word([0.1, 0.1, 0.1], 0, 0.0, 0.7),
        toy_word([0.2, 0.1, 0.5], 3, 0.1, 0.1),
    ]
    params = fit_probe(train, offsets=False)
    assert params.shape == (2 + 2,)
    for c in train:
        assert probe_scores(params, c, False).argmax() == c.gold
    w, a, b = params[:2], params[2], params[3]
    c = train[2]
    expected = [a * (c.start @ w) + b * (c.end @ w), *(c.attention @ w)]
    np.testing.assert_allclose(probe_scores(params, c, False), expected, rtol=1e-6)
    np.testing.assert_array_equal(fit_probe(train, offsets=False), params)  # deterministic


def plain_probe_loss(train: list[Candidates], offsets: bool, params: np.ndarray):
    """The probe's loss and gradient as first written, one numpy expression a step, with
    fresh arrays and 0/1 products: what ``ProbeLoss`` must reproduce bit for bit."""
    k2 = train[0].start.size
    x, o = np.concatenate([c.attention for c in train]), np.concatenate([c.offsets for c in train])
    start = np.stack([c.start for c in train]).astype(np.float64)
    end = np.stack([c.end for c in train]).astype(np.float64)
    sizes = np.array([len(c.attention) + 1 for c in train])
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    word_rows = np.ones(sizes.sum(), bool)
    word_rows[first] = False
    gold = first + np.array([c.gold for c in train])
    w, a, b = params[:k2], params[k2], params[k2 + 1]
    v, r = (params[k2 + 2 : -1], params[-1]) if offsets else (None, 0.0)
    sw, ew = start @ w, end @ w
    logits = np.empty(sizes.sum())
    logits[first] = a * sw + b * ew + r
    logits[word_rows] = x @ w.astype(np.float32)
    if offsets:
        logits[word_rows] += o @ v.astype(np.float32)
    top = np.maximum.reduceat(logits, first)
    e = np.exp(logits - np.repeat(top, sizes))
    total = np.add.reduceat(e, first)
    value = float(np.sum(np.log(total) + top) - logits[gold].sum())
    g = e / np.repeat(total, sizes)
    g[gold] -= 1.0
    root, rest32 = g[first], g[word_rows].astype(np.float32)
    grad = [(x.T @ rest32) + (a * start + b * end).T @ root, [root @ sw], [root @ ew]]
    if offsets:
        grad += [o.T @ rest32, [root.sum()]]
    return value, np.concatenate(grad)


def random_probe_words(seed: int) -> list[Candidates]:
    """60 words of 1 to 30 candidates, 12 heads, random attention, offsets and gold heads."""
    rng = np.random.default_rng(seed)
    train = []
    for _ in range(60):
        words = int(rng.integers(1, 31))
        c = Candidates(*(rng.random(shape, dtype=np.float32) for shape in ((words, 24), 24, 24)),
                       np.zeros((words, len(OFFSET_BUCKETS)), np.float32))  # fmt: skip
        position = int(rng.integers(words))
        c.offsets[np.arange(words) != position] = np.eye(len(OFFSET_BUCKETS), dtype=np.float32)[
            rng.integers(len(OFFSET_BUCKETS), size=words - 1)
        ]
        c.gold = int(rng.integers(words + 1))
        train.append(c)
    return train


@pytest.mark.parametrize("offsets", [False, True])
def test_the_probe_loss_is_bit_for_bit_the_plain_numpy_expression(offsets):
    """Reused buffers and the offsets' lookup give the same loss and gradient, to the last bit,
    at several weights (the evaluations run one after another, as L-BFGS calls them, so a stale
    buffer would show)."""
    train, rng = random_probe_words(5), np.random.default_rng(6)
    loss = ProbeLoss(ProbeData(train), offsets)
    for scale in (0.0, 1.0, 30.0, 0.5):
        params = rng.normal(size=loss.size) * scale
        value, grad = loss(params)
        expected_value, expected_grad = plain_probe_loss(train, offsets, params)
        assert value == expected_value
        assert grad.tobytes() == expected_grad.tobytes()


def test_the_two_probes_fitted_side_by_side_are_those_fitted_one_after_the_other():
    train = random_probe_words(7)
    together = fit_probes(train)
    for offsets, weights in zip((False, True), together, strict=True):
        assert weights.tobytes() == fit_probe(train, offsets).tobytes()


def test_ties_are_listed_and_a_best_head_at_the_baseline_is_flagged():
    """Two identical next-word heads tie on every relation; det (the→dog, a→cat) is right
    half the time for both, exactly the +1 baseline's score: no head beats it."""
    result = run([next_word, next_word]).finish({})
    det = next(r for r in result.data["relations"] if r["relation"] == "det")
    assert det["head"] == "L1-H1" and det["lead"] == 0
    assert {"head": "L1-H2", "direction": "dependent → head"} in det["tied"]
    assert det["accuracy"] == det["baseline_accuracy"] == 0.5
    assert det["beats_baseline"] is False
    for flat in (0, 1):  # both heads' pages say so too
        part = next(r for r in result.parts["syntax"][flat] if r["relation"] == "det")
        assert part["best"] is True and part["beats_baseline"] is False
    best = run([gold_head, next_word]).finish({}).data["relations"]
    assert all(r["beats_baseline"] == (r["accuracy"] > r["baseline_accuracy"]) for r in best)
    assert next(r for r in best if r["relation"] == ALL)["tied"] == []


@pytest.mark.slow  # a treebank build
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
