"""Where each model family keeps its attention, and hooks that capture it for one ``with`` block.

One table (``FAMILIES``) says, per family of transformers models, where the layer stack is and,
inside one layer, the attention module (whose output carries the attention probabilities), the
query and key projections, and the attention output projection (whose input is the heads'
outputs, concatenated). ``locate`` matches a loaded model against the table, in this one place;
the runner's captures and the probe's head gates both start from its ``Layout``.

Capture points, each a context manager that registers forward hooks (or pre-hooks) on entry
and removes them on exit, even when the block raises:

- ``probabilities``: each layer's attention probabilities [B, H, W, W], as the forward pass
  reaches that layer;
- ``queries_keys``: queries and keys as the model scores them, *after* q/k norms and position
  encoding [B, H, W, d], each query head paired with its key head (grouped-query attention: a
  key head serves several query heads); ``Layout.scores`` says how each layer turns them into
  attention (scale, soft-cap, sliding window: atlas/scores.py);
- ``head_outputs``: each head's output before the output projection [B, H, W, d];
- ``hidden_states``: each layer's output [B, W, hidden] (the last one before any final norm,
  which GPT-2's ``output_hidden_states`` applies).

Nothing here changes the model's code or any process-wide state.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .scores import Scores


@dataclass(frozen=True)
class Family:
    """Where one family keeps its modules: ``layers`` from the base model; the others from one
    layer of that stack (dotted attribute paths)."""

    name: str
    model_types: tuple[str, ...]  # config.model_type values known to have this layout
    layers: str  # the ModuleList of layers
    attention: str  # returns (context, probabilities); probabilities with eager attention
    query: str  # its output: the queries, before position encoding (fused: q, k, v)
    key: str
    output: str  # the attention output projection; its input: the heads' outputs
    # ``query`` is one projection of queries, keys and values: "blocks" (all queries, then all
    # keys, then values: GPT-2, Phi-3) or "heads" (each head's q, k, v in turn: GPT-NeoX).
    fused: str = ""
    # Rotary position encoding, applied inside the attention module: the captured projections
    # are rotated with the model's own ``apply_rotary_pos_emb`` and the attention module's
    # ``position_embeddings`` (cos, sin) argument (partial rotary included: the function
    # rotates the dimensions its cos covers).
    rotary: bool = False
    # Norms of the queries and keys before the rotation (Qwen3, Gemma 3, OLMo 2): their outputs
    # are captured instead of the projections'. ``norm_layout``: how the norm's output is laid
    # out, "tokens" [B, W, H, d], "heads" [B, H, W, d] or "flat" [B, W, H·d].
    query_norm: str = ""
    key_norm: str = ""
    norm_layout: str = ""
    clip: str = ""  # a config attribute: queries and keys clamped to ± it (OLMo's clip_qkv)


_LLAMA = dict(
    layers="layers",
    attention="self_attn",
    query="self_attn.q_proj",
    key="self_attn.k_proj",
    output="self_attn.o_proj",
    rotary=True,
)

# Families with q/k norms come before those without: a model of an unknown type takes the first
# family whose modules it has.
FAMILIES: tuple[Family, ...] = (
    Family(
        "bert",
        ("bert", "roberta", "xlm-roberta", "camembert", "electra"),
        layers="encoder.layer",
        attention="attention.self",
        query="attention.self.query",
        key="attention.self.key",
        output="attention.output.dense",
    ),
    Family(
        "distilbert",
        ("distilbert",),
        layers="transformer.layer",
        attention="attention",
        query="attention.q_lin",
        key="attention.k_lin",
        output="attention.out_lin",
    ),
    Family(
        "gpt2",
        ("gpt2",),
        layers="h",
        attention="attn",
        query="attn.c_attn",
        key="attn.c_attn",
        output="attn.c_proj",
        fused="blocks",
    ),
    Family(
        "qwen3",
        ("qwen3",),
        **_LLAMA,
        query_norm="self_attn.q_norm",
        key_norm="self_attn.k_norm",
        norm_layout="tokens",
    ),
    Family(
        "gemma3",
        ("gemma3_text",),
        **_LLAMA,
        query_norm="self_attn.q_norm",
        key_norm="self_attn.k_norm",
        norm_layout="heads",
    ),
    Family(
        "olmo2",
        ("olmo2", "olmo3"),
        **_LLAMA,
        query_norm="self_attn.q_norm",
        key_norm="self_attn.k_norm",
        norm_layout="flat",
    ),
    Family("olmo", ("olmo",), **_LLAMA, clip="clip_qkv"),
    Family("llama", ("llama", "mistral", "qwen2", "gemma", "gemma2"), **_LLAMA),
    Family(
        "phi3",
        ("phi3",),
        layers="layers",
        attention="self_attn",
        query="self_attn.qkv_proj",
        key="self_attn.qkv_proj",
        output="self_attn.o_proj",
        fused="blocks",
        rotary=True,
    ),
    Family(
        "gpt_neox",
        ("gpt_neox",),
        layers="layers",
        attention="attention",
        query="attention.query_key_value",
        key="attention.query_key_value",
        output="attention.dense",
        fused="heads",
        rotary=True,
    ),
)

KNOWN = (
    "BERT family, DistilBERT, GPT-2, Llama, Mistral, Qwen2, Qwen3, Gemma 1-3, Phi-3, "
    "GPT-NeoX (Pythia), OLMo and OLMo 2"
)


def _get(module, path: str):
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def text_config(config):
    """The config of the model's text part: a multimodal model's (Gemma 3, LLaVA) holds its
    language model's layers and heads under ``text_config``; any other's is itself."""
    get_text_config = getattr(config, "get_text_config", None)
    return get_text_config() if get_text_config is not None else config


def geometry(config) -> tuple[int, int, int, int]:
    """(layers, query heads, key heads, head size) from a model's config (its text model's, in a
    multimodal one such as Gemma 3), under the names the families spell them (n_layer and
    n_head: GPT-2; num_key_value_heads: grouped-query attention; head_dim: a head size that is
    not hidden / heads)."""
    config = text_config(config)
    layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0) or 0)
    heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 0) or 0)
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0) or 0)
    key_heads = int(getattr(config, "num_key_value_heads", 0) or heads)
    head_dim = int(getattr(config, "head_dim", 0) or (hidden // heads if heads else 0))
    return layers, heads, key_heads, head_dim


@dataclass
class Layout:
    """A loaded model's modules, as its family's table entry places them."""

    family: Family
    owner: object  # the module that holds the layer stack ...
    attribute: str  # ... under this name
    layers: object  # torch.nn.ModuleList
    heads: int
    key_heads: int
    head_dim: int
    config: object = None  # the model's (text) config: ``clip``, ``scores``

    def modules(self, part: str) -> list:
        """One module per layer: ``part`` is "attention", "query", "key", "output",
        "query_norm" or "key_norm"."""
        path = getattr(self.family, part)
        return [_get(layer, path) for layer in self.layers]

    @property
    def rotate(self) -> Callable | None:
        """The model's own ``apply_rotary_pos_emb`` (from its modeling module), for a rotary
        family; None otherwise."""
        if not self.family.rotary:
            return None
        attention = self.modules("attention")[0]
        return getattr(sys.modules[type(attention).__module__], "apply_rotary_pos_emb", None)

    def scores(self) -> Scores:
        """How each layer turns queries and keys into attention (atlas/scores.py), read from
        the attention modules as transformers builds them: ``scaling`` (1/√d, Gemma's
        1/√query_pre_attn_scalar, GPT-2's layer-scaled one), ``attn_logit_softcapping``, and a
        per-layer ``sliding_window`` (Qwen2/3, Gemma 2/3, OLMo 3), else the config's for every
        layer (Mistral, Phi-3: their masks use it)."""
        scale, softcap, window = [], [], []
        config_window = getattr(self.config, "sliding_window", None)
        for attention in self.modules("attention"):
            value = getattr(attention, "scaling", None)
            scale.append(float(value) if value is not None else self.head_dim**-0.5)
            cap = getattr(attention, "attn_logit_softcapping", None)
            softcap.append(float(cap) if cap else None)
            own = getattr(attention, "sliding_window", config_window)
            window.append(int(own) if isinstance(own, int) and own > 0 else None)
        return Scores(tuple(scale), tuple(softcap), tuple(window))


def locate(model) -> Layout | None:
    """The family whose layout ``model`` has (any head on top: the base model, or a multimodal
    model's text model, is searched): the family of its ``model_type`` first, then the first
    of the others whose modules it has (a fine-tuned or renamed type of a known layout); None
    for a model no family describes."""
    import torch

    base = getattr(model, "base_model", model)
    # a multimodal model's text model holds the layers (Gemma 3, LLaVA: ``language_model``)
    base = getattr(base, "language_model", None) or base
    config = text_config(model.config)
    layers, heads, key_heads, head_dim = geometry(config)
    model_type = getattr(config, "model_type", "")
    ordered = sorted(FAMILIES, key=lambda family: model_type not in family.model_types)
    for family in ordered:
        owner_path, _, attribute = family.layers.rpartition(".")
        owner = _get(base, owner_path) if owner_path else base
        stack = getattr(owner, attribute, None) if owner is not None else None
        if not isinstance(stack, torch.nn.ModuleList) or len(stack) != layers or not layers:
            continue
        paths = (family.attention, family.query, family.key, family.output)
        paths += tuple(p for p in (family.query_norm, family.key_norm) if p)
        if all(_get(layer, p) is not None for layer in stack for p in paths):
            layout = Layout(family, owner, attribute, stack, heads, key_heads, head_dim, config)
            if family.rotary and layout.rotate is None:
                continue
            return layout
    return None


@contextlib.contextmanager
def hooked(*hooks: tuple[object, str, Callable]) -> Iterator[None]:
    """Register each (module, kind, function) for the ``with`` block and remove them all after
    it, even when it raises. kind: "forward", "pre" (a forward pre-hook) or "pre-kwargs" (one
    that also receives the keyword arguments)."""
    handles = []
    try:
        for module, kind, function in hooks:
            if kind == "forward":
                handles.append(module.register_forward_hook(function))
            elif kind == "pre":
                handles.append(module.register_forward_pre_hook(function))
            elif kind == "pre-kwargs":
                handles.append(module.register_forward_pre_hook(function, with_kwargs=True))
            else:
                raise ValueError(f"unknown hook kind {kind!r}")
        yield
    finally:
        for handle in handles:
            handle.remove()


def _heads(x, heads: int):
    """[B, W, heads · d] → [B, heads, W, d]."""
    b, w, size = x.shape
    return x.reshape(b, w, heads, size // heads).transpose(1, 2)


class QueriesKeys:
    """What the ``queries_keys`` hooks keep of one forward pass; ``take`` hands it over."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self._outputs: dict[tuple[int, str], object] = {}

    def hooks(self) -> list[tuple[object, str, Callable]]:
        layout, family = self.layout, self.layout.family
        normed = bool(family.query_norm)
        found = []
        query_modules = layout.modules("query_norm" if normed else "query")
        key_modules = layout.modules("key_norm" if normed else "key")
        for layer, (query, key) in enumerate(zip(query_modules, key_modules, strict=True)):
            if family.fused:
                found.append((query, "forward", self._keep(layer, "qkv")))
            else:
                found += [
                    (query, "forward", self._keep(layer, "query")),
                    (key, "forward", self._keep(layer, "key")),
                ]
        if family.rotary:
            for layer, attention in enumerate(layout.modules("attention")):
                found.append((attention, "pre-kwargs", self._positions(layer)))
        return found

    def _keep(self, layer: int, role: str):
        def hook(_module, _inputs, output):
            self._outputs[layer, role] = output

        return hook

    def _positions(self, layer: int):
        def hook(_module, _args, kwargs):
            self._outputs[layer, "positions"] = kwargs.get("position_embeddings")

        return hook

    def _split(self, kept: dict, layer: int):
        """(queries [B, H, W, d], keys [B, KH, W, d]) of one layer as the model's projections
        (or q/k norms) left them, before position encoding; None if not captured."""
        layout, family = self.layout, self.layout.family
        heads, key_heads, d = layout.heads, layout.key_heads, layout.head_dim
        if family.fused:
            if (layer, "qkv") not in kept:
                return None
            qkv = kept[layer, "qkv"]
            if family.fused == "heads":  # [B, W, H·3d]: each head's q, k, v in turn
                b, w, _ = qkv.shape
                query, key, _value = qkv.view(b, w, heads, 3 * d).transpose(1, 2).chunk(3, -1)
                return query, key
            query = qkv[..., : heads * d]
            key = qkv[..., heads * d : (heads + key_heads) * d]
            return _heads(query, heads), _heads(key, key_heads)
        if (layer, "query") not in kept or (layer, "key") not in kept:
            return None
        query, key = kept[layer, "query"], kept[layer, "key"]
        if family.norm_layout == "tokens":  # [B, W, H, d]
            return query.transpose(1, 2), key.transpose(1, 2)
        if family.norm_layout == "heads":  # [B, H, W, d] already
            return query, key
        return _heads(query, heads), _heads(key, key_heads)

    def tensors(self) -> list[tuple[object, object]] | None:
        """Queries and keys of the last forward pass per layer, [B, H, W, d] torch tensors
        as the model scores them (after q/k norms, clamping and position encoding), keys
        repeated to one per query head; None when the pass did not reach every layer's
        projections. Clears what was kept."""
        pairs = [self.pair(layer) for layer in range(len(self.layout.layers))]
        self._outputs = {}
        return None if any(p is None for p in pairs) else pairs

    def pair(self, layer: int) -> tuple[object, object] | None:
        """One layer's queries and keys (as ``tensors``), once the pass has gone through that
        layer's attention; None before."""
        layout, family, kept = self.layout, self.layout.family, self._outputs
        split = self._split(kept, layer)
        if split is None:
            return None
        query, key = split
        clip = getattr(layout.config, family.clip, None) if family.clip else None
        if clip is not None:
            query, key = query.clamp(-clip, clip), key.clamp(-clip, clip)
        if family.rotary:
            positions = kept.get((layer, "positions"))
            if positions is None:
                return None
            cos, sin = positions
            query, key = layout.rotate(query, key, cos, sin)
        if key.shape[1] != query.shape[1]:
            key = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
        return query, key

    def take(self) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """``tensors`` as float32 numpy arrays on the CPU (views of the model's own tensors
        where they already are float32 on the CPU, not copies; a record copies its rows)."""
        pairs = self.tensors()
        if pairs is None:
            return None
        return [(q.float().cpu().numpy(), k.float().cpu().numpy()) for q, k in pairs]


@contextlib.contextmanager
def queries_keys(layout: Layout) -> Iterator[QueriesKeys]:
    """Capture queries and keys after position encoding for the ``with`` block."""
    capture = QueriesKeys(layout)
    with hooked(*capture.hooks()):
        yield capture


@contextlib.contextmanager
def probabilities(layout: Layout, each: Callable[[int, object], None]) -> Iterator[None]:
    """Call ``each(layer, probabilities)`` ([B, H, W, W]) as the forward pass leaves each
    layer's attention module (eager attention returns them; other kernels return None, which
    is passed on)."""

    def hook(layer: int):
        def keep(_module, _inputs, output):
            each(layer, output[1] if isinstance(output, tuple) and len(output) > 1 else None)

        return keep

    with hooked(*((m, "forward", hook(i)) for i, m in enumerate(layout.modules("attention")))):
        yield


@contextlib.contextmanager
def head_outputs(layout: Layout, each: Callable[[int, object], None]) -> Iterator[None]:
    """Call ``each(layer, outputs)`` with each layer's per-head outputs [B, H, W, d], the
    output projection's input, before that projection mixes the heads."""

    def hook(layer: int):
        def keep(_module, args):
            each(layer, _heads(args[0], layout.heads))

        return keep

    with hooked(*((m, "pre", hook(i)) for i, m in enumerate(layout.modules("output")))):
        yield


@contextlib.contextmanager
def hidden_states(layout: Layout, each: Callable[[int, object], None]) -> Iterator[None]:
    """Call ``each(layer, hidden)`` with each layer's output [B, W, hidden]."""

    def hook(layer: int):
        def keep(_module, _inputs, output):
            each(layer, output[0] if isinstance(output, tuple) else output)

        return keep

    with hooked(*((m, "forward", hook(i)) for i, m in enumerate(layout.layers))):
        yield
