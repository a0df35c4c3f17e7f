"""The layers analysis (layer-wise embeddings): exact values on hand-made hidden states, and the
runner's hidden states against transformers' own. The pages: test_layers_browser.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from atlas.analyses.base import RunInfo, feed
from atlas.analyses.layers import LayerEmbeddings, context_vector, pair_mean, unit
from atlas.model import HIDDEN_STATES, Record

LAYERS, DIM = 2, 5


def record(index: int, tokens: list[str], hidden: np.ndarray, special=None) -> Record:
    """A Record of hand-made hidden states [LAYERS + 1, n, DIM]; [CLS]/[SEP] if named so."""
    n = len(tokens)
    special = np.array([t in ("[CLS]", "[SEP]") for t in tokens]) if special is None else special
    none = np.zeros(n, dtype=bool)
    return Record(
        index=index,
        tokens=tokens,
        cls=np.array([t == "[CLS]" for t in tokens]),
        sep=np.array([t == "[SEP]" for t in tokens]),
        special=special,
        punct=none,
        segments=np.zeros(n, dtype=np.int8),
        attention=np.full((LAYERS, 1, n, n), 1.0 / n, dtype=np.float32),
        hidden=np.asarray(hidden, dtype=np.float32),
    )


def run(records: list[Record], views: int = 10) -> dict:
    """Feed records through the analysis, revisit as the pipeline would, return its data."""
    analysis = LayerEmbeddings(views)
    analysis.start(RunInfo(layers=LAYERS, heads=1, causal=False, sentences=len(records)))
    for r in records:
        feed(analysis, r)
    again = set(analysis.revisit({}))
    for r in records:
        if r.index in again:
            feed(analysis, r)
    return analysis.finish({}).data


def random_corpus(seed: int = 0, sentences: int = 6) -> list[Record]:
    rng = np.random.default_rng(seed)
    vocabulary = ["a", "b", "c", "d"]
    out = []
    for i in range(sentences):
        words = [vocabulary[j] for j in rng.integers(0, 4, size=int(rng.integers(3, 7)))]
        tokens = ["[CLS]", *words, "[SEP]"]
        out.append(record(i, tokens, rng.normal(size=(LAYERS + 1, len(tokens), DIM))))
    return out


def test_drift_is_one_at_layer_zero_and_the_mean_cosine_above():
    records = random_corpus()
    data = run(records)
    assert data["curves"]["drift"][0] == pytest.approx(1.0, abs=1e-12)
    cosines = [
        float(unit(r.hidden[layer].astype(float))[t] @ unit(r.hidden[0].astype(float))[t])
        for r in records
        for t in np.flatnonzero(~r.special)
        for layer in [2]
    ]
    assert data["curves"]["drift"][2] == pytest.approx(np.mean(cosines), abs=1e-12)


def test_anisotropy_is_the_mean_cosine_over_all_pairs_from_different_sentences():
    records = random_corpus(1)
    data = run(records)
    for layer in range(LAYERS + 1):
        vectors = [
            (r.index, unit(r.hidden[layer].astype(float))[t])
            for r in records
            for t in np.flatnonzero(~r.special)
        ]
        expected = np.mean(
            [u @ v for (i, u), (j, v) in itertools.permutations(vectors, 2) if i != j]
        )
        assert data["curves"]["anisotropy"][layer] == pytest.approx(expected, abs=1e-12)


def test_self_similarity_brute_force_and_adjusted():
    records = random_corpus(2, sentences=8)
    data = run(records)
    layer = 1
    per_type = []
    for word in "abcd":
        occ = [
            (r.index, unit(r.hidden[layer].astype(float))[t])
            for r in records
            for t, token in enumerate(r.tokens)
            if token == word
        ]
        if len(occ) < 5:
            continue
        cos = [u @ v for (i, u), (j, v) in itertools.permutations(occ, 2) if i != j]
        per_type.append(np.mean(cos))
    assert data["types_scored"] == len(per_type) > 0
    curves = data["curves"]
    assert curves["self_similarity"][layer] == pytest.approx(np.mean(per_type), abs=1e-12)
    assert curves["self_similarity_adjusted"][layer] == pytest.approx(
        curves["self_similarity"][layer] - curves["anisotropy"][layer], abs=1e-12
    )


def test_self_similarity_of_a_word_in_identical_contexts_is_one():
    rng = np.random.default_rng(3)
    hidden = rng.normal(size=(LAYERS + 1, 4, DIM))
    same = [record(i, ["[CLS]", "the", "cat", "[SEP]"], hidden) for i in range(5)]
    data = run(same)
    assert data["types_scored"] == 2  # "the" and "cat", five occurrences each
    for value in data["curves"]["self_similarity"]:
        assert value == pytest.approx(1.0, abs=1e-6)  # float32 hidden states


def test_intra_sentence_similarity_is_the_mean_cosine_to_the_sentence_mean():
    records = random_corpus(4)
    data = run(records)
    layer = 2
    per_sentence = []
    for r in records:
        tokens = r.hidden[layer][~r.special].astype(float)
        mean = unit(tokens.mean(0))
        per_sentence.append(np.mean(unit(tokens) @ mean))
    assert data["curves"]["intra_similarity"][layer] == pytest.approx(
        np.mean(per_sentence), abs=1e-12
    )


def test_pair_mean_without_pairs_is_nan():
    assert np.isnan(pair_mean(np.ones((1, 3)), np.array([3.0]), 1, 1)).all()


def test_context_vector_on_hand_made_vectors():
    b = np.array([2.0, 1.0, -1.0, 3.0, 0.0, 1.0])
    a = np.array([1.0, 2.0, 1.0, 0.0, 2.0, -4.0])
    # log(2), log(1/2); a sign change, a = 0, b = 0 and a negative ratio are undefined: 0
    np.testing.assert_allclose(context_vector(b, a), [np.log(2), np.log(0.5), 0, 0, 0, 0])


def test_explorer_nearest_occurrences_and_per_token_drift():
    records = random_corpus(5, sentences=6)
    data = run(records, views=4)  # the explorer's occurrences come from the first 4 sentences
    assert set(data["explorer_sentences"]) <= {0, 1, 2, 3}
    word = data["explorer"][0]
    occurrences = [tuple(o) for o in word["occurrences"]]
    assert occurrences == sorted(occurrences) and len(occurrences) <= 8
    layer = 1

    def vector(i, p):
        r = records[i]
        return unit(r.hidden[layer][~r.special].astype(float))[p]

    first = occurrences[0]
    others = [
        (j, float(vector(*first) @ vector(*o)))
        for j, o in enumerate(occurrences)
        if o[0] != first[0]
    ]
    best = max(others, key=lambda item: item[1])
    assert word["nearest"][layer][0][0] == [best[0], pytest.approx(best[1], abs=1e-4)]
    # per-token drift, for sentences with a page only: 1 - cos(h_l, h_0), special tokens too
    assert set(data["per_token"]) == {"0", "1", "2", "3"}
    r = records[1]
    h = unit(r.hidden.astype(float))
    assert data["per_token"]["1"][0][2] == pytest.approx(1 - h[2, 0] @ h[0, 0], abs=1e-4)


def test_the_runner_returns_transformers_hidden_states():
    import torch

    from atlas.corpus import Example
    from atlas.model import Runner

    default_runner = Runner(device="cpu")
    example = Example(id="s1", text="The cat sat on the mat.", line=1)
    (rec,) = default_runner.run([example], capture={HIDDEN_STATES})
    assert rec.hidden.shape == (default_runner.info.layers + 1, rec.n, 384)
    enc = default_runner.tokenizer(example.text, return_tensors="pt")
    with torch.no_grad():
        out = default_runner.model(**enc, output_hidden_states=True)
    np.testing.assert_allclose(rec.hidden[0], out.hidden_states[0][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(rec.hidden[-1], out.hidden_states[-1][0].numpy(), atol=1e-4)
    (without,) = default_runner.run([example])
    assert without.hidden is None  # only captured when asked for


def test_explorer_vectors_are_kept_on_the_first_pass_in_any_order():
    # no sentence is run again: records fed once, in batch order (not corpus order), give the
    # explorer of the corpus order, and only occurrences the explorer may use stay in memory
    records = random_corpus(7, sentences=12)
    views = 8
    analysis = LayerEmbeddings(views)
    analysis.start(RunInfo(layers=LAYERS, heads=1, causal=False, sentences=len(records)))
    for r in [*records[::-1][:6], *records[:6]]:  # 11..6, then 0..5
        feed(analysis, r)
    assert not analysis.revisit({})
    data = analysis.finish({}).data
    in_order = run(records, views=views)
    assert data["explorer"] and data["context_vector"] == in_order["context_vector"]
    for word, same in zip(data["explorer"], in_order["explorer"], strict=True):
        # self-similarity is a running sum: the order of the records moves it by float noise
        np.testing.assert_allclose(word.pop("self_similarity"), same.pop("self_similarity"))
        assert word == same
    for word in data["explorer"]:
        expected = [
            (r.index, p)
            for r in records[:views]
            for p, t in enumerate(t for t, s in zip(r.tokens, r.special, strict=True) if not s)
            if t == word["word"]
        ][:8]
        assert [tuple(o) for o in word["occurrences"]] == expected
    kept = {o for found in analysis.first.values() if len({i for i, _ in found}) > 1 for o in found}
    assert set(analysis.collected) == kept


# Words of several WordPiece pieces: a word's vector is the mean of its pieces' (issue 18: the
# k-th word took the k-th token's vector, so every word after a split word took another's).
PIECES = {"koerner": ["ko", "##ern", "##er"], "sat": ["sat"], "playing": ["play", "##ing"],
          "the": ["the"], "unbelievably": ["un", "##bel", "##ie", "##va", "##bly"]}  # fmt: skip


def wordpiece_corpus(seed: int, sentences: int = 10) -> list[Record]:
    """Sentences of split and whole words, every third a sentence pair ([CLS] a [SEP] b [SEP])."""
    rng = np.random.default_rng(seed)
    vocabulary = list(PIECES)
    out = []
    for i in range(sentences):
        parts = [[vocabulary[j] for j in rng.integers(0, len(vocabulary), size=3)]
                 for _ in range(2 if i % 3 == 0 else 1)]  # fmt: skip
        tokens = ["[CLS]"]
        for words in parts:
            tokens += [piece for word in words for piece in PIECES[word]] + ["[SEP]"]
        out.append(record(i, tokens, rng.normal(size=(LAYERS + 1, len(tokens), DIM))))
    return out


def word_vectors(r: Record) -> list[tuple[str, np.ndarray]]:
    """(word, mean of its pieces' hidden states [layers + 1, d]) in order, the words read from
    the "##" markers directly: the definition, written apart from the analysis."""
    out: list[tuple[str, list[np.ndarray]]] = []
    for t, token in enumerate(r.tokens):
        if r.special[t]:
            continue
        if token.startswith("##") and out and not r.special[t - 1]:
            out[-1] = (out[-1][0] + token[2:], [*out[-1][1], r.hidden[:, t]])
        else:
            out.append((token, [r.hidden[:, t]]))
    return [(w, np.mean(np.asarray(v, dtype=np.float64), axis=0)) for w, v in out]


def pairs_mean(occurrences: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """Per layer: the mean cosine over pairs of unit vectors from different sentences."""
    pairs = itertools.permutations(occurrences, 2)
    return np.mean([(u * v).sum(-1) for (i, u), (j, v) in pairs if i != j], axis=0)


def brute_self_similarity(records: list[Record]) -> dict[str, np.ndarray]:
    """Per word type with at least 5 occurrences: per layer, the mean cosine over pairs of its
    occurrences from different sentences, pair by pair."""
    found: dict[str, list[tuple[int, np.ndarray]]] = {}
    for r in records:
        for word, vector in word_vectors(r):
            found.setdefault(word.casefold(), []).append((r.index, unit(vector)))
    return {word: pairs_mean(occ) for word, occ in found.items() if len(occ) >= 5}


def test_self_similarity_of_words_of_several_pieces_and_sentence_pairs():
    records = wordpiece_corpus(11, sentences=10)
    assert any(r.tokens.count("[SEP]") == 2 for r in records)
    data = run(records)
    expected = brute_self_similarity(records)
    assert {"koerner", "unbelievably", "playing"} <= set(expected)
    assert data["types_scored"] == len(expected)
    np.testing.assert_allclose(
        data["curves"]["self_similarity"], np.mean(list(expected.values()), axis=0), atol=1e-12
    )
    explorer = {word["word"]: word for word in data["explorer"]}
    for word, value in expected.items():
        np.testing.assert_allclose(explorer[word]["self_similarity"], value, atol=1e-12)
    # the explorer's nearest occurrences compare word vectors too: occurrence 0 of "koerner"
    word = explorer["koerner"]
    vectors = {(r.index, p): unit(v) for r in records for p, (_, v) in enumerate(word_vectors(r))}
    first, layer = tuple(word["occurrences"][0]), 2
    cosines = [(j, float(vectors[first][layer] @ vectors[tuple(o)][layer]))
               for j, o in enumerate(word["occurrences"]) if o[0] != first[0]]  # fmt: skip
    best = max(cosines, key=lambda item: item[1])
    assert word["nearest"][layer][0][0] == [best[0], pytest.approx(best[1], abs=1e-4)]


def test_self_similarity_of_split_words_matches_transformers_on_the_real_model():
    """The default model's WordPiece splits these words; the reference takes transformers'
    hidden states and the tokenizer's own word ids, not the atlas's runner or word rule."""
    import torch

    from atlas.corpus import Example
    from atlas.model import Runner

    runner = Runner(device="cpu")
    subjects = ["Koerner", "The tokenizer", "Ethayarajh", "An unbelievably tall giraffe"]
    objects = ["the antidisestablishmentarian", "Koerner", "playfully", "the tokenizer"]
    texts = [f"{s} met {o} near Ethayarajh's house." for s in subjects for o in objects]
    examples = [Example(id=f"s{i}", text=t, line=i + 1) for i, t in enumerate(texts)]
    records = sorted(runner.run(examples, capture={HIDDEN_STATES}), key=lambda r: r.index)
    analysis = LayerEmbeddings(len(records))
    layers = runner.info.layers
    analysis.start(RunInfo(layers=layers, heads=1, causal=False, sentences=len(records)))
    for r in records:
        feed(analysis, r)
    data = analysis.finish({}).data

    found: dict[str, list[tuple[int, np.ndarray]]] = {}
    for i, text in enumerate(texts):
        encoded = runner.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            hidden = runner.model(**encoded, output_hidden_states=True).hidden_states
        hidden = torch.stack(hidden)[:, 0].double().numpy()  # [layers + 1, n, d]
        ids, word_ids = encoded["input_ids"][0].tolist(), encoded.word_ids()
        for w in sorted({w for w in word_ids if w is not None}):
            at = [t for t, x in enumerate(word_ids) if x == w]
            form = runner.tokenizer.decode([ids[t] for t in at]).replace(" ", "").casefold()
            found.setdefault(form, []).append((i, unit(hidden[:, at].mean(1))))
    expected = {word: pairs_mean(occ) for word, occ in found.items() if len(occ) >= 5}
    assert {"koerner", "tokenizer", "ethayarajh"} <= set(expected)
    assert data["types_scored"] == len(expected)
    np.testing.assert_allclose(
        data["curves"]["self_similarity"], np.mean(list(expected.values()), axis=0), atol=1e-5
    )
    explorer = {word["word"]: word["self_similarity"] for word in data["explorer"]}
    for word in ("koerner", "ethayarajh", "tokenizer"):
        np.testing.assert_allclose(explorer[word], expected[word], atol=1e-5)


def test_occurrence_vectors_are_the_weighted_sum_of_their_pieces_to_the_bit():
    """A word's vector is Σ (1/k)·piece over its k pieces in token order, as the matrix of
    weights (einsum) gave it, bit for bit: words of 1 to 3 pieces, in any order of tokens."""
    from atlas.analyses.layers import occurrences

    rng = np.random.default_rng(3)
    word_of = [-1, 2, 0, 0, 1, 2, 0, -1, 3, 3]  # word 0: 3 pieces, not adjacent; word 2: 2
    rec = record(0, [f"t{i}" for i in range(len(word_of))], rng.normal(size=(4, 10, 8)))
    rec.words, rec.word_of = ["Ab", "c", "DE", "f"], np.array(word_of)
    hidden = rec.hidden.astype(np.float64)
    types, vectors = occurrences(rec, hidden)
    member = np.zeros((4, 10))
    for t, w in enumerate(word_of):
        if w >= 0:
            member[w, t] = 1.0
    member /= member.sum(1, keepdims=True)
    assert types == ["ab", "c", "de", "f"]
    assert np.array_equal(vectors, np.einsum("mn,lnd->lmd", member, hidden))
    rec.word_of = np.full(10, -1)
    assert occurrences(rec, hidden)[1].shape == (4, 0, 8)
