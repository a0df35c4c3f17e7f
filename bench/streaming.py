"""Attention streamed by layer: hooks against ``output_attentions``, and this tree's build
against another checkout's (issue 19).

    .venv/bin/python bench/streaming.py [CONLLU] [--sentences 500] [--runs 8]
    .venv/bin/python bench/streaming.py [CONLLU] --against OLD_TREE [--sentences 300] [--runs 3]

``--against``: ``atlas build`` of the first ``--sentences`` UD sentences (as a .txt corpus,
default options) in child processes, this tree's and OLD_TREE's (a checkout of the code before,
put first on PYTHONPATH) alternately, ``--runs`` times each; prints each build's CPU time (user
+ system) and peak RSS, the medians, the ratio new / old, and whether the two atlas.json files
are byte-identical.

The runner takes each layer's attention from a hook on its attention module
(``hooks.probabilities``); a model no family of atlas/hooks.py describes returns it with
``output_attentions`` instead. This runs the same Runner over the first ``--sentences`` UD
sentences both ways, alternating, and prints the CPU time of each run, the medians, their ratio
and whether every record's attention is identical.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from atlas.corpus import Example
from atlas.records import ATTENTION
from atlas.running import Runner

TREEBANK = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "data"
    / "ud-english-ewt"
    / "en_ewt-ud-dev.conllu"
)


def texts(conllu: Path, count: int) -> list[str]:
    lines = conllu.read_text(encoding="utf-8").splitlines()
    return [line[len("# text = ") :] for line in lines if line.startswith("# text = ")][:count]


HERE = Path(__file__).resolve().parent.parent
# The child: one build with the CLI, then its own CPU time and peak RSS as JSON on stderr.
CHILD = """
import json, resource, sys
from atlas.cli import main
code = main(["build", sys.argv[1], "-o", sys.argv[2], "-q", "--clean"])
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu": usage.ru_utime + usage.ru_stime, "peak": usage.ru_maxrss * 1024}),
      file=sys.stderr)
sys.exit(code)
"""


def build_against(args: argparse.Namespace) -> None:
    """This tree's build against ``args.against``'s, alternating child processes."""
    trees = {"old": args.against.resolve(), "new": HERE}
    work = Path(tempfile.mkdtemp(prefix="atlas-streaming-"))
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(texts(args.treebank, args.sentences)) + "\n", encoding="utf-8")
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(args.runs):
        for name, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
            site = work / f"site-{name}"
            done = subprocess.run([sys.executable, "-c", CHILD, str(corpus), str(site)],
                                  env=env, capture_output=True, text=True, check=True)  # fmt: skip
            runs[name].append(json.loads(done.stderr.strip().splitlines()[-1]))
    same = (work / "site-old" / "atlas.json").read_bytes() == (
        work / "site-new" / "atlas.json"
    ).read_bytes()
    print(f"{args.sentences} sentences, default model and options, CPU, 1 thread; "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    medians = {}
    for name in trees:
        cpu = [r["cpu"] for r in runs[name]]
        peak = [r["peak"] / 2**20 for r in runs[name]]
        medians[name] = (statistics.median(cpu), statistics.median(peak))
        print(f"{name}: CPU s {[round(c, 1) for c in cpu]} median {medians[name][0]:.1f}; "
              f"peak RSS MiB {[round(p) for p in peak]} median {medians[name][1]:.0f}")  # fmt: skip
    print(f"new / old: CPU {medians['new'][0] / medians['old'][0]:.3f}, "
          f"peak RSS {medians['new'][1] / medians['old'][1]:.3f}; "
          f"atlas.json identical: {same}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("treebank", nargs="?", type=Path, default=TREEBANK)
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--against", type=Path, help="a checkout of the code before")
    args = parser.parse_args()
    if args.against is not None:
        build_against(args)
        return
    torch.set_num_threads(1)
    examples = [
        Example(id=str(i), text=t) for i, t in enumerate(texts(args.treebank, args.sentences))
    ]
    runner = Runner(None, device="cpu")
    layout = runner.layout

    def run(hooked: bool) -> tuple[float, list[np.ndarray]]:
        runner.layout = layout if hooked else None  # None: the output_attentions path
        start = time.process_time()
        kept = [r.attention for r in runner.run(examples, capture={ATTENTION})]
        return time.process_time() - start, kept

    _, plain = run(False)
    _, hooked = run(True)
    same = all(np.array_equal(a, b) for a, b in zip(plain, hooked, strict=True))
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.runs):
        for way in (False, True):
            times[way].append(run(way)[0])
    medians = {way: statistics.median(values) for way, values in times.items()}
    print(f"{len(examples)} sentences, {runner.info.name}, CPU, 1 thread; CPU time, s")
    for way, label in ((False, "output_attentions"), (True, "hooks per layer")):
        print(f"{label:18} {[round(t, 2) for t in times[way]]} median {medians[way]:.3f}")
    print(f"hooks / output_attentions: {medians[True] / medians[False]:.3f}; identical: {same}")


if __name__ == "__main__":
    main()
