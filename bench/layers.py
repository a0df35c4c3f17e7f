"""What the layers analysis (layer-wise embeddings) costs, and what it finds.

    .venv/bin/python bench/layers.py ../shared/data/ud-english-ewt/en_ewt-ud-dev.conllu \
        [--limit 1000] [--runs 3]

In one process, with the default model loaded once: the measuring pass and the render of the
site (in memory) with the default analyses less the layers analysis, and with all of them,
alternately, ``--runs`` times each after a warm-up. Prints the median times and their ratio,
the load average before and after, and the per-layer table as Markdown for docs/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from atlas.analyses import default_analyses
from atlas.analyses.layers import LayerEmbeddings
from atlas.corpus import read_corpus
from atlas.model import Runner
from atlas.pipeline import measure
from atlas.site import render

CURVES = ("drift", "anisotropy", "self_similarity", "self_similarity_adjusted",
          "intra_similarity", "intra_similarity_adjusted")  # fmt: skip


def build_seconds(examples, runner, layers: bool):
    """Seconds for the measuring pass and the render, and the Atlas."""
    analyses = [a for a in default_analyses() if layers or not isinstance(a, LayerEmbeddings)]
    started = time.perf_counter()
    atlas = measure(examples, runner, analyses, title="bench", input_name="bench")
    for _path, _content in render(atlas):  # render yields the files one at a time
        pass
    return time.perf_counter() - started, atlas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    examples = read_corpus(args.corpus, limit=args.limit)
    runner = Runner()
    load_before = os.getloadavg()[0]
    build_seconds(examples[:50], runner, layers=True)  # warm-up
    times: dict[bool, list[float]] = {False: [], True: []}
    atlas = None
    for _ in range(args.runs):
        for layers in (False, True):
            seconds, built = build_seconds(examples, runner, layers)
            times[layers].append(seconds)
            atlas = built if layers else atlas
    without, with_layers = (statistics.median(times[k]) for k in (False, True))
    print(
        f"{len(examples)} sentences, {args.runs} runs each, load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(
        f"measure + render without layers {without:.1f} s, with {with_layers:.1f} s: "
        f"ratio {with_layers / without:.3f}"
    )
    data = atlas.results["layers"]
    print(
        f"\n{data['tokens']} tokens, {data['types']} types, {data['types_scored']} scored "
        f"(untracked {data['types_untracked']}), word level: {data['word_level']}\n"
    )
    print("| layer | " + " | ".join(CURVES) + " | c beats cosine |")
    print("| ---: |" + " ---: |" * (len(CURVES) + 1))
    share = data["context_vector"]["share"]
    for layer in data["layers"]:
        cells = [f"{data['curves'][key][layer]:.3f}" for key in CURVES]
        c = "–" if share[layer] is None else f"{share[layer]:.2f}"
        print(f"| {layer} | " + " | ".join(cells) + f" | {c} |")


if __name__ == "__main__":
    main()
