"""View data: the attention (and queries and keys) of the sentences that get a page.

The first ``limit`` sentences are kept as they stream by; the sentences other analyses' pages
link to (``Result.wanted``: the example sentences of head pages, of relations) are known only at
the end, so those outside the first ``limit`` are asked for again
(``revisit``) rather than holding every sentence in memory."""

from __future__ import annotations

from collections.abc import Mapping

from ..model import Record, reproduces_attention
from ..viewdata import View, make_view
from .base import ATTENTION, QUERIES_KEYS, Analysis, Result, RunInfo

NOT_REPRODUCED = (
    "the captured queries and keys do not reproduce this model's attention "
    "(it may add position biases), so the neuron view is off"
)


class ViewData(Analysis):
    """Keeps quantised attention, queries and keys for the sentences that have a page."""

    name = "views"
    needs = frozenset({ATTENTION, QUERIES_KEYS})

    def __init__(self, limit: int = 200):
        self.limit = limit

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.kept: dict[int, View] = {}
        self.note = run.queries_keys_note  # why there is no neuron view, "" if there is one
        self.checked = bool(self.note)

    def _keep(self, record: Record) -> None:
        # The first kept record of two tokens or more decides for the whole run (a one-token
        # record's softmax is 1 whatever its vectors, so it proves nothing).
        if not self.checked and record.n >= 2:
            self.checked = True
            if not reproduces_attention(record, self.run.causal):
                self.note = NOT_REPRODUCED
        self.kept[record.index] = make_view(record, not self.note)

    def add(self, record: Record) -> None:
        if record.index < self.limit or record.index in self.wanted:
            self._keep(record)

    wanted: frozenset[int] = frozenset()

    def revisit(self, results: Mapping[str, Result]) -> list[int]:
        self.wanted = frozenset().union(*(result.wanted for result in results.values()))
        return sorted(self.wanted - set(self.kept))

    def finish(self, results: Mapping[str, Result]) -> Result:
        return Result(
            data={"neuron_view": not self.note, "neuron_note": self.note},
            sentences=dict(sorted(self.kept.items())),
        )
