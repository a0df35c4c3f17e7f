"""Word-level attention (Clark et al. 2019, §4.1): attention between words instead of tokens.

Units: walk the tokens in order; a token of no word (a special token) is a unit of its own; a
token whose word differs from the previous token's starts a new unit; otherwise it joins the
current one. Attention TO a unit is the sum over its tokens' columns; attention FROM a unit is
the mean over its tokens' rows, so each row still sums to 1. The pages' scripts (atlas-data.js)
compute the same units from the same ``wordOf`` list.
"""

from __future__ import annotations

import numpy as np

from .. import pieces
from ..model import Record

# The longest example whose word-level attention is taken by matrix products (``word_level``).
MATMUL_TOKENS = 512


def units(word_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit of each token [n], word of each unit [u] with -1 for special-token units)."""
    unit_of = np.empty(len(word_of), dtype=np.int64)
    words: list[int] = []
    previous = None
    for t, w in enumerate(int(x) for x in word_of):
        if w < 0 or w != previous:
            words.append(w)
        unit_of[t] = len(words) - 1
        previous = w if w >= 0 else None
    return unit_of, np.array(words, dtype=np.int64)


def word_level(attention: np.ndarray, unit_of: np.ndarray) -> np.ndarray:
    """[..., n, n] token attention to [..., u, u] unit attention: TO = sum, FROM = mean.

    Up to ``MATMUL_TOKENS`` tokens, two matrix products with the 0/1 membership matrix (n³
    work, what the atlas has always computed); past it, sums over each unit's run of tokens
    (units are runs of consecutive tokens: n² work, equal but for rounding)."""
    n = attention.shape[-1]
    if n > MATMUL_TOKENS:
        starts = np.flatnonzero(np.r_[True, unit_of[1:] != unit_of[:-1]])
        to = np.add.reduceat(np.asarray(attention, dtype=np.float64), starts, axis=-1)
        sizes = np.diff(np.r_[starts, n])
        return np.add.reduceat(to, starts, axis=-2) / sizes[:, None]
    count = int(unit_of.max()) + 1 if n else 0
    member = np.zeros((n, count))
    member[np.arange(n), unit_of] = 1.0
    mean_rows = member.T / member.sum(0)[:, None]  # [u, n]
    return mean_rows @ np.asarray(attention, dtype=np.float64) @ member


def record_words(record: Record) -> tuple[np.ndarray, np.ndarray]:
    """(unit of each token, word of each unit) of a record with words, computed once per record
    and shared by every analysis that asks."""
    return record.derived("words", lambda: units(record.word_of))


def layer_words(record: Record, layer: int, attention: np.ndarray) -> np.ndarray:
    """One layer's word-level attention [H, u, u] of a record with words (``record_words``),
    computed once per layer and shared."""
    unit_of, _ = record_words(record)
    return record.derived("words", lambda: word_level(attention, unit_of), layer=layer)


def joined_pieces(
    tokens: list[str], special: np.ndarray, punct: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """Words made by joining a tokenizer's pieces, for text given without words: (the words,
    each token's word with -1 for special tokens). The pages' one rule of how tokens read
    (``atlas.pieces``: markers removed, bytes decoded, a piece that continues a word joined to
    it), with one addition for counting: where the tokens mark word starts (``Ġ``, ``▁``),
    punctuation stays a word of its own (``Ġdon 't`` → ``don't``, but ``Ġsat ,`` → ``sat``,
    ``,``), as WordPiece already splits it."""
    shown = pieces.shown_tokens(tokens, special)
    split_punct = pieces.scheme(tokens, special) in ("bytelevel", "sentencepiece")
    words: list[str] = []
    word_of = np.full(len(tokens), -1, dtype=np.int32)
    for t, token in enumerate(shown):
        if special[t]:
            continue
        text = "" if token.text in (pieces.BLANK, pieces.PART) else token.text
        joins = token.joins and not (split_punct and (punct[t] or punct[t - 1]))
        if joins and words:
            words[-1] += text
        else:
            words.append(text)
        word_of[t] = len(words) - 1
    return words, word_of


def record_units(record: Record) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(words, word of each unit with -1 for special-token units, unit of each token) of any
    record: its given words where it has them (``record_words``), otherwise words joined from
    its pieces (``joined_pieces``)."""
    if record.words is not None and record.word_of is not None:
        unit_of, unit_word = record_words(record)
        return record.words, unit_word, unit_of

    def compute():
        words, word_of = joined_pieces(record.tokens, record.special, record.punct)
        unit_of, unit_word = units(word_of)
        return words, unit_word, unit_of

    return record.derived("pieces", compute)


def layer_units(record: Record, layer: int, attention: np.ndarray) -> np.ndarray:
    """One layer's attention [H, u, u] between the units of ``record_units``, computed once per
    layer and shared."""
    if record.words is not None and record.word_of is not None:
        return layer_words(record, layer, attention)
    _, _, unit_of = record_units(record)
    return record.derived("pieces", lambda: word_level(attention, unit_of), layer=layer)
