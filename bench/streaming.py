"""Attention taken per layer by hooks against ``output_attentions``, in one process (issue 19).

    .venv/bin/python bench/streaming.py [CONLLU] [--sentences 500] [--runs 8]

The runner takes each layer's attention from a hook on its attention module
(``hooks.probabilities``); a model no family of atlas/hooks.py describes returns it with
``output_attentions`` instead. This runs the same Runner over the first ``--sentences`` UD
sentences both ways, alternating, and prints the CPU time of each run, the medians, their ratio
and whether every record's attention is identical.
"""

from __future__ import annotations

import argparse
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("treebank", nargs="?", type=Path, default=TREEBANK)
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
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
