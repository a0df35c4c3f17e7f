"""A tiny causal language model with its head and a chat template, made offline, for the tests
of ``--generate`` and ``--chat``.

tests/tiny_models.py saves base models (``AutoModel``): loaded with a language-model head, a
Llama's head would be made at random on every load (the atlas refuses it). This saves
``LlamaForCausalLM`` whole, seeded, with the tiny byte-level tokenizer of tiny_models and a
ChatML-like template, so that its greedy generations are the same on every load.
"""

from __future__ import annotations

import pathlib

import torch
import transformers
from tiny_models import _gpt2_tokenizer, tiny_llama

# The user's message and the assistant's turn, each after the tokenizer's one special token.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|endoftext|>{{ m['role'] }}\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|endoftext|>assistant\n{% endif %}"
)


def make_tiny_chat_lm(directory: pathlib.Path, chat: bool = True) -> pathlib.Path:
    """Save a seeded tiny ``LlamaForCausalLM`` (3 layers × 4 heads) and its tokenizer, with
    ``CHAT_TEMPLATE`` when ``chat``, to ``directory``; return it."""
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(tiny_llama().config).eval()
    tokenizer = _gpt2_tokenizer()
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
