"""Examples given as words (CoNLL-U, JSONL "words", .txt --words): the runner maps every token to
its word for WordPiece and byte-level BPE tokenizers, keeps the gold tree, and reports words the
tokenizer drops instead of misaligning them."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import ROOT, build

from atlas.corpus import Example, read_corpus
from atlas.model import Runner

UD_SAMPLE = ROOT / "examples" / "ud-ewt-sample.conllu"  # 300 sentences of UD English EWT
# Words the tiny vocabularies split into several pieces, and non-ASCII ones.
WORDS = ("Müller", "unbelievable", "cats", "naïve", "sentences", "attention", ".")


@pytest.fixture
def atlas_log(caplog, monkeypatch):
    """Warnings of the "atlas" loggers, also after a CLI run stopped their propagation."""
    monkeypatch.setattr(logging.getLogger("atlas"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="atlas")
    return caplog


def word_pieces(runner: Runner, record, word: int) -> str:
    """The word as the tokenizer writes it back from its own pieces, markers and the spaces
    between pieces (WordPiece splits '***' into three) removed."""
    pieces = [t for t, w in zip(record.tokens, record.word_of, strict=True) if w == word]
    return runner.words_tokenizer().convert_tokens_to_string(pieces).replace(" ", "")


def normalized(runner: Runner, word: str) -> str:
    """The word after the tokenizer's normalizer (BERT lowercases and strips accents)."""
    normalizer = runner.words_tokenizer().backend_tokenizer.normalizer
    return (normalizer.normalize_str(word) if normalizer is not None else word).replace(" ", "")


@pytest.mark.parametrize("family", ["bert", "roberta", "gpt2"])
def test_every_token_maps_to_its_word(tiny_model, family):
    """Joining each word's pieces gives the word back; special tokens map to -1."""
    runner = Runner(str(tiny_model(family)), device="cpu")
    example = Example(
        id="w", text=" ".join(WORDS), words=WORDS, heads=(2, 0, 2, 2, 2, 2, 2),
        deprels=("nsubj", "root", "obj", "amod", "obj", "obj", "punct"),
    )  # fmt: skip
    (record,) = runner.run([example])
    assert record.words == list(WORDS)
    assert record.word_of.dtype == np.int32 and record.word_of.shape == (record.n,)
    assert (record.word_of[record.special] == -1).all()
    assert (record.word_of[~record.special] >= 0).all()
    assert np.all(np.diff(record.word_of[~record.special]) >= 0), "words in order"
    assert any(np.sum(record.word_of == w) > 1 for w in range(len(WORDS))), "some word splits"
    for w, word in enumerate(WORDS):
        assert word_pieces(runner, record, w) == normalized(runner, word), (family, word)
    assert record.heads.dtype == np.int32
    assert record.heads.tolist() == [1, -1, 1, 1, 1, 1, 1]
    assert record.deprels == ["nsubj", "root", "obj", "amod", "obj", "obj", "punct"]


@pytest.mark.parametrize("family", ["roberta", "gpt2"])
def test_plain_text_tokenization_is_unchanged(tiny_model, family):
    """Byte-level BPE tokenizers get add_prefix_space only for words: a sentence without words
    is tokenized as before (no space before its first word)."""
    runner = Runner(str(tiny_model(family)), device="cpu")
    text = "The cat sat on the mat."
    plain = runner.encode(Example(id="p", text=text))
    assert plain["tokens"] == runner.tokenizer.convert_ids_to_tokens(
        runner.tokenizer(text)["input_ids"]
    )
    assert "word_of" not in plain
    split = runner.encode(Example(id="s", text=text, words=tuple(text.split())))
    assert len(split["word_of"]) == len(split["ids"])


def test_bert_words_equal_the_text(tiny_model):
    """For WordPiece, words joined by spaces give the tokens and attention of the plain text."""
    runner = Runner(str(tiny_model("bert")), device="cpu")
    text = "Where is the unbelievable cat , Müller ?"
    plain, split = runner.run(
        [Example(id="1", text=text), Example(id="2", text=text, words=tuple(text.split()))]
    )  # same length: one batch, corpus order
    plain, split = sorted([plain, split], key=lambda r: r.index)
    assert split.tokens == plain.tokens
    np.testing.assert_allclose(split.attention, plain.attention, atol=1e-6)
    assert plain.word_of is None and plain.words is None and plain.heads is None
    assert split.heads is None and split.deprels is None


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_truncation_cuts_words_without_warning(tiny_model, family, atlas_log):
    """Words past max_length have no tokens; the record says truncated, no word is 'dropped'."""
    runner = Runner(str(tiny_model(family)), device="cpu", max_length=6)
    words = ("the", "cat", "sat", "on", "the", "mat", "and", "the", "dog", "sat", "on", "the")
    (record,) = runner.run([Example(id="t", text=" ".join(words), words=words)])
    assert record.truncated and record.n == 6
    present = set(record.word_of[record.word_of >= 0].tolist())
    assert present == set(range(len(present))), "a prefix of the words is kept"
    assert len(present) < len(words)
    assert "no tokens" not in atlas_log.text


def test_dropped_word_is_reported_once(tiny_model, atlas_log):
    """A word the tokenizer drops (a lone zero-width space for BERT) is named with its
    sentence and position, once, even when the sentence is run again."""
    runner = Runner(str(tiny_model("bert")), device="cpu")
    words = ("the", "\u200b", "cat")
    examples = [Example(id="a", text="x"), Example(id="s7", text="the cat", words=words, line=9)]
    (record,) = runner.run(examples, indices=[1])
    assert record.word_of[~record.special].tolist() == [0, 2]
    assert record.words == list(words)
    list(runner.run(examples, indices=[1]))  # a revisit does not warn again
    warnings = [r.getMessage() for r in atlas_log.records if "no tokens" in r.getMessage()]
    assert len(warnings) == 1
    message = warnings[0]
    assert "sentence 2" in message and "id s7" in message and "line 9" in message
    assert "word 2 of 3" in message and "'\\u200b'" in message


def test_malformed_conllu_through_the_cli(tmp_path, capsys):
    """A bad head is one 'atlas: error: FILE:LINE: ...' line and exit status 2."""
    path = tmp_path / "bad.conllu"
    path.write_text(
        "# text = a b\n1\ta\ta\tX\t_\t_\t0\troot\t_\t_\n2\tb\tb\tX\t_\t_\t99\tdep\t_\t_\n"
    )
    assert build([str(path), "-o", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"atlas: error: {path}:3:") and "head 99" in err


def test_words_option_with_pairs_through_the_cli(tmp_path, capsys):
    """--words on a .txt with a sentence pair is refused with one line, exit status 2."""
    path = tmp_path / "pairs.txt"
    path.write_text("one\nA\tB\n")
    assert build([str(path), "-o", str(tmp_path / "site"), "--words"]) == 2
    assert capsys.readouterr().err.startswith(f"atlas: error: {path}:2:")


def test_words_txt_builds(tiny_model, tmp_path):
    """--words on .txt runs end to end through atlas.build."""
    import atlas

    path = tmp_path / "s.txt"
    path.write_text("The cat sat .\nWhere is the dog ?\n")
    result = atlas.build(path, model=str(tiny_model("bert")), device="cpu", words=True, views=0)
    assert result.corpus.sentences == 2


def test_real_ud_sentences_align_with_the_default_model(tmp_path, atlas_log):
    """Real UD EWT sentences, read from CoNLL-U and run through all-MiniLM-L6-v2: every word has
    tokens, and each word's pieces spell it (lowercased, accents stripped). The sample's first
    eight sentences and those with a non-ASCII word (’, é, à)."""
    blocks = UD_SAMPLE.read_text(encoding="utf-8").strip().split("\n\n")
    chosen = blocks[:8] + [b for b in blocks[8:] if not b.isascii()]
    assert len(chosen) > 8
    sample = tmp_path / "ud.conllu"
    sample.write_text("\n\n".join(chosen) + "\n", encoding="utf-8")
    examples = read_corpus(sample)
    runner = Runner(device="cpu")
    records = sorted(runner.run(examples), key=lambda r: r.index)
    for example, record in zip(examples, records, strict=True):
        assert record.words == list(example.words)
        assert record.heads.tolist() == [h - 1 for h in example.heads]
        assert record.deprels == list(example.deprels)
        assert set(record.word_of[~record.special].tolist()) == set(range(len(example.words)))
        for w, word in enumerate(example.words):
            pieces = word_pieces(runner, record, w)
            assert pieces in (normalized(runner, word), "[UNK]"), (word, pieces)
    assert "no tokens" not in atlas_log.text


@pytest.fixture(scope="module")
def tiny_sentencepiece(tmp_path_factory):
    """A tiny XLM-RoBERTa with a Unigram + Metaspace ('▁') tokenizer, as SentencePiece models
    are converted to tokenizer.json (the sentencepiece library itself is not needed)."""
    import torch
    import transformers
    from tiny_models import _BPE_CORPUS
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from tokenizers.trainers import UnigramTrainer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    backend = Tokenizer(Unigram())
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = UnigramTrainer(
        vocab_size=200, special_tokens=specials, unk_token="<unk>", show_progress=False
    )
    backend.train_from_iterator(_BPE_CORPUS, trainer=trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )  # fmt: skip
    tokenizer = transformers.XLMRobertaTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>",
        cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
        model_max_length=64,
    )  # fmt: skip
    config = transformers.XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=66, type_vocab_size=1, pad_token_id=1,
        bos_token_id=0, eos_token_id=2,
    )  # fmt: skip
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-sentencepiece")
    transformers.AutoModel.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_sentencepiece_style_alignment(tiny_sentencepiece):
    """Metaspace ('▁') tokenizers align through word_ids() like the others."""
    runner = Runner(str(tiny_sentencepiece), device="cpu")
    words = ("The", "cat", "unbelievable", "sentences", ".")
    (record,) = runner.run([Example(id="sp", text=" ".join(words), words=words)])
    assert (record.word_of[record.special] == -1).all()
    assert (record.word_of[~record.special] >= 0).all()
    assert np.sum(record.word_of == 2) > 1, "'unbelievable' is split"
    for w, word in enumerate(words):
        assert word_pieces(runner, record, w) == word
    plain = runner.encode(Example(id="p", text=" ".join(words)))
    assert plain["tokens"] == record.tokens, "same tokens as the plain text"
