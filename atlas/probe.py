"""Extra passes through the model for the importance analysis: head gates, ablation, gradients.

The runner's own pass is inference only (no gradients, attention returned). Head importance
needs other passes: the model with one head's context vector zeroed (ablation) and gradients
of a loss (head gates, attention weights, input embeddings). The runner offers them through one
small object, ``Probe`` (``Runner.probe()``), which an analysis receives at ``start`` when it
declares the ``probe`` need; it calls ``ablation``, ``gradients`` and ``saliency`` with corpus
indices and gets numbers back. Data still flows one way: the analysis asks, the probe answers,
nothing in the runner knows the analysis.

How a head is removed or gated: transformers 5 models have no ``head_mask`` any more (removed
in huggingface/transformers#41076, "[v5] Remove headmasking"), so a
forward pre-hook on each layer's attention output projection (where the family keeps it:
atlas/hooks.py's table) multiplies the concatenated context vectors, head by head, by a gate:
0 removes the head, a leaf tensor of ones gives the gradient of the loss with respect to the
gate (Michel et al. 2019).

Ablation cost: removing a head of layer l leaves layers 1..l-1 unchanged, so the clean pass
records each layer's input, and the ablated passes run only layers l..L, from that input (the
layer stack is cut for the pass and a pre-hook on its first layer feeds the recorded input), all
heads of a layer in one batch. That is L·H·(L+1)/(2L) forward passes a sentence instead of L·H.
In the first layer of a cut stack the rows of a sentence differ only from the output projection
on (the queries, keys, values, attention and each head's output are the clean pass's), so that
layer's attention module runs once a sentence, not once a row: a pre-hook keeps every H-th row of
its batched inputs, and the gate hook repeats each sentence's heads' outputs into its H rows,
each with its own head zeroed, before the projection. The model's code is not changed.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from . import hooks
from .exact import ExactSum

# What the model's output is measured against, by the head it has.
ENCODER, MASKED_LM, CLASSIFIER = "encoder", "masked-lm", "classifier"
MASK_RATE = 0.15  # share of the non-special tokens masked for the masked-LM loss
MASK_SEED = 0  # + the sentence's index: the same masks on every run


class ProbeError(RuntimeError):
    """The model's layout is one the probe does not know (one line for the user)."""


def head_kind(model) -> str:
    """Which output the model has: a masked-LM head, a sequence classifier, or neither."""
    name = type(model).__name__
    if name.endswith("ForMaskedLM"):
        return MASKED_LM
    if name.endswith("ForSequenceClassification"):
        return CLASSIFIER
    return ENCODER


def wants_masked_lm(config) -> bool:
    """Whether the checkpoint was saved with a masked-LM head (config ``architectures``)."""
    return any(str(a).endswith("ForMaskedLM") for a in getattr(config, "architectures", None) or ())


# rows (sentence × ablated head) per ablation pass, at least one sentence: with 12 heads, one
# sentence a pass, so no row is padded
ABLATION_ROWS = 12


@dataclass
class Batch:
    """A padded batch of examples as model inputs, with what the measures need."""

    indices: list[int]
    inputs: dict  # input_ids, attention_mask (and token_type_ids), on the device
    lengths: list[int]
    special: list[np.ndarray]
    roles: list[np.ndarray]  # per token: 0 [CLS], 1 [SEP], 2 punctuation, 3 other
    labels: object = None  # masked-LM: token labels (-100: not masked); classifier: class ids


class Probe:
    """Gated passes through ``model`` (the runner's, or the same checkpoint with its masked-LM
    head) over examples the runner encodes; see the module docstring."""

    def __init__(self, runner, model, examples: Sequence, batch_size: int = 16):
        import torch

        self.runner, self.model, self.examples = runner, model, examples
        self.batch_size = batch_size
        self.kind = head_kind(model)
        self.layers, self.heads = runner.info.layers, runner.info.heads
        self.layout = hooks.locate(model)
        if self.layout is None:
            raise ProbeError(
                f"head importance: cannot find the attention output projections of "
                f"{type(model).__name__} (known: {hooks.KNOWN})"
            )
        self.stack, self.projections = self.layout.layers, self.layout.modules("output")
        self.gate: object = None  # [rows, L, H] tensor while a gated pass runs, else None
        self._first = 0  # the first layer of the current (cut) stack
        self._feed: object = None  # the recorded input of that layer, fed by a pre-hook
        self._shared = 0  # while > 1: that layer's attention runs on every _shared-th row only
        self._inputs: list | None = None  # each layer's input, recorded on a clean pass
        self._hooks = [
            proj.register_forward_pre_hook(self._gate_hook(layer))
            for layer, proj in enumerate(self.projections)
        ]
        self._hooks += [
            layer.register_forward_pre_hook(self._layer_hook(i), with_kwargs=True)
            for i, layer in enumerate(self.stack)
        ]
        self._hooks += [
            attention.register_forward_pre_hook(self._attention_hook(i), with_kwargs=True)
            for i, attention in enumerate(self.layout.modules("attention"))
        ]
        self.torch = torch
        self.dtype = next(model.parameters()).dtype
        # no key/value cache: none is reused, and a decoder's cache is laid out by the config's
        # layer types, which a cut stack shortens (``_cut``)
        takes = "use_cache" in inspect.signature(model.forward).parameters
        self._nocache = {"use_cache": False} if takes else {}

    def _gate_hook(self, layer: int):
        def hook(module, args):
            if self.gate is None or (self._feed is not None and layer != self._first):
                return None  # a cut stack gates its first layer only: the later gates are ones
            (context, *rest) = args
            rows, width, size = context.shape
            gate = self.gate[:, layer].to(context.dtype)
            if rows == len(gate):
                shaped = context.reshape(rows, width, self.heads, size // self.heads)
                return (shaped * gate[:, None, :, None]).reshape(rows, width, size), *rest
            # the attention ran once a sentence (``_attention_hook``): each sentence's outputs
            # go to its rows, each row with its own gate
            copies = len(gate) // rows
            shaped = context.reshape(rows, 1, width, self.heads, size // self.heads)
            gate = gate.reshape(rows, copies, 1, self.heads, 1)
            return (shaped * gate).reshape(rows * copies, width, size), *rest

        return hook

    def _attention_hook(self, layer: int):
        """While ``_shared`` is set, the first layer's attention module gets every
        ``_shared``-th row of its batched inputs (the rows of one sentence are equal there)."""

        def hook(module, args, kwargs):
            if self._shared <= 1 or layer != self._first:
                return None
            rows = len(self.gate)

            def every(value):
                if isinstance(value, self.torch.Tensor) and value.dim() > 1 and len(value) == rows:
                    return value[:: self._shared].contiguous()  # GPT-2's Conv1D views it
                return value

            return tuple(every(a) for a in args), {k: every(v) for k, v in kwargs.items()}

        return hook

    def _layer_hook(self, layer: int):
        def hook(module, args, kwargs):
            if self._inputs is not None:
                hidden = args[0] if args else kwargs["hidden_states"]
                self._inputs.append(hidden.detach())
            if self._feed is not None and layer == self._first:
                if args:
                    args = (self._feed, *args[1:])
                else:
                    kwargs = {**kwargs, "hidden_states": self._feed}
                return args, kwargs
            return None

        return hook

    def close(self) -> None:
        for handle in self._hooks:
            handle.remove()

    # -- batches ---------------------------------------------------------------------------

    def batches(
        self, indices: Sequence[int], size: int | None = None, only: Container[int] | None = None
    ) -> Iterator[Batch]:
        """The examples in batches of similar length (``size``, default the run's batch size),
        encoded as the runner encodes them. With ``only`` (one part of a split build): just the
        batches that hold one of those examples, each whole, as the batches of all ``indices``
        are, so that every example is computed as in one pass."""
        size = size or self.batch_size
        encoded = sorted(
            ((i, self.runner.encode(self.examples[i], i)) for i in indices),
            key=lambda item: (len(item[1]["ids"]), item[0]),
        )
        for start in range(0, len(encoded), size):
            items = encoded[start : start + size]
            if only is None or any(i in only for i, _ in items):
                yield self._batch(items)

    def _batch(self, items: list[tuple[int, dict]]) -> Batch:
        torch = self.torch
        inputs = self.runner.inputs(items)
        special = [np.asarray(enc["special"], bool) for _, enc in items]
        indices = [i for i, _ in items]
        roles = [token_roles(self.runner, enc) for _, enc in items]
        labels = None
        if self.kind == MASKED_LM:
            ids = inputs["input_ids"]
            labels = torch.full_like(ids, -100)
            for row, index in enumerate(indices):
                chosen = torch.as_tensor(masked_positions(special[row], index), device=ids.device)
                labels[row, chosen] = ids[row, chosen]
                ids[row, chosen] = self.runner.tokenizer.mask_token_id
        elif self.kind == CLASSIFIER:
            labels = torch.tensor([self._gold(i) for i in indices], device=self.runner.device)
        lengths = [len(enc["ids"]) for _, enc in items]
        return Batch(indices, inputs, lengths, special, roles, labels)

    def _gold(self, index: int) -> int:
        """The class id of an example's gold label (an Example ``label`` attribute, when the
        input gives one, by the model's ``label2id``), or -1: none, use the predicted class."""
        label = getattr(self.examples[index], "label", None)
        if label is None:
            return -1
        mapping = getattr(self.model.config, "label2id", None) or {}
        if label in mapping:
            return int(mapping[label])
        return int(label) if str(label).lstrip("-").isdigit() else -1

    # -- the model's output, as each measure sees it -----------------------------------------

    def _forward(self, inputs: dict, attentions: bool = False):
        return self.model(**inputs, output_attentions=attentions, return_dict=True, **self._nocache)

    def _output(self, out, batch: Batch, repeat: int = 1):
        """Per row: the mean-pooled last layer (encoder), the per-token log-probabilities of
        the masked tokens' labels (masked LM), or the class probabilities (classifier)."""
        torch = self.torch
        mask = batch.inputs["attention_mask"].repeat_interleave(repeat, 0)
        if self.kind == ENCODER:
            hidden = out.last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(1) / weights.sum(1)
        if self.kind == MASKED_LM:
            labels = batch.labels.repeat_interleave(repeat, 0)
            logp = torch.log_softmax(out.logits, -1)
            picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            chosen = (labels >= 0).to(picked.dtype)
            return -(picked * chosen).sum(1) / chosen.sum(1).clamp(min=1)  # loss per row
        return torch.softmax(out.logits, -1)

    def loss(self, out, batch: Batch):
        """The summed loss of the batch's rows (each row's own loss, so that per-row gradients
        come out of one backward pass): masked-LM loss, or the task loss on the gold label,
        else the predicted one."""
        torch = self.torch
        if self.kind == MASKED_LM:
            return self._output(out, batch).sum()
        if self.kind == CLASSIFIER:
            logp = torch.log_softmax(out.logits, -1)
            gold = batch.labels if batch.labels is not None else torch.full_like(logp[:, 0], -1)
            target = torch.where(gold >= 0, gold.long(), logp.argmax(-1))
            return -logp.gather(-1, target.view(-1, 1)).sum()
        raise ProbeError("a bare encoder has no loss: the gradient importance is not defined")

    # -- ablation ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _cut(self, first: int, feed):
        """Run only layers ``first``.. with ``feed`` as the input of layer ``first``. A model
        that reads each layer's type from its config by the layer's place in the stack (Qwen2/3,
        Gemma 2/3, OLMo 3: ``config.layer_types[i]`` picks the sliding-window or the full mask,
        and the local or global rotary table) reads a list cut the same way."""
        torch = self.torch
        parent, name = self.layout.owner, self.layout.attribute
        full = getattr(parent, name)
        config = self.layout.config
        types = getattr(config, "layer_types", None)
        setattr(parent, name, torch.nn.ModuleList(list(full)[first:]))
        if types is not None:
            config.layer_types = list(types)[first:]
        self._first, self._feed, self._shared = first, feed, self.heads
        try:
            yield
        finally:
            setattr(parent, name, full)
            if types is not None:
                config.layer_types = types
            self._first, self._feed, self._shared = 0, None, 0

    def ablation(self, indices: Sequence[int]) -> np.ndarray:
        """Per head [L, H], the mean over the examples of ``ablation_per_example``."""
        indices = list(indices)
        if not indices:
            return np.zeros((self.layers, self.heads))
        return self.ablation_per_example(indices).mean(0)

    def ablation_per_example(
        self, indices: Sequence[int], only: Container[int] | None = None
    ) -> np.ndarray:
        """Per example and head [N, L, H] (in the order of ``indices``), the change in the
        model's output when that head's context vector is zeroed: 1 − cos of the mean-pooled
        last layer (encoder), the rise of the masked-LM loss (masked LM), the drop in the
        probability of the class predicted without ablation (classifier). Kept per example so
        that the importance analysis can bootstrap over the sentences. With ``only``: the rows of
        those of ``indices`` only (``batches``)."""
        torch = self.torch
        indices = list(indices)
        kept = [i for i in indices if only is None or i in only]
        where = {index: row for row, index in enumerate(kept)}
        values = np.zeros((len(kept), self.layers, self.heads))
        # Each sentence becomes one row per head; rows of about ABLATION_ROWS at a time run
        # faster than the run's batches times the heads (192 rows for 16 × 12 ran 1.5 times
        # slower per row on 2 CPU cores, with the same results), and 12 (one sentence of the
        # default model, unpadded) no slower per row than 24 (two, the shorter one padded),
        # with 3.4% fewer operations on the first 32 UD sentences.
        size = max(1, ABLATION_ROWS // self.heads)
        with torch.no_grad():
            for batch in self.batches(indices, size, only):
                rows = len(batch.indices)
                self._inputs = []
                try:
                    clean = self._output(self._forward(batch.inputs), batch)
                finally:
                    recorded, self._inputs = self._inputs, None
                predicted = clean.argmax(-1) if self.kind == CLASSIFIER else None
                expanded = {k: v.repeat_interleave(self.heads, 0) for k, v in batch.inputs.items()}
                gate = torch.ones((rows * self.heads, self.layers, self.heads), dtype=self.dtype)
                for layer in range(self.layers):
                    gate.fill_(1.0)
                    gate[:, layer] = 1 - torch.eye(self.heads, dtype=self.dtype).repeat(rows, 1)
                    self.gate = gate.to(self.runner.device)
                    feed = recorded[layer].repeat_interleave(self.heads, 0)
                    try:
                        with self._cut(layer, feed):
                            ablated = self._output(
                                self._forward(expanded), batch, repeat=self.heads
                            )
                    finally:
                        self.gate = None
                    change = self._change(clean, ablated, predicted)
                    change = change.view(rows, self.heads).double().cpu().numpy()
                    for row, index in enumerate(batch.indices):
                        if index in where:
                            values[where[index], layer] = change[row]
        return values

    def _change(self, clean, ablated, predicted):
        torch = self.torch
        base = clean.repeat_interleave(self.heads, 0)
        if self.kind == ENCODER:
            return 1 - torch.nn.functional.cosine_similarity(base, ablated, dim=-1)
        if self.kind == MASKED_LM:
            return ablated - base
        target = predicted.repeat_interleave(self.heads, 0).view(-1, 1)
        return (base.gather(-1, target) - ablated.gather(-1, target)).squeeze(-1)

    # -- gradients --------------------------------------------------------------------------

    def gradients(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """Mean over the examples of |∂loss/∂ξ_h| per head ("gate" [L, H]), and Clark's split
        of the attention-weighted gradient Σ_ij |A_ij ∂loss/∂A_ij| per layer by where the
        attention goes ("split" [L, 4]: [CLS], [SEP], punctuation, other)."""
        sums = self.gradient_sums(indices)
        count = max(len(list(indices)), 1)
        return {"gate": sums["gate"].value() / count, "split": sums["split"].value() / count}

    def gradient_sums(
        self, indices: Sequence[int], only: Container[int] | None = None
    ) -> dict[str, ExactSum]:
        """The sums over the examples behind ``gradients``, example by example in ``ExactSum``s,
        so that sums over parts of a sample add up to the sum over the whole; with ``only``,
        over those of ``indices`` only (``batches``)."""
        torch = self.torch
        gate_total = ExactSum((self.layers, self.heads))
        split_total = ExactSum((self.layers, 4))
        with torch.enable_grad():
            for batch in self.batches(indices, only=only):
                rows = len(batch.indices)
                gate = torch.ones(
                    (rows, self.layers, self.heads),
                    dtype=self.dtype,
                    device=self.runner.device,
                    requires_grad=True,
                )
                self.gate = gate
                try:
                    out = self._forward(batch.inputs, attentions=True)
                    attentions = list(getattr(out, "attentions", None) or ())
                    if len(attentions) != self.layers:
                        raise ProbeError(
                            "head importance: the model returned no attention weights "
                            "(load it with attn_implementation='eager')"
                        )
                    loss = self.loss(out, batch)
                    grads = torch.autograd.grad(loss, [gate, *attentions])
                finally:
                    self.gate = None
                gates = grads[0].abs().double().cpu().numpy()
                weighted = [
                    (a * g).abs().detach().double().cpu().numpy()
                    for a, g in zip(attentions, grads[1:], strict=True)
                ]
                for row, n in enumerate(batch.lengths):
                    if only is not None and batch.indices[row] not in only:
                        continue
                    gate_total.add(gates[row])
                    split_total.add(
                        np.stack([clark_split(w[row, :, :n, :n], batch.roles[row])
                                  for w in weighted])
                    )  # fmt: skip
        return {"gate": gate_total, "split": split_total}

    def saliency(
        self, indices: Sequence[int], only: Container[int] | None = None
    ) -> dict[int, list[float]]:
        """Gradient × input per token: ‖x_i ⊙ ∂loss/∂x_i‖₂ for the input embeddings x (the
        word-embedding lookup, ``get_input_embeddings()``'s output, before position embeddings
        and LayerNorm), divided by their sum over the sentence's tokens. With ``only``: of
        those of ``indices`` only (``batches``)."""
        torch = self.torch
        embeddings = self.model.get_input_embeddings()
        found: list = []

        def keep(module, args, output):
            output.retain_grad()
            found.append(output)

        result: dict[int, list[float]] = {}
        handle = embeddings.register_forward_hook(keep)
        try:
            with torch.enable_grad():
                for batch in self.batches(indices, only=only):
                    found.clear()
                    out = self._forward(batch.inputs)
                    x = found[0]
                    (grad,) = torch.autograd.grad(self.loss(out, batch), [x])
                    score = (x * grad).norm(dim=-1).detach().double().cpu().numpy()
                    for row, index in enumerate(batch.indices):
                        if only is not None and index not in only:
                            continue
                        values = score[row, : batch.lengths[row]]
                        result[index] = (values / max(values.sum(), 1e-30)).tolist()
        finally:
            handle.remove()
        return result


def masked_positions(special: np.ndarray, index: int) -> np.ndarray:
    """The tokens masked for the masked-LM loss of example ``index``: 15% of its non-special
    tokens (at least one), drawn with a seed fixed by the example's index."""
    candidates = np.flatnonzero(~special)
    if candidates.size == 0:
        return candidates
    count = max(1, round(MASK_RATE * candidates.size))
    rng = np.random.default_rng(MASK_SEED + index)
    return np.sort(rng.choice(candidates, size=count, replace=False))


def token_roles(runner, encoded: dict) -> np.ndarray:
    """Per token of an encoded example: 0 [CLS], 1 [SEP], 2 punctuation, 3 other, marked as
    the runner marks its records (``Record.cls``, ``sep``, ``punct``)."""
    cls, sep, punct = runner.encoder.marks(encoded)
    roles = np.full(len(cls), 3, dtype=np.int8)
    roles[punct] = 2
    roles[sep] = 1
    roles[cls] = 0
    return roles


def clark_split(weighted: np.ndarray, roles: np.ndarray) -> np.ndarray:
    """Σ over heads and attending tokens of ``weighted`` [H, n, n], by the role of the token
    attended to: [CLS], [SEP], punctuation, other. The four parts sum to ``weighted.sum()``."""
    to = weighted.sum(axis=(0, 1))
    return np.array([to[roles == r].sum() for r in range(4)])
