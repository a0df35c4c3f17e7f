"""Memory of the word-pair counts (atlas/analyses/pairs.py) as the corpus grows to 10,000
sentences and past it.

    .venv/bin/python bench/pairs.py CONLLU [--sizes 1000 2001 5000 10000 12000] [--cache FILE]

Runs the default model once over the distinct `# text = ` lines of a CoNLL-U file (e.g.
../shared/data/ud-english-ewt/en_ewt-ud-dev.conllu, 2,001 sentences; as plain text, so the
words are joined from the pieces, as for examples/sentences.txt) and keeps each sentence's
word-level attention. Then feeds the pair analysis alone, cycling the sentences as
bench/scale.py does, in two ways:

- cycled: the same sentences again, so past the first cycle no new pair appears: the bytes of
  real text, at the distinct sentences the file has;
- distinct: every cycle's words renamed (``cat`` → ``cat~2``), so each cycle brings new types
  and new pairs: an upper bound for 10,000 distinct sentences of real text, which share types.

At each size it prints the counts' bytes (codes, counts and the buffer of new codes), the
distinct (head, from, to) codes, the word types, and the peak of memory that Python and numpy
allocated while counting (tracemalloc; the merges' temporary arrays included). ``--cache``
keeps the model pass's records in a pickle file, to run the counting again without the model.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from atlas.analyses.base import RunInfo, feed
from atlas.analyses.pairs import WordPairs
from atlas.analyses.words import record_units, word_level
from atlas.corpus import Example
from atlas.model import Record, Runner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import texts


def word_records(sentences: list[str]) -> tuple[list[Record], RunInfo]:
    """One record per sentence whose tokens are its word units and whose attention is its
    word-level attention: the pair analysis gives the same pairs for it as for the real one,
    at a fraction of the memory."""
    runner = Runner()
    examples = [Example(id=str(i + 1), text=t) for i, t in enumerate(sentences)]
    records: list[Record] = []
    for record in runner.run(examples, capture=()):
        words, unit_word, unit_of = record_units(record)
        attention = word_level(record.attention, unit_of)
        special = unit_word < 0
        u = len(unit_word)
        records.append(
            Record(
                index=record.index,
                tokens=["[S]" if s else words[w] for w, s in zip(unit_word, special, strict=True)],
                cls=np.zeros(u, bool),
                sep=special,
                special=special,
                punct=np.zeros(u, bool),
                segments=np.zeros(u, np.int8),
                attention=attention.astype(np.float32),
                words=list(words),
                word_of=np.where(special, -1, unit_word).astype(np.int32),
            )
        )
    records.sort(key=lambda r: r.index)
    info = RunInfo(layers=runner.info.layers, heads=runner.info.heads, causal=False, sentences=0)
    return records, info


def renamed(record: Record, cycle: int) -> Record:
    """A fresh copy of the record (nothing cached on it), its words renamed past cycle 0."""
    words = [f"{w}~{cycle}" if cycle else w for w in record.words]
    return Record(**{**record.__dict__, "words": words, "_derived": {}})


def run(records: list[Record], info: RunInfo, sizes: list[int], distinct: bool) -> None:
    pairs = WordPairs()
    pairs.start(info)
    tracemalloc.start()
    started, done = time.perf_counter(), 0
    for size in sorted(sizes):
        while done < size:
            cycle, position = divmod(done, len(records))
            record = records[position]
            feed(pairs, renamed(record, cycle if distinct else 0))
            done += 1
        _, peak = tracemalloc.get_traced_memory()
        held = pairs.counts.nbytes  # with the buffer of new codes
        pairs.counts.merge()
        counts = pairs.counts
        print(
            f"| {'distinct' if distinct else 'cycled'} | {size:,} | {held / 2**20:.1f} "
            f"| {counts.size:,} | {len(pairs.names):,} | {peak / 2**20:.1f} "
            f"| {'summary' if counts.summary else 'exact'} | {time.perf_counter() - started:.1f} |",
            flush=True,
        )
    tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("conllu", type=Path)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 2001, 5000, 10000, 12000])
    parser.add_argument("--cache", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.cache and args.cache.exists():
        records, info = pickle.loads(args.cache.read_bytes())
    else:
        records, info = word_records(texts(args.conllu))
        if args.cache:
            args.cache.write_bytes(pickle.dumps((records, info)))
    words = sum(int((r.word_of >= 0).sum()) for r in records)
    print(
        f"{len(records):,} sentences, {words:,} words, {info.layers} x {info.heads} heads; "
        f"model pass {time.perf_counter() - started:.0f} s\n"
    )
    print("| text | sentences | MiB held | codes | types | peak MiB | counts | s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for distinct in (False, True):
        run(records, info, args.sizes, distinct)


if __name__ == "__main__":
    main()
