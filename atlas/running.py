"""Running a model over examples: the ``Runner`` batches encoded examples of similar length,
runs each batch once, and yields one ``Record`` per example with its padding stripped.

Each forward pass runs under ``torch.inference_mode()``, and its capture hooks (atlas/hooks.py)
are registered for that pass only: nothing here changes autograd or any other process-wide
state, so a notebook that uses the atlas keeps training its own models.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Callable, Container, Iterable, Iterator, Sequence

import numpy as np

from . import hooks
from .corpus import Example
from .encoding import Encoder, tokenizer_difference
from .loading import (
    SEQUENCE,
    SPANS,
    TOKENS,
    ModelError,
    is_causal,
    length_limit,
    load,
    model_info,
    quiet,
    resolve_device,
)
from .probe import ENCODER, Probe, head_kind, wants_masked_lm
from .records import ATTENTION, CAPTURES, HIDDEN_STATES, QUERIES_KEYS, Record

# What one layer's attention of a batch, [B, H, W, W] float32, may take (``--memory-gb``): batches
# of long inputs are made smaller to fit it (``Runner.cut``). A compare run holds both models'
# every layer of its batch, and fits those to it (``PairedRunner``).
DEFAULT_MEMORY_GB = 1.0
# Called with one example's record, a layer number and that layer's attention [H, n, n].
EachLayer = Callable[[Record, int, np.ndarray], None]


def _numpy(tensor) -> np.ndarray:
    """A float32 numpy array on the CPU (the tensor itself where it already is one)."""
    return tensor.float().cpu().numpy()


def task_logits(out, task: str) -> np.ndarray | None:
    """The task head's output for a batch: [B, C] (sequence), [B, W, C] (tokens), [B, W, 2]
    (start and end logits of answer spans); None without a task head."""
    if task in (SEQUENCE, TOKENS):
        return out.logits.float().cpu().numpy()
    if task == SPANS:
        return np.stack(
            [out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()], -1
        )
    return None


def example_logits(logits: np.ndarray, n: int, task: str) -> np.ndarray:
    """One example's row of ``task_logits``, without padding (per-token outputs cut to n)."""
    return np.ascontiguousarray(logits if task == SEQUENCE else logits[:n])


def stream_window(batch_size: int) -> int:
    """How many examples, consecutive in the corpus, a run sorts by length before it batches
    them: records come in the order (index // window, tokens, index)."""
    return max(batch_size * 32, 256)


def stream_key(index: int, tokens: int, batch_size: int) -> tuple[int, int, int]:
    """Where a record of ``tokens`` tokens comes in a one-pass run (``stream_window``): an
    analysis that keeps "the first" records it saw merges parts by this key."""
    return (index // stream_window(batch_size), tokens, index)


class Runner:
    """A loaded tokenizer and model, ready to turn examples into records."""

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        max_length: int | None = None,
        name: str | None = None,
        option: str = "--model",
        memory_gb: float = DEFAULT_MEMORY_GB,
        *,
        dtype: str = "float32",
        device_map: str | None = None,
        generate: int = 0,
        chat: bool = False,
    ):
        """``name`` is what the pages call the model; by default the hub id, or a local
        directory's folder name (its full path would leak the build machine's layout).
        ``option``: the command-line option that named the model, for error messages.
        ``memory_gb``: what one layer's attention of a batch may take (``batches``).
        ``dtype``, ``device_map``: as ``loading.load``'s. ``generate``: the tokens each input
        is to be continued by (atlas/generation.py), kept free after each prompt; the model is
        loaded with its language-model head, kept as ``generator``, and the analyses see the
        base model under it, as without. ``chat``: wrap each input in the chat template."""
        self.device = resolve_device(device)
        self.memory_gb, self.memory = memory_gb, int(memory_gb * 2**30)
        loaded = load(
            model, self.device, option, dtype=dtype, device_map=device_map, causal_lm=generate > 0
        )
        self.generator = loaded.model if generate else None
        if generate:
            loaded.model = loaded.model.base_model
        if device_map is not None:  # inputs go where accelerate put the embeddings
            self.device = str(loaded.model.device)
        self.model, self.tokenizer, self.task = loaded.model, loaded.tokenizer, loaded.task
        self._source = (loaded.path, loaded.kwargs)
        # Token types only where the tokenizer makes them: GPT-2's forward accepts them too, but
        # then adds a token-type embedding the model never saw in training.
        self._token_types = "token_type_ids" in getattr(
            self.tokenizer, "model_input_names", ()
        ) and "token_type_ids" in set(inspect.signature(self.model.forward).parameters)
        limit = length_limit(self.model, self.tokenizer)
        if max_length is not None and max_length > limit:
            raise ModelError(f"--max-length {max_length} exceeds the model's limit of {limit}")
        if max_length is not None and max_length < 2:
            raise ModelError(f"--max-length {max_length}: must be at least 2")
        name = name or loaded.shown
        self.encoder = Encoder(self.tokenizer, max_length or limit, self._source, name)
        try:
            with quiet():
                causal = is_causal(self.model, self.tokenizer, self.device)
        except ModelError as err:
            raise ModelError(f"model {loaded.typed!r}: {err}") from None
        if generate and not causal:
            raise ModelError(
                f"--generate: model {loaded.typed!r} is an encoder (its tokens attend both "
                "ways); generation needs a decoder such as GPT-2 or Llama"
            )
        if generate and loaded.missing:
            raise ModelError(
                f"--generate: the checkpoint of model {loaded.typed!r} has no language-model "
                f"head ({loaded.missing[0]} is missing), and a head made at random writes noise"
            )
        self.encoder.prepare(chat=chat, reserve=generate)
        self.info = model_info(loaded, name, self.max_length, causal)
        self.layout = hooks.locate(self.model)  # None: a family the hooks do not know
        self._hidden = False  # whether the current run keeps hidden states (``run``'s capture)

    @property
    def max_length(self) -> int:
        return self.encoder.max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        self.encoder.max_length = value

    @property
    def queries_keys_note(self) -> str:
        """Why this model's queries and keys cannot be captured; "" when they can."""
        if self.layout is not None:
            return ""
        return (
            f"queries and keys of {self.info.architecture} cannot be captured; the neuron "
            f"view supports {hooks.KNOWN}"
        )

    def probe(self, examples: Sequence[Example], batch_size: int = 16) -> Probe:
        """Passes with head gates and gradients for the importance analysis (atlas/probe.py).
        A bare encoder saved with a masked-LM head (config ``architectures``) is loaded again
        with that head, so that importance can be measured on its masked-LM loss."""
        model = self.model
        if head_kind(model) == ENCODER and self.task in (TOKENS, SPANS):
            # a tagger's or a reader's head gives no one output to ablate: the encoder's output
            # is measured, as for a bare encoder
            model = model.base_model
        elif head_kind(model) == ENCODER and wants_masked_lm(model.config):
            from transformers import AutoModelForMaskedLM

            path, kwargs = self._source
            with quiet():
                model = AutoModelForMaskedLM.from_pretrained(
                    path, attn_implementation="eager", **kwargs
                )
            model.eval().to(self.device)
        return Probe(self, model, examples, batch_size)

    def words_tokenizer(self):
        """The tokenizer for examples given as words (``Encoder.words_tokenizer``)."""
        return self.encoder.words_tokenizer()

    def encode(self, example: Example, index: int | None = None) -> dict:
        """One example's encoding (``Encoder.encode``)."""
        return self.encoder.encode(example, index)

    def run(
        self,
        examples: Sequence[Example],
        indices: Iterable[int] | None = None,
        batch_size: int = 16,
        progress: bool = False,
        capture: Iterable[str] = (ATTENTION, QUERIES_KEYS),
        queries_keys_for: Callable[[int], bool] | None = None,
        each_layer: EachLayer | None = None,
    ) -> Iterator[Record]:
        """Yield one Record per example (for ``indices`` only, if given), in batches of similar
        length. Records come in batch order, not corpus order; ``Record.index`` says which.
        ``capture``: what to keep besides attention (QUERIES_KEYS, HIDDEN_STATES), nothing more.
        ``each_layer``: called during the forward pass with each layer's attention [H, n, n] of
        each example of the batch, as the pass leaves that layer (layer 0 of each example, then
        layer 1 of each, ...); then the records come out. Records carry their whole
        ``attention`` [L, H, n, n] without ``each_layer``, or when ``capture`` has ATTENTION.
        ``queries_keys_for``: which examples (by corpus index) need their queries and keys, when
        QUERIES_KEYS is captured (None: all); the others' records have ``query`` None, and a
        batch with none of them runs without the hooks. Asked once per example, just before
        its batch runs. ``indices`` a ``range`` (one part of a split build): the batches a
        one-pass run makes that hold its examples run whole (``batches``), and only its
        examples' records come out (and reach ``each_layer``)."""
        capture = set(capture)
        self._hidden = HIDDEN_STATES in capture
        for batch, kept in self.planned(examples, indices, batch_size, progress):
            vectors = self.vectors_for(batch, capture, queries_keys_for)
            whole = each_layer is None or ATTENTION in capture
            yield from self._forward(batch, vectors, each_layer, whole, kept)

    def planned(
        self,
        examples: Sequence[Example],
        indices: Iterable[int] | None = None,
        batch_size: int = 16,
        progress: bool = False,
        held: int = 1,
    ) -> Iterator[tuple[list[tuple[int, dict]], list[int]]]:
        """``batches``, each with the corpus indices of the examples whose records come out:
        all of them, or, for ``indices`` a ``range`` (one part of a split build), those in it
        (the batch runs whole all the same, so that each example is computed as in one pass).
        ``run`` and ``PairedRunner.run`` both keep what this says."""
        own = indices if isinstance(indices, range) else None
        for batch in self.batches(examples, indices, batch_size, progress, held):
            yield batch, [i for i, _ in batch if own is None or i in own]

    @staticmethod
    def vectors_for(
        batch: list[tuple[int, dict]],
        capture: Iterable[str],
        queries_keys_for: Callable[[int], bool] | None,
    ) -> set[int]:
        """The examples of a batch whose queries and keys are kept (see ``run``)."""
        if QUERIES_KEYS not in set(capture):
            return set()
        wanted = queries_keys_for or (lambda index: True)
        return {i for i, _ in batch if wanted(i)}

    def batches(
        self,
        examples: Sequence[Example],
        indices: Iterable[int] | None = None,
        batch_size: int = 16,
        progress: bool = False,
        held: int = 1,
    ) -> Iterator[list[tuple[int, dict]]]:
        """The encoded batches ``run`` feeds through the model: (index, encoding) pairs of
        similar length (a ``PairedRunner`` feeds the same batches through two models), cut to
        the memory budget (``cut``; ``held`` as there)."""
        from tqdm.auto import tqdm

        order = list(range(len(examples))) if indices is None else list(indices)
        window = stream_window(batch_size)  # sort by length within a bounded window
        span = indices if isinstance(indices, range) and indices.step == 1 else None
        if span is not None:
            # A range of the corpus (one part of a split build) runs the very batches a
            # one-pass run makes that hold any of its examples, whole (so that each example is
            # computed as in one pass, padding included; ``run`` drops the others').
            cuts = range(span.start - span.start % window, span.stop, window) if span else ()
            chunks = [range(c, min(c + window, len(examples))) for c in cuts]
        else:
            chunks = [order[start : start + window] for start in range(0, len(order), window)]
        bar = tqdm(total=len(order), unit="sent", disable=not progress, desc="model", leave=False)
        try:
            for part in chunks:
                chunk = [(i, self.encode(examples[i], i)) for i in part]
                chunk.sort(key=lambda item: (len(item[1]["ids"]), item[0]))
                for batch in self.cut(chunk, batch_size, held):
                    if span is not None and not any(i in span for i, _ in batch):
                        continue
                    yield batch
                    bar.update(sum(span is None or i in span for i, _ in batch))
        finally:
            bar.close()

    def cut(self, chunk: list[tuple[int, dict]], batch_size: int, held: int = 1) -> Iterator[list]:
        """Consecutive batches of a chunk sorted by length: at most ``batch_size`` examples,
        and fewer where the attention the batch holds at once, ``held`` layers [B, H, W, W]
        float32 with W its longest (one layer for a plain run), would pass the runner's memory
        budget (never fewer than one)."""
        start = 0
        while start < len(chunk):
            stop = start + 1
            while stop < min(len(chunk), start + batch_size):
                width = len(chunk[stop][1]["ids"])
                if self.attention_bytes(stop + 1 - start, width, held) > self.memory:
                    break
                stop += 1
            yield chunk[start:stop]
            start = stop

    def attention_bytes(self, examples: int, width: int, held: int = 1) -> int:
        """What ``held`` layers of attention of ``examples`` examples padded to ``width``
        tokens take, float32 [B, H, W, W] each."""
        return held * examples * self.info.heads * width * width * 4

    def _forward(
        self,
        batch: list[tuple[int, dict]],
        vectors: Container[int] = frozenset(),
        each_layer: EachLayer | None = None,
        whole: bool = True,
        kept: Container[int] | None = None,
    ) -> list[Record]:
        """Run one batch; return the records of the examples in ``kept`` (default: all), with
        queries and keys for the indices in ``vectors``. Each layer's attention is taken from its
        attention module as the pass leaves it (a model no family of atlas/hooks.py describes
        returns it with ``output_attentions``), and each record's rows of it go to
        ``each_layer`` there and then, and into the record's ``attention`` if ``whole``: no
        layer of the batch is held past its own. Queries and keys are captured only when an
        example of the batch needs them."""
        import torch

        layout, layers, heads = self.layout, self.info.layers, self.info.heads
        records = [self._record(index, enc) for index, enc in batch]
        keep = [kept is None or r.index in kept for r in records]
        wanted = layout is not None and any(index in vectors for index, _ in batch)
        capture = hooks.queries_keys(layout) if wanted else contextlib.nullcontext()
        for record, mine in zip(records, keep, strict=True):
            n = record.n
            if mine and whole:
                record.attention = np.empty((layers, heads, n, n), np.float32)
            if mine and wanted and record.index in vectors:
                shape = (layers, heads, n, self.info.head_dim)
                record.query, record.key = np.empty(shape, np.float32), np.empty(shape, np.float32)
        reached: list[int] = []

        def deliver(layer: int, tensor) -> None:
            if tensor is None:
                raise ModelError(
                    f"model {self.info.name!r} returned no attention weights "
                    "(it may not support eager attention)"
                )
            reached.append(layer)
            attention = _numpy(tensor)  # [B, H, W, W]; on the CPU, the model's own tensor
            pair = qk.pair(layer) if wanted else None
            for row, record in enumerate(records):
                if pair is None:  # the hooks missed the projections: no neuron view
                    record.query = record.key = None
                if not keep[row]:
                    continue
                n = record.n
                if record.query is not None and pair is not None:
                    record.query[layer] = _numpy(pair[0][row, :, :n])
                    record.key[layer] = _numpy(pair[1][row, :, :n])
                mine = np.ascontiguousarray(attention[row, :, :n, :n])  # a view if unpadded
                if whole:
                    mine = record.attention[layer] = mine
                if each_layer is not None:
                    each_layer(record, layer, mine)

        each = hooks.probabilities(layout, deliver) if layout else contextlib.nullcontext()
        with torch.inference_mode(), quiet(), capture as qk, each:
            out = self.model(
                **self.inputs(batch),
                output_attentions=layout is None,
                output_hidden_states=self._hidden,
                return_dict=True,
            )
            if layout is None:
                for layer, tensor in enumerate(getattr(out, "attentions", None) or ()):
                    deliver(layer, tensor)
        if reached != list(range(layers)):
            raise ModelError(
                f"model {self.info.name!r} returned no attention weights "
                "(it may not support eager attention)"
            )
        # [B, W, d] per layer, the embedding output first, when an analysis asks for them
        hidden = [_numpy(h) for h in out.hidden_states] if self._hidden else None
        logits = task_logits(out, self.task)
        for row, record in enumerate(records):
            n = record.n
            if hidden is not None:
                record.hidden = np.stack([h[row, :n] for h in hidden])
            if logits is not None:
                record.logits = example_logits(logits[row], n, self.task)
        return [record for record, mine in zip(records, keep, strict=True) if mine]

    def inputs(self, batch: list[tuple[int, dict]]) -> dict:
        """The model inputs of encoded examples (``encode``), padded to the longest, on the
        device: input_ids, attention_mask and, where the model takes them, token_type_ids."""
        import torch

        width = max(len(enc["ids"]) for _, enc in batch)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        types = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (_, enc) in enumerate(batch):
            n = len(enc["ids"])
            ids[row, :n] = torch.tensor(enc["ids"])
            mask[row, :n] = 1
            types[row, :n] = torch.tensor(enc["token_type_ids"])
        inputs = {"input_ids": ids, "attention_mask": mask}
        if self._token_types:
            inputs["token_type_ids"] = types
        return {k: v.to(self.device) for k, v in inputs.items()}

    def _record(self, index: int, enc: dict) -> Record:
        """An example's record before its pass: its tokens, their roles, its words."""
        cls, sep, punct = self.encoder.marks(enc)
        return Record(
            index=index,
            tokens=enc["tokens"],
            cls=cls,
            sep=sep,
            special=enc["special"],
            punct=punct,
            segments=enc["segments"],
            truncated=enc["truncated"],
            generated=enc.get("generated"),
            kept_chars=enc["kept_chars"],
            words=enc.get("words"),
            word_of=enc.get("word_of"),
            heads=enc.get("heads"),
            deprels=enc.get("deprels"),
            label=enc.get("label"),
        )


class PairedRunner:
    """Two models over the same examples, batch by batch, on model A's tokens: yields each
    example's pair of records (A's, B's), for a compare build (atlas/comparison.py), where each
    model's analyses take their own model's record.

    One batch of each model's output is held at a time. The models must share their tokenizer
    (same vocabulary, special tokens and splits) and their shape (layers × heads), which is
    checked here, so that every head of A has one head of B to compare with, token for token;
    both truncate at the shorter of their length limits."""

    def __init__(self, a: Runner, b: Runner):
        why = tokenizer_difference(a, b)
        if why:
            raise ModelError(
                f"cannot compare {a.info.name!r} with {b.info.name!r}: {why}; --compare needs "
                "a model with the same tokenizer"
            )
        shape_a, shape_b = (a.info.layers, a.info.heads), (b.info.layers, b.info.heads)
        if shape_a != shape_b:
            raise ModelError(
                f"cannot compare {a.info.name!r} ({shape_a[0]} layers × {shape_a[1]} heads) with "
                f"{b.info.name!r} ({shape_b[0]} × {shape_b[1]}): head-by-head comparison needs "
                "the same number of layers and heads"
            )
        self.a, self.b = a, b
        a.max_length = b.max_length = min(a.max_length, b.max_length)
        a.info = dataclasses.replace(a.info, max_length=a.max_length)
        b.info = dataclasses.replace(b.info, max_length=b.max_length)

    def run(
        self,
        examples: Sequence[Example],
        indices: Iterable[int] | None = None,
        batch_size: int = 16,
        progress: bool = False,
        capture: tuple[Iterable[str], Iterable[str]] = (CAPTURES, CAPTURES),
        queries_keys_for: tuple[Callable[[int], bool] | None, ...] = (None, None),
    ) -> Iterator[tuple[Record, Record]]:
        """(A's record, B's record) of each example, as ``Runner.run`` yields records (the
        same batches, from A's encoding); ``capture`` and ``queries_keys_for``: each model's,
        as ``Runner.run`` takes them. Both records carry their whole attention: the compare
        analysis reads every head of both models together (``comparison`` hands each model's
        analyses the layers in order, ``analyses.base.feed``), so a batch is cut to fit both
        models' every layer in the memory budget, and an example that alone does not stops the
        run (``ModelError``) before its pass."""
        sides = list(zip((self.a, self.b), capture, queries_keys_for, strict=True))
        for runner, what, _ in sides:
            runner._hidden = HIDDEN_STATES in set(what)
        held = 2 * self.a.info.layers
        for batch, kept in self.a.planned(examples, indices, batch_size, progress, held):
            self._fits(batch, held)
            a, b = (runner._forward(batch, runner.vectors_for(batch, what, wanted), kept=kept)
                    for runner, what, wanted in sides)  # fmt: skip
            yield from zip(a, b, strict=True)

    def _fits(self, batch: list[tuple[int, dict]], held: int) -> None:
        """Stop before a batch of one example whose attention in both models, every layer,
        is more than ``--memory-gb`` lets the run hold (a batch of more fits: ``Runner.cut``)."""
        (index, enc), *more = batch
        need = self.a.attention_bytes(1, len(enc["ids"]), held)
        if more or need <= self.a.memory:
            return
        raise ModelError(
            f"--compare: sentence {index + 1} ({len(enc['ids'])} tokens) needs {need / 2**30:.3g}"
            f" GB for both models' attention ({self.a.info.layers} layers × "
            f"{self.a.info.heads} heads each), over --memory-gb {self.a.memory_gb:g}; "
            "raise --memory-gb or cut the inputs with --max-length"
        )
