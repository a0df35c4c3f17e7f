"""What the runner hands the analyses: one ``Record`` per example, and values derived from it.

A record holds exactly the tokens of one example (padding stripped), their roles, and what the
model computed over them: queries and keys, hidden states and the task head's output when asked.
Its attention reaches the analyses one layer at a time as the forward pass makes it
(``Analysis.add_layer``); ``attention`` holds every layer [layer, head, n, n] only when some
analysis of the run reads it whole.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .scores import Scores

# Subword markers stripped before deciding whether a token is punctuation:
# WordPiece continuation, byte-level BPE space, SentencePiece space, end-of-word suffix.
SUBWORD_PREFIXES = ("##", "Ġ", "▁")
SUBWORD_SUFFIXES = ("</w>",)


# What the runner can capture besides the tokens; an analysis names what it needs.
ATTENTION = "attention"
QUERIES_KEYS = "queries_keys"
HIDDEN_STATES = "hidden_states"
CAPTURES = frozenset({ATTENTION, QUERIES_KEYS, HIDDEN_STATES})


@dataclass
class Record:
    """One example as the model saw it: tokens, their roles, and what the model computed."""

    index: int  # position of the example in the corpus
    tokens: list[str]
    cls: np.ndarray  # bool [n]: the [CLS]/BOS token(s)
    sep: np.ndarray  # bool [n]: [SEP]/EOS tokens
    special: np.ndarray  # bool [n]: any special token the tokenizer added
    punct: np.ndarray  # bool [n]: tokens made only of Unicode punctuation
    segments: np.ndarray  # int8 [n]: 0 for sentence A, 1 for sentence B, -1 for special tokens
    # float32 [layers, heads, n, n], rows (from) summing to 1; None where no analysis of the run
    # reads every layer at once (each layer is handed to ``Analysis.add_layer`` as it comes)
    attention: np.ndarray | None = None
    truncated: bool = False
    # bool [n]: the tokens the model generated after the prompt (--generate); None in a build
    # without generation
    generated: np.ndarray | None = None
    # Of a truncated example, per side (text, text_b): how many characters of the text the kept
    # tokens cover where truncation cut that side, None where it kept the side whole; None for
    # an example not truncated, or when the tokenizer cannot say (``kept_chars``).
    kept_chars: tuple[int | None, int | None] | None = None
    # float32 [layers, heads, n, head_dim], for the neuron view; filled layer by layer, so that
    # ``add_layer`` of layer l may read layers up to l. None where not captured.
    query: np.ndarray | None = None
    key: np.ndarray | None = None  # likewise
    # float32 [layers + 1, n, hidden]: the embedding output (0) and each layer's output; only
    # when an analysis asks for HIDDEN_STATES
    hidden: np.ndarray | None = None
    # Set only when the example was given as words (CoNLL-U, JSONL "words", .txt --words):
    words: list[str] | None = None  # the example's m words
    word_of: np.ndarray | None = None  # int32 [n]: each token's word (0-based), -1: no word
    heads: np.ndarray | None = None  # int32 [m]: each word's gold head (0-based), -1: root
    deprels: list[str] | None = None  # each word's relation to its head, e.g. "nmod:poss"
    label: str | None = None  # the example's gold label, if the input gives one
    # The task head's raw output (ModelInfo.task): [classes] for a sequence, [n, classes] for
    # tokens, [n, 2] (start, end) for answer spans; None for a model without a task head.
    logits: np.ndarray | None = None
    _derived: dict = field(default_factory=dict, repr=False, compare=False)
    _layer_derived: dict = field(default_factory=dict, repr=False, compare=False)
    _layer: int | None = field(default=None, repr=False, compare=False)
    _stash: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n(self) -> int:
        return len(self.tokens)

    def derived(self, key: str, compute: Callable[[], object], layer: int | None = None):
        """A value computed from this record once and shared by every analysis that asks for
        it under the same key (e.g. row entropies). With ``layer``, a value of that layer's
        attention: kept only while that layer is handed out, so that an example never holds
        every layer's derived values (asking for another layer drops them)."""
        cache = self._derived
        if layer is not None:
            if layer != self._layer:
                self._layer_derived, self._layer = {}, layer
            cache = self._layer_derived
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def stash(self, owner: str, make: Callable[[], object] | None = None):
        """What one analysis (``owner``) keeps of this example between its layers and its
        ``add``, made by ``make`` on first asking (without ``make``: what was made): the layers
        of a batch's examples come in turn (layer 0 of each, then layer 1 of each, ...), so an
        example's state lives on its record, and goes with it."""
        if make is None:
            return self._stash[owner]
        if owner not in self._stash:
            self._stash[owner] = make()
        return self._stash[owner]


def is_punctuation(token: str) -> bool:
    """True when the token, without subword markers, is only Unicode punctuation."""
    for prefix in SUBWORD_PREFIXES:
        if token.startswith(prefix):
            token = token[len(prefix) :]
            break
    for suffix in SUBWORD_SUFFIXES:
        if token.endswith(suffix):
            token = token[: -len(suffix)]
    return bool(token) and all(unicodedata.category(ch).startswith("P") for ch in token)


def reproduction_error(
    query: np.ndarray, key: np.ndarray, attention: np.ndarray, causal: bool
) -> float:
    """The largest |softmax(q·k/√d) − attention| of captured vectors [L, H, n, d] and the
    attention [L, H, n, n] the model returned, in float64 (``Scores.error`` of plain scores, at
    its largest)."""
    layers, d = query.shape[0], query.shape[-1]
    return float(Scores.plain(layers, d).error(query, key, attention, causal).max())
