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
- ``queries_keys``: queries and keys *after* position encoding [B, H, W, d], each query head
  paired with its key head (grouped-query attention: a key head serves several query heads);
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
    fused: bool = False  # ``query`` is one projection of queries, keys and values (GPT-2)
    # Rotary position encoding, applied inside the attention module: the captured projections
    # are rotated with the model's own ``apply_rotary_pos_emb`` and the attention module's
    # ``position_embeddings`` (cos, sin) argument.
    rotary: bool = False


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
        fused=True,
    ),
    Family(
        "llama",
        ("llama", "mistral", "qwen2"),
        layers="layers",
        attention="self_attn",
        query="self_attn.q_proj",
        key="self_attn.k_proj",
        output="self_attn.o_proj",
        rotary=True,
    ),
)

KNOWN = "BERT family, DistilBERT, GPT-2, Llama/Mistral/Qwen2"


def _get(module, path: str):
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def geometry(config) -> tuple[int, int, int, int]:
    """(layers, query heads, key heads, head size) from a model's config, under the names the
    families spell them (n_layer and n_head: GPT-2; num_key_value_heads: grouped-query
    attention; head_dim: a head size that is not hidden / heads)."""
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

    def modules(self, part: str) -> list:
        """One module per layer: ``part`` is "attention", "query", "key" or "output"."""
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


def locate(model) -> Layout | None:
    """The first family whose layout ``model`` has (any head on top: the base model is
    searched), or None for a model no family describes."""
    import torch

    base = getattr(model, "base_model", model)
    layers, heads, key_heads, head_dim = geometry(model.config)
    for family in FAMILIES:
        owner_path, _, attribute = family.layers.rpartition(".")
        owner = _get(base, owner_path) if owner_path else base
        stack = getattr(owner, attribute, None) if owner is not None else None
        if not isinstance(stack, torch.nn.ModuleList) or len(stack) != layers or not layers:
            continue
        paths = (family.attention, family.query, family.key, family.output)
        if all(_get(layer, p) is not None for layer in stack for p in paths):
            layout = Layout(family, owner, attribute, stack, heads, key_heads, head_dim)
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
        found = []
        for layer, (query, key) in enumerate(
            zip(layout.modules("query"), layout.modules("key"), strict=True)
        ):
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

    def tensors(self) -> list[tuple[object, object]] | None:
        """Queries and keys of the last forward pass per layer, [B, H, W, d] torch tensors
        after position encoding, keys repeated to one per query head; None when the pass did
        not reach every layer's projections. Clears what was kept."""
        pairs = [self.pair(layer) for layer in range(len(self.layout.layers))]
        self._outputs = {}
        return None if any(p is None for p in pairs) else pairs

    def pair(self, layer: int) -> tuple[object, object] | None:
        """One layer's queries and keys (as ``tensors``), once the pass has gone through that
        layer's attention; None before."""
        layout, kept = self.layout, self._outputs
        if layout.family.fused:
            if (layer, "qkv") not in kept:
                return None
            qkv = kept[layer, "qkv"]
            query, key, _value = qkv.split(qkv.shape[-1] // 3, dim=-1)
        elif (layer, "query") in kept and (layer, "key") in kept:
            query, key = kept[layer, "query"], kept[layer, "key"]
        else:
            return None
        query, key = _heads(query, layout.heads), _heads(key, layout.key_heads)
        if layout.family.rotary:
            positions = kept.get((layer, "positions"))
            if positions is None:
                return None
            cos, sin = positions
            query, key = layout.rotate(query, key, cos, sin)
        if layout.key_heads != layout.heads:
            key = key.repeat_interleave(layout.heads // layout.key_heads, dim=1)
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
