"""Prompts and their generations (``--generate N``): a step before the analysis pass that
continues every example by N tokens, greedily, and makes the generation part of the example.

The analyses then see prompt + generation in one forward pass, exactly as any other input: the
model's attention over the tokens it wrote itself, with each token marked as prompt or generated
(``Record.generated``). Greedy decoding (no sampling, one beam, the model's own generation
settings ignored) makes the generation a function of the model and the prompt alone, so the same
build gives the same site.

Prompts of equal length run together, without padding: no padded position can change what a
prompt's continuation is, whatever the batch size. A continuation ends early at an end-of-text
token (kept), as the model's text ends there.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

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
) -> list[Example]:
    """``examples``, each with its greedy continuation of at most ``tokens`` tokens
    (``Example.generated`` and ``generation``), from the runner's language model
    (``Runner.generator``). The prompts are encoded as the analysis pass encodes them (the chat
    template, the room kept for the generation), so the pass sees exactly these tokens."""
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
    prompts = {i: runner.encode(example, i)["ids"] for i, example in enumerate(examples)}
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
    return [
        dataclasses.replace(
            example,
            generated=tuple(made[i]),
            generation=tokenizer.decode(made[i], skip_special_tokens=True),
        )
        for i, example in enumerate(examples)
    ]


def _until_end(ids: list[int], ends: set[int]) -> list[int]:
    """The generated ids up to and including the first end-of-text token (a batch pads the
    rows that ended before the others)."""
    for position, token in enumerate(ids):
        if token in ends:
            return ids[: position + 1]
    return ids
