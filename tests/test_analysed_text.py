"""A truncated sentence keeps the text its tokens cover, with the cut marked (issue 17, item 14).

One 1 MB line made an 84 MB site: the whole text was on every head page that showed the
sentence, though only its first 512 tokens were analysed. Now atlas.json and the pages hold the
analysed text: up to the end of the last kept token of each side truncation cut, named in
``Sentence.cut``, and the pages mark the cut with an element of its own.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest
from conftest import ROOT

import atlas
from atlas.cli import main
from atlas.corpus import Example
from atlas.model import Runner
from atlas.pipeline import analysed_text
from atlas.result import load

# 2,000 short clauses: far past the tiny models' 64 tokens, ~50 kB of text.
LONG = " ".join(f"Clause {i}, the cat." for i in range(2000))
# A pair far past the limit on both sides; not LONG: the tokenizers library combines every
# overflowing window of one side with every one of the other (quadratic memory).
PAIR_SIDE = LONG[:3000]
MARK = "… [cut at 64 tokens]"


def cut_example(runner: Runner, example: Example) -> dict:
    return analysed_text(example, runner.encode(example)["kept_chars"])


@pytest.mark.parametrize("family", ["bert", "roberta", "gpt2"])
def test_the_analysed_text_is_what_the_kept_tokens_spell(tiny_model, family):
    """Tokenised again, the cut text gives exactly the tokens the model saw: no token more, no
    token less (WordPiece, byte-level BPE with and without special tokens)."""
    runner = Runner(str(tiny_model(family)), device="cpu")
    example = Example(id="1", text=LONG)
    encoded = runner.encode(example)
    kept = [t for t, s in zip(encoded["tokens"], encoded["special"], strict=True) if not s]
    text = analysed_text(example, encoded["kept_chars"])
    assert text["cut"] == ["text"] and LONG.startswith(text["text"])
    again = runner.tokenizer(text["text"], add_special_tokens=False)["input_ids"]
    assert runner.tokenizer.convert_ids_to_tokens(again) == kept
    assert len(text["text"]) < 500


def test_a_pair_is_cut_on_the_sides_truncation_cut(tiny_model):
    """Longest first: a long passage after a short question is cut, the question is whole;
    two long sides are both cut, each where its own last kept token ends."""
    runner = Runner(str(tiny_model("bert")), device="cpu")
    short = cut_example(runner, Example(id="q", text="Where is the cat?", text_b=PAIR_SIDE))
    assert short["cut"] == ["text_b"] and short["text"] == "Where is the cat?"
    assert LONG.startswith(short["text_b"])
    assert len(runner.tokenizer(short["text"], short["text_b"])["input_ids"]) == runner.max_length
    both = cut_example(runner, Example(id="b", text=PAIR_SIDE, text_b=PAIR_SIDE))
    assert both["cut"] == ["text", "text_b"]
    assert LONG.startswith(both["text"]) and LONG.startswith(both["text_b"])
    tokens = runner.tokenizer(both["text"], both["text_b"])["input_ids"]
    assert len(tokens) == runner.max_length


@pytest.mark.parametrize("family", ["bert", "roberta", "gpt2"])
def test_a_long_pair_is_cut_before_truncation_to_the_same_tokens(tiny_model, family):
    """bounded_pair cuts both sides of a long pair before the tokenizer truncates it: the
    tokens are those of truncating the whole pair, whichever side is longer, by how much."""
    runner = Runner(str(tiny_model(family)), device="cpu")
    for length_a in range(100, 3200, 230):
        for length_b in (90, 600, length_a, length_a + 1, 2900):
            a, b = LONG[:length_a], LONG[7 : 7 + length_b]
            whole = runner.tokenizer(a, b, truncation="longest_first", max_length=64)
            assert runner.encode(Example(id="p", text=a, text_b=b))["ids"] == whole["input_ids"]


def test_a_pair_of_two_long_sides_fits_in_memory(tiny_model):
    """Two 50 kB sides: the tokenizers library made every pair of overflowing windows, which
    took more memory than the machine had; under a 6 GB address space it now takes little."""
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))\n"
        "from atlas.corpus import Example\n"
        "from atlas.model import Runner\n"
        "text = open(sys.argv[2], encoding='utf-8').read()\n"
        "runner = Runner(sys.argv[1], device='cpu')\n"
        "encoded = runner.encode(Example(id='p', text=text, text_b=text))\n"
        "print(len(encoded['ids']), encoded['kept_chars'])\n"
    )
    source = pathlib.Path(tempfile.mkdtemp()) / "long.txt"
    source.write_text(LONG, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", script, str(tiny_model("bert")), str(source)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "64"


def test_words_are_cut_in_their_text(tiny_model):
    """Given as words, the text is cut after the last kept word's piece, in the text as written
    (no space before the commas), not in the words joined by spaces."""
    runner = Runner(str(tiny_model("bert")), device="cpu")
    words = tuple(LONG.replace(",", " ,").replace(".", " .").split())
    example = Example(id="w", text=LONG, words=words)
    encoded = runner.encode(example)
    last = max(w for w in encoded["word_of"] if w >= 0)
    text = analysed_text(example, encoded["kept_chars"])
    assert text["cut"] == ["text"] and LONG.startswith(text["text"])
    assert "".join(text["text"].split()) == "".join(words[: last + 1])


def test_a_sentence_that_fits_is_whole(tiny_model):
    runner = Runner(str(tiny_model("bert")), device="cpu")
    example = Example(id="s", text="The cat sat.", text_b="Yes.")
    assert runner.encode(example)["kept_chars"] is None
    assert cut_example(runner, example) == {"text": "The cat sat.", "text_b": "Yes.", "cut": []}


def test_when_the_words_do_not_spell_the_text_it_stays_whole(tiny_model):
    """A CoNLL-U sentence with a multi-word token ("du" = "de le") has no place in its text
    for a word's end: the text is kept whole rather than cut at a guess."""
    runner = Runner(str(tiny_model("bert")), device="cpu")
    words = ("du", *["de", "le"] * 40)
    example = Example(id="c", text=" ".join(("du", *["du"] * 40)), words=words)
    encoded = runner.encode(example)
    assert encoded["truncated"] and encoded["kept_chars"] is None
    assert cut_example(runner, example)["cut"] == []


@pytest.fixture(scope="module")
def long_site(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    source = folder / "in.txt"
    source.write_text(f"A short sentence.\n{LONG}\nAnother short one.\n", encoding="utf-8")
    out = folder / "site"
    assert main(["build", str(source), "-o", str(out), "-q", "--model",
                 str(tiny_model("bert"))]) == 0  # fmt: skip
    return out


def test_no_page_holds_more_than_the_analysed_text(long_site):
    """The text past the cut is in no file of the site; the part analysed is, and each page
    that shows it marks the cut in an element of its own, after the text."""
    sentence = json.loads((long_site / "atlas.json").read_text())["sentences"][1]
    assert sentence["cut"] == ["text"] and sentence["truncated"] is True
    analysed, rest = sentence["text"], LONG[len(sentence["text"]) :]
    assert LONG.startswith(analysed) and len(rest) > 40_000
    tail = rest[100:160]
    for path in long_site.rglob("*"):
        if path.is_file():
            assert tail not in path.read_text(encoding="utf-8", errors="replace"), path
    page = (long_site / "sentences" / "0002.html").read_text()
    assert f'{analysed}</span> <span class="cut" title=' in page and MARK in page
    end, marked = f"{analysed[-30:]}</span>", f'{analysed[-30:]}</span> <span class="cut"'
    shown = [p.read_text() for p in long_site.rglob("*.html") if end in p.read_text()]
    assert len(shown) > 5 and all(page.count(end) == page.count(marked) for page in shown)
    assert MARK not in (long_site / "sentences" / "0001.html").read_text()


def test_the_analysed_text_round_trips(long_site, tmp_path):
    """atlas.json with ``cut`` is valid against its schema and renders the same pages."""
    atlas = load(long_site)
    assert [s.cut for s in atlas.sentences] == [[], ["text"], []]
    out = tmp_path / "again"
    assert main(["render", str(long_site), "-o", str(out), "-q"]) == 0
    for name in ("sentences/0002.html", "heads/L01-H01.html", "atlas.json"):
        assert (out / name).read_bytes() == (long_site / name).read_bytes()


def test_the_build_log_says_so_once(tiny_model, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="atlas")  # pytest's handler on "atlas" itself
    source = tmp_path / "in.txt"
    source.write_text(f"{LONG}\n{LONG} again\nShort.\n", encoding="utf-8")
    atlas.build(source, model=str(tiny_model("bert")), device="cpu", views=0, importance=0)
    said = [r.getMessage() for r in caplog.records if "[cut at" in r.getMessage()]
    assert said == [
        "pages and atlas.json keep of each truncated sentence only the text its 64 tokens "
        f"cover, marked '{MARK}'"
    ]
