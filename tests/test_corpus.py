"""Tests of atlas.corpus.read_corpus (both formats, every error) and atlas.model.is_punctuation."""

from __future__ import annotations

import json
import unicodedata

import pytest

from atlas.corpus import CorpusError, Example, read_corpus
from atlas.model import is_punctuation


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def jsonl(*objects) -> bytes:
    return "".join(json.dumps(obj) + "\n" for obj in objects).encode()


# ---------------------------------------------------------------------------------------------
# .txt


def test_txt_comments_blanks_pairs_whitespace(tmp_path):
    """Comments and blank lines are skipped, a TAB splits a pair, whitespace is trimmed."""
    data = (
        b"# a comment\n"
        b"\n"
        b"  The cat sat.  \n"
        b"   # an indented comment\n"
        b"\t \n"
        b"Premise here. \t  Hypothesis there.\n"
        b"Last one"  # no final newline
    )
    examples = read_corpus(write(tmp_path, "c.txt", data))
    assert examples == [
        Example(id="1", text="The cat sat.", line=3),
        Example(id="2", text="Premise here.", text_b="Hypothesis there.", line=6),
        Example(id="3", text="Last one", line=7),
    ]


def test_txt_bom_and_crlf(tmp_path):
    """A UTF-8 BOM is dropped and CRLF line ends are handled; line numbers stay right."""
    data = "\ufeff# café corpus\r\nÜber alles.\r\n\r\nnaïve\tрусский\r\n".encode()
    examples = read_corpus(write(tmp_path, "c.txt", data))
    assert examples == [
        Example(id="1", text="Über alles.", line=2),
        Example(id="2", text="naïve", text_b="русский", line=4),
    ]
    assert not examples[0].text.startswith("\ufeff")


def test_txt_bom_on_first_sentence(tmp_path):
    """The BOM is not part of the first sentence, and '#' after a BOM is still a comment."""
    examples = read_corpus(write(tmp_path, "c.txt", b"\xef\xbb\xbfHello\n"))
    assert examples[0].text == "Hello"
    examples = read_corpus(write(tmp_path, "d.txt", b"\xef\xbb\xbf# comment\nHi\n"))
    assert [(e.text, e.line) for e in examples] == [("Hi", 2)]


def test_txt_ids_count_in_order_and_limit(tmp_path):
    """Ids are '1', '2', … in order; limit stops reading before later lines (even bad ones)."""
    lines = [f"sentence {i}" for i in range(1, 6)]
    path = write(tmp_path, "c.txt", ("\n".join(lines) + "\nbad\t\tline\n").encode())
    examples = read_corpus(path, limit=3)
    assert [e.id for e in examples] == ["1", "2", "3"]
    assert [e.text for e in examples] == lines[:3]
    assert [e.line for e in examples] == [1, 2, 3]
    assert len(read_corpus(path, limit=5)) == 5
    with pytest.raises(CorpusError):
        read_corpus(path)  # without a limit the bad line is reached


# ---------------------------------------------------------------------------------------------
# .jsonl


def test_jsonl_fields_ids_and_blank_lines(tmp_path):
    """text, text_b and id (string or int) are read; a missing id becomes the record counter."""
    data = (
        jsonl({"text": "  One.  ", "id": "a"})
        + b"\n   \n"
        + jsonl({"text": "Two.", "text_b": " Pair. ", "id": 7})
        + jsonl({"text": "Three.", "extra": [1, 2]})
    )
    examples = read_corpus(write(tmp_path, "c.jsonl", data))
    assert examples == [
        Example(id="a", text="One.", line=1),
        Example(id="7", text="Two.", text_b="Pair.", line=4),
        Example(id="3", text="Three.", line=5),
    ]


def test_jsonl_bom_crlf_and_limit(tmp_path):
    """JSONL with a BOM and CRLF line ends; limit applies."""
    data = b"\xef\xbb\xbf" + jsonl({"text": "x"}, {"text": "y"}, {"text": "z"}).replace(
        b"\n", b"\r\n"
    )
    examples = read_corpus(write(tmp_path, "c.JSONL", data), limit=2)
    assert [(e.id, e.text, e.line) for e in examples] == [("1", "x", 1), ("2", "y", 2)]


# ---------------------------------------------------------------------------------------------
# Errors: one line, naming the file and (where there is one) the line.


def assert_error(path, *fragments: str, limit=None):
    with pytest.raises(CorpusError) as info:
        read_corpus(path, limit=limit)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


@pytest.mark.parametrize(
    ("data", "where", "words"),
    [
        (b"ok\nA\tB\tC\n", ":2:", "2 TABs"),
        (b"ok\n\nA\t\t\tB\n", ":3:", "3 TABs"),
    ],
)
def test_txt_too_many_tabs(tmp_path, data, where, words):
    """A line with more than one TAB is an error naming the line."""
    assert_error(write(tmp_path, "c.txt", data), where, words)


@pytest.mark.parametrize("line", [b"A sentence.\t\n", b"\tA sentence.\n", b"A sentence.\t  \n"])
def test_txt_empty_side_of_pair(tmp_path, line):
    """A pair with an empty side is an error, not a silent single sentence."""
    assert_error(write(tmp_path, "c.txt", b"ok\n" + line), ":2:", "empty side")


@pytest.mark.parametrize(
    ("data", "where", "words"),
    [
        (b'{"text": "ok"}\n{"text": "x",}\n', ":2:", "invalid JSON"),
        (b'{"text": "ok"}\n\n["text"]\n', ":3:", "JSON object"),
        (b'"just a string"\n', ":1:", "JSON object"),
        (b'{"text_b": "no text"}\n', ":1:", "'text'"),
        (b'{"text": "   "}\n', ":1:", "'text'"),
        (b'{"text": 5}\n', ":1:", "'text'"),
        (b'{"text": "a", "text_b": ""}\n', ":1:", "'text_b'"),
        (b'{"text": "a", "id": 1.5}\n', ":1:", "'id'"),
        (b'{"text": "a", "id": "x"}\n{"text": "b"}\n{"text": "c", "id": "x"}\n', ":3:", "'x'"),
        (b'{"text": "a", "id": 4}\n{"text": "b", "id": "4"}\n', ":2:", "duplicate id"),
    ],
)
def test_jsonl_errors(tmp_path, data, where, words):
    """Each malformed JSONL line gives an error naming the file and the line."""
    assert_error(write(tmp_path, "c.jsonl", data), where, words)


def test_duplicate_id_names_both_lines(tmp_path):
    """A duplicate id names the line it repeats on and the line it was first used."""
    data = jsonl({"text": "a", "id": "s1"}, {"text": "b"}, {"text": "c", "id": "s1"})
    message = assert_error(write(tmp_path, "c.jsonl", data), ":3:", "duplicate id", "line 1")
    assert "'s1'" in message


def test_non_utf8_bytes(tmp_path):
    """Latin-1 bytes are rejected with a one-line message naming the file and the byte."""
    assert_error(write(tmp_path, "c.txt", b"fine\ncaf\xe9\n"), "not UTF-8", "byte 8")


def test_non_utf8_byte_offset_counts_the_bom(tmp_path):
    """The byte offset in the message is the offset in the file, BOM included."""
    assert_error(write(tmp_path, "c.txt", b"\xef\xbb\xbffine\ncaf\xe9\n"), ":2:", "byte 11")


def test_unknown_extension(tmp_path):
    """A .csv input is refused, naming the formats that are accepted."""
    assert_error(write(tmp_path, "c.csv", b"a,b\n"), ".csv", ".txt", ".jsonl")
    assert_error(write(tmp_path, "noext", b"a\n"), "no extension")


def test_missing_file(tmp_path):
    """A path that does not exist gives 'no such file'."""
    assert_error(tmp_path / "absent.txt", "no such file")
    assert_error(tmp_path, "unsupported")  # a directory has no supported extension
    (tmp_path / "folder.txt").mkdir()
    assert_error(tmp_path / "folder.txt", "no such file")


def test_only_comments_means_no_sentences(tmp_path):
    """A file with only comments and blank lines has no sentences: an error, not an empty list."""
    assert_error(write(tmp_path, "c.txt", b"# one\n\n   \n# two\n"), "no sentences")
    assert_error(write(tmp_path, "e.txt", b""), "no sentences")
    assert_error(write(tmp_path, "c.jsonl", b"\n\n"), "no sentences")


def test_unicode_line_separator_inside_jsonl_string(tmp_path):
    """json.dumps(ensure_ascii=False) writes U+2028 raw inside a string; that is one line."""
    data = (json.dumps({"text": "one\u2028two"}, ensure_ascii=False) + "\n").encode()
    assert read_corpus(write(tmp_path, "c.jsonl", data))[0].text == "one\u2028two"


def test_only_lf_ends_a_line(tmp_path):
    """A form feed inside a .txt line does not split it; line numbers stay right."""
    examples = read_corpus(write(tmp_path, "c.txt", b"hello\nx\x0cy\nlast\n"))
    assert [e.text for e in examples] == ["hello", "x\x0cy", "last"]
    assert [e.line for e in examples] == [1, 2, 3]


def test_boolean_id_is_refused(tmp_path):
    """JSON true is not an id, although Python's bool is an int."""
    assert_error(write(tmp_path, "c.jsonl", b'{"text": "a", "id": true}\n'), ":1:", "'id'")


# ---------------------------------------------------------------------------------------------
# is_punctuation


@pytest.mark.parametrize("token", [".", "##.", "Ġ,", "▁!", "…", "«", "--", "?!", ".</w>", "##)"])
def test_is_punctuation_true(token):
    """Tokens made only of Unicode punctuation, after a subword marker, are punctuation."""
    assert is_punctuation(token)


@pytest.mark.parametrize("token", ["a", "##s", "[SEP]", "Ġ", "▁", "##", "", "1.5", "$", "a.", "+"])
def test_is_punctuation_false(token):
    """Words, special tokens, bare markers, numbers and symbols are not punctuation."""
    assert not is_punctuation(token)


def test_currency_and_math_are_symbols_not_punctuation():
    """'$' and '+' are Unicode symbols (Sc, Sm), so they are not punctuation."""
    assert unicodedata.category("$") == "Sc"
    assert unicodedata.category("+") == "Sm"
    assert unicodedata.category("…") == "Po"
