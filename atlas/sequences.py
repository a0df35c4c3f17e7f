"""Passes of made-up token sequences through the runner's model, for analyses that probe heads
with inputs of their own (the head types' repeated random tokens, analyses/headtypes.py).

An analysis that needs SEQUENCES gets a ``TokenPasses`` in ``RunInfo.sequences``: the token ids
it may draw from, how many fit between the tokenizer's special tokens, and ``attention``, which
wraps each sequence in those special tokens (a BOS in front where the tokenizer adds one, [CLS]
… [SEP] for BERT) and returns its attention, captured as the corpus's is (``Runner._forward``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class TokenPasses:
    """Token sequences through a runner's model (model A's, in a compare build)."""

    def __init__(self, runner, batch_size: int = 16):
        runner = getattr(runner, "a", runner)  # a PairedRunner: measure model A, as importance
        self.runner, self.batch_size = runner, batch_size
        tokenizer = runner.tokenizer
        # Where the tokenizer puts its special tokens: around one ordinary token.
        sample = tokenizer("a", return_special_tokens_mask=True)
        ids, special = list(sample["input_ids"]), list(sample["special_tokens_mask"])
        ordinary = [i for i, s in enumerate(special) if not s] or [len(ids)]
        self.prefix, self.suffix = ids[: ordinary[0]], ids[ordinary[-1] + 1 :]
        embeddings = runner.model.get_input_embeddings().num_embeddings
        excluded = set(tokenizer.all_special_ids)
        self.vocabulary = np.array(
            [i for i in range(min(len(tokenizer), embeddings)) if i not in excluded], np.int64
        )
        # tokens a sequence may have besides the special tokens
        self.room = runner.max_length - len(self.prefix) - len(self.suffix)

    def attention(self, bodies: Sequence[Sequence[int]]) -> Iterator[tuple[list[int], np.ndarray]]:
        """Each sequence's token ids with the special tokens, and its attention [L, H, n, n]."""
        tokenizer = self.runner.tokenizer
        for start in range(0, len(bodies), self.batch_size):
            batch = []
            for offset, body in enumerate(bodies[start : start + self.batch_size]):
                ids = [*self.prefix, *map(int, body), *self.suffix]
                special = np.zeros(len(ids), bool)
                special[: len(self.prefix)] = special[len(ids) - len(self.suffix) :] = True
                encoding = {
                    "ids": ids,
                    "token_type_ids": [0] * len(ids),
                    "tokens": [str(t) for t in tokenizer.convert_ids_to_tokens(ids)],
                    "special": special,
                    "segments": np.where(special, -1, 0).astype(np.int8),
                    "truncated": False,
                    "kept_chars": None,
                }
                batch.append((start + offset, encoding))
            for record in self.runner._forward(batch):
                yield batch[record.index - start][1]["ids"], record.attention
