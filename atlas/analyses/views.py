"""View data: the attention (and queries and keys) of the sentences the site shows.

Two kinds of sentence are kept:

- sentences with a page of their own: the first ``limit`` (``--views``) as they stream by, and
  those other analyses' pages link to (``Result.wanted``, e.g. the syntax page's examples);
  every head's attention, its rollout (computed from the float attention as the records pass,
  ``viewdata.rollout``), and queries and keys for the neuron view as ``neuron`` says;
- sentences only drawn as figures on other pages (``Result.figures``: a head page's example
  heatmaps): just the attention of those heads, a few kilobytes, and no page.

``wanted`` and ``figures`` are known only at the end, so the sentences among them outside the
first ``limit`` are run again (``revisit``) rather than holding every sentence in memory.

Each kept sentence's data is made layer by layer as the forward pass hands the layers out
(``viewdata.ViewMaker``). A long sentence (over ``contract.SPARSE_FROM`` tokens) keeps sparse
rows, with a stated error bound and without rollout or queries and keys, so it still gets a page;
only one whose page data would pass ``viewdata.MAX_VIEW_BYTES`` even so keeps none: it gets no
page, and the build names it (``too_long`` in the result's data)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np

from .. import contract
from ..contract import head_name
from ..model import Record
from ..scores import Scores
from ..viewdata import (
    MAX_VIEW_BYTES,
    VECTOR_TOLERANCE,
    View,
    ViewMaker,
    data_script,
    vectors_script,
    view_bytes,
)
from .base import ATTENTION, EVERY, QUERIES_KEYS, Analysis, Result, RunInfo

if TYPE_CHECKING:
    from ..result import Atlas

log = logging.getLogger(__name__)
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


def not_reproduced(maker: ViewMaker) -> str:
    """Why a sentence's queries and keys cannot be shown ("" when every head's attention, as
    the neuron view computes it from them, is within REPRODUCED of the model's)."""
    if not maker.vectors:
        return "the model's queries and keys were not captured, so the neuron view is off"
    if not maker.check:
        raise ValueError("the view was made without checking its queries and keys")
    if maker.error < REPRODUCED:
        return ""
    layer, head = divmod(maker.worst, maker.heads)
    return NOT_REPRODUCED.format(head=head_name(layer + 1, head + 1), error=maker.error)


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
        self.too_long: set[int] = set()  # sentences whose page data would pass MAX_VIEW_BYTES

    def keeps_vectors(self, index: int) -> bool:
        """Whether the sentence's page gets the neuron view's queries and keys."""
        if self.note:
            return False
        return self.neuron == "all" or index < self.limit

    def queries_keys_for(self, index: int) -> bool:
        """Only sentences that keep a page with the neuron view need their queries and keys:
        among the first ``limit``, or (in the run again at the end) those other pages link to."""
        return (index < self.limit or index in self.wanted) and self.keeps_vectors(index)

    def _heads_kept(self, index: int) -> list[int] | bool | None:
        """Which heads a sentence keeps: None for every head (it has a page), the heads its
        figures show, or False for none."""
        if index < self.limit or index in self.wanted:
            return None
        return sorted(self.figures[index]) if index in self.figures else False

    def _maker(self, record: Record) -> ViewMaker | None:
        """The view the example keeps, made layer by layer; None if it keeps none."""

        def make() -> ViewMaker | None:
            heads = self._heads_kept(record.index)
            count = self.run.size if heads is None else len(heads or ())
            if heads is False:
                return None
            if view_bytes(record.n, count) > MAX_VIEW_BYTES:
                self.too_long.add(record.index)
                return None
            vectors = heads is None and self.keeps_vectors(record.index)
            return ViewMaker(record, layers=self.run.layers, heads=self.run.heads,
                             vectors=vectors, causal=self.run.causal, heads_kept=heads,
                             scores=self.run.scores, check=not self.checked)  # fmt: skip

        return record.stash(self.name, make)

    def add_layer(self, record: Record, layer: int, attention: np.ndarray) -> None:
        maker = self._maker(record)
        if maker is not None:
            maker.layer(layer, attention)

    def add(self, record: Record) -> None:
        maker = self._maker(record)
        if maker is None:
            return
        vectors = maker.heads_kept is None and self.keeps_vectors(record.index) and not maker.top
        # The first record of two tokens or more that keeps vectors decides for the whole run
        # (a one-token record's softmax is 1 whatever its vectors, so it proves nothing).
        if vectors and not self.checked and record.n >= 2:
            self.checked = True
            self.checked_at = self.run.stream_key(record.index, record.n)
            self.note = not_reproduced(maker)
            vectors = not self.note
        self.kept[record.index] = maker.view(vectors=vectors)

    def state(self) -> dict:
        return {
            "kept": {str(i): dataclasses.asdict(view) for i, view in self.kept.items()},
            "too_long": sorted(self.too_long),
            "note": self.note,
            "checked": self.checked,
            "checked_at": list(self.checked_at) if self.checked_at else None,
        }

    def load_state(self, state) -> None:
        self.kept = {int(i): View(**view) for i, view in state["kept"].items()}
        self.too_long = {int(i) for i in state["too_long"]}
        self.note, self.checked = state["note"], state["checked"]
        self.checked_at = tuple(state["checked_at"]) if state["checked_at"] else None

    def merge(self, other: ViewData) -> None:
        """The sentences of both; whether queries and keys reproduce the attention is decided,
        as in one pass, by the first record (in a one-pass run's order) that checked it."""
        self.kept.update(other.kept)
        self.too_long |= other.too_long
        self.kept = dict(sorted(self.kept.items()))
        if other.checked_at and (self.checked_at is None or other.checked_at < self.checked_at):
            self.note, self.checked_at = other.note, other.checked_at
        self.checked = self.checked or other.checked

    def revisit(self, results: Mapping[str, Result]) -> list[int]:
        self.wanted = frozenset().union(*(result.wanted for result in results.values()))
        for result in results.values():
            for index, heads in result.figures.items():
                self.figures.setdefault(index, set()).update(heads)
        return sorted((self.wanted | set(self.figures)) - set(self.kept) - self.too_long)

    def finish(self, results: Mapping[str, Result]) -> Result:
        vectors = sum(bool(view.vectors) for view in self.kept.values())
        note = self.note
        if not note and not vectors:
            note = "no sentence with a page kept queries and keys"
        if self.too_long:
            log.warning(
                "no page for %d sentence(s) too long to draw (over %d MiB of attention): %s",
                len(self.too_long),
                MAX_VIEW_BYTES >> 20,
                ", ".join(str(i + 1) for i in sorted(self.too_long)),
            )
        return Result(
            data={
                **({"too_long": sorted(self.too_long)} if self.too_long else {}),
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
    if view.top:
        return (
            f"no queries and keys are kept for sentences of more than {contract.SPARSE_FROM} "
            "tokens: their page keeps each attention row's largest values"
        )
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
