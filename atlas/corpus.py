"""Read the input corpus: the only module that looks at the user's file.

Formats, chosen by file extension:

- ``.txt``: one sentence per line; blank lines and lines starting with ``#`` are skipped; a TAB
  splits a line into a sentence pair (A, B).
- ``.jsonl``: one JSON object per line, ``{"text": ..., "text_b": ... (optional), "id": ...
  (optional)}``; blank lines are skipped.

Both are read as UTF-8, with or without a byte-order mark, with LF or CRLF line ends.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from pathlib import Path

FORMATS = (".txt", ".jsonl")


class CorpusError(ValueError):
    """The input cannot be read; the message is one line, fit to show the user as is."""


@dataclass(frozen=True)
class Example:
    """One input to the model: a sentence, or a sentence pair when ``text_b`` is set."""

    id: str
    text: str
    text_b: str | None = None
    line: int = 0  # 1-based line in the input file, for messages


def read_corpus(path: str | Path, limit: int | None = None) -> list[Example]:
    """Parse and validate ``path``; return at most ``limit`` examples, in file order."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise CorpusError(
            f"{path}: unsupported input format {suffix or '(no extension)'!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    if limit is not None and limit < 1:
        raise CorpusError(f"limit must be at least 1, got {limit}")
    data = path.read_bytes()
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: bom + err.start].count(b"\n") + 1
        raise CorpusError(
            f"{path}:{line}: not UTF-8 text (byte {bom + err.start} of the file)"
        ) from None
    # Only LF (and CRLF) end a line: str.splitlines() would also split on U+2028, form feeds...
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    parse = _parse_txt if suffix == ".txt" else _parse_jsonl
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for example in parse(path, lines):
        if example.id in seen:
            raise CorpusError(
                f"{path}:{example.line}: duplicate id {example.id!r} "
                f"(first on line {seen[example.id]})"
            )
        seen[example.id] = example.line
        examples.append(example)
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise CorpusError(f"{path}: no sentences found (blank and '#' lines are skipped)")
    return examples


def _parse_txt(path: Path, lines: list[str]):
    count = 0
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = [part.strip() for part in raw.split("\t")]
        if len(parts) > 2:
            raise CorpusError(
                f"{path}:{number}: {len(parts) - 1} TABs; a line holds one sentence "
                "or one pair (A TAB B)"
            )
        if any(not part for part in parts):
            raise CorpusError(f"{path}:{number}: empty side of a sentence pair")
        count += 1
        yield Example(
            id=str(count),
            text=parts[0],
            text_b=parts[1] if len(parts) == 2 else None,
            line=number,
        )


def _parse_jsonl(path: Path, lines: list[str]):
    count = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{path}:{number}: invalid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise CorpusError(f"{path}:{number}: expected a JSON object with a 'text' field")
        text, text_b, ident = record.get("text"), record.get("text_b"), record.get("id")
        if not isinstance(text, str) or not text.strip():
            raise CorpusError(f"{path}:{number}: 'text' must be a non-empty string")
        if text_b is not None and (not isinstance(text_b, str) or not text_b.strip()):
            raise CorpusError(f"{path}:{number}: 'text_b' must be a non-empty string or absent")
        if ident is not None and (isinstance(ident, bool) or not isinstance(ident, (str, int))):
            raise CorpusError(f"{path}:{number}: 'id' must be a string or an integer")
        count += 1
        yield Example(
            id=str(ident) if ident is not None else str(count),
            text=text.strip(),
            text_b=text_b.strip() if text_b is not None else None,
            line=number,
        )
