"""The Atlas: a plain tree of dataclasses holding everything measured, and atlas.json.

The site is rendered from an Atlas alone, and an Atlas round-trips through ``atlas.json``
(``to_json`` / ``load``), so ``atlas render atlas.json`` can re-theme a site without the model.
The JSON schema is documented in docs/atlas-json.md; bump SCHEMA_VERSION on any change to it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import sys
from array import array
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__, contract
from .analyses.base import KINDS, Column, Table
from .loading import ModelInfo
from .viewdata import View, read_view

SCHEMA_VERSION = 9
DIGITS = 6  # numbers in atlas.json are rounded to this many decimals: stable bytes, no noise


class AtlasFileError(ValueError):
    """atlas.json cannot be read; the message is one line."""


@dataclass(frozen=True)
class ModelCard(ModelInfo):
    """The runner's ModelInfo plus what the run found out about the model."""

    neuron_view: bool  # queries and keys kept, and they reproduce the model's attention
    neuron_note: str  # why not, when neuron_view is False


@dataclass
class Options:
    input: str  # file name only, so the same input elsewhere gives the same site
    batch_size: int
    max_length: int
    device: str
    limit: int | None
    views: int
    neuron: str = "views"  # which sentences with a page keep queries and keys (--neuron)
    max_site_mb: float | None = None  # the budget the build kept the site under (--max-site-mb)
    generate: int = 0  # tokens each input was continued by (--generate; 0: none)
    chat: bool = False  # inputs wrapped in the chat template (--chat)
    dtype: str = "float32"  # the weights' type (--dtype); attention is analysed in float32
    device_map: str | None = None  # --device-map


@dataclass
class CorpusSummary:
    sentences: int
    pairs: int
    tokens: int
    mean_tokens: float
    max_tokens: int
    truncated: int


@dataclass
class Head:
    name: str  # L9-H6: 1-based, as in the papers
    layer: int  # 1-based
    head: int  # 1-based
    label: str  # its pattern label
    metrics: dict[str, float]  # one value per catalogue column
    parts: dict[str, Any]  # per-head data of the analyses: offsets, nearest, examples, ...

    @property
    def slug(self) -> str:
        return contract.head_slug(self.layer, self.head)


@dataclass
class Sentence:
    index: int  # 0-based position in the corpus
    id: str
    text: str
    text_b: str | None
    tokens: int
    truncated: bool
    has_view: bool  # True when its attention is kept and it has a page
    # True when data/NNNN.js exists: every head if has_view, else the heads whose pages draw it.
    has_data: bool = False
    label: str | None = None  # its gold label, when the input gives one
    # The fields ("text", "text_b") that truncation cut: each then holds only the text its kept
    # tokens cover (pipeline.analysed_text), and the pages mark the cut.
    cut: list[str] = field(default_factory=list)
    # What the model wrote after the prompt (--generate): its text, and how many of ``tokens``
    # it is; the prompt stays in ``text``.
    generation: str | None = None
    generated: int = 0


class Strings:
    """A column of strings (or None), compact: their UTF-8 bytes one after another and where
    each ends, 9 bytes a string beside its text; a column of Nones alone holds a count."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends: array | None = None  # None while every value is None
        self._none = bytearray()
        self._count = 0

    def append(self, value: str | None) -> None:
        if value is not None and self._ends is None:
            self._ends, self._none = array("q", [0]) * self._count, bytearray(b"\1") * self._count
        if self._ends is not None:
            if value is not None:
                self._data += value.encode("utf-8", "surrogatepass")
            self._ends.append(len(self._data))
            self._none.append(value is None)
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> str | None:
        if self._ends is None or self._none[index]:
            return None
        start = self._ends[index - 1] if index else 0
        return self._data[start : self._ends[index]].decode("utf-8", "surrogatepass")


CUTS = ([], ["text"], ["text_b"], ["text", "text_b"], ["text_b", "text"])  # Sentence.cut


class Sentences(Sequence[Sentence]):
    """Every sentence of an atlas, in corpus order, held compact: per sentence the UTF-8 bytes
    of its texts (id, text, second text, label, generation) and a few numbers, some 50 bytes
    beside the text, not a ``Sentence`` of Python objects (a corpus of 100,000 sentences held
    so is some 50 MB more). A ``Sentence`` is made each time one is asked for."""

    def __init__(self, sentences: Iterable[Sentence] = ()) -> None:
        self._texts = {name: Strings() for name in ("id", "text", "text_b", "label", "generation")}
        self._numbers = {name: array("q") for name in ("tokens", "generated")}
        self._flags = bytearray()  # truncated, has_view, has_data: bits 0 to 2; cut: 3 up
        for sentence in sentences:
            self.append(sentence)

    def append(self, sentence: Sentence) -> None:
        if sentence.index != len(self):
            raise ValueError(f"sentence {sentence.index} given as sentence {len(self)}")
        for name, column in self._texts.items():
            column.append(getattr(sentence, name))
        for name, numbers in self._numbers.items():
            numbers.append(getattr(sentence, name))
        flags = sentence.truncated | sentence.has_view << 1 | sentence.has_data << 2
        self._flags.append(flags | CUTS.index(list(sentence.cut)) << 3)

    def __len__(self) -> int:
        return len(self._flags)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]  # negative from the end; IndexError past it
        flags = self._flags[index]
        return Sentence(
            index=index,
            **{name: column[index] for name, column in self._texts.items()},
            **{name: numbers[index] for name, numbers in self._numbers.items()},
            truncated=bool(flags & 1),
            has_view=bool(flags & 2),
            has_data=bool(flags & 4),
            cut=list(CUTS[flags >> 3]),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Sentences: {len(self)}>"

    def with_pages(self, pages: Container[int], data: Container[int]) -> Sentences:
        """These sentences with ``has_view`` (a page) for those in ``pages`` alone, and
        ``has_data`` for those in ``data``: what a site fitted to a budget keeps. The texts and
        numbers are shared with this list, not copied (neither is appended to once made)."""
        made = copy.copy(self)
        made._flags = bytearray(
            flags & ~6 | (i in pages) << 1 | (i in data) << 2 for i, flags in enumerate(self._flags)
        )
        return made

    def json_chunks(self) -> Iterator[str]:
        """The list as ``json.dumps`` writes it in atlas.json (sorted keys, ", " and ": "),
        a sentence at a time: the file is written without every sentence as a dict at once."""
        yield "["
        for i, sentence in enumerate(self):
            text = json.dumps(dataclasses.asdict(sentence), sort_keys=True, ensure_ascii=False,
                              allow_nan=False)  # fmt: skip
            yield text if i == 0 else ", " + text
        yield "]"


@dataclass
class Atlas:
    title: str
    model: ModelCard
    options: Options
    corpus: CorpusSummary
    catalogue: list[Column]  # every per-head column, in the order the site shows them
    heads: list[Head]  # model order: L1-H1, L1-H2, ..., L2-H1, ...
    layer_means: dict[str, list[float]]  # per column, the mean of each layer's heads
    model_means: dict[str, float]  # per column, the mean of all heads
    results: dict[str, dict[str, Any]]  # each analysis's own data, by analysis name
    tables: list[Table]
    sections: dict[str, list[str]]  # page -> the analyses' section templates, in order
    pages: dict[str, dict[str, str]]  # the analyses' own pages: path -> {template, title}
    sentences: Sequence[Sentence]  # a Sentences (compact); a list is made one in __post_init__
    views: list[View]  # the sentences with a page; kept in data/, not in atlas.json
    schema_version: int = SCHEMA_VERSION
    atlas_version: str = __version__
    labels: list[str] = field(default_factory=list)  # every pattern label, in the site's order
    # A compare atlas (results["compare"]): model B's attention of the sentences with a page,
    # on the same tokens; kept in data/NNNN.b.js, not in atlas.json.
    views_b: list[View] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.sentences, Sentences):
            self.sentences = Sentences(self.sentences)

    def head(self, layer: int, head: int) -> Head:
        return self.heads[(layer - 1) * self.model.heads + (head - 1)]

    def column(self, key: str) -> Column:
        return next(c for c in self.catalogue if c.key == key)

    def view(self, index: int) -> View | None:
        return next((v for v in self.views if v.index == index), None)

    def sentence_key(self, index: int) -> str:
        return contract.sentence_key(index, len(self.sentences))

    @property
    def distances(self) -> list[list[float]]:
        """K × K mean JS divergence per token between heads (model order)."""
        return self.results["distances"]["matrix"]

    @property
    def map_stress(self) -> float:
        return self.results["distances"]["stress"]

    def to_json(self) -> str:
        """atlas.json: everything but the per-sentence attention, which the site keeps in
        data/NNNN.js (see viewdata.py) rather than twice."""
        return "".join(self.json_chunks())

    def json_chunks(self) -> Iterator[str]:
        """atlas.json in pieces, the sentence list a sentence at a time (``Sentences``): the
        bytes of ``json.dumps`` of the whole with sorted keys, without the whole as dicts."""
        data = self.tree(leave=("sentences", "views", "views_b"))
        before = _dumps({k: v for k, v in data.items() if k < "sentences"})
        after = _dumps({k: v for k, v in data.items() if k > "sentences"})
        yield before[:-1] + ', "sentences": '
        yield from self.sentences.json_chunks()
        yield ", " + after[1:] + "\n"

    def tree(
        self, digits: int | None = None, leave: tuple[str, ...] = ("views", "views_b")
    ) -> dict[str, Any]:
        """What atlas.json holds, as ``dataclasses.asdict`` gives it, less the fields ``leave``
        (not copied at all), floats rounded to ``digits`` decimals if given (``plain``)."""
        return {
            f.name: plain(getattr(self, f.name), digits)
            for f in dataclasses.fields(self)
            if f.name not in leave
        }


def plain(value: Any, digits: int | None = None) -> Any:
    """``value`` as ``dataclasses.asdict`` would give it, dataclasses as dicts, tuples as
    lists, with floats rounded to ``digits`` decimals if given (-0.0 as 0.0): one walk, where
    asdict deep-copies every leaf and a second walk rounded them (most of ``rounded``'s time)."""
    if isinstance(value, float):
        return value if digits is None else round(value, digits) + 0.0
    if isinstance(value, list | tuple):
        return [plain(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: plain(v, digits) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name), digits) for f in dataclasses.fields(value)}
    return value


def _dumps(data: dict[str, Any]) -> str:
    """JSON text of part of ``Atlas.tree``: keys sorted, no NaN or Infinity (JSON has none,
    and load() would refuse them: the error names where the first one is)."""
    try:
        return json.dumps(data, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except ValueError:
        where = first_non_finite(data)
        if where is None:
            raise
        raise ValueError(f"atlas.json would hold a number that is not finite, at {where}") from None


def first_non_finite(value: Any, where: str = "$") -> str | None:
    """The JSON path of the first float in ``value`` (dicts, lists, tuples) that is NaN or
    infinite, or None when all are finite."""
    if isinstance(value, float):
        return None if math.isfinite(value) else where
    if isinstance(value, dict):
        items = ((f"{where}.{key}", v) for key, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    return next((found for path, v in items if (found := first_non_finite(v, path))), None)


def rounded(atlas: Atlas) -> Atlas:
    """Round every float to DIGITS decimals, so atlas.json and pages are stable byte for byte,
    and give the Atlas exactly as atlas.json will hold it (through ``to_json`` and back): keys
    sorted and strings, tuples lists. The site is rendered from this, so the build's pages are
    those ``atlas render`` makes from atlas.json; an order that matters must be a list, since a
    dict's order is not kept."""
    # the sentences hold no float and nothing JSON changes (strings, integers, lists of
    # strings): kept as they are, as the views (in data/, not in atlas.json)
    data = atlas.tree(DIGITS, leave=("sentences", "views", "views_b"))
    data["sentences"] = []
    stored = json.loads(_dumps(data))
    return from_dict(stored, views=atlas.views, views_b=atlas.views_b, sentences=atlas.sentences)


def from_dict(
    data: dict,
    views: list[View] | None = None,
    views_b: list[View] | None = None,
    sentences: Sentences | None = None,
) -> Atlas:
    """Rebuild an Atlas from its ``asdict`` form (as read from atlas.json); ``views``,
    ``views_b`` and ``sentences``, when given, in place of the data's."""
    return Atlas(
        title=data["title"],
        model=ModelCard(**data["model"]),
        options=Options(**data["options"]),
        corpus=CorpusSummary(**data["corpus"]),
        catalogue=[Column(**c) for c in data["catalogue"]],
        heads=[Head(**h) for h in data["heads"]],
        layer_means=data["layer_means"],
        model_means=data["model_means"],
        results=data["results"],
        tables=[Table(**t) for t in data["tables"]],
        sections=data["sections"],
        pages=data["pages"],
        sentences=(
            sentences
            if sentences is not None
            else Sentences(Sentence(**s) for s in data["sentences"])
        ),
        views=views if views is not None else [View(**v) for v in data["views"]],
        schema_version=data["schema_version"],
        atlas_version=data["atlas_version"],
        labels=data["labels"],
        views_b=views_b if views_b is not None else [View(**v) for v in data.get("views_b", [])],
    )


SCHEMA_FILE = Path(__file__).resolve().parent / "atlas.schema.json"


def load(path: str | Path) -> Atlas:
    """Read atlas.json (or a site folder holding one), with the data/ folder beside it.

    The file is checked against its JSON Schema (atlas/atlas.schema.json) first, so a file of
    the wrong shape is named by its first problem and where it is, not by a traceback."""
    path = Path(path)
    if path.is_dir():
        path = path / "atlas.json"
    try:
        data = json.loads(
            path.read_text(encoding="utf-8"),
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_finite_int,
        )
    except FileNotFoundError:
        raise AtlasFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AtlasFileError(f"{path}: not a readable atlas.json ({err})") from None
    except (ValueError, RecursionError) as err:
        raise AtlasFileError(f"{path}: not a readable atlas.json ({err})") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise AtlasFileError(f"{path}: not an atlas.json (no schema_version)")
    version = data["schema_version"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise AtlasFileError(
            f"{path}: schema version {json.dumps(version)} ({type(version).__name__}), this "
            f"atlas reads {SCHEMA_VERSION} (int); rebuild it with `atlas build`"
        )
    _validate(path, data)
    views = _read_views(path, data)
    views_b = _read_views_b(path, data)
    try:
        return from_dict(data, views, views_b)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise AtlasFileError(f"{path}: malformed atlas.json ({err})") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent; one past float's range (1e999) would be read
    as infinity, which no page can show and no comparison can take."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{_short(text)} is too large a number, past ±1.8e308")
    return value


def _finite_int(text: str) -> int:
    """A JSON integer; one past float's range could not take part in any mean."""
    value = int(text)
    if abs(value) > sys.float_info.max:
        raise ValueError(f"{_short(text)} is too large a number, past ±1.8e308")
    return value


def _short(text: str) -> str:
    return text if len(text) <= 12 else f"{text[:6]}… ({len(text)} digits)"


def _validate(path: Path, data: dict) -> None:
    """The first problem of ``data`` against the schema, with its JSON path, as one line."""
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(data)
    )
    if error is not None:
        where = error.json_path
        message = error.message if len(error.message) < 120 else error.message[:117] + "..."
        raise AtlasFileError(f"{path}: {where}: {message}")
    _check_consistent(path, data)


def _check_consistent(path: Path, data: dict) -> None:
    """What a schema cannot say: the parts of the file agree with each other."""
    size = data["model"]["layers"] * data["model"]["heads"]
    keys = {column["key"] for column in data["catalogue"]}
    problems = [
        (f"$.heads: {len(data['heads'])} heads for {data['model']['layers']} layers × "
         f"{data['model']['heads']} heads") if len(data["heads"]) != size else "",
        *(f"$.heads[{i}].metrics: missing {', '.join(sorted(keys - set(h['metrics'])))}"
          for i, h in enumerate(data["heads"]) if keys - set(h["metrics"])),
        *(f"$.sentences[{i}].index: {s['index']}, expected {i}"
          for i, s in enumerate(data["sentences"]) if s["index"] != i),
    ]  # fmt: skip
    problems += _out_of_range(data)
    matrix = data["results"].get("distances", {}).get("matrix")
    if matrix is not None and (len(matrix) != size or any(len(row) != size for row in matrix)):
        problems.append(f"$.results.distances.matrix: not {size} × {size}")
    problems += _names_problems(data)
    problem = next((p for p in problems if p), None)
    if problem:
        raise AtlasFileError(f"{path}: {problem}")


RANGE_SLACK = 1e-6  # a share summed in float32 may pass 1 by a rounding error


def _out_of_range(data: dict) -> list[str]:
    """Every value of a column whose kind has a fixed range (a share, a ratio, an accuracy:
    0 to 1), per head and in the means, that falls outside it."""
    ranges = {c["key"]: (c["kind"], KINDS.get(c["kind"])) for c in data["catalogue"]}
    values = [
        *((f"$.heads[{i}].metrics.{k}", k, v) for i, h in enumerate(data["heads"])
          for k, v in h["metrics"].items()),
        *((f"$.layer_means.{k}[{i}]", k, v) for k, vs in data["layer_means"].items()
          for i, v in enumerate(vs)),
        *((f"$.model_means.{k}", k, v) for k, v in data["model_means"].items()),
    ]  # fmt: skip
    problems = []
    for where, key, value in values:
        kind, domain = ranges.get(key, ("", None))
        if domain and not domain[0] - RANGE_SLACK <= value <= domain[1] + RANGE_SLACK:
            problems.append(
                f"{where}: {value:g} is outside {domain[0]:g} to {domain[1]:g}, the range of "
                f"a column of kind {kind!r}"
            )
    return problems


SECTION_TEMPLATE = re.compile(r"sections/[a-z][a-z0-9-]*\.html")


def _names_problems(data: dict) -> list[str]:
    """The names atlas.json gives that become file names or template names: each head's, in
    model order (its page is heads/Lxx-Hyy.html), each analysis page's (NAME.html at the site's
    root, contract.ANALYSIS_PAGE) and template, and each section's template. A crafted file
    must not choose where the site writes (.git/hooks/pre-commit) nor which file is read."""
    per_layer = data["model"]["heads"]
    expected = [(i // per_layer + 1, i % per_layer + 1) for i in range(len(data["heads"]))]
    return [
        *(f"$.heads[{i}]: {h['name']} (layer {h['layer']}, head {h['head']}), expected "
          f"{contract.head_name(*where)} in model order"
          for i, (h, where) in enumerate(zip(data["heads"], expected, strict=True))
          if (h["layer"], h["head"], h["name"]) != (*where, contract.head_name(*where))),
        *(f"$.pages: {json.dumps(name)} is not a page of the site's layout (NAME.html at its "
          "root, not index.html)"
          for name in data["pages"] if not contract.ANALYSIS_PAGE.fullmatch(name)),
        *(f"$.pages[{json.dumps(name)}].template: {json.dumps(page['template'])} is not a page "
          "template (NAME.html)"
          for name, page in data["pages"].items()
          if not contract.ANALYSIS_PAGE.fullmatch(page["template"])),
        *(f"$.sections[{json.dumps(place)}]: {json.dumps(name)} is not a section template "
          "(sections/NAME.html)"
          for place, names in data["sections"].items() for name in names
          if not SECTION_TEMPLATE.fullmatch(name)),
    ]  # fmt: skip


def _read_views(path: Path, data: dict) -> list[View]:
    total = len(data.get("sentences", []))
    return [
        _view_at(
            path.parent / contract.data_script(sentence["index"], total),
            f"sentence {sentence['index'] + 1}'s attention",
        )
        for sentence in data.get("sentences", [])
        if sentence.get("has_data")
    ]


def _read_views_b(path: Path, data: dict) -> list[View]:
    """Model B's attention in a compare atlas: data/NNNN.b.js of the sentences of
    results.compare.sentences that have a page (a page left out by --max-site-mb took its
    script with it)."""
    total = len(data.get("sentences", []))
    pages = {s["index"] for s in data.get("sentences", []) if s.get("has_view")}
    return [
        _view_at(
            path.parent / contract.compare_data_script(index, total),
            f"model B's attention of sentence {index + 1}",
        )
        for index in data["results"].get("compare", {}).get("sentences", [])
        if index in pages
    ]


def _view_at(script: Path, what: str) -> View:
    """The View in a data script; a script that cannot be read is named in one line."""
    try:
        return read_view(script)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise AtlasFileError(
            f"{script}: cannot read {what} ({_why(err)}); atlas.json is read together with the "
            "data/ folder beside it"
        ) from None


def _why(err: Exception) -> str:
    """What went wrong reading a data script, without repeating its path."""
    if isinstance(err, OSError):
        return err.strerror or str(err)
    if isinstance(err, KeyError):
        return f"no {err} field"
    return str(err)
