"""A compare build's time against two single builds (issue 9: at most 1.2× their sum).

    .venv/bin/python bench/compare.py [CONLLU] [--sentences 300] [--runs 3]
    .venv/bin/python bench/compare.py --smoke

Model A is the default model (all-MiniLM-L6-v2); model B is a copy of it saved in a temporary
folder with the query weights of its last two layers perturbed (a stand-in for a fine-tuned
checkpoint: same tokenizer, same shape, different attention). The corpus is the first
``--sentences`` `# text = ` lines of a CoNLL-U file (by default the UD English EWT dev split in
../shared/data) as a .txt file.

In one process, after a warm-up build, each run times, in turn, ``atlas.build`` of A alone, of
B alone, and of A with ``compare=B``, each into a fresh temporary folder (model loading, the
pass over the corpus, the analyses, rendering and writing the site: everything a user waits
for). Prints each run, the medians and the ratio compare / (A + B), and the load average: the
machine is shared, so only the ratio inside one run means anything.

``--smoke``: the tiny BERT of tests/tiny_models.py on examples/sentences.txt, once, for CI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import atlas
from atlas.corpus import read_corpus
from atlas.model import default_model_path

ROOT = Path(__file__).resolve().parent.parent
TREEBANK = ROOT.parent / "shared" / "data" / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
EXAMPLES = ROOT / "examples" / "sentences.txt"
PERTURBED_LAYERS = 2  # the last layers whose query weights B changes
NOISE = 0.05  # standard deviation of the noise added to those weights


def texts(conllu: Path, count: int) -> list[str]:
    found = []
    for line in conllu.read_text(encoding="utf-8").splitlines():
        if line.startswith("# text = "):
            found.append(line[len("# text = ") :].strip())
            if len(found) == count:
                break
    return found


def perturbed_copy(source: Path, target: Path) -> Path:
    """The model at ``source`` with the query weights of its last layers perturbed, saved with
    its tokenizer at ``target``."""
    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    shutil.copytree(source, target)
    model = transformers.AutoModel.from_pretrained(target)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in model.encoder.layer[-PERTURBED_LAYERS:]:
            weight = layer.attention.self.query.weight
            weight.add_(torch.randn(weight.shape, generator=generator) * NOISE)
    model.save_pretrained(target)
    return target


def timed(build: Callable[[Path], object], scratch: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=scratch)) / "site"
    started = time.perf_counter()
    build(out)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("conllu", nargs="?", type=Path, default=TREEBANK)
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="atlas-bench-compare-") as tmp:
        scratch = Path(tmp)
        if args.smoke:
            sys.path.insert(0, str(ROOT / "tests"))
            from tiny_models import make_tiny_model

            model_a = make_tiny_model("bert", scratch / "tiny-a")
            corpus, runs = EXAMPLES, 1
        else:
            model_a = Path(default_model_path())
            corpus, runs = scratch / "corpus.txt", args.runs
            corpus.write_text("\n".join(texts(args.conllu, args.sentences)) + "\n")
        model_b = perturbed_copy(model_a, scratch / "model-b")
        builds = {
            "A alone": lambda out: atlas.build(corpus, out, model=str(model_a)),
            "B alone": lambda out: atlas.build(corpus, out, model=str(model_b)),
            "A --compare B": lambda out: atlas.build(
                corpus, out, model=str(model_a), compare=str(model_b)
            ),
        }
        if not args.smoke:
            timed(builds["A --compare B"], scratch)  # warm-up: caches, the vega bundle
        times: dict[str, list[float]] = {name: [] for name in builds}
        print(f"{len(read_corpus(corpus))} sentences, {runs} runs\n")
        print("| run | A alone | B alone | A --compare B | compare / (A + B) |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for run in range(runs):
            for name, build in builds.items():
                times[name].append(timed(build, scratch))
            a, b, both = (times[name][-1] for name in builds)
            print(f"| {run + 1} | {a:.2f} s | {b:.2f} s | {both:.2f} s | {both / (a + b):.2f} |")
        a, b, both = (statistics.median(times[name]) for name in builds)
        print(f"| median | {a:.2f} s | {b:.2f} s | {both:.2f} s | {both / (a + b):.2f} |")
        print(f"\nload average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
