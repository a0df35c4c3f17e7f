"""The per-sentence data the pages draw from: attention quantised to uint8, queries and keys to
int16, each sentence's in its own script (data/NNNN.js, data/NNNN.qk.js) that sets a global,
since file:// pages cannot fetch(). ``read_view`` reads them back, so ``atlas render`` needs no
model. Paths, globals and the scale come from atlas/contract.py."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import contract
from .model import Record

DATA_PREFIX = f"window.{contract.DATA_GLOBAL} = window.{contract.DATA_GLOBAL} || {{}};\n"
VECTORS_PREFIX = f"window.{contract.VECTORS_GLOBAL} = window.{contract.VECTORS_GLOBAL} || {{}};\n"
VECTOR_LEVELS = 32767  # int16


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
    # Words, when known: the words, each token's word (-1: special), and the gold arcs
    # [dependent, head, relation] as word indices (head -1: the root).
    words: list[str] | None = None
    word_of: list[int] | None = None
    arcs: list[list] | None = None

    def matrix(self, layers: int, heads: int) -> np.ndarray:
        """The attention as float32 [L, H, n, n] (values to within 1/(2·scale))."""
        n = len(self.tokens)
        raw = np.frombuffer(base64.b64decode(self.attention), dtype=np.uint8)
        return (raw.reshape(layers, heads, n, n) / contract.ATTENTION_SCALE).astype(np.float32)


def quantise(attention: np.ndarray) -> str:
    """uint8 in base64: 1.33 bytes per value, error at most 1/510."""
    scale = contract.ATTENTION_SCALE
    q = np.clip(np.rint(attention * scale), 0, scale).astype(np.uint8)
    return base64.b64encode(q.tobytes()).decode("ascii")


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
    if record.words is not None and record.word_of is not None:
        view.words = list(record.words)
        view.word_of = [int(w) for w in record.word_of]
        if record.heads is not None:
            view.arcs = [
                [d, int(h), record.deprels[d] if record.deprels else ""]
                for d, h in enumerate(record.heads)
            ]
    if with_qk and record.query is not None and record.key is not None:
        view.query, view.query_scale = quantise_vectors(record.query)
        view.key, view.key_scale = quantise_vectors(record.key)
    return view


def _script(prefix: str, name: str, key: str, payload: dict) -> str:
    return f'{prefix}window.{name}["{key}"] = {contract.script_json(payload)};\n'


def _read_script(path: Path, prefix: str) -> dict:
    text = path.read_text(encoding="utf-8")
    if not text.startswith(prefix):
        raise ValueError("not an atlas data script")
    _assignment, _, body = text[len(prefix) :].partition("] = ")
    return json.loads(body.rstrip().removesuffix(";"))


def data_script(
    view: View, *, key: str, sentence_id: str, layers: int, heads: int, causal: bool, neuron: dict
) -> str:
    """data/NNNN.js: one sentence's tokens and attention. ``neuron``: {available, note,
    head_dim} for the neuron view."""
    payload = {
        "key": key,
        "index": view.index,
        "id": sentence_id,
        "layers": layers,
        "heads": heads,
        "causal": causal,
        "tokens": view.tokens,
        "segments": view.segments,
        "special": view.special,
        "attention": view.attention,
        "neuron": neuron,
    }
    for name, value in (("words", view.words), ("wordOf", view.word_of), ("arcs", view.arcs)):
        if value is not None:
            payload[name] = value
    return _script(DATA_PREFIX, contract.DATA_GLOBAL, key, payload)


def vectors_script(view: View, key: str) -> str:
    """data/NNNN.qk.js: the sentence's queries and keys, loaded only when the neuron view
    opens, so the other views load no more than the attention."""
    payload = {
        "query": view.query,
        "query_scale": view.query_scale,
        "key": view.key,
        "key_scale": view.key_scale,
    }
    return _script(VECTORS_PREFIX, contract.VECTORS_GLOBAL, key, payload)


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
        words=payload.get("words"),
        word_of=payload.get("wordOf"),
        arcs=payload.get("arcs"),
    )
