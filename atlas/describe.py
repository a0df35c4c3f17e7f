"""A head in plain words: the first lines of its page, so "what does this head do?" is answered
before any table is read.

Each analysis gives its own lines (``Analysis.summary``), read off the Atlas (the head's corpus
values, its layer's and the model's means, its word pairs), and each claim carries its number
and what to compare it with, so the sentence cannot say more than the figures do. This module
puts them in order by their place: 10 the relation the head tracks best (syntax), 20 where its
attention goes (heads), 30 how much the model misses it (importance), 40 how spread it is
(heads), 50 its most frequent word pairs (pairs); a user's analysis picks its own place.
"""

from __future__ import annotations

from collections.abc import Iterable

from .analyses import Analysis, presenters
from .result import Atlas, Head


def head_summary(
    atlas: Atlas, head: Head, analyses: Iterable[Analysis | type[Analysis]] = ()
) -> list[str]:
    """The summary lines of every analysis of the Atlas (``analyses``: the user's, as
    ``presenters`` takes them), by place, then in the analyses' order."""
    placed = [
        (place, order, line)
        for order, presenter in enumerate(presenters(atlas, analyses))
        for place, line in presenter.summary(atlas, head)
    ]
    return [line for _, _, line in sorted(placed, key=lambda item: item[:2])]
