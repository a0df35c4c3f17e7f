"""How a token reads on the pages: the one rule, used by the site's templates and written into
each sentence's data script (``shown``, ``joins``), so the pages' scripts only read it.

A tokenizer's pieces carry markers a reader does not expect: WordPiece marks a piece that
continues a word (``ko ##ern ##er``); byte-level BPE (GPT-2, RoBERTa) marks a piece that starts
one with ``Ġ`` and spells bytes as other characters (``Ã©`` for ``é``); SentencePiece marks a
word start with ``▁``; some BPE vocabularies mark a word's end with ``</w>``. Each token is shown
as its text without the marker, with ``joins`` true where it continues the word of the token
before (the pages draw it glued to that piece, or after a faint joiner where tokens stand in a
column). Special tokens stay as they are. The raw token is kept for hover.

The scheme is read off the sentence's own tokens (a tokenizer's vocabulary is not in the
atlas): ``##`` anywhere means WordPiece, else ``▁`` SentencePiece, else ``Ġ`` byte-level BPE,
else ``</w>`` end-of-word BPE; a sentence with none of them (words of one piece each) shows
every token as a word.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from functools import cache
from typing import NamedTuple

BLANK = "␣"  # a piece that is only a space (or other whitespace) once its marker is read
PART = "◌"  # a byte-level piece that holds only part of a character (the rest is in the next)


class Shown(NamedTuple):
    text: str  # what the page shows
    joins: bool  # continues the word of the token before
    raw: str  # the token as the tokenizer wrote it


@cache
def _byte_of() -> dict[str, int]:
    """GPT-2's byte-to-character table, inverted: each printable byte stands for itself, the
    others (space, control bytes, ...) for characters from U+0100 up (space is ``Ġ``)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def _byte_texts(tokens: Sequence[str]) -> list[str]:
    """Byte-level pieces (markers already stripped) as text: ``Ã©`` → ``é``. A character whose
    bytes are split across pieces goes to the piece holding its last byte; a piece left
    holding only part of a character reads as PART. A piece with characters outside the byte
    table stays as it is."""
    table = _byte_of()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out = []
    for k, piece in enumerate(tokens):
        if not all(ch in table for ch in piece):
            out.append(piece)
            decoder.reset()
            continue
        text = decoder.decode(bytes(table[ch] for ch in piece), final=k == len(tokens) - 1)
        out.append(text if text or not piece else PART)
    return out


def scheme(tokens: Sequence[str], special: Sequence[int | bool]) -> str:
    """ "wordpiece", "sentencepiece", "bytelevel", "endofword" or "" (no marker seen)."""
    ordinary = [t for t, s in zip(tokens, special, strict=True) if not s]
    if any(t.startswith("##") and len(t) > 2 for t in ordinary):
        return "wordpiece"
    if any(t.startswith("▁") for t in ordinary):
        return "sentencepiece"
    if any(t.startswith("Ġ") for t in ordinary):
        return "bytelevel"
    if any(t.endswith("</w>") for t in ordinary):
        return "endofword"
    return ""


def shown_tokens(tokens: Sequence[str], special: Sequence[int | bool]) -> list[Shown]:
    """Each token as the pages show it (module docstring). A marker alone (a space the next
    piece did not take) reads as BLANK, and the piece after it starts a word."""
    kind = scheme(tokens, special)
    texts = list(tokens)
    if kind == "bytelevel":
        # Decoded a run of ordinary tokens at a time: a character may span pieces.
        run: list[int] = []
        for k in [*range(len(tokens)), None]:
            if k is not None and not special[k]:
                run.append(k)
                continue
            stripped = [tokens[r].removeprefix("Ġ") for r in run]
            for at, text in zip(run, _byte_texts(stripped), strict=True):
                texts[at] = text
            run = []
    out: list[Shown] = []
    after_piece = False  # the token before is an ordinary one, not a marker alone
    word_open = False  # ... and, with "</w>" markers, did not end its word
    for token, text, is_special in zip(tokens, texts, special, strict=True):
        joins = False
        if is_special:
            out.append(Shown(token, False, token))
            after_piece = word_open = False
            continue
        if kind == "wordpiece" and token.startswith("##") and len(token) > 2:
            text, joins = token[2:], after_piece
        elif kind == "sentencepiece":
            text, joins = token.removeprefix("▁"), after_piece and not token.startswith("▁")
        elif kind == "bytelevel":
            joins = after_piece and not token.startswith("Ġ")
        elif kind == "endofword":
            text, joins = token.removesuffix("</w>"), word_open
        blank = not text.strip()
        after_piece, word_open = not blank, not blank and not token.endswith("</w>")
        out.append(Shown(BLANK if blank else text, joins, token))
    return out


def later_pieces(shown: Sequence[Shown], word_of: Sequence[int] | None = None) -> list[bool]:
    """Whether each token continues the word of the token before: by the input's words where
    they are known (``word_of``, -1 for special tokens), since a token tagger is trained on
    each word's first piece whatever the tokenizer split ("W.H.S." is one word of six pieces,
    none with a marker); else by the pieces' own markers (``joins``)."""
    if word_of is None:
        return [s.joins for s in shown]
    return [t > 0 and w >= 0 and w == word_of[t - 1] for t, w in enumerate(word_of)]


def join(shown: Sequence[Shown]) -> str:
    """Shown tokens back to text, near enough to show (an answer span): pieces glued to the
    word they continue, words separated by one space."""
    text = "".join(("" if s.joins else " ") + s.text for s in shown)
    return " ".join(text.replace(BLANK, " ").replace(PART, "").split())
