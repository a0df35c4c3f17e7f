"""The atlas's sentence list held compact (``result.Sentences``, issue 21): every field of every
sentence as given, atlas.json and the search index written from it a sentence at a time with the
bytes ``json.dumps`` of the whole gives, and some 50 bytes a sentence beside its text, not a
Python object per field."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest

from atlas import contract
from atlas.result import CUTS, Sentence, Sentences, Strings


def sentences(n: int) -> list[Sentence]:
    """Sentences with every field varied: ids of their own, pairs, labels, generations, cuts,
    non-ASCII text, empty strings where a field allows one."""
    return [
        Sentence(
            index=i,
            id=str(i + 1) if i % 3 else f"s-{i}",
            text=f"Sentence {i} — é ✂ \u2028 <b>" if i % 2 else f"Sentence {i}.",
            text_b=f"Second {i}." if i % 4 == 1 else None,
            tokens=10 + i,
            truncated=i % 5 == 0,
            has_view=i % 7 == 0,
            has_data=i % 7 == 0 or i == 3,
            label=("gold" if i % 2 else "other") if i > 4 else None,
            cut=CUTS[i % len(CUTS)],
            generation=f" and then {i}" if i % 6 == 2 else None,
            generated=3 if i % 6 == 2 else 0,
        )
        for i in range(n)
    ]


def test_the_compact_list_gives_back_every_sentence_as_given():
    given = sentences(40)
    held = Sentences(given)
    assert len(held) == 40
    assert list(held) == given and held == given
    assert held[-1] == given[-1] and held[5:9] == given[5:9]
    assert [held[i] for i in (39, 0, 17)] == [given[i] for i in (39, 0, 17)]
    with pytest.raises(IndexError):
        held[40]
    paged = held.with_pages({0, 14}, {0, 3, 14})
    assert [s.index for s in paged if s.has_view] == [0, 14]
    assert [s.index for s in paged if s.has_data] == [0, 3, 14]
    assert [dataclasses.replace(s, has_view=False, has_data=False) for s in paged] == [
        dataclasses.replace(s, has_view=False, has_data=False) for s in given
    ]


def test_sentences_out_of_order_are_refused():
    with pytest.raises(ValueError, match="sentence 2 given as sentence 0"):
        Sentences(sentences(3)[2:])


def test_the_sentence_list_is_written_as_json_dumps_writes_it():
    given = sentences(30)
    expected = json.dumps([dataclasses.asdict(s) for s in given], sort_keys=True,
                          ensure_ascii=False, allow_nan=False)  # fmt: skip
    assert "".join(Sentences(given).json_chunks()) == expected
    assert "".join(Sentences().json_chunks()) == "[]"


def test_a_column_of_nones_holds_a_count_and_strings_their_bytes():
    column = Strings()
    for _ in range(1000):
        column.append(None)
    assert len(column) == 1000 and column[999] is None
    assert sys.getsizeof(column._data) < 100 and column._ends is None
    column.append("été")
    column.append("")
    assert (column[0], column[1000], column[1001]) == (None, "été", "")


def test_a_sentence_costs_its_text_and_some_50_bytes():
    """100,000 sentences of 60 characters each: their text and at most 64 bytes more a
    sentence (a list of Sentence objects: some 600)."""
    n, text = 100_000, "x" * 60
    shape = {"text": text, "text_b": None, "tokens": 20, "truncated": False, "has_view": False}
    held = Sentences(Sentence(index=i, id=str(i + 1), **shape) for i in range(n))
    size = sum(sys.getsizeof(column._data) + sys.getsizeof(column._ends or b"")
               + sys.getsizeof(column._none) for column in held._texts.values())  # fmt: skip
    size += sum(sys.getsizeof(a) for a in held._numbers.values()) + sys.getsizeof(held._flags)
    text_bytes = n * (60 + 6)  # the text and the id
    assert size < text_bytes + 64 * n, (size - text_bytes) / n


def test_the_search_index_is_written_a_sentence_at_a_time_as_a_whole(monkeypatch):
    """assets/search-index.js from its chunks is the script of the whole index."""
    from atlas import site

    class Column:
        title, key, description = "A <col>", "k", "its \u2028 description"

    class Atlas:
        def __init__(self) -> None:
            self.sentences, self.catalogue = Sentences(sentences(12)), [Column()]

    monkeypatch.setattr(site.charts, "top_heads", lambda atlas, column, n: [])
    whole = contract.search_script(site.search_index(Atlas()))
    assert "".join(site.search_script_chunks(Atlas())) == whole
    assert json.loads(whole.split(" = ", 1)[1].rstrip(";\n"))["sentences"][1][1].startswith(
        "Sentence 1"
    )
