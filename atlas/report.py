"""The Atlas: a plain tree of dataclasses holding everything measured, and how it is measured.

The site is rendered from an Atlas alone, and an Atlas round-trips through ``atlas.json``
(``to_json`` / ``load``), so ``atlas render atlas.json`` can re-theme a site without the model.
The JSON schema is documented in docs/atlas-json.md; bump SCHEMA_VERSION on any change to it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, clusters, stats
from .corpus import Example
from .model import ModelInfo, Record, Runner, reproduces_attention

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DIGITS = 6  # numbers in atlas.json are rounded to this many decimals: stable bytes, no noise
EXAMPLES_PER_HEAD = 3
NEAREST_HEADS = 5
TOP_PAIRS = 10


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


@dataclass
class CorpusSummary:
    sentences: int
    pairs: int
    tokens: int
    mean_tokens: float
    max_tokens: int
    truncated: int


@dataclass
class Neighbour:
    name: str
    distance: float


@dataclass
class TokenPair:
    source: str
    target: str
    count: int


@dataclass
class Head:
    name: str  # L9-H6: 1-based, as in the papers
    layer: int  # 1-based
    head: int  # 1-based
    label: str
    metrics: dict[str, float]
    offsets: list[float]  # attention at offset d = -8..8
    x: float
    y: float
    nearest: list[Neighbour]
    examples: list[int]  # 0-based sentence indices where the label's pattern is strongest
    pairs: list[TokenPair]
    pairs_error: int  # each pair count may be low by at most this much (0: exact)

    @property
    def slug(self) -> str:
        """File name stem: L09-H06, zero-padded so files sort in model order."""
        return f"L{self.layer:02d}-H{self.head:02d}"


@dataclass
class Sentence:
    index: int  # 0-based position in the corpus
    id: str
    text: str
    text_b: str | None
    tokens: int
    truncated: bool
    has_view: bool  # True when its attention is kept and it has a page


@dataclass
class View:
    """One sentence's attention, kept for its page: uint8 quantised, base64, [L, H, n, n]."""

    index: int
    tokens: list[str]
    segments: list[int]  # 0 = A, 1 = B, -1 = special
    special: list[int]  # 1 = special token
    attention: str
    # Queries and keys for the neuron view: int16 [L, H, n, head_dim] in base64, each vector with
    # its own scale (float32 [L, H, n], base64): value = int16 × scale. Empty when unavailable.
    # (int8 was tried: its rounding moved the neuron view's softmax up to 0.022 off the model's.)
    query: str = ""
    query_scale: str = ""
    key: str = ""
    key_scale: str = ""

    def matrix(self, layers: int, heads: int) -> np.ndarray:
        """The attention as float32 [L, H, n, n] (values to within 1/510)."""
        n = len(self.tokens)
        raw = np.frombuffer(base64.b64decode(self.attention), dtype=np.uint8)
        return (raw.reshape(layers, heads, n, n) / 255.0).astype(np.float32)


@dataclass
class Atlas:
    title: str
    model: ModelCard
    options: Options
    corpus: CorpusSummary
    heads: list[Head]
    layer_means: dict[str, list[float]]
    model_means: dict[str, float]
    map_stress: float
    distances: list[list[float]]
    sentences: list[Sentence]
    views: list[View]
    schema_version: int = SCHEMA_VERSION
    atlas_version: str = __version__
    labels: list[str] = field(default_factory=lambda: list(stats.LABELS))

    def head(self, layer: int, head: int) -> Head:
        return self.heads[(layer - 1) * self.model.heads + (head - 1)]

    def view(self, index: int) -> View | None:
        return next((v for v in self.views if v.index == index), None)

    def to_json(self) -> str:
        """atlas.json: everything but the per-sentence attention, which the site keeps in
        data/NNNN.js (see data_script) rather than twice."""
        data = dataclasses.asdict(self)
        del data["views"]
        return json.dumps(data, sort_keys=True, ensure_ascii=False) + "\n"


def sentence_number(index: int, total: int) -> str:
    """1-based, zero-padded to at least 4 digits: the page name and the data key."""
    return str(index + 1).zfill(max(4, len(str(total))))


DATA_PREFIX = "window.ATLAS_DATA = window.ATLAS_DATA || {};\n"
VECTORS_PREFIX = "window.ATLAS_VECTORS = window.ATLAS_VECTORS || {};\n"


def _script(prefix: str, name: str, key: str, payload: dict) -> str:
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    # "<" escaped so no token can close a script element, even if this is ever inlined.
    text = text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f'{prefix}window.{name}["{key}"] = {text};\n'


def _read_script(path: Path, prefix: str) -> dict:
    text = path.read_text(encoding="utf-8")
    if not text.startswith(prefix):
        raise ValueError("not an atlas data script")
    _assignment, _, body = text[len(prefix) :].partition("] = ")
    return json.loads(body.rstrip().removesuffix(";"))


def data_script(atlas: Atlas, view: View) -> str:
    """data/NNNN.js: one sentence's tokens and attention, set on a global for the pages, since
    file:// pages cannot fetch(). ``read_view`` reads it back."""
    key = sentence_number(view.index, len(atlas.sentences))
    payload = {
        "key": key,
        "index": view.index,
        "id": atlas.sentences[view.index].id,
        "layers": atlas.model.layers,
        "heads": atlas.model.heads,
        "causal": atlas.model.causal,
        "tokens": view.tokens,
        "segments": view.segments,
        "special": view.special,
        "attention": view.attention,
        "neuron": {
            "available": atlas.model.neuron_view and bool(view.query),
            "note": atlas.model.neuron_note,
            "head_dim": atlas.model.head_dim,
        },
    }
    return _script(DATA_PREFIX, "ATLAS_DATA", key, payload)


def vectors_script(atlas: Atlas, view: View) -> str:
    """data/NNNN.qk.js: the sentence's queries and keys, loaded only when the neuron view
    opens, so the other views load no more than the attention."""
    key = sentence_number(view.index, len(atlas.sentences))
    payload = {
        "query": view.query,
        "query_scale": view.query_scale,
        "key": view.key,
        "key_scale": view.key_scale,
    }
    return _script(VECTORS_PREFIX, "ATLAS_VECTORS", key, payload)


def read_view(path: Path) -> View:
    """The View kept in data/NNNN.js (and data/NNNN.qk.js beside it, if there is one)."""
    payload = _read_script(path, DATA_PREFIX)
    vectors_path = path.with_suffix(".qk.js")
    vectors = _read_script(vectors_path, VECTORS_PREFIX) if vectors_path.is_file() else {}
    return View(
        index=payload["index"],
        tokens=payload["tokens"],
        segments=payload["segments"],
        special=payload["special"],
        attention=payload["attention"],
        query=vectors.get("query", ""),
        query_scale=vectors.get("query_scale", ""),
        key=vectors.get("key", ""),
        key_scale=vectors.get("key_scale", ""),
    )


def quantise(attention: np.ndarray) -> str:
    """uint8 in base64: 1.33 bytes per value, error at most 1/510."""
    q = np.clip(np.rint(attention * 255.0), 0, 255).astype(np.uint8)
    return base64.b64encode(q.tobytes()).decode("ascii")


VECTOR_LEVELS = 32767  # int16


def quantise_vectors(vectors: np.ndarray) -> tuple[str, str]:
    """int16 with one float32 scale per vector (last axis): error at most scale / 2, i.e.
    1/65534 of the vector's largest component."""
    scale = np.abs(vectors).max(-1) / VECTOR_LEVELS
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(vectors / scale[..., None]), -VECTOR_LEVELS, VECTOR_LEVELS)
    q = q.astype("<i2")
    return (
        base64.b64encode(q.tobytes()).decode("ascii"),
        base64.b64encode(scale.tobytes()).decode("ascii"),
    )


def make_view(record: Record, with_qk: bool) -> View:
    view = View(
        index=record.index,
        tokens=record.tokens,
        segments=[int(s) for s in record.segments],
        special=[int(s) for s in record.special],
        attention=quantise(record.attention),
    )
    if with_qk and record.query is not None and record.key is not None:
        view.query, view.query_scale = quantise_vectors(record.query)
        view.key, view.key_scale = quantise_vectors(record.key)
    return view


def measure(
    examples: Sequence[Example],
    runner: Runner,
    *,
    title: str,
    input_name: str,
    batch_size: int = 16,
    views: int = 200,
    limit: int | None = None,
    progress: bool = False,
) -> Atlas:
    """Run the model over every example once, streaming, and assemble the Atlas.

    Attention is kept only for the first ``views`` sentences and for the few example sentences
    each head page shows (those outside the first ``views`` are run again at the end)."""
    info = runner.info
    layers, heads = info.layers, info.heads
    head_stats: stats.HeadStats | None = None
    distances = clusters.HeadDistances(layers, heads)
    kept: dict[int, View] = {}
    sentence_rows: dict[int, tuple[int, bool]] = {}
    causal = info.causal  # decided once by the runner, not by whichever sentence comes first
    neuron_note = runner.qk.note
    for record in runner.run(examples, batch_size=batch_size, progress=progress):
        if head_stats is None:
            head_stats = stats.HeadStats(layers, heads, causal, keep=EXAMPLES_PER_HEAD)
            if not neuron_note and not reproduces_attention(record, causal):
                neuron_note = (
                    "the captured queries and keys do not reproduce this model's attention "
                    "(it may add position biases), so the neuron view is off"
                )
        head_stats.add(record)
        distances.add(record)
        sentence_rows[record.index] = (record.n, record.truncated)
        if record.index < views:
            kept[record.index] = make_view(record, not neuron_note)
        if record.truncated:
            log.warning(
                "sentence %d (id %s, line %d) truncated to %d tokens",
                record.index + 1,
                examples[record.index].id,
                examples[record.index].line,
                runner.max_length,
            )
    assert head_stats is not None, "read_corpus never returns an empty corpus"

    means = head_stats.means()
    offsets = head_stats.offset_means()
    distance = distances.distances()
    coords, stress = clusters.head_map(distance)
    neighbours = clusters.nearest(distance, NEAREST_HEADS)
    names = [f"L{layer + 1}-H{head + 1}" for layer in range(layers) for head in range(heads)]
    head_list: list[Head] = []
    for flat, name in enumerate(names):
        layer, head = divmod(flat, heads)
        values = {key: float(means[key][layer, head]) for key in stats.METRICS}
        label = stats.label_head(values)
        counter = head_stats.pairs[flat]
        head_list.append(
            Head(
                name=name,
                layer=layer + 1,
                head=head + 1,
                label=label,
                metrics=values,
                offsets=offsets[layer, head].tolist(),
                x=float(coords[flat, 0]),
                y=float(coords[flat, 1]),
                nearest=[Neighbour(names[g], float(distance[flat, g])) for g in neighbours[flat]],
                examples=head_stats.best_examples(label, flat),
                pairs=[TokenPair(a, b, c) for (a, b), c in counter.top(TOP_PAIRS)],
                pairs_error=counter.error,
            )
        )

    wanted = sorted({i for h in head_list for i in h.examples} - set(kept))
    if wanted:
        log.info(
            "running %d head-page example sentences again to keep their attention", len(wanted)
        )
        for record in runner.run(examples, indices=wanted, batch_size=batch_size):
            kept[record.index] = make_view(record, not neuron_note)

    token_counts = [sentence_rows[i][0] for i in range(len(examples))]
    atlas = Atlas(
        title=title,
        model=ModelCard(
            **dataclasses.asdict(info),
            neuron_view=not neuron_note,
            neuron_note=neuron_note,
        ),
        options=Options(
            input=input_name,
            batch_size=batch_size,
            max_length=runner.max_length,
            device=runner.device,
            limit=limit,
            views=views,
        ),
        corpus=CorpusSummary(
            sentences=len(examples),
            pairs=sum(e.text_b is not None for e in examples),
            tokens=int(sum(token_counts)),
            mean_tokens=float(np.mean(token_counts)),
            max_tokens=int(max(token_counts)),
            truncated=sum(sentence_rows[i][1] for i in range(len(examples))),
        ),
        heads=head_list,
        layer_means={key: means[key].mean(1).tolist() for key in stats.METRICS},
        model_means={key: float(means[key].mean()) for key in stats.METRICS},
        map_stress=stress,
        distances=distance.tolist(),
        sentences=[
            Sentence(
                index=i,
                id=e.id,
                text=e.text,
                text_b=e.text_b,
                tokens=sentence_rows[i][0],
                truncated=sentence_rows[i][1],
                has_view=i in kept,
            )
            for i, e in enumerate(examples)
        ],
        views=[kept[i] for i in sorted(kept)],
    )
    return rounded(atlas)


def rounded(atlas: Atlas) -> Atlas:
    """Round every float to DIGITS decimals, so atlas.json and pages are stable byte for byte."""

    def walk(value):
        if isinstance(value, float):
            return round(value, DIGITS) + 0.0  # + 0.0 turns -0.0 into 0.0
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return from_dict(walk(dataclasses.asdict(atlas)))


def from_dict(data: dict, views: list[View] | None = None) -> Atlas:
    """Rebuild an Atlas from its ``asdict`` form (as read from atlas.json)."""
    return Atlas(
        title=data["title"],
        model=ModelCard(**data["model"]),
        options=Options(**data["options"]),
        corpus=CorpusSummary(**data["corpus"]),
        heads=[
            Head(
                **{
                    **h,
                    "nearest": [Neighbour(**n) for n in h["nearest"]],
                    "pairs": [TokenPair(**p) for p in h["pairs"]],
                }
            )
            for h in data["heads"]
        ],
        layer_means=data["layer_means"],
        model_means=data["model_means"],
        map_stress=data["map_stress"],
        distances=data["distances"],
        sentences=[Sentence(**s) for s in data["sentences"]],
        views=views if views is not None else [View(**v) for v in data["views"]],
        schema_version=data["schema_version"],
        atlas_version=data["atlas_version"],
        labels=data["labels"],
    )


def load(path: str | Path) -> Atlas:
    """Read atlas.json, checking that this version of atlas can render it."""
    path = Path(path)
    if path.is_dir():
        path = path / "atlas.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AtlasFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AtlasFileError(f"{path}: not a readable atlas.json ({err})") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise AtlasFileError(f"{path}: not an atlas.json (no schema_version)")
    if data["schema_version"] != SCHEMA_VERSION:
        raise AtlasFileError(
            f"{path}: schema version {data['schema_version']}, this atlas reads "
            f"{SCHEMA_VERSION}; rebuild it with `atlas build`"
        )
    views = []
    total = len(data.get("sentences", []))
    for sentence in data.get("sentences", []):
        if not sentence.get("has_view"):
            continue
        script = path.parent / "data" / f"{sentence_number(sentence['index'], total)}.js"
        try:
            views.append(read_view(script))
        except (OSError, ValueError, KeyError) as err:
            raise AtlasFileError(
                f"{script}: cannot read sentence {sentence['index'] + 1}'s attention ({err}); "
                "atlas.json is read together with the data/ folder beside it"
            ) from None
    try:
        return from_dict(data, views)
    except (KeyError, TypeError) as err:
        raise AtlasFileError(f"{path}: malformed atlas.json ({err})") from None
