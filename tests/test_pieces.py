"""How tokens read on the pages (atlas/pieces.py): exact values on hand-made tokens of each
scheme, and the tokenizers of the tiny models read back as their text."""

from __future__ import annotations

import pytest
import transformers

from atlas import pieces
from atlas.viewdata import View, data_script, read_view


def shown(tokens, special=None):
    out = pieces.shown_tokens(tokens, special or [0] * len(tokens))
    return [(s.text, s.joins) for s in out]


def test_wordpiece_strips_hashes_and_joins_the_piece_to_the_one_before():
    tokens = ["[CLS]", "ko", "##ern", "##er", "called", "##", "[SEP]"]
    assert shown(tokens, [1, 0, 0, 0, 0, 0, 1]) == [
        ("[CLS]", False),
        ("ko", False),
        ("ern", True),
        ("er", True),
        ("called", False),
        ("##", False),  # the characters "##" themselves, not a marker
        ("[SEP]", False),
    ]
    assert [s.raw for s in pieces.shown_tokens(tokens, [1, 0, 0, 0, 0, 0, 1])] == tokens


def test_byte_level_bpe_reads_bytes_and_starts_words_at_the_space_marker():
    # GPT-2's bytes: "Ġ" is a space, "Ã©" the two bytes of "é"; a piece without the marker
    # continues the word before, except after a special token or at the start.
    tokens = ["<s>", "It", "'s", "ĠC", "Ã©", "cile", "ĠcafÃ©", "Ġ", "J", "an", "Ġ", "Ċ", "</s>"]
    special = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert shown(tokens, special) == [
        ("<s>", False),
        ("It", False),
        ("'s", True),
        ("C", False),
        ("é", True),
        ("cile", True),
        ("café", False),
        (pieces.BLANK, False),  # a space the next piece did not take ...
        ("J", False),  # ... which then starts a word
        ("an", True),
        (pieces.BLANK, False),
        (pieces.BLANK, False),  # a newline
        ("</s>", False),
    ]
    assert pieces.join(pieces.shown_tokens(tokens[1:10], special[1:10])) == "It's Cécile café Jan"
    # A character split across pieces goes to the piece with its last byte.
    assert shown(["ĠC", "Ã", "©", "cile"]) == [
        ("C", False),
        (pieces.PART, True),
        ("é", True),
        ("cile", True),
    ]


def test_sentencepiece_and_end_of_word_markers():
    assert shown(["▁the", "▁ko", "ern", "▁", "1999"]) == [
        ("the", False),
        ("ko", False),
        ("ern", True),
        (pieces.BLANK, False),
        ("1999", False),  # after a marker alone: a word of its own
    ]
    assert shown(["the</w>", "ko", "ern</w>", "called</w>"]) == [
        ("the", False),
        ("ko", False),
        ("ern", True),
        ("called", False),
    ]
    # No marker anywhere: every token is a word of its own.
    assert shown(["hello", "world"]) == [("hello", False), ("world", False)]


@pytest.mark.parametrize("family", ["gpt2", "roberta"])
def test_byte_level_tokenizers_read_back_as_the_text(tiny_model, family):
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model(family))
    text = "Cécile said the café's paperwork was unbelievably complicated."
    ids = tokenizer(text)["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    special = [int(i in tokenizer.all_special_ids) for i in ids]
    assert any(t.startswith("Ġ") for t in tokens) and any("Ã" in t for t in tokens)
    everything = pieces.shown_tokens(tokens, special)
    ordinary = [s for s, sp in zip(everything, special, strict=True) if not sp]
    assert pieces.join(ordinary) == text


def test_wordpiece_pieces_group_into_the_tokenizers_words(tiny_model):
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model("bert"))
    text = "Koerner called the unbelievably complicated paperwork overwhelming."
    tokens = tokenizer.tokenize(text)
    assert any(t.startswith("##") for t in tokens)
    backend = tokenizer.backend_tokenizer
    normal = backend.normalizer.normalize_str(text)
    words = [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(normal)]
    assert pieces.join(pieces.shown_tokens(tokens, [0] * len(tokens))).split(" ") == words


def test_data_scripts_carry_how_tokens_read(tmp_path):
    view = View(
        index=0,
        tokens=["[CLS]", "ko", "##ern", "[SEP]"],
        segments=[-1, 0, 0, -1],
        special=[1, 0, 0, 1],
        attention="",
    )
    script = data_script(
        view, key="0001", sentence_id="1", layers=1, heads=1, causal=False, neuron={}
    )
    assert '"shown":["[CLS]","ko","ern","[SEP]"]' in script
    assert '"joins":[0,0,1,0]' in script
    path = tmp_path / "0001.js"
    path.write_text(script, encoding="utf-8")
    assert read_view(path).tokens == view.tokens  # the raw tokens stay the data


def test_later_pieces_follow_the_input_words_where_known():
    tokens = ["[CLS]", "w", ".", "h", ".", "ko", "##ern", "[SEP]"]
    shown = pieces.shown_tokens(tokens, [1, 0, 0, 0, 0, 0, 0, 1])
    # without words: only the WordPiece marker says a piece continues a word
    assert pieces.later_pieces(shown) == [False, False, False, False, False, False, True, False]
    # with words ("w.h." one word, "koern" another): every piece after a word's first
    word_of = [-1, 0, 0, 0, 0, 1, 1, -1]
    assert pieces.later_pieces(shown, word_of) == [
        False,
        False,
        True,
        True,
        True,
        False,
        True,
        False,
    ]
