"""Tests of atlas.corpus.read_corpus (every format, every error), of ``Corpus`` (the same
examples and errors, read by ranges and not held) and of atlas.model.is_punctuation."""

from __future__ import annotations

import json
import unicodedata

import pytest
from conftest import ROOT

from atlas.corpus import Corpus, CorpusError, Example, read_corpus
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
    path = write(tmp_path, "c.txt", ("\n".join(lines) + "\nbad\t\t\tline\n").encode())
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
    with pytest.raises(CorpusError) as lazy:  # a Corpus checks the whole file as it opens
        Corpus(path, limit=limit)
    assert str(lazy.value) == message
    assert "\n" not in message
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


@pytest.mark.parametrize(
    ("data", "where", "words"),
    [
        (b"ok\nA\tB\tC\tD\n", ":2:", "3 TABs"),
        (b"ok\n\nA\t\t\t\tB\n", ":3:", "4 TABs"),
    ],
)
def test_txt_too_many_tabs(tmp_path, data, where, words):
    """A line with more than two TABs (A TAB B TAB label) is an error naming the line."""
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
    assert_error(tmp_path, "is a folder, not a file")  # a folder without an extension too
    (tmp_path / "folder.txt").mkdir()
    assert_error(tmp_path / "folder.txt", "is a folder, not a file")


def test_only_comments_means_no_sentences(tmp_path):
    """A file with only comments and blank lines has no sentences: an error, not an empty list."""
    assert_error(write(tmp_path, "c.txt", b"# one\n\n   \n# two\n"), "no sentences")
    assert_error(write(tmp_path, "e.txt", b""), "no sentences")
    assert_error(write(tmp_path, "c.jsonl", b"\n\n"), "no sentences")


def test_unicode_line_separator_inside_jsonl_string(tmp_path):
    """json.dumps(ensure_ascii=False) writes U+2028 raw inside a string; that is one line."""
    data = (json.dumps({"text": "one\u2028two"}, ensure_ascii=False) + "\n").encode()
    assert read_corpus(write(tmp_path, "c.jsonl", data))[0].text == "one\u2028two"


WORD_LINE = b"1\t%s\t_\t_\t_\t_\t0\troot\t_\t_"


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("name", ["c.txt", "c.jsonl", "c.conllu"])
def test_lf_crlf_and_a_lone_cr_end_a_line(tmp_path, name, end):
    """Old Mac files end lines with CR alone: each line is its own sentence, in every format,
    and line numbers stay right (a CRLF is one line end, not two)."""
    lines = {
        "c.txt": [b"one", b"# two", b"three"],
        "c.jsonl": [b'{"text": "one"}', b"", b'{"text": "three"}'],
        "c.conllu": [WORD_LINE % b"one", b"", WORD_LINE % b"three"],
    }[name]
    examples = read_corpus(write(tmp_path, name, end.join(lines) + end))
    assert [(e.text, e.line) for e in examples] == [("one", 1), ("three", 3)]


def test_a_lone_cr_counts_as_a_line_in_messages(tmp_path):
    """Errors name the line an editor shows, whatever ends the lines before."""
    assert_error(write(tmp_path, "c.txt", b"ok\rok\r\nA\tB\tC\tD\r"), ":3:", "3 TABs")
    assert_error(write(tmp_path, "d.txt", b"ok\rok\r\n\ncaf\xe9\n"), ":4:", "not UTF-8")


def test_only_lf_cr_and_crlf_end_a_line(tmp_path):
    """U+2028 (LINE SEPARATOR) and U+2029 are characters of the line, as in JSON strings:
    str.splitlines() would split there, and on U+0085 and form feeds too."""
    data = "hello\nx\u2028y\n" + json.dumps({"text": "p\u2029q"}, ensure_ascii=False) + "\n"
    examples = read_corpus(write(tmp_path, "c.txt", data.encode()))
    assert [(e.text, e.line) for e in examples][:2] == [("hello", 1), ("x\u2028y", 2)]
    examples = read_corpus(write(tmp_path, "c.jsonl", data.split("\n")[2].encode()))
    assert examples[0].text == "p\u2029q"


@pytest.mark.parametrize("name", ["c.txt", "c.jsonl", "c.conllu"])
def test_a_nul_byte_is_refused_with_its_line_and_column(tmp_path, name):
    """A NUL byte reached the pages raw; it is not text (often a UTF-16 file read as UTF-8)."""
    good = {"c.txt": b"fine", "c.jsonl": b'{"text": "fine"}', "c.conllu": b"# c"}[name]
    message = assert_error(write(tmp_path, name, good + b"\nab\x00c\n"), ":2:", "a NUL byte")
    assert message.endswith(": a NUL byte in column 3: not text (a UTF-16 file? save it as UTF-8)")


def test_a_utf16_file_is_named_as_such(tmp_path):
    """UTF-16 without a byte-order mark decodes as UTF-8 with a NUL after every ASCII letter."""
    assert_error(write(tmp_path, "c.txt", "Hi there\n".encode("utf-16-le")), ":1:", "UTF-16")


@pytest.mark.parametrize(
    ("char", "escaped"),
    [
        ("\x1b", "\\x1b"),
        ("\x0c", "\\x0c"),
        ("\x0b", "\\x0b"),
        ("\x7f", "\\x7f"),
        ("\x85", "\\x85"),
        ("\x9b", "\\x9b"),
    ],
)
def test_control_characters_are_refused_but_tab(tmp_path, char, escaped):
    """Unicode's control characters (C0, DEL, C1 such as NEL U+0085) are refused in a line,
    even in a comment; TAB is the one a line may hold (it splits .txt pairs)."""
    path = write(tmp_path, "c.txt", f"ok\n# a comment {char}\n".encode())
    assert_error(path, ":2:", f"a control character ({escaped}) in column 13", "TAB")
    assert read_corpus(write(tmp_path, "t.txt", b"a\tb\n"))[0].text_b == "b"


def test_limit_stops_before_a_control_character(tmp_path):
    """As with any other error, a bad line after the limit is never reached."""
    path = write(tmp_path, "c.txt", b"one\ntwo\nthr\x00ee\n")
    assert [e.text for e in read_corpus(path, limit=2)] == ["one", "two"]
    assert_error(path, ":3:", "NUL")


@pytest.mark.parametrize("field", ["text", "text_b", "id", "label", "words"])
def test_an_escaped_control_character_in_a_json_string_is_refused(tmp_path, field):
    """JSON spells a NUL or an ESC as an escape; it is refused in every string the record
    gives, while TAB, LF and CR are whitespace there."""
    record = {"text": "a b"}
    bad = "a\u0000b" if field != "words" else ["a\u001b", "b"]
    if field == "words":
        record["text"] = "a\u001b b"
    record[field] = bad
    path = write(tmp_path, "c.jsonl", jsonl(record))
    assert_error(path, ":1:", "a control character (\\x", "in a string")
    text = read_corpus(write(tmp_path, "ok.jsonl", jsonl({"text": "a\tb\nc\r\nd"})))[0].text
    assert text == "a\tb\nc\r\nd"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Hello, world.", ["Hello", ",", "world", "."]),  # no space before punctuation
        ("Hello , world .", ["Hello", ",", "world", "."]),  # a tokenised text
        ("  It's   New York.", ["It", "'s", "New York", "."]),  # a word with a space in it
        ("It's NewYork.", ["It", "'s", "New York", "."]),
        ("東京です", ["東京", "です"]),  # no spaces at all
    ],
)
def test_jsonl_words_that_spell_the_text_are_accepted(tmp_path, text, words):
    """Real tokenised corpora: the words, in order, spell the text once whitespace is removed,
    and the text is kept as written (it is what the pages show)."""
    (example,) = read_corpus(write(tmp_path, "c.jsonl", jsonl({"text": text, "words": words})))
    assert (example.text, example.words) == (text.strip(), tuple(words))


@pytest.mark.parametrize(
    ("text", "words", "message"),
    [
        (
            "The cat sat.",
            ["The", "dog", "sat", "."],
            "word 2, 'dog', where the text has 'cat sat.'",
        ),
        ("The cat sat.", ["The", "cat", "sat"], "the text goes on after the last word ('.')"),
        ("The cat", ["The", "cat", "sat"], "word 3, 'sat', where the text has ''"),
        ("The cat sat.", ["The", "cats", "at."], "word 2, 'cats', where the text has 'cat sat.'"),
        ("The cat.", ["cat", "The", "."], "word 1, 'cat', where the text has 'The cat.'"),
        (
            "Sehr " + "lang " * 20,
            ["Sehr", "kurz"],
            "word 2, 'kurz', where the text has 'lang lang lang lang lang lang…'",
        ),
    ],
)
def test_jsonl_words_that_disagree_with_the_text_are_refused(tmp_path, text, words, message):
    """The page would show the text while the attention is over the words: refused, naming
    the first word that differs (a word may not run across a space of the text)."""
    path = write(tmp_path, "c.jsonl", jsonl({"text": "ok"}, {"text": text, "words": words}))
    found = assert_error(path, ":2:", "'words' do not spell 'text': ", message, "leave 'text' out")
    assert found.endswith("; the words, spaces aside, must be the text (or leave 'text' out)")


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


# ---------------------------------------------------------------------------------------------
# Words: .txt --words, JSONL words/heads/deprels


def test_txt_words_split_on_whitespace(tmp_path):
    """--words splits each line on any whitespace; the text stays the line."""
    path = write(tmp_path, "c.txt", "The  cat\u00a0sat .\n# skip\nnaïve Müller\n".encode())
    examples = read_corpus(path, words=True)
    assert [e.words for e in examples] == [("The", "cat", "sat", "."), ("naïve", "Müller")]
    assert [e.text for e in examples] == ["The  cat\u00a0sat .", "naïve Müller"]
    assert all(e.heads is None and e.deprels is None for e in examples)
    assert read_corpus(path)[0].words is None  # without --words, no words


def test_txt_words_refuses_pairs(tmp_path):
    """A sentence pair with --words is an error naming the line (words are for one sentence)."""
    path = write(tmp_path, "c.txt", b"one\nA\tB\n")
    with pytest.raises(CorpusError) as info:
        read_corpus(path, words=True)
    assert f"{path}:2:" in str(info.value) and "--words" in str(info.value)


def test_jsonl_words_heads_deprels(tmp_path):
    """words, heads and deprels are read as tuples; text defaults to the joined words."""
    data = jsonl(
        {
            "words": ["Müller", "schläft", "."],
            "heads": [2, 0, 2],
            "deprels": ["nsubj", "root", "punct"],
        },
        {"text": "東京 です", "words": ["東京", "です"], "id": "jp"},
        {"text": "plain text"},
    )
    examples = read_corpus(write(tmp_path, "c.jsonl", data))
    assert examples[0] == Example(
        id="1",
        text="Müller schläft .",
        line=1,
        words=("Müller", "schläft", "."),
        heads=(2, 0, 2),
        deprels=("nsubj", "root", "punct"),
    )
    assert examples[1].words == ("東京", "です") and examples[1].heads is None
    assert examples[2].words is None
    assert read_corpus(write(tmp_path, "d.jsonl", data), words=True)[2].words == ("plain", "text")


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ({"words": "a b"}, "'words'"),
        ({"words": []}, "'words'"),
        ({"words": ["a", 1]}, "'words'"),
        ({"words": ["a", ""]}, "'words'"),
        ({"words": ["a "]}, "whitespace"),
        ({"text": "a", "heads": [0]}, "need 'words'"),
        ({"words": ["a"], "deprels": ["root"]}, "need 'heads'"),
        ({"words": ["a", "b"], "heads": [0]}, "1 'heads' for 2 'words'"),
        ({"words": ["a", "b"], "heads": [0, "1"]}, "integers"),
        ({"words": ["a", "b"], "heads": [0, True]}, "integers"),
        ({"words": ["a", "b"], "heads": [0, 3]}, "outside the sentence"),
        ({"words": ["a", "b"], "heads": [0, -1]}, "outside the sentence"),
        ({"words": ["a", "b"], "heads": [0, 2]}, "its own head"),
        ({"words": ["a", "b", "c"], "heads": [0, 3, 2]}, "cycle"),
        ({"words": ["a", "b"], "heads": [0, 1], "deprels": ["root"]}, "1 'deprels' for 2"),
        ({"words": ["a", "b"], "heads": [0, 1], "deprels": ["root", 5]}, "'deprels'"),
        ({"words": ["a"], "text_b": "b"}, "single sentences"),
    ],
)
def test_jsonl_words_errors(tmp_path, record, fragment):
    """Each inconsistent words/heads/deprels record is one error naming the line."""
    data = jsonl({"text": "fine"}, record)
    assert_error(write(tmp_path, "c.jsonl", data), ":2:", fragment)


def test_jsonl_pair_with_words_option(tmp_path):
    """--words on a JSONL pair is refused like on a .txt pair."""
    data = jsonl({"text": "a", "text_b": "b"})
    with pytest.raises(CorpusError, match="single sentences"):
        read_corpus(write(tmp_path, "c.jsonl", data), words=True)


# ---------------------------------------------------------------------------------------------
# .conllu

CONLLU_SAMPLE = """\
# newdoc id = doc1
# sent_id = s1
# text = I don't like naïve Müller.
1	I	I	PRON	PRP	_	3	nsubj	3:nsubj	_
2-3	don't	_	_	_	_	_	_	_	_
2	do	do	AUX	VBP	_	4	aux	4:aux	_
3	n't	not	PART	RB	_	4	advmod	4:advmod	_
4	like	like	VERB	VB	_	0	root	0:root	_
5	naïve	naïve	ADJ	JJ	_	6	amod	6:amod	_
6	Müller	Müller	PROPN	NNP	_	4	obj	4:obj	SpaceAfter=No
6.1	likes	like	VERB	VBZ	_	_	_	4:conj	_
7	.	.	PUNCT	.	_	4	punct	4:punct	_

# a comment without sent_id or text
1	東京	東京	PROPN	NNP	_	0	root	0:root	_
2	's	's	PART	POS	_	1	case	1:case	_
3	Müller	Müller	PROPN	NNP	_	1	nmod:poss	1:nmod:poss	_
"""


def test_conllu_words_heads_deprels(tmp_path):
    """Multi-word tokens and empty nodes are skipped, ids kept; text and id from comments."""
    examples = read_corpus(write(tmp_path, "c.conllu", CONLLU_SAMPLE.encode()))
    assert examples == [
        Example(
            id="s1",
            text="I don't like naïve Müller.",
            line=1,
            words=("I", "do", "n't", "like", "naïve", "Müller", "."),
            heads=(3, 4, 4, 0, 6, 4, 4),
            deprels=("nsubj", "aux", "advmod", "root", "amod", "obj", "punct"),
        ),
        Example(
            id="2",
            text="東京 's Müller",
            line=14,
            words=("東京", "'s", "Müller"),
            heads=(0, 1, 1),
            deprels=("root", "case", "nmod:poss"),
        ),
    ]


def test_conllu_bom_crlf_blank_runs_and_limit(tmp_path):
    """BOM, CRLF and several blank lines between sentences; limit stops before a bad block."""
    data = "\ufeff" + CONLLU_SAMPLE.replace("\n\n", "\n\n \n\n") + "\n1\tbad\n"
    path = write(tmp_path, "c.conllu", data.replace("\n", "\r\n").encode())
    examples = read_corpus(path, limit=2)
    assert [(e.id, e.line) for e in examples] == [("s1", 1), ("2", 16)]
    assert examples[1].words == ("東京", "'s", "Müller")
    assert_error(path, ":21:", "2 TAB-separated columns")


def test_conllu_real_ud_sample():
    """The shipped UD EWT sample: 300 sentences, each with a tree over its words."""
    examples = read_corpus(ROOT / "examples" / "ud-ewt-sample.conllu")
    assert len(examples) == 300
    first = examples[0]
    assert first.text == "From the AP comes this story :"
    assert first.words == ("From", "the", "AP", "comes", "this", "story", ":")
    assert first.heads == (3, 3, 4, 0, 6, 4, 4)
    assert first.deprels == ("case", "det", "obl", "root", "det", "nsubj", "punct")
    assert all(len(e.words) == len(e.heads) == len(e.deprels) for e in examples)


WORD = "1\tA\ta\tX\t_\t_\t0\troot\t_\t_\n"


@pytest.mark.parametrize(
    ("block", "where", "fragment"),
    [
        ("1\tA\ta\tX\t_\t_\t0\troot\t_\t_\n2\tB\tb\tX\t_\t_\t99\tdep\t_\t_\n", ":5:", "head 99"),
        ("1\tA\ta\tX\t_\t_\t0\troot\n", ":4:", "8 TAB-separated columns"),
        ("1\tA\ta\tX\t_\n", ":4:", "5 TAB-separated columns"),
        ("1\tA\ta\tX\t_\t_\tx\troot\t_\t_\n", ":4:", "'x'"),
        ("1\tA\ta\tX\t_\t_\t_\troot\t_\t_\n", ":4:", "head '_'"),
        ("1\tA\ta\tX\t_\t_\t1\troot\t_\t_\n", ":4:", "its own head"),
        ("x\tA\ta\tX\t_\t_\t0\troot\t_\t_\n", ":4:", "'x'"),
        ("1\tA\ta\tX\t_\t_\t0\troot\t_\t_\n3\tB\tb\tX\t_\t_\t1\tdep\t_\t_\n", ":5:", "word id 3"),
        ("# sent_id = e\n1-2\tAB\t_\t_\t_\t_\t_\t_\t_\t_\n", ":4:", "no words"),
        ("# only a comment\n", ":4:", "no words"),
        ("1\t\ta\tX\t_\t_\t0\troot\t_\t_\n", ":4:", "empty column"),
        ("1\tA  B\ta\tX\t_\t_\t0\troot\t_\t_\n", ":4:", "two spaces"),
    ],
)
def test_conllu_errors(tmp_path, block, where, fragment):
    """A malformed sentence (after a good one) is one error naming the file and its line."""
    data = "# text = ok\n" + WORD + "\n" + block
    assert_error(write(tmp_path, "c.conllu", data.encode()), where, fragment)


# ---------------------------------------------------------------------------------------------
# Labels: a third TAB column in .txt, "label" in .jsonl


def test_txt_labels_in_a_third_column(tmp_path):
    """A TAB B TAB label is a labelled pair; A TAB TAB label a labelled single sentence; lines
    without a third column have no label."""
    data = "The cat sat.\t\tpositive\nIs it?\tIt is.\tyes\nNo label here.\nA\tB\n"
    examples = read_corpus(write(tmp_path, "c.txt", data.encode()))
    assert [(e.text, e.text_b, e.label) for e in examples] == [
        ("The cat sat.", None, "positive"),
        ("Is it?", "It is.", "yes"),
        ("No label here.", None, None),
        ("A", "B", None),
    ]


def test_txt_label_with_words(tmp_path):
    """A labelled single sentence keeps its words with --words (the label is not a word)."""
    examples = read_corpus(write(tmp_path, "c.txt", b"The cat sat .\t\tNOUNY\n"), words=True)
    assert examples[0].words == ("The", "cat", "sat", ".") and examples[0].label == "NOUNY"


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"A sentence.\t\t\n", "empty label"),
        (b"A sentence.\tB\t  \n", "empty label"),
        (b"\t\tpositive\n", "a label with no sentence"),
        (b"\tB\tpositive\n", "a label with no sentence"),
    ],
)
def test_txt_label_errors(tmp_path, line, fragment):
    """An empty label or a label with no sentence is an error naming the line."""
    assert_error(write(tmp_path, "c.txt", b"ok\n" + line), ":2:", fragment)


def test_jsonl_labels(tmp_path):
    """A "label" is a string (trimmed) or an integer class id (read as its digits), or absent."""
    data = jsonl(
        {"text": "a", "label": " positive "},
        {"text": "b", "text_b": "c", "label": 2},
        {"text": "d"},
        {"words": ["e", "f"], "label": "x"},
    )
    examples = read_corpus(write(tmp_path, "c.jsonl", data))
    assert [e.label for e in examples] == ["positive", "2", None, "x"]


@pytest.mark.parametrize("label", ["", "  ", 1.5, True, ["a"], {"a": 1}])
def test_jsonl_label_errors(tmp_path, label):
    """A label that is not a non-empty string or an integer is refused, naming the line."""
    data = jsonl({"text": "ok"}, {"text": "a", "label": label})
    assert_error(write(tmp_path, "c.jsonl", data), ":2:", "'label' must be")


# ---------------------------------------------------------------------------------------------
# Corpus: the examples of read_corpus, read again by ranges, not held

SAMPLES = {
    "bom-crlf.txt": b"\xef\xbb\xbf# c\r\n\r\nOne.\r\nTwo \xc3\xa9t\xc3\xa9.\tPair.\r\n"
    b"\rThree\t\tgold\n",
    "lone-cr.txt": b"A.\rB.\r\r# no\rC. \xe2\x80\xa8 D.",
    "words.jsonl": jsonl(
        {"text": "Hello , world .", "words": ["Hello", ",", "world", "."], "heads": [3, 1, 0, 3]},
        {"text": "A", "text_b": "B", "label": 2, "id": "x"},
        {"text": "\u00e9l\u00e8ve \u2028 ok"},
    ),
    "tree.conllu": (ROOT / "examples" / "ud-ewt-sample.conllu").read_bytes(),
}


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("limit", [None, 2])
@pytest.mark.parametrize("block", [1, 2, 256])
def test_a_corpus_reads_the_examples_read_corpus_reads(tmp_path, monkeypatch, name, limit, block):
    """Every example, in order and by index (from either end, by slice), equal to
    read_corpus's: ids that count, line numbers, the text after a BOM, CR, CRLF and a lone CR
    (a range starts at any line), a U+2028 inside a line; with a limit, and read in ranges of
    one, two or many examples."""
    monkeypatch.setattr(Corpus, "BLOCK", block)
    path = write(tmp_path, name, SAMPLES[name])
    words = name.startswith("lone")
    examples = read_corpus(path, limit=limit, words=words)
    corpus = Corpus(path, limit=limit, words=words)
    assert len(corpus) == len(examples) > 1
    assert list(corpus) == examples
    order = [len(examples) - 1, 0, *range(len(examples))]
    assert [corpus[i] for i in order] == [examples[i] for i in order]
    assert corpus[-1] == examples[-1] and corpus[1:3] == examples[1:3]
    assert corpus.pairs == sum(e.text_b is not None for e in examples)
    assert corpus.labelled == any(e.label is not None for e in examples)
    with pytest.raises(IndexError):
        corpus[len(examples)]


def test_a_corpus_holds_one_range_of_examples(tmp_path, monkeypatch):
    """Reading a corpus through, or at random, keeps one range of ``BLOCK`` examples alive at
    a time, not the corpus (what a sharded build's driver relies on)."""
    import gc
    import weakref

    monkeypatch.setattr(Corpus, "BLOCK", 3)
    path = write(tmp_path, "c.txt", "".join(f"Sentence {i}.\n" for i in range(20)).encode())
    corpus = Corpus(path)
    seen = [weakref.ref(e) for e in corpus]
    seen += [weakref.ref(corpus[i]) for i in (17, 2, 9)]
    gc.collect()
    assert sum(ref() is not None for ref in seen) <= 3


def test_a_corpus_refuses_a_file_changed_under_it(tmp_path):
    path = write(tmp_path, "c.txt", b"One.\nTwo.\n")
    corpus = Corpus(path)
    path.write_bytes(b"Uno.\nDos.\nTres.\n")
    with pytest.raises(CorpusError, match="changed while the build was reading it"):
        corpus[1]
