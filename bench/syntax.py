"""What the syntax analyses cost, and what they find, on a treebank.

    .venv/bin/python bench/syntax.py ../shared/data/ud-english-ewt/en_ewt-ud-dev.conllu [--limit N]

In one process, with the default model loaded once, runs the whole measuring pipeline over the
treebank's sentences (``--views 50``) without the syntax analysis and with it, alternately,
``--runs`` times each after a warm-up, and prints the median times, their ratio, the peak
resident memory, and the relation table (Clark et al. 2019, Table 1) as Markdown for docs/.

``--parts``: the syntax analysis alone, its parts timed. The model runs once over the treebank
and its records are kept in memory; then, ``--runs`` times, the analysis is fed every record
and finished, with the directed trees (``directed_trees``), the undirected trees
(``spanning_trees``), the probe's features (``probe_candidates``) and each probe fit
(``fit_probe``) timed by wrapping them (wall time; the two fits run side by side in two threads,
so ``fit_probe`` is the sum of both and can exceed ``finish``). Prints one JSON line of medians
and a digest of the result (so that two versions of the code, run on the same records, can be
compared: ``PYTHONPATH=<other checkout> python bench/syntax.py --parts`` runs this script on
that code).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import time
from collections import defaultdict
from unittest import mock

from atlas.analyses import default_analyses
from atlas.analyses import syntax as syntax_module
from atlas.analyses.base import ATTENTION, RunInfo, feed
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


def clocked(function, spent: dict[str, float], key: str):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - started

    return wrapper


def parts(examples, runner: Runner, runs: int) -> None:
    """Time the syntax analysis's parts on records kept in memory (see the module docstring)."""
    records = list(runner.run(examples, capture={ATTENTION}))
    info = runner.info
    run = RunInfo(info.layers, info.heads, info.causal, len(examples), device=runner.device)
    timings = defaultdict(list)
    digest = None
    for _ in range(runs):
        spent: dict[str, float] = defaultdict(float)
        wrapped = {
            name: clocked(getattr(syntax_module, name), spent, name)
            for name in ("directed_trees", "spanning_trees", "probe_candidates", "fit_probe")
        }
        with mock.patch.multiple(syntax_module, **wrapped):
            analysis = Syntax()
            analysis.start(run)
            started = time.perf_counter()
            for record in records:
                feed(analysis, record)
            spent["add"] = time.perf_counter() - started
            started = time.perf_counter()
            result = analysis.finish({})
            spent["finish"] = time.perf_counter() - started
        for key, value in spent.items():
            timings[key].append(value)
        text = json.dumps([result.columns, result.data], sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    medians = {key: round(statistics.median(v), 3) for key, v in sorted(timings.items())}
    medians["total"] = round(medians["add"] + medians["finish"], 3)
    print(json.dumps({"sentences": len(records), "runs": runs, "median_s": medians,
                      "probe": result.data["probe"], "digest": digest}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("treebank")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--parts", action="store_true", help="the syntax analysis alone, in parts")
    args = parser.parse_args()
    examples = read_corpus(args.treebank, limit=args.limit)
    runner = Runner()
    if args.parts:
        parts(examples, runner, args.runs)
        return
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
