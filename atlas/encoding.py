"""Encoding examples as the model sees them: tokenise (truncated to the length limit), mark each
token's role, map tokens to words for examples given as words, and keep a long sentence pair's
truncation linear in memory (``bounded_pair``).
"""

from __future__ import annotations

import json
import logging

import numpy as np

from .corpus import Example, word_spans
from .loading import CAUSAL_PROBE, ModelError
from .records import is_punctuation

log = logging.getLogger(__name__)


def needs_prefix_space(tokenizer) -> bool:
    """Whether the tokenizer is byte-level BPE without a prefix space (GPT-2, RoBERTa): such a
    tokenizer would glue pre-split words together, so it is loaded again with
    ``add_prefix_space=True`` for examples given as words."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False

    def walk(node) -> bool:
        if isinstance(node, dict):
            if node.get("type") == "ByteLevel" and not node.get("add_prefix_space", False):
                return True
            return any(walk(value) for value in node.values())
        if isinstance(node, list):
            return any(walk(value) for value in node)
        return False

    return walk(json.loads(backend.to_str()).get("pre_tokenizer"))


class Encoder:
    """A model's tokenizer, turning examples into encodings of at most ``max_length`` tokens.

    ``source``: the (path, keyword arguments) the tokenizer was loaded from, to load it again
    with a prefix space for examples given as words; ``name``: the model's name, for errors."""

    def __init__(self, tokenizer, max_length: int, source: tuple[str, dict], name: str):
        self.tokenizer, self.max_length, self.name = tokenizer, max_length, name
        self._source = source
        self._words_tokenizer = None  # loaded on the first example given as words
        self._dropped: set[tuple[str, int]] = set()  # (example id, word) already warned about
        cls, sep = (
            (tokenizer.cls_token_id, tokenizer.bos_token_id),
            (
                tokenizer.sep_token_id,
                tokenizer.eos_token_id,
            ),
        )
        self.cls_ids = {i for i in cls if i is not None}
        self.sep_ids = {i for i in sep if i is not None}
        self.chat = False  # wrap each text in the tokenizer's chat template (``prepare``)
        self.reserve = 0  # tokens kept free after each prompt for its generation

    def prepare(self, chat: bool = False, reserve: int = 0) -> None:
        """Wrap each text in the chat template (``chat``), and keep ``reserve`` tokens free
        after each prompt for the tokens ``--generate`` appends: a prompt is then cut to
        ``max_length - reserve`` tokens. A tokenizer without a chat template stops the build
        here, before any example runs."""
        if chat and not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(f"--chat: the tokenizer of model {self.name!r} has no chat template")
        if reserve and self.max_length - reserve < 1:
            raise ModelError(
                f"--generate {reserve}: leaves no room for a prompt within the model's "
                f"{self.max_length} tokens"
            )
        self.chat, self.reserve = chat, reserve

    def marks(self, encoded: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per token of an encoding, bool [n] each: [CLS]/BOS, [SEP]/EOS, punctuation (a
        non-special token made only of Unicode punctuation)."""
        special = encoded["special"]
        ids = np.array(encoded["ids"])
        cls = special & np.isin(ids, list(self.cls_ids))
        sep = special & np.isin(ids, list(self.sep_ids)) & ~cls
        punct = np.array(
            [not s and is_punctuation(t) for t, s in zip(encoded["tokens"], special, strict=True)],
            dtype=bool,
        )
        return cls, sep, punct

    def words_tokenizer(self):
        """The tokenizer for examples given as words: the model's own, except that byte-level
        BPE ones are loaded again with ``add_prefix_space=True`` (each word then starts with a
        space, the first one included); text without words keeps the model's tokenizer."""
        if self._words_tokenizer is None:
            tokenizer = self.tokenizer
            if not getattr(tokenizer, "is_fast", False):
                raise ModelError(
                    f"model {self.name!r}: its tokenizer ({type(tokenizer).__name__}) "
                    "cannot map tokens to words (a fast tokenizer is needed for word input)"
                )
            if needs_prefix_space(tokenizer):
                from transformers import AutoTokenizer

                path, kwargs = self._source
                tokenizer = AutoTokenizer.from_pretrained(path, add_prefix_space=True, **kwargs)
            self._words_tokenizer = tokenizer
        return self._words_tokenizer

    def encode(self, example: Example, index: int | None = None) -> dict:
        """Tokenise one example (truncated to max_length) and describe each token's role.

        An example with words is tokenised as pre-split words, and ``word_of`` says which word
        each token belongs to; ``index`` (0-based, in the corpus) names it in warnings. The
        tokens the model generated after it (``Example.generated``) follow the prompt's, and
        ``generated`` marks them whenever the encoder keeps room for them (``prepare``)."""
        encoded = self._chat(example, index) if self.chat else self._prompt(example, index)
        if self.reserve:
            encoded = self.extend(encoded, example.generated)
        return encoded

    def _prompt(self, example: Example, index: int | None) -> dict:
        """The example's own encoding, cut to leave ``reserve`` tokens free."""
        limit = self.max_length - self.reserve
        kwargs = {"return_special_tokens_mask": True, "return_token_type_ids": True}
        tokenizer, first, second = self.tokenizer, example.text, example.text_b
        if example.words is not None:
            if example.text_b is not None:
                raise ModelError(f"example {example.id!r}: words are for single sentences")
            tokenizer, first = self.words_tokenizer(), list(example.words)
            kwargs["is_split_into_words"] = True
        fast = bool(getattr(tokenizer, "is_fast", False))
        # offsets (fast tokenizers only): where the kept tokens end in the text, and where a
        # long pair can be cut before truncation (``bounded_pair``)
        full = tokenizer(first, second, truncation=False, return_offsets_mapping=fast, **kwargs)
        truncated = len(full["input_ids"]) > limit
        if truncated and second is not None and fast:
            first, second = bounded_pair(first, second, full, limit)
        enc = (
            tokenizer(
                first,
                second,
                truncation="longest_first",
                max_length=limit,
                return_offsets_mapping=fast,
                **kwargs,
            )
            if truncated
            else full
        )
        ids = list(enc["input_ids"])
        special = np.array(enc["special_tokens_mask"], dtype=bool)
        try:
            seq = enc.sequence_ids()
        except (ValueError, AttributeError):  # slow tokenizers cannot say
            seq = [None if s else 0 for s in special]
        segments = np.array([-1 if s is None else s for s in seq], dtype=np.int8)
        tokens = tokenizer.convert_ids_to_tokens(ids)
        encoded = {
            "ids": ids,
            "token_type_ids": list(enc.get("token_type_ids") or [0] * len(ids)),
            "tokens": [str(t) for t in tokens],
            "special": special,
            "segments": segments,
            "truncated": truncated,
            "kept_chars": kept_chars(example, full, enc) if truncated else None,
            "label": example.label,
        }
        if example.words is not None:
            encoded.update(self._align(example, index, full.word_ids(), enc.word_ids(), special))
        return encoded

    def _chat(self, example: Example, index: int | None) -> dict:
        """A single text as the user's message in the tokenizer's chat template, with the
        template's opening of the assistant's turn after it. A message too long for the model
        (less the room kept for the generation) is cut, as a plain text is, at the end of its
        last token that fits: the template's own tokens are kept whole around it."""
        what = "words" if example.words is not None else "a pair" if example.text_b else ""
        if what:
            raise ModelError(f"example {example.id!r}: --chat wraps single texts, not {what}")
        tokenizer, limit, text = self.tokenizer, self.max_length - self.reserve, example.text
        ids, kept = self._wrap(text), None
        if len(ids) > limit:
            kept = self._chat_cut(example, len(ids) - limit, limit)
            ids = self._wrap(text[:kept])
        special = np.array(tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True),
                           dtype=bool)  # fmt: skip
        return {
            "ids": ids,
            "token_type_ids": [0] * len(ids),
            "tokens": [str(t) for t in tokenizer.convert_ids_to_tokens(ids)],
            "special": special,
            "segments": np.where(special, -1, 0).astype(np.int8),
            "truncated": kept is not None,
            "kept_chars": None if kept is None else (kept, None),
            "label": example.label,
        }

    def _wrap(self, text: str) -> list[int]:
        """The token ids of ``text`` as the user's message in the chat template."""
        wrapped = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        return list(self.tokenizer(wrapped, add_special_tokens=False)["input_ids"])

    def _chat_cut(self, example: Example, over: int, limit: int) -> int:
        """How many characters of a message fit in ``limit`` tokens once wrapped: the end of
        the last of its own tokens that does, found from the ``over`` tokens too many (a cut
        can join or split tokens at the template's seams, so each cut is wrapped again)."""
        tokenizer = self.tokenizer
        name = f"--chat: example {example.id!r}"
        if not getattr(tokenizer, "is_fast", False):
            raise ModelError(f"{name} is over the {limit} tokens the model takes, and a slow "
                             "tokenizer cannot say where to cut it")  # fmt: skip
        offsets = tokenizer(example.text, add_special_tokens=False, return_offsets_mapping=True)
        ends = [end for _, end in offsets["offset_mapping"]]
        for keep in range(len(ends) - over, 0, -1):
            if len(self._wrap(example.text[: ends[keep - 1]])) <= limit:
                return ends[keep - 1]
        raise ModelError(
            f"{name}: the chat template alone does not fit in the {limit} tokens the model takes"
            + (f" before --generate's {self.reserve}" if self.reserve else "")
        )

    def extend(self, encoded: dict, ids: tuple[int, ...] | list[int]) -> dict:
        """An encoding with generated tokens ``ids`` after its own, marked in ``generated``
        (bool [n]): they continue the last side (segment) of the prompt, belong to no word, and
        are special where the tokenizer says so (an end-of-text token)."""
        ids = [int(i) for i in ids]
        added = np.isin(np.array(ids, dtype=np.int64), sorted(self.tokenizer.all_special_ids))
        sides = encoded["segments"][encoded["segments"] >= 0]
        side = int(sides[-1]) if len(sides) else 0
        out = dict(encoded)
        out["ids"] = encoded["ids"] + ids
        types = encoded["token_type_ids"]
        out["token_type_ids"] = types + types[-1:] * len(ids)
        out["tokens"] = encoded["tokens"] + [
            str(t) for t in self.tokenizer.convert_ids_to_tokens(ids)
        ]
        out["special"] = np.concatenate([encoded["special"], added])
        out["segments"] = np.concatenate(
            [encoded["segments"], np.where(added, -1, side).astype(np.int8)]
        )
        out["generated"] = np.arange(len(out["ids"])) >= len(encoded["ids"])
        if encoded.get("word_of") is not None:
            out["word_of"] = np.concatenate(
                [encoded["word_of"], np.full(len(ids), -1, dtype=np.int32)]
            )
        return out

    def _align(
        self,
        example: Example,
        index: int | None,
        full_word_ids: list[int | None],
        word_ids: list[int | None],
        special: np.ndarray,
    ) -> dict:
        """Token → word map (-1 for special tokens), the tree with 0-based heads (-1: root),
        and a warning for each word the tokenizer drops (one that truncation cut is not)."""
        words = list(example.words or ())
        word_of = np.array([-1 if w is None else w for w in word_ids], dtype=np.int32)
        word_of[special] = -1
        kept = {w for w in full_word_ids if w is not None}  # before truncation
        for position, word in enumerate(words):
            if position not in kept and (example.id, position) not in self._dropped:
                self._dropped.add((example.id, position))
                log.warning(
                    "sentence %s (id %s, line %d): word %d of %d, %r, has no tokens; the "
                    "tokenizer drops it",
                    "?" if index is None else index + 1,
                    example.id,
                    example.line,
                    position + 1,
                    len(words),
                    word,
                )
        heads = None
        if example.heads is not None:
            heads = np.array(example.heads, dtype=np.int32) - 1
        return {
            "words": words,
            "word_of": word_of,
            "heads": heads,
            "deprels": list(example.deprels) if example.deprels is not None else None,
        }


def bounded_pair(first: str, second: str, full, limit: int) -> tuple[str, str]:
    """A sentence pair of two sides past ``limit`` tokens, each cut before a word that starts
    after its ``limit``-th token, so that truncating it gives the same encoding: a word's
    tokens do not depend on the text after it, truncation keeps at most ``limit`` tokens of a
    side, and longest-first truncation of two sides that both overflow depends only on which
    is longer (the longer one, else the second, gets the odd token), which the cut keeps.
    Without it, the tokenizers library combines every overflowing window of one side with
    every window of the other: quadratic memory (two 50 kB sides at 64 tokens took more than
    the machine had). ``full``: the pair's encoding without truncation, with offsets."""
    offsets, sides, words = full["offset_mapping"], full.sequence_ids(), full.word_ids()
    tokens = [[i for i, s in enumerate(sides) if s == side] for side in (0, 1)]
    if min(len(t) for t in tokens) <= limit:
        return first, second  # one side fits: its windows are one, the memory linear
    texts = [first, second]

    def cut(side: int, at_least: int) -> int:
        """Cut ``side`` before the first word that starts at token ``at_least`` or later;
        returns the tokens it keeps."""
        mine = tokens[side]
        for count in range(max(at_least, 1), len(mine)):
            if words[mine[count]] != words[mine[count - 1]]:
                texts[side] = texts[side][: offsets[mine[count]][0]]
                return count
        return len(mine)

    if len(tokens[0]) > len(tokens[1]):
        cut(0, cut(1, limit) + 1)  # the first side stays the longer
    else:
        cut(1, cut(0, limit))  # the second side stays at least as long
    return texts[0], texts[1]


def kept_chars(example: Example, full, cut) -> tuple[int | None, int | None] | None:
    """Where the tokens of a truncated example end in its text, per side (text, text_b): the
    end of the side's last kept token, for a side that truncation cut (it has fewer tokens in
    ``cut`` than in ``full``, the encoding without truncation), None for a side kept whole.

    None when the tokenizer gives no character offsets (a slow one), or when the example's
    words do not spell its text (a CoNLL-U sentence with multi-word tokens: "du" = "de le"):
    word offsets count within each word, and only ``word_spans`` takes them to the text."""
    offsets = cut.get("offset_mapping")
    if offsets is None:
        return None
    if example.words is not None:
        spans = word_spans(example.text, example.words)
        if not isinstance(spans, list):
            return None
        ends = [0]
        for (_, end), word in zip(offsets, cut.word_ids(), strict=True):
            if word is not None and end > 0:
                # the token's end counts the word's own characters; its spaces are in no span
                inside = len("".join(example.words[word][:end].split()))
                ends.append(spans[word][inside - 1] + 1 if inside else spans[word][0])
        return max(ends), None
    sides = (full.sequence_ids(), cut.sequence_ids())
    kept: list[int | None] = []
    for side, text in enumerate((example.text, example.text_b)):
        counts = [sum(s == side for s in ids) for ids in sides]
        if text is None or counts[1] == counts[0]:
            kept.append(None)
            continue
        ends = (end for (_, end), s in zip(offsets, sides[1], strict=True) if s == side)
        kept.append(max(ends, default=0))
    return kept[0], kept[1]


# Texts both tokenizers of a compare build must split alike (beyond equal vocabularies and
# special tokens): case, accents, punctuation, digits, a pair.
TOKENIZER_PROBES = (
    (CAUSAL_PROBE, None),
    ("Crème BRÛLÉE, naïve café: 3.14 % of $10 -- ok?!", None),
    ("Is it here?", "Yes, it is."),
)


def tokenizer_difference(a, b) -> str:
    """Why two runners' (or encoders') tokenizers cannot share tokens ("" when they can):
    different vocabularies, special tokens, or splits of the probe texts."""
    vocab_a, vocab_b = a.tokenizer.get_vocab(), b.tokenizer.get_vocab()
    if vocab_a != vocab_b:
        differ = len(set(vocab_a.items()) ^ set(vocab_b.items()))
        return (
            f"their vocabularies differ ({len(vocab_a)} and {len(vocab_b)} tokens, "
            f"{differ} entries not shared)"
        )
    specials_a, specials_b = a.tokenizer.special_tokens_map, b.tokenizer.special_tokens_map
    if specials_a != specials_b:
        keys = sorted(
            k for k in {*specials_a, *specials_b} if specials_a.get(k) != specials_b.get(k)
        )
        return f"their special tokens differ ({', '.join(keys)})"
    for first, second in TOKENIZER_PROBES:
        if a.tokenizer(first, second)["input_ids"] != b.tokenizer(first, second)["input_ids"]:
            return f"they split {first!r} differently (e.g. lower-casing or accents)"
    return ""
