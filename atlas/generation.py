"""Prompts and their generations (``--generate N``): a step before the analysis pass that
continues every example by N tokens, greedily, and makes the generation part of the example.

The analyses then see prompt + generation in one forward pass, exactly as any other input: the
model's attention over the tokens it wrote itself, with each token marked as prompt or generated
(``Record.generated``). Greedy decoding (no sampling, one beam, the model's own generation
settings ignored) makes the generation a function of the model and the prompt alone, so the same
build gives the same site.

Prompts of equal length run together, without padding: no padded position can change what a
prompt's continuation is, whatever the batch size. A continuation ends early at an end-of-text
token (kept), as the model's text ends there. So a shard of a sharded build continues only the
prompts it needs, and they are the ones a one-process build writes (``Continued``: the driver's
examples with the generations the shards send back).
"""

from __future__ import annotations

import dataclasses
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .corpus import Example
from .loading import quiet

if TYPE_CHECKING:
    from .running import Runner


def end_ids(model, tokenizer) -> set[int]:
    """The tokens that end a text: the model's generation settings' (a chat model lists its
    end-of-turn token there), else the tokenizer's end-of-text token."""
    ends = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if ends is None:
        ends = tokenizer.eos_token_id
    if ends is None:
        return set()
    return {int(e) for e in ([ends] if isinstance(ends, int) else ends)}


def continue_examples(
    examples: Sequence[Example],
    runner: Runner,
    tokens: int,
    batch_size: int = 16,
    progress: bool = False,
    indices: Iterable[int] | None = None,
) -> list[Example]:
    """``examples``, each with its greedy continuation of at most ``tokens`` tokens
    (``Example.generated`` and ``generation``), from the runner's language model
    (``Runner.generator``). The prompts are encoded as the analysis pass encodes them (the chat
    template, the room kept for the generation), so the pass sees exactly these tokens.
    ``indices``: continue only those examples (a shard's); the others are returned as given."""
    made = generated_ids(examples, runner, tokens, batch_size, progress, indices)
    return [
        continued(example, made[i], runner.tokenizer) if i in made else example
        for i, example in enumerate(examples)
    ]


def generated_ids(
    examples: Sequence[Example],
    runner: Runner,
    tokens: int,
    batch_size: int = 16,
    progress: bool = False,
    indices: Iterable[int] | None = None,
) -> dict[int, list[int]]:
    """The ids ``continue_examples`` gives each example of ``indices`` (all by default), by
    index: what a shard sends, without holding every example of the corpus as a list."""
    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig

    model, tokenizer = runner.generator, runner.tokenizer
    if model is None:
        raise ValueError("the runner was made without generate=N")
    ends = end_ids(model, tokenizer)
    settings = GenerationConfig(
        max_new_tokens=tokens,
        min_new_tokens=1,
        do_sample=False,
        num_beams=1,
        eos_token_id=sorted(ends) or None,
        pad_token_id=tokenizer.pad_token_id,
    )
    chosen = range(len(examples)) if indices is None else sorted(set(indices))
    prompts = {i: runner.encode(examples[i], i)["ids"] for i in chosen}
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, ids in prompts.items():
        by_length[len(ids)].append(i)
    made: dict[int, list[int]] = {}
    bar = tqdm(total=len(prompts), unit="sent", disable=not progress, desc="generate", leave=False)
    try:
        for length in sorted(by_length):
            group = by_length[length]
            for start in range(0, len(group), batch_size):
                chunk = group[start : start + batch_size]
                ids = torch.tensor([prompts[i] for i in chunk], device=runner.device)
                with torch.inference_mode(), quiet():
                    out = model.generate(
                        input_ids=ids,
                        attention_mask=torch.ones_like(ids),
                        generation_config=settings,
                    )
                for row, i in enumerate(chunk):
                    made[i] = _until_end(out[row, length:].tolist(), ends)
                bar.update(len(chunk))
    finally:
        bar.close()
    return made


def continued(example: Example, ids: Sequence[int], tokenizer) -> Example:
    """``example`` with the tokens ``ids`` the model wrote after it, and their text."""
    return dataclasses.replace(
        example,
        generated=tuple(ids),
        generation=tokenizer.decode(list(ids), skip_special_tokens=True),
    )


class Continued(Sequence[Example]):
    """A sharded build's examples on its driver: the prompts, each continued as soon as the
    shard that generated it has sent its generated ids (``take``), so that the sentences the
    finish runs again and the site's sentence list are those a one-process build has. The
    driver holds the ids only, 4 bytes a token; each example is made as it is read."""

    def __init__(self, examples: Sequence[Example], tokenizer) -> None:
        self.examples, self.tokenizer = examples, tokenizer
        self.generated: dict[int, array] = {}

    def take(self, parts: Iterable[Any]) -> Iterator[Any]:
        """The parts as given, each one's generations (``generated``: index → ids) taken in
        as it is drawn."""
        for part in parts:
            self.generated.update((i, array("i", ids)) for i, ids in part.generated.items())
            yield part
            del part  # merged: not held while the next is drawn

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index):  # an int, or a slice (a list)
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        example = self.examples[index]
        ids = self.generated.get(range(len(self))[index])
        return example if ids is None else continued(example, ids, self.tokenizer)


def generations(examples: Sequence[Example], span: range) -> dict[int, tuple[int, ...]]:
    """The ids generated after each example of ``span`` that has any (a shard's, to send)."""
    return {i: examples[i].generated for i in span if examples[i].generated}


def _until_end(ids: list[int], ends: set[int]) -> list[int]:
    """The generated ids up to and including the first end-of-text token (a batch pads the
    rows that ended before the others)."""
    for position, token in enumerate(ids):
        if token in ends:
            return ids[: position + 1]
    return ids
