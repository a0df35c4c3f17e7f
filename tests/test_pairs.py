"""Word pairs (docs/metrics.md, "Frequent word pairs"): exact counts on hand-made attention with
words of several pieces, against a loop reference written from the definition; the switch to
a bounded summary past the threshold; and the one caveat on every head page of a real build."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from atlas.analyses import default_analyses
from atlas.analyses.base import RunInfo, feed
from atlas.analyses.pairs import WordPairs
from atlas.analyses.words import joined_pieces
from atlas.model import Record

SPECIALS = ("[CLS]", "[SEP]")


def record(index: int, tokens: list[str], attention, words=None, word_of=None) -> Record:
    """A record of the given tokens ([CLS]/[SEP] special) and [L, H, n, n] attention."""
    special = np.array([t in SPECIALS for t in tokens])
    return Record(
        index=index,
        tokens=tokens,
        cls=np.array([t == "[CLS]" for t in tokens]),
        sep=np.array([t == "[SEP]" for t in tokens]),
        special=special,
        punct=np.array([t in {".", ","} for t in tokens]),
        segments=np.where(special, -1, 0).astype(np.int8),
        attention=np.asarray(attention, dtype=np.float32),
        words=words,
        word_of=None if word_of is None else np.array(word_of, dtype=np.int32),
    )


def started(analysis: WordPairs, layers: int, heads: int) -> WordPairs:
    analysis.start(RunInfo(layers=layers, heads=heads, causal=False, sentences=0))
    return analysis


def all_counts(pairs: WordPairs) -> list[dict[tuple[str, str], int]]:
    """Every count each head holds, as {(from, to): count}."""
    result = pairs.finish({})
    return [
        {(p["source"], p["target"]): p["count"] for p in head} for head in result.parts["pairs"]
    ]


def test_joined_pieces_of_each_marker_style():
    """WordPiece continuations, word-start marks (Ġ, ▁; punctuation stays a word of its own)
    and word-end marks (</w>) each give the words a reader sees."""

    def words(tokens, punct=()):
        special = np.array([t in (*SPECIALS, "<s>", "</s>") for t in tokens])
        return joined_pieces(tokens, special, np.array([t in punct for t in tokens]))

    bert = words(["[CLS]", "the", "ko", "##ern", "##er", "sat", ".", "[SEP]"], punct={"."})
    assert bert[0] == ["the", "koerner", "sat", "."]
    assert bert[1].tolist() == [-1, 0, 1, 1, 1, 2, 3, -1]
    gpt = words(["<s>", "Hello", "Ġwor", "ld", ",", "Ġdon", "'t", "</s>"], punct={","})
    assert gpt[0] == ["Hello", "world", ",", "don't"]
    assert gpt[1].tolist() == [-1, 0, 1, 1, 2, 3, 3, -1]
    assert words(["▁Ko", "ern", "er", "▁sat"])[0] == ["Koerner", "sat"]
    assert words(["ko", "ern", "er</w>", "sat</w>"])[0] == ["koerner", "sat"]
    # a pair's second segment starts a new word after [SEP], even without a start mark
    assert words(["<s>", "Ġa", "</s>", "</s>", "b", "Ġc", "</s>"])[0] == ["a", "b", "c"]
    # the pages' own rule: byte-level pieces decoded, so a word reads as it is shown
    assert words(["<s>", "Ġcaf", "Ã©", "Ġsat", "</s>"])[0] == ["café", "sat"]


# [CLS] the ko ##ern ##er sat . [SEP]; token rows of one head, chosen so that the word-level
# answer differs from the token-level one:
#   "the" attends most to [SEP] (left out), then to "sat";
#   "ko ##ern ##er" each give "sat" the most, but one piece gives "the" 0.5 (the token argmax);
#   "sat" gives "the" 0.3 but ko/##ern/##er 0.2 each: the word "koerner" gets 0.6;
#   "." attends most to itself (left out), then to "koerner".
TOKENS = ["[CLS]", "the", "ko", "##ern", "##er", "sat", ".", "[SEP]"]
ROWS = {
    0: {0: 1.0},
    1: {7: 0.6, 5: 0.3, 2: 0.1},
    2: {1: 0.5, 5: 0.45, 0: 0.05},
    3: {5: 0.8, 1: 0.2},
    4: {5: 0.7, 1: 0.1, 0: 0.2},
    5: {1: 0.3, 2: 0.2, 3: 0.2, 4: 0.2, 0: 0.1},
    6: {6: 0.7, 4: 0.2, 1: 0.1},
    7: {7: 1.0},
}


def handmade() -> np.ndarray:
    a = np.zeros((1, 1, 8, 8))
    for i, row in ROWS.items():
        for j, value in row.items():
            a[0, 0, i, j] = value
    return a


def test_word_pairs_count_words_exactly():
    """Each word adds (word → the other word it attends to most, word level), over lower-cased
    types, for input with words and without; special units and the word itself are left out
    as targets, and [CLS]/[SEP] never count as from-words."""
    pairs = started(WordPairs(), 1, 1)
    feed(pairs, record(0, TOKENS, handmade()))  # words joined from the pieces
    words, word_of = ["The", "Koerner", "sat", "."], [-1, 0, 1, 1, 1, 2, 3, -1]
    feed(pairs, record(1, TOKENS, handmade(), words, word_of))  # the input's words
    result = pairs.finish({})
    assert result.parts["pairs"][0] == [
        {"source": ".", "target": "koerner", "count": 2, "source_count": 2},
        {"source": "koerner", "target": "sat", "count": 2, "source_count": 2},
        {"source": "sat", "target": "koerner", "count": 2, "source_count": 2},
        {"source": "the", "target": "sat", "count": 2, "source_count": 2},
    ]
    assert result.data == {"exact_sentences": 10_000, "summary": False, "error": 0}


def test_source_count_is_every_occurrence_of_the_word():
    """`source_count`: how often the from-word occurs in a sentence with another word, whatever
    it attends to; a sentence of one word adds nothing."""
    tokens = ["[CLS]", "a", "b", "a", "[SEP]"]
    a = np.zeros((1, 1, 5, 5))
    a[0, 0, :, 0] = 1.0  # every row to [CLS]: the other words all tie at 0, the first wins
    pairs = started(WordPairs(), 1, 1)
    feed(pairs, record(0, tokens, a))
    feed(pairs, record(1, ["[CLS]", "a", "[SEP]"], np.full((1, 1, 3, 3), 1 / 3)))
    # the second "a" attends most to the first: another word, of the same type
    assert pairs.finish({}).parts["pairs"][0] == [
        {"source": "a", "target": "a", "count": 1, "source_count": 2},
        {"source": "a", "target": "b", "count": 1, "source_count": 2},
        {"source": "b", "target": "a", "count": 1, "source_count": 1},
    ]


def test_a_causal_models_first_word_has_no_pair():
    """Causal attention: the first word sees no other word, so it is neither counted as a
    from-word nor as an occurrence; the others pick among the words before them."""
    tokens = ["b", "a", "b", "c"]
    a = np.tril(np.ones((4, 4)))
    a[2] = [0.5, 0.2, 0.3, 0]  # "b" (second): to the first "b" more than to "a"
    a /= a.sum(-1, keepdims=True)
    pairs = WordPairs()
    pairs.start(RunInfo(layers=1, heads=1, causal=True, sentences=0))
    feed(pairs, record(0, tokens, a[None, None]))
    assert pairs.finish({}).parts["pairs"][0] == [
        {"source": "a", "target": "b", "count": 1, "source_count": 1},
        {"source": "b", "target": "b", "count": 1, "source_count": 1},
        {"source": "c", "target": "b", "count": 1, "source_count": 1},
    ]


def random_records(seed: int, count: int, layers: int, heads: int) -> list[Record]:
    """Sentences of words split into 1-3 pieces, in two cases, with peaky random attention."""
    rng = np.random.default_rng(seed)
    vocabulary = ["the", "The", "cat", "ko", "dog", "a", "A", "mat"]
    records = []
    for index in range(count):
        tokens = ["[CLS]"]
        for _ in range(int(rng.integers(1, 7))):
            word = str(rng.choice(vocabulary))
            tokens += [word] + ["##" + p for p in rng.choice(["x", "y"], int(rng.integers(0, 3)))]
        tokens.append("[SEP]")
        n = len(tokens)
        a = rng.random((layers, heads, n, n)) ** 6 + 1e-9
        records.append(record(index, tokens, a / a.sum(-1, keepdims=True)))
    return records


def reference(records: list[Record], heads: int, exact: int, capacity: int):
    """Per head {(from, to): count}, then {from: occurrences}; and the error of each, written
    loop by loop from docs/metrics.md: words from the pieces, W[u, v] = mean over u's tokens of
    the sum over v's tokens; exact for the first ``exact`` sentences, then Misra-Gries shrunk
    after each one."""
    counts: list[Counter] = [Counter() for _ in range(heads + 1)]
    errors = [0] * (heads + 1)
    for number, rec in enumerate(records, 1):
        groups: list[list[int]] = []  # tokens of each word
        for t, token in enumerate(rec.tokens):
            if token in SPECIALS:
                continue
            if token.startswith("##") and t > 0 and rec.tokens[t - 1] not in SPECIALS:
                groups[-1].append(t)
            else:
                groups.append([t])
        names = ["".join(rec.tokens[t].removeprefix("##") for t in g).lower() for g in groups]
        attention = rec.attention.astype(np.float64).reshape(heads, rec.n, rec.n)
        for h in range(heads):
            for u, rows in enumerate(groups):
                if len(groups) < 2:
                    break
                best, best_value = None, -1.0
                for v, columns in enumerate(groups):
                    if v == u:
                        continue
                    value = sum(attention[h, i, j] for i in rows for j in columns) / len(rows)
                    if value > best_value:
                        best, best_value = v, value
                counts[h][(names[u], names[best])] += 1
        if len(groups) >= 2:
            counts[heads].update(names)
        for h in range(heads + 1):
            if number > exact and len(counts[h]) > 2 * capacity:
                cut = sorted(counts[h].values(), reverse=True)[capacity]
                errors[h] += cut
                counts[h] = Counter({p: c - cut for p, c in counts[h].items() if c > cut})
    return counts, errors


def test_word_pairs_match_a_loop_reference_exactly():
    """Many records of split words, every head: the same counts as the loop reference."""
    records = random_records(5, 60, 2, 3)
    pairs = started(WordPairs(top=1000, buffer=7), 2, 3)
    for rec in records:
        feed(pairs, rec)
    expected, errors = reference(records, 6, exact=10_000, capacity=0)
    assert errors == [0] * 7
    assert all_counts(pairs) == [dict(c) for c in expected[:6]]
    occurrences = {
        p["source"]: p["source_count"] for h in pairs.finish({}).parts["pairs"] for p in h
    }
    assert occurrences == {name: expected[6][name] for name in occurrences}
    assert sum(expected[0].values()) > 100  # a real test: many pairs


@pytest.mark.parametrize("exact", [20, 60, 61])
def test_past_the_threshold_the_counts_become_a_summary(exact):
    """Up to ``exact`` sentences the counts are exact (error 0, no summary); one sentence more
    and they become a Misra-Gries summary, shrunk after each record, as in the reference; each
    count is then true - error ≤ count ≤ true, and the error is at most pairs / (capacity + 1)."""
    records = random_records(9, 61, 1, 2)
    pairs = started(WordPairs(exact_sentences=exact, capacity=3, top=1000, buffer=1), 1, 2)
    for rec in records:
        feed(pairs, rec)
    result = pairs.finish({})
    expected, errors = reference(records, 2, exact=exact, capacity=3)
    truth, _ = reference(records, 2, exact=10_000, capacity=3)
    summary = len(records) > exact
    assert result.data == {"exact_sentences": exact, "summary": summary, "error": max(errors)}
    assert all_counts(pairs) == [dict(c) for c in (expected if summary else truth)[:2]]
    if summary:
        assert max(errors[:2]) > 0  # the summaries did shrink
        for head, counts in enumerate(all_counts(pairs)):
            total = sum(truth[head].values())
            assert errors[head] <= total / 4
            for pair, count in counts.items():
                assert truth[head][pair] - errors[head] <= count <= truth[head][pair]


def test_word_pairs_memory_is_twelve_bytes_a_distinct_pair():
    """The exact counts hold one int64 code and one int32 count per distinct (head, from, to)
    plus one per word type (its occurrences); nothing else grows with the sentences."""
    records = random_records(3, 40, 2, 2)
    pairs = started(WordPairs(top=1000), 2, 2)
    for rec in records:
        feed(pairs, rec)
    pairs.counts.merge()
    distinct = sum(len(c) for c in all_counts(pairs)) + len(pairs.names)
    assert pairs.counts.nbytes == 12 * distinct


def caveats(site) -> list[str]:
    pages = sorted((site / "heads").glob("L*.html"))
    assert pages
    found = []
    for page in pages:
        html = page.read_text(encoding="utf-8")
        spans = re.findall(r'<span class="pairs-caveat">(.*?)</span>', html, re.S)
        assert len(spans) == 1, page.name
        found.append(spans[0])
    return found


@pytest.mark.parametrize("exact", [10_000, 3])
def test_every_head_page_states_the_same_caveat(exact, tiny_model, tmp_path):
    """A real build (tiny BERT): every head page's pairs card has one caveat, the same words on
    every page; exact for a small corpus, the summary's bound past the threshold."""
    import atlas

    source = tmp_path / "in.txt"
    source.write_text(
        "The dog chased the cat.\nA bird sang.\nThe old house is large.\nShe said no.\n",
        encoding="utf-8",
    )
    analyses = [
        WordPairs(exact_sentences=exact) if a.name == "pairs" else a for a in default_analyses()
    ]
    out = tmp_path / "site"
    built = atlas.build(source, out, model=str(tiny_model("bert")), analyses=analyses)
    found = caveats(out)
    assert len(set(found)) == 1
    summary = built.results["pairs"]
    if exact == 3:
        assert summary["summary"] is True
        assert found[0] == (
            "The corpus has more than 3 sentences, so pairs are counted in a bounded summary: "
            f"each count may be low by at most {summary['error']}."
        )
    else:
        assert summary == {"exact_sentences": 10_000, "summary": False, "error": 0}
        assert found[0] == "Counts are exact, over every sentence."


def test_a_summary_forgets_word_types_no_count_refers_to(monkeypatch):
    """Past the threshold, new words keep coming: the table of types is pruned to the types
    the summary still counts, and the counts are the same as without pruning."""
    rng = np.random.default_rng(2)
    records = []
    for index in range(80):
        words = [f"w{index}-{i}" for i in range(int(rng.integers(2, 6)))]
        tokens = ["[CLS]", *words, "[SEP]"]
        a = rng.random((1, 2, len(tokens), len(tokens)))
        records.append(record(index, tokens, a / a.sum(-1, keepdims=True)))

    def run(prune_above: int):
        monkeypatch.setattr("atlas.analyses.pairs.GC_TYPES", prune_above)
        pairs = started(WordPairs(exact_sentences=5, capacity=2, top=1000, buffer=1), 1, 2)
        for rec in records:
            feed(pairs, rec)
        return pairs, pairs.finish({})

    pruned, result = run(10)
    kept, expected = run(10**9)
    assert len(kept.names) == sum(len(r.tokens) - 2 for r in records)  # every word a type
    assert len(pruned.names) < len(kept.names) / 4
    assert result.parts == expected.parts and result.data == expected.data
