"""Build time against the forward pass on a GPU (issue 20): how much a whole ``atlas build``
costs beyond running the model, where the model runs fast.

    .venv/bin/python bench/gpu.py [--model NAME_OR_DIR] [--sentences 500] [--runs 3]
        [--batch-size 16] [--dtype float32|bfloat16|float16] [--device-map auto] [--generate N]
    .venv/bin/python bench/gpu.py --device cpu --smoke      # the same on the CPU, for CI

In one process, after a warm-up, each run times (1) the bare forward pass: the Runner's own
batches with attention and nothing else (as bench/speed.py defines it), over the inputs as the
build sees them (with ``--generate``, each prompt with its generation); and (2) the whole
``atlas.build`` of the same sentences with the same options into a temporary folder, split into
the model load, the generation (``--generate``), the measuring pass (forward passes and
analyses) and the site. The ratio build / forward is what the issue asks to bring down; "less
load" leaves out the model load, which a GPU machine's disk, not the atlas, decides. Prints a
Markdown table of every run, the medians, the GPU's name and its peak memory.

The corpus is the first ``--sentences`` text lines of UD English EWT dev where the shared data
is (``../shared/data``), else examples/sentences.txt (its single sentences, repeated).

Without a CUDA GPU, and unless ``--device cpu`` is given, the script says so in one line and
exits 0: the figures are GPU figures, and a CPU machine has none to give. ``--smoke``: eight
sentences, one run, the default model: a check that the script works, not a measurement.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import atlas
from atlas.corpus import read_corpus
from atlas.generation import continue_examples
from atlas.loading import DEVICE_MAPS, DTYPES
from atlas.options import BuildOptions
from atlas.records import ATTENTION
from atlas.running import Runner

ROOT = Path(__file__).resolve().parent.parent
TREEBANK = ROOT.parent / "shared" / "data" / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
EXAMPLES = ROOT / "examples" / "sentences.txt"
BUILD = importlib.import_module("atlas.build")  # the module (atlas.build is the function)


def corpus_texts(count: int) -> tuple[list[str], str]:
    """``count`` single sentences, and where they come from."""
    if TREEBANK.is_file():
        lines = TREEBANK.read_text(encoding="utf-8").splitlines()
        prefix = "# text = "
        found = [line[len(prefix) :].strip() for line in lines if line.startswith(prefix)]
        return found[:count], TREEBANK.name
    single = [e.text for e in read_corpus(EXAMPLES) if e.text_b is None]
    return [single[i % len(single)] for i in range(count)], EXAMPLES.name


def synchronise(device: str) -> None:
    """Wait for the GPU's queued work, so that a clock read after it counts it."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def forward(runner: Runner, examples, batch_size: int) -> float:
    """Seconds for the bare forward pass: the Runner's batches, attention only."""
    synchronise(runner.device)
    started = time.perf_counter()
    for _ in runner.run(examples, batch_size=batch_size, capture={ATTENTION}):
        pass
    synchronise(runner.device)
    return time.perf_counter() - started


def _clocked(function, spent: dict[str, float], key: str):
    def clocked(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - started

    return clocked


@contextmanager
def build_clocks(spent: dict[str, float]):
    """Time the model load, the generation, the measuring pass and the site inside
    ``atlas.build`` (its own functions, wrapped, not changed)."""

    class TimedRunner(Runner):
        def __init__(self, *args, **kwargs):
            started = time.perf_counter()
            super().__init__(*args, **kwargs)
            spent["load"] += time.perf_counter() - started

    with (
        mock.patch.object(BUILD, "Runner", TimedRunner),
        mock.patch.object(
            BUILD, "continue_examples", _clocked(BUILD.continue_examples, spent, "generate")
        ),
        mock.patch.object(BUILD, "measure", _clocked(BUILD.measure, spent, "measure")),
        mock.patch.object(BUILD, "render_site", _clocked(BUILD.render_site, spent, "site")),
    ):
        yield


def one_build(corpus: Path, out: Path, options: BuildOptions) -> dict[str, float]:
    """Seconds of one whole ``atlas.build``, and of its parts."""
    spent: dict[str, float] = defaultdict(float)
    with build_clocks(spent):
        synchronise(options.device)
        started = time.perf_counter()
        atlas.build(corpus, out, options)
        synchronise(options.device)
        spent["build"] = time.perf_counter() - started
    return spent


ROWS = (
    ("bare forward pass, s", "forward"),
    ("whole build, s", "build"),
    ("  model load, s", "load"),
    ("  generation, s", "generate"),
    ("  measuring pass (forward + analyses), s", "measure"),
    ("  site (render + write), s", "site"),
)


def print_table(runs: list[dict[str, float]]) -> None:
    """Every run, the medians, and the ratios to the forward pass."""
    head = ["", *(f"run {i + 1}" for i in range(len(runs))), "median"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for label, key in ROWS:
        if key == "generate" and not any(r.get(key) for r in runs):
            continue
        values = [r.get(key, 0.0) for r in runs]
        cells = [f"{v:.2f}" for v in values] + [f"{statistics.median(values):.2f}"]
        print(f"| {label} | " + " | ".join(cells) + " |")
    ratios = (
        ("build / forward", lambda r: r["build"] / r["forward"]),
        ("build less load / forward", lambda r: (r["build"] - r["load"]) / r["forward"]),
        ("measuring pass / forward", lambda r: r["measure"] / r["forward"]),
    )
    for label, ratio in ratios:
        values = [ratio(r) for r in runs]
        cells = [f"{v:.2f}" for v in values] + [f"{statistics.median(values):.2f}"]
        print(f"| {label} | " + " | ".join(cells) + " |")


def device_line(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**30
        name = torch.cuda.get_device_name()
        return f"{name}, peak GPU memory {peak:.1f} GiB, torch {torch.__version__}"
    return f"CPU ({torch.get_num_threads()} threads), torch {torch.__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="hub id or folder (default: the default model)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--device-map", choices=[m for m in DEVICE_MAPS if m])
    parser.add_argument("--generate", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="8 sentences, one run")
    args = parser.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "bench/gpu.py: no CUDA GPU on this machine, so no GPU figures to measure "
            "(run it where there is one; --device cpu runs the same on the CPU)"
        )
        return 0
    count, runs = (8, 1) if args.smoke else (args.sentences, args.runs)
    texts, source = corpus_texts(count)
    options = BuildOptions(
        model=args.model,
        device=args.device,
        batch_size=args.batch_size,
        dtype=args.dtype,
        device_map=args.device_map,
        generate=args.generate,
    )
    with tempfile.TemporaryDirectory(prefix="atlas-gpu-") as folder:
        work = Path(folder)
        corpus = work / "corpus.txt"
        corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
        placement = {"dtype": args.dtype, "device_map": args.device_map}
        runner = Runner(args.model, device=args.device, generate=args.generate, **placement)
        examples = read_corpus(corpus)
        if args.generate:  # the forward pass the build makes runs over prompt + generation
            examples = continue_examples(examples, runner, args.generate, args.batch_size)
        forward(runner, examples[: 2 * args.batch_size], args.batch_size)  # warm-up
        if not args.smoke:
            one_build(corpus, work / "warm-up", options)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        measured = []
        for number in range(runs):
            seconds = forward(runner, examples, args.batch_size)
            measured.append({"forward": seconds, **one_build(corpus, work / f"s{number}", options)})
        tokens = sum(len(runner.encode(e)["ids"]) for e in examples)
    print(
        f"\n{len(examples)} sentences ({tokens} tokens) of {source}, model "
        f"{runner.info.name} ({runner.info.layers} layers × {runner.info.heads} heads), "
        f"--dtype {args.dtype}, batch size {args.batch_size}"
        + (f", --generate {args.generate}" if args.generate else "")
        + (f", --device-map {args.device_map}" if args.device_map else "")
        + f", {runs} runs"
    )
    print(device_line(runner.device))
    print_table(measured)
    return 0


if __name__ == "__main__":
    sys.exit(main())
