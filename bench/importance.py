"""What head importance costs, and what it finds (issue 10, "Head importance").

    .venv/bin/python bench/importance.py cost [--sentences 1000] [--runs 1]
    .venv/bin/python bench/importance.py report [--sentences 200]
    .venv/bin/python bench/importance.py subsets [--sentences 300]
    .venv/bin/python bench/importance.py ablation [--sentences 32] [--runs 3] [--save out.npy]
        [--flops]

``cost``: in one process, after a warm-up, the whole ``atlas.build`` of the first
``--sentences`` `# text = ` lines of the UD English EWT dev split (default model, default
options) into a temporary folder, once without issue 10's analyses (head importance and the
layers analysis) and once with the defaults (importance on the first 200 sentences, ablation of
the first 24; the layers analysis), alternating; prints each build's time, the time in the
importance analysis, and the ratio with/without.

``subsets``: how many ablated sentences the ranking needs, on three corpora (``--sentences``
drawn at random from the UD dev split; as many sentences of licence prose from
/usr/share/common-licenses; examples/sentences.txt): every sentence ablated once, then for
each size the mean over 100 random subsets against the mean over the whole corpus (Spearman ρ
over the heads, its spread, the share of subsets reaching ρ ≥ 0.95, top ten shared).

``ablation``: the ablation alone, as the build runs it on its default sample (the first
``--sentences`` UD dev sentences, or the sentences of a .conllu/.txt ``--corpus``), timed in CPU
seconds after a warm-up, ``--runs`` times; ``--save`` writes the per-sentence values [N, L, H]
(to compare two versions of the code: run this file with the other version's atlas on
PYTHONPATH); ``--flops`` also counts its floating-point operations (torch's count of the
matrix products), a measure of the work that the machine's load does not blur.

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
# shared/ beside the checkout (or beside the folder of worktrees that holds it)
TREEBANK = (
    next(
        (
            p
            for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared")
            if (p / "data" / "ud-english-ewt").is_dir()
        ),
        ROOT.parent / "shared",
    )
    / "data"
    / "ud-english-ewt"
    / "en_ewt-ud-dev.conllu"
)


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
                        a for a in analyses if not isinstance(a, (HeadImportance, LayerEmbeddings))
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


LICENCES = ("GPL-3", "Apache-2.0", "MPL-2.0", "GFDL-1.3")  # English prose every Debian has
SUBSET_SIZES = (8, 16, 24, 32, 48, 64, 96, 128)
SUBSETS = 100  # random subsets per size
TARGET = 0.95  # Spearman ρ with the whole corpus that the default ablation sample aims at


def ud_sentences(count: int, seed: int = 0) -> list[str]:
    """``count`` sentences drawn at random (fixed seed) from the UD English EWT dev split."""
    with open(TREEBANK, encoding="utf-8") as f:
        lines = [line[len("# text = ") :].strip() for line in f if line.startswith("# text = ")]
    chosen = np.random.default_rng(seed).choice(len(lines), size=count, replace=False)
    return [lines[i] for i in sorted(chosen)]


def licence_sentences(count: int) -> list[str]:
    """The first ``count`` sentences of 4 to 60 words of the licence texts in
    /usr/share/common-licenses (legal English, far from UD's web text)."""
    import re

    out: list[str] = []
    for name in LICENCES:
        text = re.sub(r"\s+", " ", Path("/usr/share/common-licenses", name).read_text("utf-8"))
        for sentence in re.split(r"(?<=[.;:])\s+(?=[A-Z\"])", text):
            if 4 <= len(sentence.split()) <= 60:
                out.append(sentence)
    return out[:count]


def example_sentences() -> list[str]:
    """The demo corpus, examples/sentences.txt (sentence pairs' first halves)."""
    lines = (ROOT / "examples" / "sentences.txt").read_text("utf-8").splitlines()
    return [line.split("\t")[0] for line in lines if line.strip() and not line.startswith("#")]


def per_sentence(sentences: list[str]) -> np.ndarray:
    """Ablation importance of every head on every sentence [N, heads], default model."""
    from atlas.corpus import read_corpus
    from atlas.model import Runner

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.txt"
        path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
        examples = read_corpus(path)
    probe = Runner(None, device="cpu").probe(examples)
    try:
        return probe.ablation_per_example(range(len(examples))).reshape(len(examples), -1)
    finally:
        probe.close()


def subset_table(name: str, each: np.ndarray, seed: int = 0) -> None:
    """Spearman ρ and top-10 overlap of the mean over random subsets of each size against the
    mean over the whole corpus (the subsets are part of it, as the default sample is part of a
    user's corpus)."""
    from scipy.stats import spearmanr

    n = len(each)
    full = each.mean(0)
    top = set(np.argsort(-full)[:10])
    rng = np.random.default_rng(seed)
    print(f"\n{name}: {n} sentences, {SUBSETS} random subsets per size")
    print("| ablated | median ρ | 5th–95th percentile ρ | share ρ ≥ 0.95 | median top 10 shared |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for size in SUBSET_SIZES:
        if size >= n:
            break
        rhos, shared = [], []
        for _ in range(SUBSETS):
            values = each[rng.choice(n, size=size, replace=False)].mean(0)
            rhos.append(spearmanr(values, full).statistic)
            shared.append(len(top & set(np.argsort(-values)[:10])))
        low, high = np.percentile(rhos, [5, 95])
        print(
            f"| {size} | {np.median(rhos):.3f} | {low:.3f}–{high:.3f} | "
            f"{np.mean(np.asarray(rhos) >= TARGET):.2f} | {np.median(shared):.0f} |",
            flush=True,
        )


def subsets(sentences: int) -> None:
    """The subset tables on three corpora: random UD dev sentences, licence prose, the demo."""
    corpora = {
        f"UD English EWT dev, {sentences} sentences drawn at random (seed 0)": ud_sentences(
            sentences
        ),
        "licence prose (/usr/share/common-licenses)": licence_sentences(sentences),
        "examples/sentences.txt": example_sentences(),
    }
    for name, texts in corpora.items():
        started = time.perf_counter()
        each = per_sentence(texts)
        spent = time.perf_counter() - started
        words = np.mean([len(t.split()) for t in texts])
        print(f"\n{name}: ablation {spent:.1f} s, {spent / len(texts):.3f} s a sentence "
              f"(mean {words:.1f} words)")  # fmt: skip
        subset_table(name, each)


def ablation(
    sentences: int, runs: int, source: Path | None, save: Path | None, flops: bool = False
) -> None:
    from atlas.corpus import read_corpus
    from atlas.model import Runner

    with tempfile.TemporaryDirectory() as tmp:
        examples = read_corpus(source or corpus(sentences, Path(tmp)))[:sentences]
    probe = Runner(None, device="cpu").probe(examples)
    try:
        probe.ablation_per_example(range(min(2, len(examples))))  # warm-up
        spent = []
        for _ in range(runs):
            started = time.process_time()
            values = probe.ablation_per_example(range(len(examples)))
            spent.append(time.process_time() - started)
    finally:
        probe.close()
    runs_text = ", ".join(f"{s:.2f}" for s in spent)
    print(f"ablation of {len(examples)} sentences: median {statistics.median(spent):.2f} s CPU "
          f"(runs {runs_text})")  # fmt: skip
    if flops:  # the work done, which the machine's load does not change
        from torch.utils.flop_counter import FlopCounterMode

        probe = Runner(None, device="cpu").probe(examples)
        try:
            with FlopCounterMode(display=False) as counter:
                probe.ablation_per_example(range(len(examples)))
        finally:
            probe.close()
        print(f"floating-point operations (torch's count): {counter.get_total_flops() / 1e9:.1f} G")
    if save:
        np.save(save, values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("cost", "report", "subsets", "ablation"))
    parser.add_argument("--corpus", type=Path, help="ablation: a .conllu or .txt corpus")
    parser.add_argument("--save", type=Path, help="ablation: where to save the values (.npy)")
    parser.add_argument("--flops", action="store_true", help="ablation: count its operations")
    parser.add_argument("--sentences", type=int)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    if args.mode == "cost":
        cost(args.sentences or 1000, args.runs)
    elif args.mode == "ablation":
        sentences = args.sentences or DEFAULT_ABLATION
        ablation(sentences, args.runs, args.corpus, args.save, args.flops)
    elif args.mode == "subsets":
        subsets(args.sentences or 300)
    else:
        report(args.sentences or 200)
    return 0


if __name__ == "__main__":
    sys.exit(main())
