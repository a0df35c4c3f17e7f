"""The per-sentence data the pages draw from, each sentence's in its own script (data/NNNN.js,
data/NNNN.qk.js) that sets a global, since file:// pages cannot fetch(). ``read_view`` reads them
back, so ``atlas render`` needs no model. Paths, globals and the scale come from
atlas/contract.py.

Both payloads are deflated (zlib format) and then base64-encoded; the pages inflate them with
the browser's own ``DecompressionStream("deflate")``, so there is no library and it works from
file://. On real text deflate shrinks the attention's bytes to under half: most values are near
zero.

- Attention: uint8, value × 255, [heads kept, n, n]; every head of the model, or, for a sentence
  kept only for the figures of some head pages, just those heads (``heads_kept``). A sentence of
  more than ``contract.SPARSE_FROM`` tokens keeps each row sparsely instead (``sparse_rows``):
  its ``top`` largest values and the rest of the row as one remainder, with the error bound
  atlas/contract.py states; it has no rollout and no queries and keys (both n² or n·d per head
  at full precision, and the rollout n³ to compute).
- Rollout (sentences with every head kept): the attention rollout at the last layer
  (``rollout``), computed here in float64 from the model's float attention, since rolled out in
  the page from the uint8 attention its error compounds over the layers; uint16 little-endian,
  value × ``contract.ROLLOUT_SCALE``, [n, n], row i the token whose vector it is.
- Queries and keys (the neuron view): one block per (q or k, layer, head), each quantised per
  dimension over the sentence's tokens, int8 where the neuron view's softmax then stays within
  ``VECTOR_TOLERANCE`` of the model's attention, checked here for every head, else int16.
  Layout of the inflated bytes: ``contract.VECTOR_BITS`` and what follows it (the contract
  defines it, with the data scripts' fields and the data format's version).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import contract, pieces
from .records import Record
from .scores import Scores

DATA_PREFIX = f"window.{contract.DATA_GLOBAL} = window.{contract.DATA_GLOBAL} || {{}};\n"
VECTORS_PREFIX = f"window.{contract.VECTORS_GLOBAL} = window.{contract.VECTORS_GLOBAL} || {{}};\n"
ENCODING = "deflate"  # what the pages give DecompressionStream
DEFLATE_LEVEL = 6  # zlib's default: level 9 saves under 1% more here, at twice the time
VECTOR_TOLERANCE = 0.01  # the neuron view's softmax, from the stored q and k, vs the attention
# Quantisation levels tried for a block of queries or keys, coarsest first (largest |raw|): the
# first whose softmax stays within VECTOR_TOLERANCE is kept. All but the last fit in int8, and
# deflate stores a coarse block in fewer bits (on UD English, 7 to 63 levels suffice for 87% of
# the blocks of all-MiniLM-L6-v2, and 1% need int16).
LEVELS = (7, 15, 31, 63, 127, 32767)
# ``choose_blocks`` tries up to LEVELS_AT_ONCE levels in one go, and at most TRIED_VALUES values
# (levels × heads × n × max(n, d): 16 MB of float64 per array). Most blocks of short sentences
# need 31 or 63 levels (on UD English 37% and 35%; 15: 11%, 127: 12%); two at once cost about
# what level after level does, three or all six at once cost more than the calls they save.
LEVELS_AT_ONCE = 2
TRIED_VALUES = 2_000_000


@dataclass
class View:
    """One sentence's attention (and queries and keys), encoded as its data scripts hold them."""

    index: int
    tokens: list[str]
    segments: list[int]  # 0 = A, 1 = B, -1 = special
    special: list[int]  # 1 = special token
    attention: str  # base64 of deflated uint8 [len(heads_kept) or L·H, n, n]
    # The heads stored (flat, model order) when only some are: a sentence kept for the figures
    # of head pages, without a page of its own. None: every head.
    heads_kept: list[int] | None = None
    # The attention rollout at the last layer (module docstring), base64 of deflated uint16
    # [n, n]; "" when not every head is kept.
    rollout: str = ""
    # Queries and keys for the neuron view (module docstring), "" when not kept, and the largest
    # difference between the neuron view's softmax from them and the model's attention.
    vectors: str = ""
    vectors_error: float = 0.0
    # Sparse rows (contract.SPARSE_FROM): the values kept per row; 0 for dense [n, n].
    top: int = 0
    # Words, when known: the words, each token's word (-1: special), and the gold arcs
    # [dependent, head, relation] as word indices (head -1: the root).
    words: list[str] | None = None
    word_of: list[int] | None = None
    arcs: list[list] | None = None
    # 1 for each token the model generated after the prompt (--generate); None without one
    generated: list[int] | None = None

    @property
    def n(self) -> int:
        return len(self.tokens)

    def matrix(self, layers: int, heads: int) -> np.ndarray:
        """The attention as float32 [L, H, n, n] (values to within 1/(2·scale)); the heads not
        kept are NaN. Sparse rows give their kept values and 0 elsewhere."""
        n = self.n
        if self.top:
            index, _rest, value = self.sparse()
            stored = np.zeros((len(index), n, n), dtype=np.float32)
            np.put_along_axis(stored, index.astype(np.int64), value.astype(np.float32), -1)
        else:
            raw = np.frombuffer(inflate(self.attention), dtype=np.uint8)
            stored = (raw.reshape(-1, n, n) / contract.ATTENTION_SCALE).astype(np.float32)
        if self.heads_kept is None:
            return stored.reshape(layers, heads, n, n)
        out = np.full((layers * heads, n, n), np.nan, dtype=np.float32)
        out[self.heads_kept] = stored
        return out.reshape(layers, heads, n, n)

    @property
    def head_bytes(self) -> int:
        """The inflated attention bytes of one head stored: n² dense, n·(3·top + 2) sparse."""
        return self.n * (3 * self.top + 2) if self.top else self.n * self.n

    def sparse(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sparse rows as stored, per head stored: (indices [h, n, top], remainders [h, n],
        values [h, n, top]), as floats the page decodes."""
        return unpack_sparse(inflate(self.attention), self.n, self.top)

    def rollout_matrix(self) -> np.ndarray | None:
        """The stored rollout as float64 [n, n], as the page decodes it (None if not stored)."""
        if not self.rollout:
            return None
        raw = np.frombuffer(inflate(self.rollout), dtype="<u2").reshape(self.n, self.n)
        return raw / contract.ROLLOUT_SCALE

    def queries_keys(self, layers: int, heads: int, head_dim: int) -> tuple[np.ndarray, np.ndarray]:
        """The stored queries and keys as float64 [L, H, n, d] each, as the page decodes them."""
        return unpack_vectors(self.vectors, layers, heads, self.n, head_dim)


def deflate(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, DEFLATE_LEVEL)).decode("ascii")


def inflate(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


def quantise(attention: np.ndarray) -> bytes:
    """uint8, value × 255: error at most 1/510."""
    scale = contract.ATTENTION_SCALE
    return np.clip(np.rint(attention * scale), 0, scale).astype(np.uint8).tobytes()


def sparse_top(n: int, heads: int) -> int:
    """How many values each row of a long sentence keeps: as many as fit SPARSE_BUDGET bytes
    (3 a value, 2 a row's remainder) over ``heads`` heads, at least 1, at most SPARSE_TOP."""
    fit = (SPARSE_BUDGET // max(1, heads * n) - 2) // 3
    return int(max(1, min(n, SPARSE_TOP, fit)))


def sparse_rows(attention: np.ndarray, top: int) -> bytes:
    """Heads [h, n, n] of float attention as sparse rows (contract.SPARSE_FROM's layout): each
    row's ``top`` largest values, largest first, and the rest of the row's sum as a remainder.
    A head at a time: the layer may be a strided view of the model's tensor, and a contiguous
    copy of it all would be 768 MB at 12 heads and 4,000 tokens."""
    parts = []
    for head in attention:
        rows = np.ascontiguousarray(head, dtype=np.float32)
        values, index = torch.topk(torch.from_numpy(rows), top, dim=-1, sorted=True)
        # Row sums in float64 through numpy's buffered cast, without a float64 copy.
        rest = np.clip(rows.sum(-1, dtype=np.float64) - values.double().sum(-1).numpy(), 0, 1)
        parts.append(index.numpy().astype(contract.SPARSE_INDEX).tobytes())
        parts.append(np.rint(rest * contract.REST_SCALE).astype(contract.SPARSE_REST).tobytes())
        parts.append(quantise(values.numpy()))
    return b"".join(parts)


def unpack_sparse(data: bytes, n: int, top: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inverse of ``sparse_rows``: (indices [h, n, top], remainders [h, n] and values
    [h, n, top] as floats)."""
    size = n * top
    per_head = size * np.dtype(contract.SPARSE_INDEX).itemsize + 2 * n + size
    if len(data) % per_head:
        raise ValueError(f"sparse attention: {len(data)} bytes, not whole heads of {per_head}")
    index, rest, value = [], [], []
    for at in range(0, len(data), per_head):
        index.append(np.frombuffer(data, contract.SPARSE_INDEX, size, at).reshape(n, top))
        at += 2 * size
        rest.append(np.frombuffer(data, contract.SPARSE_REST, n, at) / contract.REST_SCALE)
        at += 2 * n
        value.append(np.frombuffer(data, np.uint8, size, at).reshape(n, top))
    values = np.array(value, dtype=np.float64) / contract.ATTENTION_SCALE
    return np.array(index), np.array(rest), values


def rollout(attention: np.ndarray) -> np.ndarray:
    """Attention rollout (Abnar and Zuidema 2020) R = Π_l (0.5·Ā_l + 0.5·I), layer 1 applied
    first (R = M_L ··· M_1), Ā_l = the layer's mean over heads with rows renormalised, in
    float64. ``attention``: [L, H, n, n]; returns [L, n, n], the rollout up to each layer; row i
    of the last says how much token i's last-layer vector draws on each input token."""
    out = np.empty((attention.shape[0], *attention.shape[-2:]))
    current = np.eye(attention.shape[-1])
    for layer, heads in enumerate(attention):
        current = out[layer] = rollout_step(current, heads)
    return out


def rollout_step(current: np.ndarray, attention: np.ndarray) -> np.ndarray:
    """The rollout [n, n] up to one layer, from the rollout up to the layer before (the
    identity before the first) and the layer's attention [H, n, n]."""
    mean = np.asarray(attention, dtype=np.float64).mean(0)
    mean = mean / mean.sum(-1, keepdims=True)
    return (0.5 * mean + 0.5 * np.eye(len(mean))) @ current


def encode_rollout(matrix: np.ndarray) -> str:
    """A rollout [n, n] as the data script holds it: uint16 little-endian, value ×
    ROLLOUT_SCALE, deflated, base64; each value within 1/(2·ROLLOUT_SCALE)."""
    scale = contract.ROLLOUT_SCALE
    return deflate(np.clip(np.rint(matrix * scale), 0, scale).astype("<u2").tobytes())


class _Blocks:
    """Blocks [b, n, d] ready to quantise at several levels at once: what does not depend on the
    level (each dimension's range over the tokens, its float16 midpoint, the values less it) is
    computed once, not once per level tried."""

    def __init__(self, x: np.ndarray):
        low, high = x.min(-2), x.max(-2)
        self.offset = ((low + high) / 2).astype(np.float16)
        self.half = np.maximum(high - self.offset, self.offset - low)  # the larger half-range
        self.centred = x - self.offset[..., None, :].astype(np.float64)

    def quantise(self, levels: Sequence[int], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension quantisation over the tokens of blocks ``rows``, at each of ``levels``
        (2·levels + 1 steps): raw [g, r, n, d] (integers, as float64) and scale float16 [g, r, d]
        as stored; the offset is ``self.offset[rows]``."""
        count = np.array(levels, np.float32)[:, None, None]  # float32 / levels, as one level's
        spread = self.half[rows] / count
        # float16 rounds; a little headroom keeps every value inside the levels after rounding.
        scale = (spread * (1 + 2**-9)).astype(np.float16)
        scale = np.where(scale > 0, scale, np.float16(1))
        centred = self.centred[rows] / scale[..., None, :]
        return np.clip(np.rint(centred), -count[..., None], count[..., None]), scale


def _dtype(levels: int) -> np.dtype:
    return np.dtype(contract.VECTOR_VALUES[8 if levels <= 127 else 16])


def _dequantise(raw: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    return raw * scale[..., None, :].astype(np.float64) + offset[..., None, :]


def softmax_error(
    q: np.ndarray, k: np.ndarray, attention: np.ndarray, causal: bool, scores: Scores | None = None
) -> np.ndarray:
    """Per head [L, H]: the largest |attention of q and k - attention| over all rows, the
    attention of q and k as ``scores`` computes it (default softmax(q·k/√d))."""
    scores = scores or Scores.plain(q.shape[0], q.shape[-1])
    return scores.error(q, k, attention, causal)


def choose_blocks(
    query: np.ndarray,
    key: np.ndarray,
    attention: np.ndarray,
    causal: bool,
    scores: Scores | None = None,
    layer: int | None = None,
) -> list[tuple]:
    """Per head of queries and keys [..., n, d] (every layer's heads, or ``layer``'s alone), in
    model order: (levels, query blocks, key blocks, error) at the coarsest LEVELS whose
    attention, as ``scores`` computes it (default softmax(q·k/√d)), stays within
    VECTOR_TOLERANCE of ``attention`` [..., n, n]."""
    if layer is None:  # every layer's heads: each layer in turn, as its scale may differ
        scores = scores or Scores.plain(query.shape[0], query.shape[-1])
        return [
            block
            for at in range(query.shape[0])
            for block in choose_blocks(query[at], key[at], attention[at], causal, scores, at)
        ]
    scores = scores or Scores.plain(layer + 1, query.shape[-1])
    n, d = query.shape[-2:]
    q_blocks, k_blocks = _Blocks(query.reshape(-1, n, d)), _Blocks(key.reshape(-1, n, d))
    attention = attention.reshape(-1, n, n)
    chosen: list[tuple | None] = [None] * len(attention)
    # Several levels are tried at once (LEVELS_AT_ONCE, as TRIED_VALUES allows), each only on the
    # heads no coarser level kept. A head's error depends on its
    # own blocks alone, so this chooses as trying every head at every level in turn would.
    rows, first = np.arange(len(attention)), 0
    while len(rows):
        count = min(LEVELS_AT_ONCE, max(1, TRIED_VALUES // (len(rows) * n * max(n, d))))
        levels = LEVELS[first : first + count]
        q_raw, q_scale = q_blocks.quantise(levels, rows)
        k_raw, k_scale = k_blocks.quantise(levels, rows)
        q_offset, k_offset = q_blocks.offset[rows], k_blocks.offset[rows]
        error = scores.layer_error(
            layer,
            _dequantise(q_raw, q_scale, q_offset),
            _dequantise(k_raw, k_scale, k_offset),
            attention[rows],
            causal,
        )  # [levels tried, rows]
        fits = error <= VECTOR_TOLERANCE
        if levels[-1] == LEVELS[-1]:
            fits[-1] = True  # the finest level is kept whatever its error
        found = fits.any(0)
        for at in np.flatnonzero(found):
            tried = int(fits[:, at].argmax())  # the coarsest level that fits
            dtype = _dtype(levels[tried])
            chosen[rows[at]] = (
                levels[tried],
                [q_raw[tried, at].astype(dtype), q_scale[tried, at], q_offset[at]],
                [k_raw[tried, at].astype(dtype), k_scale[tried, at], k_offset[at]],
                error[tried, at],
            )
        rows, first = rows[~found], first + len(levels)
    return chosen


def pack_blocks(chosen: list[tuple]) -> tuple[str, float]:
    """Every head's ``choose_blocks``, in model order, in the layout of the module docstring:
    the encoded text and the largest softmax difference of the stored vectors."""
    bits = bytes(8 * _dtype(c[0]).itemsize for c in chosen)
    parts = [bits, bits]
    for which in (1, 2):  # queries, then keys
        for c in chosen:
            raw, scale, offset = c[which]
            params = contract.VECTOR_PARAMS
            parts += [scale.astype(params).tobytes(), offset.astype(params).tobytes()]
            parts.append(raw.tobytes())
    return deflate(b"".join(parts)), float(max((c[3] for c in chosen), default=0.0))


def pack_vectors(
    query: np.ndarray,
    key: np.ndarray,
    attention: np.ndarray,
    causal: bool,
    scores: Scores | None = None,
) -> tuple[str, float]:
    """Queries and keys [L, H, n, d] in the layout of the module docstring, each head's blocks
    at the coarsest LEVELS whose attention (as ``scores`` computes it) stays within
    VECTOR_TOLERANCE of ``attention``. Returns the encoded text and the largest difference of
    the stored vectors."""
    return pack_blocks(choose_blocks(query, key, attention, causal, scores))


def unpack_vectors(
    text: str, layers: int, heads: int, n: int, d: int
) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of ``pack_vectors``: (queries, keys), float64 [L, H, n, d] each."""
    data = inflate(text)
    blocks = 2 * layers * heads
    bits = np.frombuffer(data, contract.VECTOR_BITS, count=blocks)
    at = blocks
    out = np.zeros((blocks, n, d))
    for block in range(blocks):
        scale = np.frombuffer(data, contract.VECTOR_PARAMS, count=d, offset=at)
        offset = np.frombuffer(data, contract.VECTOR_PARAMS, count=d, offset=at + 2 * d)
        at += 2 * scale.nbytes
        dtype = np.dtype(contract.VECTOR_VALUES[int(bits[block])])
        raw = np.frombuffer(data, dtype, count=n * d, offset=at).reshape(n, d)
        at += raw.nbytes
        out[block] = _dequantise(raw, scale, offset)
    if at != len(data):
        raise ValueError(f"queries and keys: {len(data)} bytes, expected {at}")
    half = blocks // 2
    return out[:half].reshape(layers, heads, n, d), out[half:].reshape(layers, heads, n, d)


# The most attention bytes (before deflate) a sentence's view keeps: 256 MiB. Past
# contract.SPARSE_FROM tokens rows are sparse, so only a sentence of more tokens than the sparse
# indices hold, or of so many heads that one value a row passes it, gets no page of its own (the
# build names it), rather than one no browser could draw.
MAX_VIEW_BYTES = 1 << 28
# The bytes a sparse sentence's rows aim for (before deflate, which takes about a third off):
# 4 MiB keeps SPARSE_TOP values a row on small models and 1 on 12 × 12 heads at 4,096 tokens.
SPARSE_BUDGET = 4 << 20
SPARSE_TOP = 32


def is_sparse(n: int) -> bool:
    """Whether an n-token sentence keeps sparse rows (contract.SPARSE_FROM)."""
    return n > contract.SPARSE_FROM


def view_bytes(n: int, heads: int) -> int:
    """The attention bytes of ``heads`` heads of an n-token sentence: uint8 n × n, or sparse
    rows; past the sparse indices' reach, more than MAX_VIEW_BYTES."""
    if not is_sparse(n):
        return heads * n * n
    if n > np.iinfo(contract.SPARSE_INDEX).max + 1:
        return MAX_VIEW_BYTES + 1
    return heads * n * (3 * sparse_top(n, heads) + 2)


class ViewMaker:
    """A record's View, made layer by layer as the forward pass hands them out (``layer``): each
    layer's attention quantised and deflated as it comes, its rollout multiplied on, its queries
    and keys chosen; ``view`` gives the View after the last. Holds the deflated bytes, the
    rollout [n, n] and the chosen blocks, never a layer past its own."""

    def __init__(
        self,
        record: Record,
        *,
        layers: int,
        heads: int,
        vectors: bool,
        causal: bool,
        heads_kept: list[int] | None = None,
        scores: Scores | None = None,
        check: bool = True,
    ):
        self.record, self.heads, self.causal, self.scores = record, heads, causal, scores
        self.check = check
        self.heads_kept = None if heads_kept is None else sorted(heads_kept)
        stored = layers * heads if heads_kept is None else len(self.heads_kept)
        self.top = sparse_top(record.n, stored) if is_sparse(record.n) else 0
        dense = not self.top
        self.vectors = vectors and heads_kept is None and record.query is not None and dense
        self._deflate = zlib.compressobj(DEFLATE_LEVEL)
        self._parts: list[bytes] = []
        self._rollout = np.eye(record.n) if heads_kept is None and dense else None
        self._blocks: list[tuple] = []
        # With ``check``: the largest difference between the attention the captured vectors give
        # (as ``scores`` computes it) and the model's, and the head (flat, model order) where it
        # is. Only the record that decides whether a run's vectors reproduce its attention needs
        # them (analyses/views.py), so the others skip an n² float64 softmax per head.
        self.error, self.worst = 0.0, 0

    def layer(self, layer: int, attention: np.ndarray) -> None:
        """Fold in layer ``layer`` (in order), float32 [heads, n, n]."""
        kept = attention
        if self.heads_kept is not None:
            first = layer * self.heads
            kept = attention[[h - first for h in self.heads_kept if 0 <= h - first < self.heads]]
        data = sparse_rows(kept, self.top) if self.top else quantise(kept)
        self._parts.append(self._deflate.compress(data))
        if self._rollout is not None:
            self._rollout = rollout_step(self._rollout, attention)
        if self.vectors:
            query, key = self.record.query[layer], self.record.key[layer]
            scores = self.scores or Scores.plain(len(self.record.query), query.shape[-1])
            if self.check:
                error = scores.layer_error(layer, query, key, attention, self.causal)
                if error.max() > self.error:
                    self.error = float(error.max())
                    self.worst = layer * self.heads + int(error.argmax())
            self._blocks += choose_blocks(query, key, attention, self.causal, scores, layer)

    def view(self, vectors: bool = True) -> View:
        """The View of every layer folded in; its queries and keys only if ``vectors``."""
        record = self.record
        attention = b"".join([*self._parts, self._deflate.flush()])
        view = View(
            index=record.index,
            tokens=record.tokens,
            segments=[int(s) for s in record.segments],
            special=[int(s) for s in record.special],
            attention=base64.b64encode(attention).decode("ascii"),
            heads_kept=None if self.heads_kept is None else [int(h) for h in self.heads_kept],
            generated=None if record.generated is None else [int(g) for g in record.generated],
            top=self.top,
        )
        if self._rollout is not None:
            view.rollout = encode_rollout(self._rollout)
        if record.words is not None and record.word_of is not None:
            view.words = list(record.words)
            view.word_of = [int(w) for w in record.word_of]
            if record.heads is not None:
                view.arcs = [
                    [d, int(h), record.deprels[d] if record.deprels else ""]
                    for d, h in enumerate(record.heads)
                ]
        if vectors and self.vectors:
            view.vectors, view.vectors_error = pack_blocks(self._blocks)
        return view


def make_view(
    record: Record,
    *,
    vectors: bool,
    causal: bool,
    heads_kept: list[int] | None = None,
    scores: Scores | None = None,
) -> View:
    """The View of a record whose ``attention`` holds every layer (``ViewMaker``): every head
    (or ``heads_kept``), and its queries and keys if ``vectors`` and the record has them
    (checked against the attention as ``scores`` computes it from them)."""
    layers, heads = record.attention.shape[:2]
    maker = ViewMaker(record, layers=layers, heads=heads, vectors=vectors, causal=causal,
                      heads_kept=heads_kept, scores=scores)  # fmt: skip
    for layer, attention in enumerate(record.attention):
        maker.layer(layer, attention)
    return maker.view()


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
    """data/NNNN.js: one sentence's tokens and attention. ``neuron``: the neuron view's fields
    (contract.NEURON_FIELDS; the page takes softmax(q·k/√d) where "scores" is missing). Each
    token also as it reads (atlas/pieces.py): ``shown``, and ``joins`` (1: continues the word
    of the token before)."""
    shown = pieces.shown_tokens(view.tokens, view.special)
    payload = {
        "key": key,
        "index": view.index,
        "id": sentence_id,
        "layers": layers,
        "heads": heads,
        "causal": causal,
        "tokens": view.tokens,
        "shown": [s.text for s in shown],
        "joins": [int(s.joins) for s in shown],
        "segments": view.segments,
        "special": view.special,
        "encoding": ENCODING,
        "attention": view.attention,
        "neuron": neuron,
    }
    optional = (
        ("headsKept", view.heads_kept),
        ("top", view.top or None),
        ("rollout", view.rollout or None),
        ("words", view.words),
        ("wordOf", view.word_of),
        ("arcs", view.arcs),
        ("generated", view.generated),
    )
    payload.update({name: value for name, value in optional if value is not None})
    unknown = set(neuron) - set(contract.NEURON_FIELDS)
    unknown |= set(neuron.get("scores", {})) - set(contract.SCORES_FIELDS)
    if unknown:  # a field the pages do not know is a change of format
        raise ValueError(f"neuron view data against the contract: unknown {sorted(unknown)}")
    payload = contract.data_payload(payload, contract.DATA_FIELDS, contract.DATA_OPTIONAL_FIELDS)
    return _script(DATA_PREFIX, contract.DATA_GLOBAL, key, payload)


def vectors_script(view: View, key: str) -> str:
    """data/NNNN.qk.js: the sentence's queries and keys, loaded only when the neuron view
    opens, so the other views load no more than the attention."""
    payload = contract.data_payload(
        {"encoding": ENCODING, "vectors": view.vectors, "error": view.vectors_error},
        contract.VECTORS_FIELDS,
    )
    return _script(VECTORS_PREFIX, contract.VECTORS_GLOBAL, key, payload)


def read_view(path: Path) -> View:
    """The View kept in data/NNNN.js (and data/NNNN.qk.js beside it, if there is one)."""
    payload = _read_script(path, DATA_PREFIX)
    # Before the format was written, data scripts were of format 1 without saying so.
    if payload.get("format", 1) != contract.DATA_FORMAT:
        raise ValueError(
            f"data format {payload.get('format')!r}, this atlas reads {contract.DATA_FORMAT}"
        )
    if payload.get("encoding") != ENCODING:
        raise ValueError(f"attention encoded as {payload.get('encoding')!r}, not {ENCODING!r}")
    vectors_path = path.with_suffix(".qk.js")
    vectors = _read_script(vectors_path, VECTORS_PREFIX) if vectors_path.is_file() else {}
    return View(
        index=payload["index"],
        tokens=payload["tokens"],
        segments=payload["segments"],
        special=payload["special"],
        attention=payload["attention"],
        heads_kept=payload.get("headsKept"),
        top=payload.get("top", 0),
        rollout=payload.get("rollout", ""),
        vectors=vectors.get("vectors", ""),
        vectors_error=vectors.get("error", 0.0),
        words=payload.get("words"),
        word_of=payload.get("wordOf"),
        arcs=payload.get("arcs"),
        generated=payload.get("generated"),
    )
