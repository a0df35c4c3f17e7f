"""What the syntax analyses cost, and what they find, on a treebank.

    .venv/bin/python bench/syntax.py ../shared/data/ud-english-ewt/en_ewt-ud-dev.conllu [--limit N]

In one process, with the default model loaded once, runs the whole measuring pipeline over the
treebank's sentences (``--views 50``) without the syntax analysis and with it, alternately,
``--runs`` times each after a warm-up, and prints the median times, their ratio, the peak
resident memory, and the relation table (Clark et al. 2019, Table 1) as Markdown for docs/.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

from atlas.analyses import default_analyses
from atlas.analyses.syntax import Syntax
from atlas.corpus import read_corpus
from atlas.model import Runner
from atlas.options import BuildOptions
from atlas.pipeline import measure

OPTIONS = BuildOptions(views=50)


def timed(examples, runner, analyses):
    started = time.perf_counter()
    atlas = measure(examples, runner, analyses, OPTIONS, title="bench", input_name="bench")
    return time.perf_counter() - started, atlas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("treebank")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    examples = read_corpus(args.treebank, limit=args.limit)
    runner = Runner()
    without, with_syntax = [], []
    timed(examples[:200], runner, default_analyses(OPTIONS))  # warm-up: first batches, lazy imports
    atlas = None
    for _ in range(args.runs):
        plain = [a for a in default_analyses(OPTIONS) if not isinstance(a, Syntax)]
        without.append(timed(examples, runner, plain)[0])
        seconds, atlas = timed(examples, runner, default_analyses(OPTIONS))
        with_syntax.append(seconds)
    a, b = statistics.median(without), statistics.median(with_syntax)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(examples)} sentences, {args.runs} runs each, median seconds:")
    print(f"without syntax {a:.1f} s, with syntax {b:.1f} s: ratio {b / a:.3f}")
    print(f"peak RSS {peak:.0f} MiB")
    syntax = atlas.results["syntax"]
    print(f"\n{syntax['sentences']} sentences with trees, {syntax['dependents']} dependents\n")
    print("| relation | count | best head | direction | accuracy | baseline offset | baseline |")
    print("| --- | ---: | --- | --- | ---: | ---: | ---: |")
    for row in syntax["relations"]:
        print(
            f"| {row['relation']} | {row['count']} | {row['head']} | {row['direction']} | "
            f"{row['accuracy']:.3f} | {row['baseline_offset']:+d} | "
            f"{row['baseline_accuracy']:.3f} |"
        )
    probe = syntax["probe"]
    print(
        f"\nright-branching UUAS {syntax['right_branching_uuas']:.3f}; best MST UUAS "
        f"{max(h.metrics['uuas'] for h in atlas.heads):.3f}"
    )
    print(f"probe: {probe}")


if __name__ == "__main__":
    main()
