"""What an analysis is: the unit in which the atlas grows.

An analysis says what the runner must capture for it (``needs``), takes each example's attention
one layer at a time as the forward pass makes it (``add_layer``), then the example's record
(``add``), in bounded memory, and at the end returns a ``Result``: per-head columns,
each described by a catalogue ``Column``; per-head parts (data a head page shows, such as an
offset profile); tables; and analysis-level data. The pipeline (atlas/pipeline.py) drives the
runner and every analysis; the Atlas (atlas/result.py) collects the results; the site
(atlas/site.py) shows every catalogue column in the overview heatmaps, the heads table and each
head page without knowing the analysis, and asks the analysis's class for the rest of its
presentation: its sections and their templates, charts, summary lines and page data.

Adding an analysis is one module plus, at most, its templates: a built-in one in this folder,
with its entry in ``default_analyses`` and ``BUILT_IN`` (analyses/__init__.py); one of the
user's anywhere, run with ``--analysis MODULE:CLASS`` (atlas/plugins.py). docs/design.md ("What
an analysis is") lists the methods and walks through tests/user_analysis/peak.py.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .. import contract

# What the runner can capture for an analysis (atlas/model.py): attention, queries and keys,
# hidden states. The runner captures only what some analysis of the run asks for (queries and
# keys cost a forward hook and memory per batch; hidden states memory per batch).
from ..model import ATTENTION as ATTENTION
from ..model import CAPTURES as CAPTURES
from ..model import HIDDEN_STATES as HIDDEN_STATES
from ..model import QUERIES_KEYS as QUERIES_KEYS
from ..model import Record, stream_key

if TYPE_CHECKING:
    from ..result import Atlas, Head

# Not a capture: passes of its own through the model (head gates, gradients), offered by the
# runner as a ``Probe`` (atlas/probe.py) in ``RunInfo.probe`` to the analyses that need it.
PROBE = "probe"
# Not a capture either: passes of token sequences the analysis makes (the head types' repeated
# random tokens), offered as ``RunInfo.sequences`` (atlas/sequences.py's ``TokenPasses``).
SEQUENCES = "sequences"

# Where a page includes the analyses' sections (``Analysis.sections``): the overview's cards and
# its body, a head page's cards, a sentence page under the sentence and after the views, and the
# Definitions page.
PLACES = ("overview_cards", "overview", "head", "sentence_top", "sentence", "definitions")

# In ``Analysis.uses``: the results of every analysis that does not itself use EVERY.
EVERY = "*"

# Kinds of per-head number, with the fixed range their heatmaps use (None: from the data).
KINDS: dict[str, tuple[float, float] | None] = {
    "share": (0.0, 1.0),  # a share of a row's attention
    "ratio": (0.0, 1.0),  # a normalised quantity
    "accuracy": (0.0, 1.0),
    "nats": None,  # an entropy or divergence, in nats
    "distance": None,
    "count": None,
    "score": None,
}


@dataclass(frozen=True)
class Column:
    """One per-head number, as the catalogue in atlas.json describes it.

    ``kind`` is one of KINDS; ``anchor`` is the section of docs/metrics.md that defines it;
    ``group`` puts columns in one per-layer chart on the overview (columns without a group get
    none)."""

    key: str
    title: str
    kind: str
    unit: str
    description: str
    anchor: str
    group: str = ""
    formula: str = ""  # per example, in the notation of docs/metrics.md
    analysis: str = ""
    # The paper whose definition it follows ("Clark et al. 2019, §3"), or how ours differs; the
    # site's Definitions page shows it beside the formula.
    paper: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.key!r}: unknown kind {self.kind!r}")

    @property
    def domain(self) -> tuple[float, float] | None:
        """The fixed range of its heatmap, or None to scale to the data."""
        return KINDS[self.kind]


@dataclass
class Table:
    """A table an analysis contributes (per layer, per relation, ...): named columns, rows of
    JSON values."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    analysis: str = ""


@dataclass
class Result:
    """What one analysis contributes to the Atlas.

    columns: catalogue key -> one value per head, in model order (L1-H1, L1-H2, ...);
    parts: per-head data, key -> one JSON value per head (becomes ``Head.parts[key]``);
    data: analysis-level JSON data (becomes ``Atlas.results[name]``)."""

    catalogue: list[Column] = field(default_factory=list)
    columns: dict[str, Sequence[float]] = field(default_factory=dict)
    parts: dict[str, list[Any]] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    # Per-sentence data for pages, by sentence index (the view data's kept attention).
    sentences: dict[int, Any] = field(default_factory=dict)
    # Sentences its pages link to, which therefore need a page of their own.
    wanted: set[int] = field(default_factory=set)
    # Sentences its pages draw as figures, without needing their page: index -> the heads
    # (flat, model order) whose attention the figures show; only those heads are kept.
    figures: dict[int, set[int]] = field(default_factory=dict)
    # Pages of its own: path -> {"template": ..., "title": ...} (the title goes in the menu).
    pages: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInfo:
    """What an analysis knows of the run before the first record."""

    layers: int
    heads: int
    causal: bool
    sentences: int  # examples in the corpus
    queries_keys_note: str = ""  # why queries and keys cannot be captured ("" if they can)
    device: str = "cpu"  # the runner's torch device, for analyses that compute in torch
    probe: Any = None  # atlas.probe.Probe, for analyses that need PROBE; else None
    sequences: Any = None  # atlas.sequences.TokenPasses, for analyses that need SEQUENCES
    task: str = ""  # the model's task head (model.TASKS), "" for none
    classes: tuple[str, ...] = ()  # its class names, in id order (config.id2label)
    gold_labels: bool = False  # some examples of the input carry a label
    scores: Any = None  # atlas.scores.Scores: how the model scores queries and keys (None: plain)
    batch_size: int = 16  # the run's batch size: with a record's index and tokens, where it
    # comes in a one-pass run (``model.stream_key``)

    def stream_key(self, index: int, tokens: int) -> tuple[int, int, int]:
        """Where a record comes in a one-pass run: what "the first records seen" means when
        parts of the corpus are merged."""
        return stream_key(index, tokens, self.batch_size)

    @property
    def size(self) -> int:
        return self.layers * self.heads


class Analysis:
    """Base class of every analysis. Subclasses set ``name`` and ``needs`` and override
    ``add_layer`` and/or ``add``, and ``finish``; ``revisit`` and ``settle`` are optional;
    ``state``, ``load_state`` and ``merge`` make it mergeable (a corpus measured in parts);
    ``sections``, ``templates``, ``charts``, ``summary``, ``shared``, ``page_data`` and
    ``page_files`` are its presentation.

    ``finish`` receives the results of the analyses finished before it, so an analysis may
    build on another's (the example sentences of a head depend on its label); it names those
    in ``requires`` (or ``uses``), and the pipeline orders the analyses by them. Analyses share
    computations through measures.py, never through each other's modules."""

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset({ATTENTION})
    # The analyses whose results ``revisit`` and ``finish`` read, by name: the pipeline finishes
    # them first, and refuses a build without them. ``uses``: the same, for results read if they
    # are there (a build without them is fine); EVERY: every analysis that does not itself use
    # EVERY (the view data keeps the sentences all the others link to).
    requires: ClassVar[tuple[str, ...]] = ()
    uses: ClassVar[tuple[str, ...]] = ()
    # Why ``revisit`` asks for sentences again, for the build's log ("running 38 sentences
    # again for the views analysis: ...").
    revisit_reason: ClassVar[str] = ""

    def start(self, run: RunInfo) -> None:
        self.run = run

    def add_layer(self, record: Record, layer: int, attention: np.ndarray) -> None:
        """Fold in one layer of one example: ``attention`` float32 [heads, n, n], padding
        stripped, rows summing to 1; layers come in order, 0 first, each during the forward
        pass, and ``add`` follows the last. Keep what the example needs of it, reduced (sums,
        a few heads), never the layer itself: the runner holds no more than one layer.

        An analysis that does not override this reads ``record.attention``, every layer
        [layers, heads, n, n], in ``add``: simple, and the runner then assembles that array for
        each example of the run (memory grows with layers · heads · n²)."""

    def add(self, record: Record) -> None:
        """Fold in one example, after its layers (``add_layer``). Memory must stay bounded as
        examples pass: fixed-size sums, or a small value per example where one is needed (e.g.
        a prediction per sentence), never an example's attention beyond the few kept for
        pages."""

    def queries_keys_for(self, index: int) -> bool:
        """Whether this analysis needs the queries and keys of example ``index`` (asked just
        before its batch runs; an analysis that keeps them for a few examples says which, so
        the runner copies them for those only)."""
        return QUERIES_KEYS in self.needs

    def revisit(self, results: Mapping[str, Result]) -> Sequence[int]:
        """Examples to be run through ``add`` once more before ``finish`` (e.g. to keep the
        attention of sentences chosen only at the end). Most analyses need none."""
        return ()

    def settle(self) -> None:
        """Do the work of this part of the corpus that needs passes of its own through the model
        (head importance's ablation), once its records have passed, while the model is here:
        called by the pipeline after the last record of a run or of a range, before ``state``
        or ``finish``."""

    # -- mergeable state ----------------------------------------------------------------------
    # A build split over workers runs each range of the corpus through fresh, started analyses
    # (``pipeline.measure_states``), takes each one's ``state()``, and, in one process,
    # ``load_state``s the first part into a started analysis and ``merge``s the others into it
    # in corpus order; ``finish`` then runs on the merged state, and gives the atlas a one-pass
    # build gives, byte for byte (tests/test_merge.py). The state format is documented in
    # docs/design.md ("Mergeable analyses"); ``state_version`` changes with it.

    state_version: ClassVar[int] = 1

    def state(self) -> dict[str, Any]:
        """Everything ``add`` (and ``settle``) gathered, as a plain dict: str keys, and values
        that are JSON values or numpy arrays, nested in dicts and lists (``save_states`` writes
        it as JSON beside an .npz). What ``start`` sets from the run and the analysis's options
        is not part of it."""
        raise NotImplementedError(f"the {self.name} analysis cannot be merged")

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Take over a ``state()`` (of an analysis of the same options, started on the same
        run), in place of what ``add`` gathered."""
        raise NotImplementedError(f"the {self.name} analysis cannot be merged")

    def merge(self, other: Analysis) -> None:
        """Fold in ``other``'s state: the same analysis, same options and run, over a later
        range of the corpus. Merging the parts of a corpus in order must give the state one pass
        over the whole corpus gives (or, where an analysis cannot, its docstring says so)."""
        raise NotImplementedError(f"the {self.name} analysis cannot be merged")

    def finish(self, results: Mapping[str, Result]) -> Result:
        raise NotImplementedError

    # -- presentation -------------------------------------------------------------------------
    # What the site shows of it beyond its catalogue columns (which every page shows without
    # knowing the analysis). A site is rendered from atlas.json alone (``atlas render``), with no
    # run and no analysis object, so these are read from the class: class attributes and class
    # methods of the Atlas (atlas/result.py), never of what ``add`` gathered. The site finds an
    # analysis's class by the name its results are kept under (``atlas.results[name]``): the
    # built-in ones always, one of the user's when passed again (``--analysis MODULE:CLASS``).

    # Page sections, by place (PLACES): {place: template}; sentence_top goes under the
    # sentence, sentence after the views.
    sections: ClassVar[Mapping[str, str]] = {}
    # A folder holding its templates (sections/NAME.html, and NAME.html for a page of its own,
    # ``Result.pages``), searched after a theme's and before the built-in ones; None for the
    # built-in analyses, whose templates are in templates/.
    templates: ClassVar[Path | None] = None

    @classmethod
    def charts(cls) -> Mapping[str, Callable[..., dict]]:
        """Chart functions its templates call as ``charts.NAME(...)``, by NAME: each returns a
        Vega-Lite dict, from the Atlas (atlas/charts.py has the helpers); pages draw it with the
        ``chart`` macro (templates/macros.html). Names are shared by every analysis of a site."""
        return {}

    @classmethod
    def summary(cls, atlas: Atlas, head: Head) -> Sequence[tuple[int, str]]:
        """Lines of the head's summary, the first lines of its page, each with its place
        (lower first; the built-in places are in atlas/describe.py): a short claim with its
        number and what to compare it with."""
        return ()

    @classmethod
    def figures(cls, atlas: Atlas) -> Mapping[int, Collection[int]]:
        """The sentences its pages draw as figures without linking to their page, from the
        Atlas (as ``Result.figures`` says at the end of a run): sentence index -> the heads
        (flat, model order) whose attention the figures show. A site over its budget keeps
        those heads' attention of a sentence whose page it leaves out."""
        return {}

    @classmethod
    def shared(cls, atlas: Atlas) -> Mapping[str, Any]:
        """What many of its pages need, computed once per site rather than once per page (the
        head map every head page rings its head on); templates read it as ``shared.NAME``."""
        return {}

    @classmethod
    def page_data(cls, atlas: Atlas, index: int) -> Any:
        """JSON data for sentence ``index``'s page, or None for none: written beside
        data/NNNN.js as data/NNNN.NAME.js (``contract.page_data_script``), which sets
        ``window.ATLAS_PAGE_DATA[NAME]["NNNN"]``. Asked of every sentence with a page."""
        return None

    @classmethod
    def page_files(cls, atlas: Atlas, only: int | None = None) -> Iterator[tuple[str, bytes]]:
        """Every data file of its own, as (path in the site, bytes); of sentence ``only`` alone
        when given (a notebook shows one page). By default the scripts of ``page_data``; an
        analysis whose data is not JSON (the views' attention) writes its own."""
        total = len(atlas.sentences)
        for sentence in atlas.sentences:
            if not sentence.has_view or only not in (None, sentence.index):
                continue
            value = cls.page_data(atlas, sentence.index)
            if value is not None:
                key = contract.sentence_key(sentence.index, total)
                yield (
                    contract.page_data_script(sentence.index, total, cls.name),
                    contract.page_data_js(cls.name, key, value).encode("utf-8"),
                )


def streams(analysis: Analysis) -> bool:
    """Whether the analysis takes attention layer by layer (overrides ``add_layer``)."""
    return type(analysis).add_layer is not Analysis.add_layer


def wants_whole(analyses: Sequence[Analysis]) -> bool:
    """Whether some analysis reads the attention of every layer at once (``record.attention``):
    it needs attention and does not take it layer by layer."""
    return any(ATTENTION in a.needs and not streams(a) for a in analyses)


def feed(analysis: Analysis, record: Record) -> None:
    """Hand a record whose ``attention`` holds every layer to ``analysis`` as the runner does:
    each layer to ``add_layer``, in order, then the record to ``add``."""
    if record.attention is not None and streams(analysis):
        for layer, attention in enumerate(record.attention):
            analysis.add_layer(record, layer, attention)
    analysis.add(record)


def per_head(values: np.ndarray) -> list[float]:
    """A [layers, heads] array as one float per head, in model order."""
    return [float(v) for v in np.asarray(values).reshape(-1)]
