"""CPU time of the measuring pass by part, for the analyses besides importance, views and syntax.

    .venv/bin/python bench/overhead.py [CONLLU] [--sentences 1000] [--runs 1]

The first ``--sentences`` `# text = ` lines of a CoNLL-U file (by default the UD English EWT dev
split in ../shared/data), the default model, one process. After a warm-up on 32 sentences, each
run times in CPU seconds of this process (``time.process_time``: steadier than wall time on a
shared machine, though other tenants still slow it through shared caches): ``pipeline.measure``
with the default analyses less importance, views and syntax, each analysis's ``add``,
``add_layer``, ``settle`` and ``finish``, and ``result.rounded`` (the Atlas as atlas.json holds
it); then the bare forward pass (attention only) over the same sentences. What ``measure`` takes
beyond the analyses, ``rounded`` and the forward pass is the runner's own overhead (tokenising,
hooks, records) plus the hidden states the layers analysis asks for. Run it on two checkouts in
turn to compare them (PYTHONPATH set to each).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from atlas import pipeline
from atlas.analyses import default_analyses
from atlas.analyses.base import ATTENTION, Analysis
from atlas.corpus import Example, read_corpus
from atlas.model import Runner
from atlas.options import BuildOptions

ROOT = Path(__file__).resolve().parent.parent
TREEBANK = ROOT.parent / "shared" / "data" / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
OTHERS = ("importance", "views", "syntax")  # measured by their own benches
METHODS = ("add", "add_layer", "settle", "finish")


def clocked(function: Callable, spent: dict[str, float], key: str) -> Callable:
    def timed(*args, **kwargs):
        started = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[key] += time.process_time() - started

    return timed


def analyses(spent: dict[str, float] | None = None) -> list[Analysis]:
    """The default analyses less OTHERS, their methods clocked into ``spent`` if given."""
    chosen = [a for a in default_analyses(BuildOptions()) if a.name not in OTHERS]
    for analysis in chosen if spent is not None else ():
        for method in METHODS:
            setattr(analysis, method, clocked(getattr(analysis, method), spent, analysis.name))
    return chosen


def one_run(examples: list[Example], runner: Runner) -> dict[str, float]:
    spent: dict[str, float] = defaultdict(float)
    with mock.patch.object(pipeline, "rounded", clocked(pipeline.rounded, spent, "rounded")):
        started = time.process_time()
        pipeline.measure(examples, runner, analyses(spent), title="bench", input_name="bench")
        spent["measure"] = time.process_time() - started
    started = time.process_time()
    for _ in runner.run(examples, capture={ATTENTION}):
        pass
    spent["forward"] = time.process_time() - started
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("treebank", nargs="?", type=Path, default=TREEBANK)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    prefix = "# text = "
    lines = args.treebank.read_text(encoding="utf-8").splitlines()
    texts = [line[len(prefix) :].strip() for line in lines if line.startswith(prefix)]
    with tempfile.TemporaryDirectory(prefix="atlas-overhead-") as folder:
        corpus = Path(folder) / "corpus.txt"  # read as ``atlas build`` reads a .txt file
        corpus.write_text("\n".join(texts[: args.sentences]) + "\n", encoding="utf-8")
        examples = read_corpus(corpus)
    runner = Runner()
    pipeline.measure(examples[:32], runner, analyses(), title="bench", input_name="bench")
    print(f"{len(examples)} sentences, default model, load average {os.getloadavg()[0]:.1f}")
    for _ in range(args.runs):
        spent = one_run(examples, runner)
        rest = (
            spent["measure"]
            - spent["forward"]
            - sum(v for k, v in spent.items() if k not in ("measure", "forward"))
        )
        parts = " ".join(f"{k} {v:.2f}" for k, v in spent.items())
        print(f"CPU s: {parts}; measure less forward, analyses and rounded {rest:.2f}")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
