"""The head page's summary lines (atlas/describe.py): every number in them is the Atlas's own."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from atlas import describe, ranking, site
from atlas.analyses import heads, importance
from atlas.result import load

STORED = Path(__file__).parent / "snapshots" / "stored-atlas" / "atlas.json"


@pytest.fixture(scope="module")
def atlas():
    return load(STORED)


def test_the_two_largest_shares_with_their_means_and_ranks(atlas):
    head = atlas.heads[5]
    shares = {k: head.metrics[k] for k in heads.SHARES}
    first, second = sorted(shares, key=lambda k: -shares[k])[:2]
    top = heads.top_shares(atlas, head)
    assert [s.value for s in top] == [shares[first], shares[second]]
    assert top[0].layer_mean == atlas.layer_means[first][head.layer - 1]
    assert top[0].model_mean == atlas.model_means[first]
    # rank: 1 + the number of heads with a larger value
    assert top[0].rank == 1 + sum(h.metrics[first] > shares[first] for h in atlas.heads)
    assert top[0].of == len(atlas.heads)
    line = next(x for x in describe.head_summary(atlas, head) if x.startswith("Attention goes"))
    assert line.startswith(f"Attention goes to {top[0].name} {shares[first]:.2f} (layer mean")
    assert f"of {len(atlas.heads)} heads" in line


def test_spread_words_follow_the_label_thresholds():
    assert heads.spread(0.75) == "broad"
    assert heads.spread(0.74) == "moderately spread"
    assert heads.spread(0.39) == "focused"


def test_word_pairs_of_rare_words_are_not_named(atlas):
    head = copy.deepcopy(atlas.heads[0])
    head.parts["pairs"] = [
        {"source": "a", "target": "b", "count": 3, "source_count": 4},  # too rare to say
        {"source": "the", "target": ".", "count": 7, "source_count": 9},
        {"source": ",", "target": "and", "count": 5, "source_count": 5},
        {"source": "x", "target": "y", "count": 5, "source_count": 5},  # a third: not named
    ]
    lines = describe.head_summary(atlas, head)
    assert "Most frequent word pairs: “the” → “.” (7 of 9); “,” → “and” (5 of 5)." in lines
    head.parts["pairs"] = []
    assert not any(line.startswith("Most frequent") for line in describe.head_summary(atlas, head))


def test_ordinals():
    assert [ranking.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 72)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "72nd",
    ]  # fmt: skip


def test_every_head_page_opens_with_its_summary(atlas):
    pages = dict(site.render(atlas))
    for head in atlas.heads:
        html = pages[f"heads/{head.slug}.html"].decode()
        summary = html.split('<ul class="head-summary">', 1)[1].split("</ul>", 1)[0]
        assert summary.count("<li>") == len(describe.head_summary(atlas, head)) >= 2


def test_ranks_are_competition_ranks_with_ties_sharing_the_best():
    assert ranking.competition_ranks([0.5, 0.9, 0.5, 0.1, 0.5]) == [2, 1, 2, 5, 2]
    assert ranking.competition_ranks([0.2, None, float("nan"), 0.3]) == [2, None, None, 1]
    assert ranking.competition_ranks([]) == []
    np.testing.assert_array_equal(
        ranking.rank_rows([[1.0, 3.0, 1.0], [2, 2, 2]]), [[2, 1, 2], [1, 1, 1]]
    )


def test_tied_heads_share_the_best_rank_in_the_summary(atlas):
    """Three heads tied at the top importance read "1st of N" in their summaries, and the next
    head "4th"; a head without a value is neither ranked nor counted."""
    atlas = copy.deepcopy(atlas)
    top = max(h.metrics["importance"] for h in atlas.heads)
    for head in atlas.heads[:3]:
        head.metrics["importance"] = top + 1
    atlas.heads[3].metrics["importance"] = top + 0.5
    del atlas.heads[4].metrics["importance"]
    of = len(atlas.heads) - 1
    for head in atlas.heads[:3]:
        assert ranking.ranked(atlas, "importance", head) == (1, of)
        assert f"1st of {of} heads" in " ".join(describe.head_summary(atlas, head))
    assert ranking.ranked(atlas, "importance", atlas.heads[3]) == (4, of)
    assert ranking.ranked(atlas, "importance", atlas.heads[4]) == (0, of)


def test_with_trees_the_first_line_says_the_relation_it_tracks_best(atlas):
    """L3-H2 of the UD sample was the best syntactic head, yet its summary opened on [CLS] and
    next: with trees, the relation it beats its baseline on most comes first."""
    atlas = copy.deepcopy(atlas)
    head = atlas.heads[3]
    head.parts["syntax"] = [
        {"relation": "cop", "direction": "dependent → head", "accuracy": 0.57, "baseline": 0.31},
        {"relation": "det", "direction": "head → dependent", "accuracy": 0.9, "baseline": 0.8},
    ]
    all_row = {"relation": "all", "head": head.name, "accuracy": 0.409, "count": 5408,
               "direction": "dependent → head"}  # fmt: skip
    atlas.results["syntax"] = {"relations": [all_row]}
    first = describe.head_summary(atlas, head)[0]
    assert first == (
        "Tracks cop best against its baseline: 0.57 (dependent → head) where the best fixed"
        " offset gets 0.31. The best head over all relations: it gets 0.41 of the 5,408"
        " dependents right (dependent → head)."
    )
    other = atlas.heads[4]
    other.parts["syntax"] = head.parts["syntax"][1:]
    assert describe.head_summary(atlas, other)[0] == (
        "Tracks det best against its baseline: 0.90 (head → dependent) where the best fixed"
        " offset gets 0.80."
    )
    other.parts.pop("syntax")
    assert not describe.head_summary(atlas, other)[0].startswith("Tracks")


def test_with_importance_it_says_whether_the_head_is_among_the_ten_that_matter_most(
    atlas, monkeypatch
):
    atlas = copy.deepcopy(atlas)
    for i, h in enumerate(atlas.heads):
        h.metrics["importance"] = float(i)  # the last head matters most
    top = atlas.heads[-1]
    of = len(atlas.heads)
    assert of == 8  # no more than ten heads: "among the ten" would say nothing
    assert describe.head_summary(atlas, top)[1] == (  # after where its attention goes
        "Importance 7.000: 1st of 8 heads (how much the output changes without it)."
    )
    monkeypatch.setattr(importance, "TOP_IMPORTANT", 3)
    assert describe.head_summary(atlas, top)[1] == (
        "Importance 7.000: 1st of 8 heads, among the 3 that matter most"
        " (how much the output changes without it)."
    )
    assert (
        "3rd of 8 heads, among the 3 that matter"
        in describe.head_summary(atlas, atlas.heads[-3])[1]
    )
    assert "4th of 8 heads, not among the 3" in describe.head_summary(atlas, atlas.heads[-4])[1]
    for h in atlas.heads:
        h.metrics.pop("importance")
    assert not any("Importance" in x for x in describe.head_summary(atlas, top))
