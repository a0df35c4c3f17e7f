"""Per-head metrics broken down by the examples' labels, and the heads that differ most.

Each example's label is its gold label when the input gives labels (examples without one are
left out), else, for a sequence classifier, its predicted label; with neither, this analysis
shows nothing. For every label, metric (the per-example metrics of heads.py) and head it keeps a
count, a sum and a sum of squares (float64, of the values minus the first example's, which
keeps the digits of small variances) as the records stream by: memory grows with the
number of distinct labels, never with the number of examples, and the test below is exact from
those sums, so no example's value is kept.

The test is Welch's two-sample t-test (unequal variances; ``scipy.stats.ttest_ind_from_stats``):
with two labels, the second against the first (in sorted order); with more, each label against
all other examples ("rest", one test per label). A head's finding is its (metric, comparison)
with the largest |t|; heads are ranked by it. p-values are two-sided, and also given
Bonferroni-adjusted for every test made (comparisons × metrics × heads). See docs/metrics.md,
"Metrics by label".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..model import SEQUENCE, Record
from .base import Analysis, Result, RunInfo
from .measures import METRICS, layer_metrics, predicted_class, record_metrics

MAX_LABELS = 20  # labels shown (the most frequent); the rest count in "rest" comparisons only
MIN_EXAMPLES = 2  # a label with fewer examples has no variance, and is not tested
FINDINGS = 20  # heads listed, strongest first
PER_METRIC = 5  # heads listed for each metric, strongest first


class LabelBreakdown(Analysis):
    """Per-label means of every per-example head metric, and Welch's t-test between labels."""

    name = "by_label"
    sections: ClassVar[Mapping[str, str]] = {
        "overview": "sections/by-label.html",
        "head": "sections/by-label-head.html",
    }

    def start(self, run: RunInfo) -> None:
        super().start(run)
        # label -> [3 (count, sum, sum of squares), metrics, heads] of the values minus
        # ``shift`` (the first example's values): sums of squares of values near their mean
        # keep the variance's digits, where raw sums would cancel them (tiny shares, say).
        self.stats: dict[str, np.ndarray] = {}
        self.shift: np.ndarray | None = None
        self.shift_at: tuple[int, int, int] | None = None  # where a one-pass run meets it
        self.source = "gold" if run.gold_labels else "predicted" if run.task == SEQUENCE else ""

    def label_of(self, record: Record) -> str | None:
        if self.source == "gold":
            return record.label
        if self.source == "predicted" and record.logits is not None:
            return self.run.classes[predicted_class(record)]
        return None

    def add_layer(self, record: Record, layer: int, attention: np.ndarray) -> None:
        # the predicted class is known only after the pass: every example may need its metrics
        if self.source == "predicted" or (self.source == "gold" and record.label is not None):
            layer_metrics(record, layer, attention, self.run)

    def add(self, record: Record) -> None:
        label = self.label_of(record)
        if label is None:
            return
        metrics = record_metrics(record, self.run)
        values = np.stack([np.asarray(metrics[key], np.float64).reshape(-1) for key in METRICS])
        defined = ~np.isnan(values)
        if self.shift is None:
            self.shift = np.where(defined, values, 0.0)
            self.shift_at = self.run.stream_key(record.index, record.n)
        values = np.where(defined, values - self.shift, 0.0)
        stats = self.stats.setdefault(label, np.zeros((3, len(METRICS), self.run.size)))
        stats[0] += defined
        stats[1] += values
        stats[2] += values * values

    def state(self) -> dict:
        return {"stats": self.stats, "shift": self.shift,
                "shift_at": list(self.shift_at) if self.shift_at else None}  # fmt: skip

    def load_state(self, state) -> None:
        self.stats = {label: np.asarray(s, np.float64) for label, s in state["stats"].items()}
        self.shift = None if state["shift"] is None else np.asarray(state["shift"], np.float64)
        self.shift_at = tuple(state["shift_at"]) if state["shift_at"] else None

    def merge(self, other: LabelBreakdown) -> None:
        """Add the other part's sums, moved to the shift of the example a one-pass run meets
        first: Σ(v − a) = Σ(v − b) + n·(b − a), Σ(v − a)² = Σ(v − b)² + 2(b − a)·Σ(v − b) +
        n·(b − a)². Exact in arithmetic; in floats the sums may differ from one pass's in their
        last bits (the one analysis whose merge is not exact to the bit: its shift is for
        accuracy, and atlas.json's six decimals hide the difference)."""
        if other.shift is None:
            return
        if self.shift is None or other.shift_at < self.shift_at:
            self.stats, other.stats = other.stats, self.stats
            self.shift, other.shift = other.shift, self.shift
            self.shift_at = other.shift_at
            if other.shift is None:
                return
        move = other.shift - self.shift
        for label, (n, total, squares) in other.stats.items():
            moved = np.stack([n, total + n * move, squares + 2 * move * total + n * move**2])
            mine = self.stats.get(label)
            self.stats[label] = moved if mine is None else mine + moved

    def finish(self, results: Mapping[str, Result]) -> Result:
        counts = {label: int(s[0].max()) for label, s in self.stats.items()}
        labels = sorted(counts, key=lambda label: (-counts[label], label))[:MAX_LABELS]
        data: dict[str, Any] = {
            "source": self.source,
            "labels": [{"label": label, "examples": counts[label]} for label in labels],
            "more_labels": len(counts) - len(labels),
            "metrics": list(METRICS),
        }
        tested = [label for label in labels if counts[label] >= MIN_EXAMPLES]
        if len(tested) < 2:
            data.update(available=False, note=self._note(labels))
            return Result(data=data)
        comparisons = self._comparisons(sorted(tested))
        table = np.stack([welch(*sides, self.shift) for _, _, *sides in comparisons])
        tests = int(np.isfinite(table[:, 2]).sum() + np.isinf(table[:, 2]).sum())
        means = {
            label: self.shift + self.stats[label][1] / np.maximum(self.stats[label][0], 1)
            for label in labels
        }
        data.update(
            available=True,
            comparisons=[{"label": a, "versus": b} for a, b, *_ in comparisons],
            tests=tests,
            findings=self._findings(comparisons, table, tests),
            by_metric=self._by_metric(comparisons, table, tests),
        )
        parts = {
            "by_label": [
                {label: {m: float(means[label][i, flat]) for i, m in enumerate(METRICS)}
                 for label in labels}
                for flat in range(self.run.size)
            ]
        }  # fmt: skip
        return Result(data=data, parts=parts)

    def _comparisons(self, tested: list[str]) -> list[tuple]:
        """(label, versus, stats of label, stats of versus): B vs A for two labels, else each
        label against all other labelled examples."""
        if len(tested) == 2:
            first, second = tested
            return [(second, first, self.stats[second], self.stats[first])]
        total = sum(self.stats.values())
        return [(label, "rest", self.stats[label], total - self.stats[label]) for label in tested]

    def _note(self, labels: list[str]) -> str:
        if not self.source:
            return "the examples have no labels (and the model no sequence classifier)"
        return (
            f"{len(labels)} label(s) with at least {MIN_EXAMPLES} examples; the breakdown needs two"
        )

    def _findings(self, comparisons: list[tuple], table: np.ndarray, tests: int) -> list[dict]:
        """For each head its strongest (metric, comparison) by |t|; the top FINDINGS heads."""
        strength = _strength(table)  # [C, M, K]
        flat = strength.reshape(-1, self.run.size)
        best = flat.argmax(0)  # per head: the row (comparison × metric) of its largest |t|
        order = sorted(
            (k for k in range(self.run.size) if flat[best[k], k] >= 0),
            key=lambda k: (-flat[best[k], k], k),
        )
        return [
            _finding(comparisons, table, tests, *divmod(int(best[k]), len(METRICS)), k)
            for k in order[:FINDINGS]
        ]

    def _by_metric(self, comparisons: list[tuple], table: np.ndarray, tests: int) -> dict:
        """For each metric, the PER_METRIC heads that differ most by it (any comparison)."""
        strength = _strength(table)
        out = {}
        for m, key in enumerate(METRICS):
            best = strength[:, m].argmax(0)  # per head: its comparison of largest |t|
            heads = [k for k in range(self.run.size) if strength[best[k], m, k] >= 0]
            heads.sort(key=lambda k: (-strength[best[k], m, k], k))
            out[key] = [
                _finding(comparisons, table, tests, int(best[k]), m, k) for k in heads[:PER_METRIC]
            ]
        return out


def _strength(table: np.ndarray) -> np.ndarray:
    """|t| of every (comparison, metric, head); inf: no variance and different means; −1:
    untested."""
    strength = np.abs(table[:, 2])
    return np.where(np.isnan(strength), -1.0, strength)


def _finding(comparisons: list[tuple], table: np.ndarray, tests: int, c: int, m: int, k: int):
    """One row of the findings: comparison c, metric m, head k."""
    t, p = float(table[c, 2, m, k]), float(table[c, 3, m, k])
    return {
        "head": k,
        "metric": METRICS[m],
        "label": comparisons[c][0],
        "versus": comparisons[c][1],
        "mean": float(table[c, 4, m, k]),
        "versus_mean": float(table[c, 5, m, k]),
        "difference": float(table[c, 1, m, k]),
        "t": t if np.isfinite(t) else None,  # None: no variance in either group (p = 0)
        "p": p,
        "p_adjusted": min(1.0, p * tests),
        "examples": int(comparisons[c][2][0, m, k]),
        "versus_examples": int(comparisons[c][3][0, m, k]),
    }


def welch(a: np.ndarray, b: np.ndarray, shift: np.ndarray | float = 0.0) -> np.ndarray:
    """Welch's t-test of group a against group b, from [3 (count, sum, sum of squares), ...]
    each, of the values minus ``shift``: [6 (n_a, mean_a − mean_b, t, p, mean_a, mean_b), ...].
    t is ±inf when neither group varies and their means differ (p = 0), NaN when neither
    varies and they are equal, or when a group has fewer than MIN_EXAMPLES examples."""
    from scipy import stats

    n_a, n_b = a[0], b[0]
    mean_a, mean_b = a[1] / np.maximum(n_a, 1), b[1] / np.maximum(n_b, 1)
    var_a = _variance(n_a, mean_a, a[2])
    var_b = _variance(n_b, mean_b, b[2])
    difference = mean_a - mean_b
    with np.errstate(divide="ignore", invalid="ignore"):
        t, p = stats.ttest_ind_from_stats(
            mean_a, np.sqrt(var_a), n_a, mean_b, np.sqrt(var_b), n_b, equal_var=False
        )
    t, p = np.asarray(t, float), np.asarray(p, float)
    still = (var_a == 0) & (var_b == 0)
    t = np.where(still & (difference != 0), np.copysign(np.inf, difference), t)
    p = np.where(still & (difference != 0), 0.0, p)
    too_few = (n_a < MIN_EXAMPLES) | (n_b < MIN_EXAMPLES)
    t, p = np.where(too_few, np.nan, t), np.where(too_few, np.nan, p)
    return np.stack([n_a, difference, t, p, mean_a + shift, mean_b + shift])


def _variance(n: np.ndarray, mean: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """The sample variance from a count, a mean and a sum of squares; a variance below 1e-9 of
    the mean square is rounding (values all equal, or nearly), and taken as 0."""
    variance = np.maximum(squares - n * mean**2, 0.0) / np.maximum(n - 1, 1)
    return np.where(variance <= 1e-9 * squares / np.maximum(n, 1), 0.0, variance)
