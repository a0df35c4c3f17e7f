"""Ranks without scipy.stats (atlas/ranking.py ``rank_data``): scipy's ranks exactly, and a
process that ranks never imports scipy.stats (its import was 0.8 s of a build's CPU time)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from atlas.analyses.layers import spearman_rows
from atlas.ranking import competition_ranks, rank_data, rank_rows


def test_ranks_of_hand_made_ties():
    values = np.array([3.0, 1.0, 3.0, 2.0, 3.0])
    assert rank_data(values).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]
    assert rank_data(values, ties="min").tolist() == [3.0, 1.0, 3.0, 2.0, 3.0]
    assert competition_ranks([0.5, None, 0.9, 0.5, float("nan")]) == [2, None, 1, 2, None]
    assert rank_rows(np.array([[0.1, 0.3, 0.3], [2.0, 1.0, 0.0]])).tolist() == [
        [3, 1, 1],
        [1, 2, 3],
    ]
    with pytest.raises(ValueError, match="ties='dense'"):
        rank_data(values, ties="dense")


@pytest.mark.parametrize("shape", [(1,), (7,), (4, 9), (3, 1), (2, 0), (5, 40)])
def test_ranks_are_scipys_to_the_bit(shape):
    rng = np.random.default_rng(sum(shape))
    for spread in (3, 1000):  # many ties, few ties
        values = rng.integers(0, spread, size=shape) / 7.0
        for ties in ("average", "min"):
            mine = rank_data(values, ties=ties)
            theirs = rankdata(values, method=ties, axis=-1) if values.size else np.zeros(shape)
            assert mine.dtype == np.float64 and np.array_equal(mine, theirs)


def test_spearman_rows_is_scipys_spearmanr_row_by_row():
    rng = np.random.default_rng(0)
    rows = np.round(rng.normal(size=(6, 15)), 1)  # ties within rows
    target = rng.integers(0, 4, size=15) / 3.0
    expected = [spearmanr(row, target).statistic for row in rows]
    np.testing.assert_allclose(spearman_rows(rows, target), expected, rtol=1e-12)


def test_ranking_does_not_import_scipy_stats():
    code = (
        "import sys, numpy as np\n"
        "from atlas.analyses.layers import spearman_rows\n"
        "from atlas.ranking import competition_ranks, rank_rows\n"
        "spearman_rows(np.array([[1.0, 2.0, 2.0]]), np.array([3.0, 1.0, 2.0]))\n"
        "competition_ranks([1.0, 2.0]); rank_rows(np.ones((2, 3)))\n"
        "print('scipy.stats' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_spearman_is_scipys_spearmanr_to_the_bit():
    """ρ and p as scipy.stats.spearmanr gives them, on data with and without ties, and with
    ρ = ±1 (p = 0), so importance.correlations need not import scipy.stats."""
    from atlas.ranking import spearman

    rng = np.random.default_rng(7)
    cases = [(rng.normal(size=72), rng.normal(size=72)) for _ in range(20)]
    cases += [(rng.integers(0, 5, 30).astype(float), rng.integers(0, 4, 30).astype(float))]
    x = rng.normal(size=12)
    cases += [(x, 2 * x + 1), (x, -x), (x[:3], x[:3] ** 3)]
    for a, b in cases:
        expected = spearmanr(a, b)
        assert spearman(a, b) == (float(expected.statistic), float(expected.pvalue))
