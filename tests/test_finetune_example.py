"""The core of examples/finetune.py (reading tags, the split, aligning tags to subwords) on a
few real UD sentences and the default model's tokenizer; not the training run."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import ROOT
from transformers import AutoTokenizer

from atlas.model import default_model_path

spec = importlib.util.spec_from_file_location("finetune", ROOT / "examples" / "finetune.py")
finetune = importlib.util.module_from_spec(spec)
spec.loader.exec_module(finetune)

SAMPLE = ROOT / "examples" / "ud-ewt-sample.conllu"


@pytest.fixture(scope="module")
def sentences():
    return finetune.read_tagged(SAMPLE)


def test_read_tagged_gives_words_and_upos(sentences):
    """Words and UPOS tags in file order; multi-word token lines are not words."""
    assert len(sentences) == 300
    assert sentences[0] == (
        ["From", "the", "AP", "comes", "this", "story", ":"],
        ["ADP", "DET", "PROPN", "VERB", "DET", "NOUN", "PUNCT"],
    )
    assert all(len(words) == len(tags) for words, tags in sentences)


def test_split_holds_out_the_first_sentences(sentences):
    train, held_out = finetune.split(sentences, held_out=10)
    assert held_out == sentences[:10] and train == sentences[10:]
    assert finetune.HELD_OUT == 300  # the held-out part is examples/ud-ewt-sample.conllu


def test_align_labels_first_subword_only():
    """A word's tag goes on its first subword; later subwords and special tokens get -100."""
    word_ids = [None, 0, 1, 1, 1, 2, None]
    ids = finetune.align_labels(
        word_ids, ["DET", "NOUN", "PUNCT"], {"DET": 0, "NOUN": 1, "PUNCT": 2}
    )
    assert ids == [-100, 0, 1, -100, -100, 2, -100]


def test_encode_real_sentences_one_label_per_word(sentences):
    """With the default model's tokenizer, every word of a few real sentences has exactly one
    labelled token (its first subword), labelled with its own tag."""
    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    few = sentences[:5]
    tags = sorted({t for _, ts in few for t in ts})
    label2id = {t: i for i, t in enumerate(tags)}
    for (words, word_tags), item in zip(
        few, finetune.encode(tokenizer, few, label2id), strict=True
    ):
        labelled = [label for label in item["labels"] if label != finetune.IGNORE]
        assert labelled == [label2id[t] for t in word_tags]
        assert len(item["labels"]) == len(item["input_ids"])
        tokens = tokenizer.convert_ids_to_tokens(item["input_ids"])
        first_pieces = [t for t, label in zip(tokens, item["labels"], strict=True) if label != -100]
        assert not any(t.startswith("##") for t in first_pieces)
        assert len(first_pieces) == len(words)


def test_a_missing_treebank_is_one_line_naming_where_to_get_it(tmp_path):
    """A new user has no UD English EWT: one line that says where to get it, no traceback."""
    with pytest.raises(SystemExit) as stop:
        finetune.main(["--conllu", str(tmp_path / "none.conllu"), "-o", str(tmp_path / "out")])
    message = str(stop.value.code)
    assert "\n" not in message and "none.conllu" in message and finetune.UD_EWT in message
    assert not (tmp_path / "out").exists()
