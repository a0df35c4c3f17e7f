"""Read the input corpus: the only module that looks at the user's file.

Formats, chosen by file extension:

- ``.txt``: one sentence per line; blank lines and lines starting with ``#`` are skipped; a TAB
  splits a line into a sentence pair (A, B). A third column is the example's label: ``A TAB B
  TAB label`` for a pair, ``A TAB TAB label`` (an empty second column) for a single sentence.
  With ``words=True`` (``--words``) each line is also split on whitespace into words (pairs are
  refused then: words belong to single sentences).
- ``.jsonl``: one JSON object per line, ``{"text": ..., "text_b": ... (optional), "id": ...
  (optional), "label": ... (optional: a string, or an integer read as its digits)}``; blank
  lines are skipped. A record may give ``"words": [str, ...]``, with
  ``"heads": [int, ...]`` (1-based id of each word's head, 0 for the root) and then
  ``"deprels": [str, ...]``; without ``"text"``, the text is the words joined by spaces. With
  ``words=True``, records without ``"words"`` are split on whitespace.
- ``.conllu``: Universal Dependencies CoNLL-U, read with the ``conllu`` package. Words are the
  FORM column, heads column 7, relations column 8 (subtypes such as ``nmod:poss`` kept);
  multi-word token lines (``1-2``) and empty nodes (``8.1``) are skipped, and nothing is
  renumbered. ``# text =`` is the sentence's text (else the words joined by spaces), ``# sent_id
  =`` its id (else the running count).

All are read as UTF-8, with or without a byte-order mark. A line ends at LF, CRLF or a lone CR
(old Mac files), and nowhere else: U+2028, U+0085 or a form feed do not end a line (str.splitlines
would split there, and JSON allows U+2028 inside a string). Control characters (Unicode category
Cc: NUL, ESC, DEL, C1 controls such as U+0085, ...) are refused wherever they are, TAB aside, and
in a JSON string LF and CR too: none of them is text a page can show, and a NUL usually means a
UTF-16 or binary file. Errors name the file and line, so the user can fix the input without a
traceback.
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

FORMATS = (".txt", ".jsonl", ".conllu")
CONLLU_COLUMNS = 10
# What ends a line (see the module's docstring): LF, CRLF, or a CR on its own.
LINE_END = re.compile(r"\r\n|\r|\n")
LINE_END_BYTES = re.compile(rb"\r\n|\r|\n")
# Unicode's control characters (category Cc: C0, DEL, C1) but TAB, LF and CR: in a line, LF and
# CR cannot occur (they end it); in a JSON string they are whitespace, as TAB is.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class CorpusError(ValueError):
    """The input cannot be read; the message is one line, fit to show the user as is."""


@dataclass(frozen=True)
class Example:
    """One input to the model: a sentence, or a sentence pair when ``text_b`` is set.

    ``words`` (single sentences only) make the runner map tokens to words; ``heads`` and
    ``deprels`` are a gold dependency tree over those words, in the CoNLL-U convention."""

    id: str
    text: str
    text_b: str | None = None
    line: int = 0  # 1-based line in the input file, for messages
    words: tuple[str, ...] | None = None
    heads: tuple[int, ...] | None = None  # 1-based id of each word's head, 0 for the root
    deprels: tuple[str, ...] | None = None  # one relation per word, e.g. "nsubj", "nmod:poss"
    label: str | None = None  # the example's gold label (a class), when the input gives one
    # What the model wrote after it (--generate, atlas/generation.py): the token ids the
    # encoder appends to the prompt's, and their text, for the pages
    generated: tuple[int, ...] = ()
    generation: str | None = None


def read_corpus(path: str | Path, limit: int | None = None, words: bool = False) -> list[Example]:
    """Parse and validate ``path``; return at most ``limit`` examples, in file order.

    ``words``: split .txt lines (and .jsonl records without "words") on whitespace into words,
    so the runner can say which token belongs to which word."""
    return [example for example, _ in _Scan(Path(path), limit, words)]


class Corpus(Sequence[Example]):
    """The examples of an input file, read as they are asked for, not held: one pass checks
    the whole file (every error ``read_corpus`` gives) and keeps, per example, only where it
    starts (its byte offset and line number, 16 bytes); an example is parsed again from there,
    by ranges of ``BLOCK`` examples, the last range read kept. What the driver of a sharded
    build holds of a corpus of any size, and what its workers read their range through."""

    BLOCK = 256

    def __init__(self, path: str | Path, limit: int | None = None, words: bool = False):
        self.path, self.words = Path(path), words
        self._offsets, self._lines = array("q"), array("q")
        self.pairs, self.labelled = 0, False
        scan = _Scan(self.path, limit, words)
        for example, offset in scan:
            self._offsets.append(offset)
            self._lines.append(example.line)
            self.pairs += example.text_b is not None
            self.labelled = self.labelled or example.label is not None
        self._end, self._stat = scan.end, _identity(self.path)
        self._block: tuple[int, list[Example]] = (-1, [])

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]  # negative from the end; IndexError past it
        block = index // self.BLOCK
        if self._block[0] != block:
            start = block * self.BLOCK
            self._block = (block, list(self.read(start, start + self.BLOCK)))
        return self._block[1][index % self.BLOCK]

    def __iter__(self) -> Iterator[Example]:
        for start in range(0, len(self), self.BLOCK):
            yield from self.read(start, start + self.BLOCK)

    def read(self, start: int, stop: int) -> Iterator[Example]:
        """The examples [start, stop), parsed from their bytes in the file alone."""
        stop = min(stop, len(self))
        if start >= stop:
            return
        end = self._offsets[stop] if stop < len(self) else self._end
        if _identity(self.path) != self._stat:
            raise CorpusError(f"{self.path}: changed while the build was reading it")
        with open(self.path, "rb") as file:
            file.seek(self._offsets[start])
            text = file.read(end - self._offsets[start]).decode("utf-8")
        lines = _lines(self.path, text, first=self._lines[start])
        parse = PARSERS[self.path.suffix.lower()]
        yield from itertools.islice(parse(self.path, lines, self.words, start + 1), stop - start)


def has_labels(examples: Sequence[Example]) -> bool:
    """Whether any example has a gold label (a ``Corpus`` knows without reading it again)."""
    if isinstance(examples, Corpus):
        return examples.labelled
    return any(e.label is not None for e in examples)


def count_pairs(examples: Sequence[Example]) -> int:
    """How many examples are sentence pairs (a ``Corpus`` knows without reading it again)."""
    if isinstance(examples, Corpus):
        return examples.pairs
    return sum(e.text_b is not None for e in examples)


class _Scan:
    """Every example of ``path`` (at most ``limit``) with the byte offset of its first line,
    checked as ``read_corpus`` checks them; once drawn to its end, ``end`` is the byte offset
    just past the last line read (what a range read of the last example reads up to)."""

    def __init__(self, path: Path, limit: int | None, words: bool):
        self.path, self.limit, self.words, self.end = path, limit, words, 0

    def __iter__(self) -> Iterator[tuple[Example, int]]:
        path, limit = self.path, self.limit
        suffix = path.suffix.lower()
        if limit is not None and limit < 1:
            raise CorpusError(f"limit must be at least 1, got {limit}")
        try:
            data = _read(path, suffix)
        except OSError as err:  # unreadable: permissions, an I/O error
            raise CorpusError(f"{path}: cannot read ({err.strerror or err})") from None
        bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        try:
            text = data[bom:].decode("utf-8")
        except UnicodeDecodeError as err:
            line = len(LINE_END_BYTES.findall(data, 0, bom + err.start)) + 1
            raise CorpusError(
                f"{path}:{line}: not UTF-8 text (byte {bom + err.start} of the file)"
            ) from None
        # where each line starts in the file: the lines of the bytes are those of the text
        # (a UTF-8 character's bytes are never CR or LF)
        starts = itertools.chain((bom,), (m.end() for m in LINE_END_BYTES.finditer(data, bom)))
        pending: dict[int, int] = {}  # the lines read since the last example: their offsets

        def lines() -> Iterator[tuple[int, str]]:
            for (number, line), offset in zip(_lines(path, text), starts, strict=False):
                pending[number] = offset
                yield number, line

        seen: dict[str, int] = {}
        count = 0
        for example in PARSERS[suffix](path, lines(), self.words):
            if example.id in seen:
                raise CorpusError(
                    f"{path}:{example.line}: duplicate id {example.id!r} "
                    f"(first on line {seen[example.id]})"
                )
            seen[example.id] = example.line
            offset = pending[example.line]
            pending.clear()
            count += 1
            yield example, offset
            if limit is not None and count >= limit:
                break
        if not count:
            raise CorpusError(f"{path}: no sentences found (blank and '#' lines are skipped)")
        self.end = next(starts, len(data))


def _identity(path: Path) -> tuple[int, int, int]:
    """What tells a file changed: its inode, size and time of change."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _lines(path: Path, text: str, first: int = 1) -> Iterator[tuple[int, str]]:
    """Each line with its 1-based number (from ``first``), checked for control characters as
    it is reached (so ``limit`` stops before a bad line, as it does for every other error)."""
    for number, line in enumerate(LINE_END.split(text), start=first):
        yield number, _checked_line(path, number, line)


def _checked_line(path: Path, number: int, line: str) -> str:
    found = CONTROL.search(line)
    if found is None:
        return line
    where, char = f"{path}:{number}: ", found.group()
    column = found.start() + 1
    if char == "\0":
        raise CorpusError(
            f"{where}a NUL byte in column {column}: not text (a UTF-16 file? save it as UTF-8)"
        )
    escaped = char.encode("unicode_escape").decode("ascii")
    raise CorpusError(
        f"{where}a control character ({escaped}) in column {column}; remove it (TAB is the "
        "only one a line may hold)"
    )


def _read(path: Path, suffix: str) -> bytes:
    """The file's bytes, after the checks whose message is clearer than the system's."""
    if path.is_dir():
        raise CorpusError(f"{path}: is a folder, not a file")
    if suffix not in FORMATS:
        raise CorpusError(
            f"{path}: unsupported input format {suffix or '(no extension)'!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    if not path.is_file():
        raise CorpusError(f"{path}: not a regular file (a pipe, a socket or a device)")
    return path.read_bytes()


Lines = Iterable[tuple[int, str]]  # (1-based number, the line without its line end)


def _parse_txt(path: Path, lines: Lines, words: bool, first: int = 1) -> Iterator[Example]:
    """``first``: the running count (the id) of the first example (each parser takes it)."""
    count = first - 1
    for number, raw in lines:
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = [part.strip() for part in raw.split("\t")]
        if len(parts) > 3:
            raise CorpusError(
                f"{path}:{number}: {len(parts) - 1} TABs; a line holds one sentence, one pair "
                "(A TAB B), or either with a label (A TAB B TAB label, A TAB TAB label)"
            )
        label = parts.pop() if len(parts) == 3 else None
        if label is not None and not label:
            raise CorpusError(f"{path}:{number}: empty label (the third column)")
        if label is not None and not parts[0]:
            raise CorpusError(f"{path}:{number}: a label with no sentence (the first column)")
        if label is not None and not parts[1]:
            parts.pop()  # A TAB TAB label: a single sentence with a label
        if any(not part for part in parts):
            raise CorpusError(f"{path}:{number}: empty side of a sentence pair")
        if words and len(parts) == 2:
            raise CorpusError(
                f"{path}:{number}: a sentence pair (TAB) with --words; words are for single "
                "sentences"
            )
        count += 1
        yield Example(
            id=str(count),
            text=parts[0],
            text_b=parts[1] if len(parts) == 2 else None,
            line=number,
            words=tuple(parts[0].split()) if words else None,
            label=label,
        )


def _parse_jsonl(path: Path, lines: Lines, words: bool, first: int = 1) -> Iterator[Example]:
    count = first - 1
    for number, raw in lines:
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{path}:{number}: invalid JSON ({err.msg})") from None
        except RecursionError:
            raise CorpusError(f"{path}:{number}: JSON nested too deeply") from None
        except ValueError:  # an integer longer than Python reads by default
            raise CorpusError(
                f"{path}:{number}: a number too long to read "
                f"(over {sys.get_int_max_str_digits():,} digits)"
            ) from None
        if not isinstance(record, dict):
            raise CorpusError(f"{path}:{number}: expected a JSON object with a 'text' field")
        text, text_b, ident = record.get("text"), record.get("text_b"), record.get("id")
        where = f"{path}:{number}"
        tree = _jsonl_tree(where, record)
        if text is None and tree[0] is not None:
            text = " ".join(tree[0])
        if not isinstance(text, str) or not text.strip():
            raise CorpusError(f"{where}: 'text' must be a non-empty string")
        if text_b is not None and (not isinstance(text_b, str) or not text_b.strip()):
            raise CorpusError(f"{where}: 'text_b' must be a non-empty string or absent")
        if ident is not None and (isinstance(ident, bool) or not isinstance(ident, (str, int))):
            raise CorpusError(f"{where}: 'id' must be a string or an integer")
        label = _jsonl_label(where, record.get("label"))
        if text_b is not None and (tree[0] is not None or words):
            raise CorpusError(
                f"{where}: 'words' with 'text_b'; words are for single sentences"
                if tree[0] is not None
                else f"{where}: a sentence pair ('text_b') with --words; words are for single "
                "sentences"
            )
        if tree[0] is None and words:
            tree = (tuple(text.split()), None, None)
        _check_characters(where, text, text_b, ident, label, *(tree[0] or ()))
        if tree[0] is not None:
            _check_words_spell_text(where, text, tree[0])
        count += 1
        yield Example(
            id=str(ident) if ident is not None else str(count),
            text=text.strip(),
            text_b=text_b.strip() if text_b is not None else None,
            line=number,
            words=tree[0],
            heads=tree[1],
            deprels=tree[2],
            label=label,
        )


def _jsonl_label(where: str, label: object) -> str | None:
    """A record's "label": a non-empty string, or an integer (a class id) read as its digits."""
    if label is None:
        return None
    if isinstance(label, int) and not isinstance(label, bool):
        return str(label)
    if not isinstance(label, str) or not label.strip():
        raise CorpusError(f"{where}: 'label' must be a non-empty string or an integer")
    return label.strip()


Tree = tuple[tuple[str, ...] | None, tuple[int, ...] | None, tuple[str, ...] | None]


def _check_characters(where: str, *values: object) -> None:
    """Refuse strings that are not text: JSON can spell a lone surrogate ("\\ud800"), which
    no tokenizer and no page can take, and any control character ("\\u0000")."""
    for value in values:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                bad = value[err.start : err.end].encode("unicode_escape").decode("ascii")
                raise CorpusError(
                    f"{where}: a lone surrogate ({bad}) is not a character; fix the text"
                ) from None
            found = CONTROL.search(value)
            if found:
                escaped = found.group().encode("unicode_escape").decode("ascii")
                raise CorpusError(
                    f"{where}: a control character ({escaped}) in a string; remove it (TAB, "
                    "LF and CR are the only ones a string may hold)"
                )


def _check_words_spell_text(where: str, text: str, words: Sequence[str]) -> None:
    """Refuse a record whose "words" are not its "text": the pages show the text, but the
    attention is over the words. They agree when the words, in order, spell the text once
    whitespace is removed from both, so a tokenised text ("Hello , world .") and the text as
    written ("Hello, world.") are both the words of ["Hello", ",", "world", "."] (the rule:
    ``word_spans``)."""
    spans = word_spans(text, words)
    if isinstance(spans, list):
        return
    word, at = spans
    shown = " ".join(text[at:].split())
    shown = shown if len(shown) <= 30 else shown[:29] + "…"
    raise CorpusError(
        f"{where}: 'words' do not spell 'text': "
        + (
            f"word {word + 1}, {words[word]!r}, where the text has {shown!r}"
            if word < len(words)
            else f"the text goes on after the last word ({shown!r})"
        )
        + "; the words, spaces aside, must be the text (or leave 'text' out)"
    )


def word_spans(text: str, words: Sequence[str]) -> list[list[int]] | tuple[int, int]:
    """Where each word's characters are in ``text``, when the words spell it: per word, the
    index in ``text`` of each of its non-whitespace characters. Whitespace in the text may fall
    between two words, or inside a word where the word has whitespace too ("New York").
    Otherwise returns (0-based word, index in ``text``) of the first disagreement; the word is
    ``len(words)`` when the text goes on after the last word."""
    spans: list[list[int]] = []
    at = 0
    for number, word in enumerate(words):
        span: list[int] = []
        gap = True  # whitespace in the text may come here: before the word, or where it has some
        for char in word:
            if char.isspace():
                gap = True
                continue
            while gap and at < len(text) and text[at].isspace():
                at += 1
            if at >= len(text) or text[at] != char:
                return number, span[0] if span else at
            span.append(at)
            at, gap = at + 1, False
        spans.append(span)
    tail = text[at:]
    if tail.strip():
        return len(words), at + len(tail) - len(tail.lstrip())
    return spans


def _jsonl_tree(where: str, record: dict) -> Tree:
    """The record's "words", "heads" and "deprels", checked against each other."""
    words, heads, deprels = record.get("words"), record.get("heads"), record.get("deprels")
    if words is None:
        if heads is not None or deprels is not None:
            raise CorpusError(f"{where}: 'heads' and 'deprels' need 'words'")
        return None, None, None
    if (
        not isinstance(words, list)
        or not words
        or not all(isinstance(w, str) and w.strip() for w in words)
    ):
        raise CorpusError(f"{where}: 'words' must be a non-empty list of non-empty strings")
    if any(w != w.strip() for w in words):
        raise CorpusError(f"{where}: 'words' must not start or end with whitespace")
    if heads is None:
        if deprels is not None:
            raise CorpusError(f"{where}: 'deprels' need 'heads'")
        return tuple(words), None, None
    if not isinstance(heads, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) for h in heads
    ):
        raise CorpusError(f"{where}: 'heads' must be a list of integers")
    if len(heads) != len(words):
        raise CorpusError(f"{where}: {len(heads)} 'heads' for {len(words)} 'words'")
    _check_heads(heads, [f"{where}: word {i}" for i in range(1, len(heads) + 1)])
    if deprels is not None:
        if not isinstance(deprels, list) or not all(
            isinstance(d, str) and d.strip() for d in deprels
        ):
            raise CorpusError(f"{where}: 'deprels' must be a list of non-empty strings")
        if len(deprels) != len(words):
            raise CorpusError(f"{where}: {len(deprels)} 'deprels' for {len(words)} 'words'")
        deprels = tuple(deprels)
    return tuple(words), tuple(heads), deprels


def _check_heads(heads: list[int], names: list[str]) -> None:
    """Heads are 1-based word ids (0 = root), none of them the word itself, and no cycles:
    whoever reads the tree can walk from any word up to the root. ``names``: each word as the
    message should call it, file and line first."""
    m = len(heads)
    for i, head in enumerate(heads, start=1):
        if not 0 <= head <= m:
            raise CorpusError(f"{names[i - 1]} has head {head}, outside the sentence (0 to {m})")
        if head == i:
            raise CorpusError(f"{names[i - 1]} is its own head")
    for i in range(1, m + 1):
        seen, node = set(), i
        while node != 0:
            if node in seen:
                raise CorpusError(f"{names[i - 1]}: its heads form a cycle")
            seen.add(node)
            node = heads[node - 1]


def _parse_conllu(path: Path, lines: Lines, words: bool, first: int = 1) -> Iterator[Example]:
    """One Example per sentence block; each block is parsed by ``conllu`` on its own, so an
    error can name the line it is on (the package itself does not say)."""
    del words  # a CoNLL-U sentence always has its words
    for count, block in enumerate(_blocks(lines), start=first):
        if all(text.lstrip().startswith("#") for _, text in block):
            raise CorpusError(
                f"{path}:{block[0][0]}: comment lines with no word lines after them "
                "(a sentence with no words)"
            )
        yield _conllu_sentence(path, block, count)


def _blocks(lines: Lines) -> Iterator[list[tuple[int, str]]]:
    """Runs of non-blank lines with their 1-based line numbers (blank lines end a sentence)."""
    block: list[tuple[int, str]] = []
    for number, text in lines:
        if text.strip():
            block.append((number, text))
        elif block:
            yield block
            block = []
    if block:
        yield block


def _conllu_sentence(path: Path, block: list[tuple[int, str]], count: int) -> Example:
    import conllu
    from conllu.exceptions import ParseException

    token_lines = [(n, t) for n, t in block if not t.lstrip().startswith("#")]
    for number, text in token_lines:
        columns = text.split("\t")
        if len(columns) != CONLLU_COLUMNS:
            raise CorpusError(
                f"{path}:{number}: {len(columns)} TAB-separated columns; a CoNLL-U word line "
                f"has {CONLLU_COLUMNS}"
            )
        if any(not c.strip() for c in columns) or len(re.split(r"\t| {2,}", text.strip())) != (
            CONLLU_COLUMNS
        ):
            # conllu also splits on two spaces; an empty or spaced column would shift the rest.
            raise CorpusError(
                f"{path}:{number}: an empty column, or a column with two spaces in a row "
                "(write '_' for an empty field)"
            )
        head = columns[6].strip()
        if head != "_" and not re.fullmatch(r"-?\d+", head):  # conllu's own message is cryptic
            raise CorpusError(f"{path}:{number}: head {head!r} is not a word id (0 for the root)")
    try:
        (sentence,) = conllu.parse("\n".join(t for _, t in block))
    except ParseException:
        for number, text in token_lines:  # find the line the package refused
            try:
                conllu.parse(text)
            except ParseException as err:
                raise CorpusError(f"{path}:{number}: {err}") from None
        raise CorpusError(f"{path}:{block[0][0]}: not a CoNLL-U sentence") from None
    if len(sentence) != len(token_lines):  # pragma: no cover - guarded by the checks above
        raise CorpusError(f"{path}:{block[0][0]}: not a CoNLL-U sentence")
    forms: list[str] = []
    heads: list[int] = []
    deprels: list[str] = []
    names: list[str] = []
    for (number, _), token in zip(token_lines, sentence, strict=True):
        ident = token["id"]
        if isinstance(ident, tuple):
            continue  # a multi-word token (1-2) or an empty node (8.1): not a word of the tree
        if ident != len(forms) + 1:
            raise CorpusError(
                f"{path}:{number}: word id {ident}, expected {len(forms) + 1} (word ids run "
                "1, 2, 3, ... in each sentence)"
            )
        if token["head"] is None:
            raise CorpusError(f"{path}:{number}: head '_' is not a word id (atlas needs a tree)")
        forms.append(token["form"])
        heads.append(token["head"])
        deprels.append(token["deprel"])
        names.append(f"{path}:{number}: word {ident}")
    if not forms:
        raise CorpusError(
            f"{path}:{block[0][0]}: a sentence with no words (only multi-word tokens or "
            "empty nodes)"
        )
    _check_heads(heads, names)
    text = sentence.metadata.get("text") or " ".join(forms)
    ident = sentence.metadata.get("sent_id") or str(count)
    return Example(
        id=str(ident),
        text=str(text).strip(),
        line=block[0][0],
        words=tuple(forms),
        heads=tuple(heads),
        deprels=tuple(deprels),
    )


PARSERS = {".txt": _parse_txt, ".jsonl": _parse_jsonl, ".conllu": _parse_conllu}
