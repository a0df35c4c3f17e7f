"""What head importance costs, and what it finds (issue 10, "Head importance").

    .venv/bin/python bench/importance.py cost [--sentences 1000] [--runs 1]
    .venv/bin/python bench/importance.py report [--sentences 200]

``cost``: in one process, after a warm-up, the whole ``atlas.build`` of the first
``--sentences`` `# text = ` lines of the UD English EWT dev split (default model, default
options) into a temporary folder, once without issue 10's analyses (head importance and the
layers analysis) and once with the defaults (importance on the first 200 sentences, ablation of
the first 24; the layers analysis), alternating; prints each build's time, the time in the
importance analysis, and the ratio with/without.

``report``: head importance by ablation on the first ``--sentences`` sentences (every one
ablated), with the per-head metrics it is compared with; prints the three most and least
important heads, their attention to [SEP] and [CLS], and Spearman's rank correlations.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import atlas
from atlas.analyses.heads import HeadMetrics
from atlas.analyses.importance import DEFAULT_ABLATION, HeadImportance
from atlas.analyses.layers import LayerEmbeddings

ROOT = Path(__file__).resolve().parent.parent
TREEBANK = ROOT.parent / "shared" / "data" / "ud-english-ewt" / "en_ewt-ud-dev.conllu"


def corpus(count: int, folder: Path) -> Path:
    """The first ``count`` sentences of the treebank, one per line."""
    with open(TREEBANK, encoding="utf-8") as f:
        lines = [line[len("# text = ") :].strip() for line in f if line.startswith("# text = ")]
    path = folder / f"ud-{count}.txt"
    path.write_text("\n".join(lines[:count]) + "\n", encoding="utf-8")
    return path


class Timed(HeadImportance):
    """The importance analysis, timing its finish (where all its model passes run)."""

    spent = 0.0

    def finish(self, results):
        started = time.perf_counter()
        try:
            return super().finish(results)
        finally:
            Timed.spent += time.perf_counter() - started


def cost(sentences: int, runs: int) -> None:
    from atlas.analyses import default_analyses

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = corpus(sentences, folder)
        atlas.build(corpus(20, folder), folder / "warm", importance=0)  # warm-up
        times: dict[str, list[float]] = {"without": [], "with": []}
        inside: list[float] = []
        for run in range(runs):
            for label in ("without", "with"):
                analyses = default_analyses()
                if label == "without":
                    analyses = [
                        a
                        for a in analyses
                        if not isinstance(a, (HeadImportance, LayerEmbeddings))
                    ]
                else:
                    analyses = [
                        Timed(a.sample, a.ablation, a.views) if isinstance(a, HeadImportance) else a
                        for a in analyses
                    ]
                Timed.spent = 0.0
                started = time.perf_counter()
                atlas.build(source, folder / f"{label}-{run}", analyses=analyses)
                times[label].append(time.perf_counter() - started)
                if label == "with":
                    inside.append(Timed.spent)
                print(f"run {run + 1} {label}: {times[label][-1]:.1f} s", flush=True)
    without, with_ = statistics.median(times["without"]), statistics.median(times["with"])
    spent = statistics.median(inside)
    print(f"\n{sentences} sentences, {runs} run(s), medians")
    print("| build | seconds |\n| --- | ---: |")
    print(f"| without head importance and the layers analysis | {without:.1f} |")
    defaults = f"importance: 200 sentences, {DEFAULT_ABLATION} ablated; layers"
    print(f"| default options ({defaults}) | {with_:.1f} |")
    print(f"| of which the importance analysis | {spent:.1f} |")
    print(f"\nwith / without: {with_ / without:.2f}; importance / build without: "
          f"{spent / without:.2f}")  # fmt: skip


def report(sentences: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = corpus(sentences, Path(tmp))
        result = atlas.build(
            source, None, analyses=[HeadMetrics(), HeadImportance(sentences, sentences, 0)]
        )
    heads = result.heads
    values = np.array([h.metrics["importance"] for h in heads])
    order = np.argsort(-values, kind="stable")
    print(f"{result.model.name}, first {sentences} UD English EWT dev sentences, all ablated")
    print(f"measure: {result.results['importance']['measure']}\n")
    print("| rank | head | importance | to [SEP] | to [CLS] |\n| --- | --- | ---: | ---: | ---: |")
    picks = [*order[:3], *order[-3:]]
    for rank, flat in zip(
        [1, 2, 3, len(heads) - 2, len(heads) - 1, len(heads)], picks, strict=True
    ):
        h = heads[flat]
        print(
            f"| {rank} | {h.name} | {h.metrics['importance']:.5f} | "
            f"{h.metrics['to_sep']:.3f} | {h.metrics['to_cls']:.3f} |"
        )
    print(f"\nmedian importance {np.median(values):.5f}, mean {values.mean():.5f}")
    for key, value in result.results["importance"]["correlation"].items():
        print(f"spearman {key}: rho {value['rho']}, p {value['p']}")
    layers = values.reshape(result.model.layers, result.model.heads)
    print("per layer mean:", " ".join(f"{v:.5f}" for v in layers.mean(1)))
    compare_default_sample(source_sentences=sentences, full=values)


def compare_default_sample(source_sentences: int, full: np.ndarray) -> None:
    """How far smaller ablation samples (the first 12 to 48, the default among them) agree with
    all."""
    from scipy.stats import spearmanr

    from atlas.corpus import read_corpus
    from atlas.model import Runner

    with tempfile.TemporaryDirectory() as tmp:
        examples = read_corpus(corpus(source_sentences, Path(tmp)))
    probe = Runner(None, device="cpu").probe(examples)
    print(f"\n| ablated (first N) | Spearman ρ with all {source_sentences} | top 10 shared | "
          "bottom 10 shared |\n| ---: | ---: | ---: | ---: |")  # fmt: skip
    for count in sorted({12, 16, 20, 24, DEFAULT_ABLATION, 48}):
        values = probe.ablation(range(count)).reshape(-1)
        rho = spearmanr(values, full).statistic
        top = len(set(np.argsort(-full)[:10]) & set(np.argsort(-values)[:10]))
        bottom = len(set(np.argsort(full)[:10]) & set(np.argsort(values)[:10]))
        print(f"| {count} | {rho:.3f} | {top} | {bottom} |")
    probe.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("cost", "report"))
    parser.add_argument("--sentences", type=int)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    if args.mode == "cost":
        cost(args.sentences or 1000, args.runs)
    else:
        report(args.sentences or 200)
    return 0


if __name__ == "__main__":
    sys.exit(main())
