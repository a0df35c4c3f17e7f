"""View data: the attention (and queries and keys) of the sentences the site shows.

Two kinds of sentence are kept:

- sentences with a page of their own: the first ``limit`` (``--views``) as they stream by, and
  those other analyses' pages link to (``Result.wanted``, e.g. the syntax page's examples);
  every head's attention, its rollout (computed from the float attention as the records pass,
  ``viewdata.rollout``), and queries and keys for the neuron view as ``neuron`` says;
- sentences only drawn as figures on other pages (``Result.figures``: a head page's example
  heatmaps): just the attention of those heads, a few kilobytes, and no page.

``wanted`` and ``figures`` are known only at the end, so the sentences among them outside the
first ``limit`` are run again (``revisit``) rather than holding every sentence in memory."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np

from .. import contract
from ..contract import head_name
from ..model import Record
from ..records import attention_error
from ..scores import Scores
from ..viewdata import VECTOR_TOLERANCE, View, data_script, make_view, vectors_script
from .base import ATTENTION, EVERY, QUERIES_KEYS, Analysis, Result, RunInfo

if TYPE_CHECKING:
    from ..result import Atlas

NOT_REPRODUCED = (
    "the captured queries and keys do not reproduce this model's attention (in {head} the "
    "attention they give differs from the model's by up to {error:.3f}; the model may add "
    "position biases or score them in a way the view does not know), so the neuron view is off"
)


# The queries and keys, before they are stored, must give back the model's attention this closely
# in every head: the page's bar (viewdata.VECTOR_TOLERANCE). A model run in bfloat16 is within
# it (its scores and attention carry 8 bits: 0.003 to 0.006 off on the tiny decoders), a scoring
# the view does not know is not (0.05 to 0.8 off on the same models, scored as softmax(q·k/√d)).
REPRODUCED = VECTOR_TOLERANCE


def not_reproduced(record: Record, causal: bool, scores) -> str:
    """Why the record's queries and keys cannot be shown ("" when every head's attention, as
    the neuron view computes it from them, is within REPRODUCED of the model's)."""
    if record.query is None or record.key is None:
        return "the model's queries and keys were not captured, so the neuron view is off"
    error = attention_error(record, causal, scores)
    if error.max() < REPRODUCED:
        return ""
    layer, head = np.unravel_index(int(error.argmax()), error.shape)
    return NOT_REPRODUCED.format(head=head_name(layer + 1, head + 1), error=float(error.max()))


# --neuron: which sentences with a page keep queries and keys (they cost more than the
# attention of a short sentence: 2·n·d values per head against n²).
NEURON_MODES = ("views", "all", "none")


class ViewData(Analysis):
    """Keeps encoded attention, queries and keys for the sentences the site shows."""

    name = "views"
    uses = (EVERY,)  # keeps the sentences every other analysis links to or draws
    revisit_reason = (
        "other pages link to them or show them as examples, which is known only after every "
        "sentence has been measured"
    )
    needs = frozenset({ATTENTION, QUERIES_KEYS})

    def __init__(self, limit: int = 200, neuron: str = "views"):
        if neuron not in NEURON_MODES:
            raise ValueError(f"neuron: one of {', '.join(NEURON_MODES)}, not {neuron!r}")
        self.limit, self.neuron = limit, neuron

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.kept: dict[int, View] = {}
        # Why there is no neuron view, "" if there is one.
        self.note = "queries and keys not kept (--neuron none)" if self.neuron == "none" else ""
        self.note = self.note or run.queries_keys_note
        self.checked = bool(self.note)
        self.checked_at: tuple[int, int, int] | None = None  # the record that decided
        self.wanted: frozenset[int] = frozenset()
        self.figures: dict[int, set[int]] = {}

    def keeps_vectors(self, index: int) -> bool:
        """Whether the sentence's page gets the neuron view's queries and keys."""
        if self.note:
            return False
        return self.neuron == "all" or index < self.limit

    def queries_keys_for(self, index: int) -> bool:
        """Only sentences that keep a page with the neuron view need their queries and keys:
        among the first ``limit``, or (in the run again at the end) those other pages link to."""
        return (index < self.limit or index in self.wanted) and self.keeps_vectors(index)

    def _keep(self, record: Record) -> None:
        vectors = self.keeps_vectors(record.index)
        # The first record of two tokens or more that keeps vectors decides for the whole run
        # (a one-token record's softmax is 1 whatever its vectors, so it proves nothing).
        if vectors and not self.checked and record.n >= 2:
            self.checked = True
            self.checked_at = self.run.stream_key(record.index, record.n)
            self.note = not_reproduced(record, self.run.causal, self.run.scores)
            vectors = not self.note
        self.kept[record.index] = make_view(
            record, vectors=vectors, causal=self.run.causal, scores=self.run.scores
        )

    def add(self, record: Record) -> None:
        if record.index < self.limit or record.index in self.wanted:
            self._keep(record)
        elif record.index in self.figures:
            heads = sorted(self.figures[record.index])
            self.kept[record.index] = make_view(
                record, vectors=False, causal=self.run.causal, heads_kept=heads
            )

    def state(self) -> dict:
        return {
            "kept": {str(i): dataclasses.asdict(view) for i, view in self.kept.items()},
            "note": self.note,
            "checked": self.checked,
            "checked_at": list(self.checked_at) if self.checked_at else None,
        }

    def load_state(self, state) -> None:
        self.kept = {int(i): View(**view) for i, view in state["kept"].items()}
        self.note, self.checked = state["note"], state["checked"]
        self.checked_at = tuple(state["checked_at"]) if state["checked_at"] else None

    def merge(self, other: ViewData) -> None:
        """The sentences of both; whether queries and keys reproduce the attention is decided,
        as in one pass, by the first record (in a one-pass run's order) that checked it."""
        self.kept.update(other.kept)
        self.kept = dict(sorted(self.kept.items()))
        if other.checked_at and (self.checked_at is None or other.checked_at < self.checked_at):
            self.note, self.checked_at = other.note, other.checked_at
        self.checked = self.checked or other.checked

    def revisit(self, results: Mapping[str, Result]) -> list[int]:
        self.wanted = frozenset().union(*(result.wanted for result in results.values()))
        for result in results.values():
            for index, heads in result.figures.items():
                self.figures.setdefault(index, set()).update(heads)
        return sorted((self.wanted | set(self.figures)) - set(self.kept))

    def finish(self, results: Mapping[str, Result]) -> Result:
        vectors = sum(bool(view.vectors) for view in self.kept.values())
        note = self.note
        if not note and not vectors:
            note = "no sentence with a page kept queries and keys"
        return Result(
            data={
                "neuron_view": not note,
                "neuron_note": note,
                "neuron_mode": self.neuron,
                "vectors_error": max((v.vectors_error for v in self.kept.values()), default=0.0),
            },
            sentences=dict(sorted(self.kept.items())),
        )

    @classmethod
    def page_files(cls, atlas: Atlas, only: int | None = None) -> Iterator[tuple[str, bytes]]:
        """data/NNNN.js of every sentence kept (or of sentence ``only``), and data/NNNN.qk.js
        of those with queries and keys: the Atlas's views, not JSON of ``page_data``."""
        total = len(atlas.sentences)
        for view in atlas.views if only is None else [v for v in atlas.views if v.index == only]:
            key = contract.sentence_key(view.index, total)
            script = data_script(
                view,
                key=key,
                sentence_id=atlas.sentences[view.index].id,
                layers=atlas.model.layers,
                heads=atlas.model.heads,
                causal=atlas.model.causal,
                neuron={
                    "available": atlas.model.neuron_view and bool(view.vectors),
                    "note": neuron_note(atlas, view),
                    "head_dim": atlas.model.head_dim,
                    "scores": Scores.from_json(
                        atlas.model.scores, atlas.model.layers, atlas.model.head_dim
                    ).to_json(),
                },
            )
            yield contract.data_script(view.index, total), script.encode("utf-8")
            if view.vectors:
                yield contract.vectors_script(view.index, total), vectors_script(view, key).encode()


def neuron_note(atlas: Atlas, view: View) -> str:
    """Why a sentence's page has no neuron view ("" when it has one)."""
    if not atlas.model.neuron_view:
        return atlas.model.neuron_note
    if view.vectors:
        return ""
    if atlas.options.neuron == "views" and view.index >= atlas.options.views:
        return (
            f"queries and keys are kept for the first {atlas.options.views} sentences "
            "(--neuron views); build with --neuron all to keep them for every page"
        )
    if atlas.options.max_site_mb is None:
        return "no queries and keys were kept for this sentence"
    return (
        "this sentence's queries and keys were left out to keep the site under "
        f"--max-site-mb {atlas.options.max_site_mb:g}"
    )
