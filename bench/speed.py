"""Build time against the model's bare forward pass (issue 8, "Speed").

    .venv/bin/python bench/speed.py [CONLLU] [--sentences 1000] [--runs 3]
    .venv/bin/python bench/speed.py --bert-base [--sentences 500] [--runs 3]
    .venv/bin/python bench/speed.py CONLLU --trees --processes [--sentences 1000] [--runs 3]
    .venv/bin/python bench/speed.py --smoke

Default mode: the first ``--sentences`` `# text = ` lines of a CoNLL-U file (by default the UD
English EWT dev split in ../shared/data) as a .txt corpus and the default model. In one
process, after a warm-up, each run times (1) the bare forward pass: the Runner's own batching
with attention, no analyses; and (2) the whole ``atlas.build`` of the same sentences into a
temporary folder, split into the model load, the measuring pass (forward passes and analyses)
and rendering and writing the site, with the time spent in each analysis's ``add``, ``settle`` and
``finish`` (the analyses are wrapped, not changed). The vega bundle is dropped from memory
before each build, so that a build reads it as a new process does. Prints a Markdown table of
each run, the medians and their ratios to the forward pass, and the load average.

``--trees``: the CoNLL-U file itself (its first ``--sentences``), so the syntax analysis runs
on its gold trees, as ``atlas build CONLLU --limit N`` does.

``--processes``: process against process, as a user sees it: each run starts ``atlas build``
(the CLI, default options, into a temporary folder) as a child process and, alternately, a child
process that imports torch and transformers, loads the same model and runs the bare forward
pass with attention over the same sentences and batches (``--forward-only``), and times both
from start to exit, in wall time and in CPU time (user + system, all threads, from the
operating system's accounting of the finished child: the steadier figure on a shared machine).
Prints each run's times, their ratios and the medians.

``--bert-base``: the head distances against the forward pass at BERT-base size: a random
BertConfig(hidden 768, 12 layers × 12 heads) model saved with the default model's tokenizer,
``--sentences`` texts of exactly 128 tokens (consecutive UD sentences joined, then truncated).
Each run times the bare forward pass, then a second pass that feeds every record to the
distances analysis, timing its ``add`` and ``finish``.

``--smoke``: both modes on a few sentences of examples/sentences.txt with a tiny model for
``--bert-base``, once each, for CI: under a minute, non-zero exit only if something breaks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import atlas
from atlas import site
from atlas.analyses import default_analyses
from atlas.analyses.base import ATTENTION, Analysis, RunInfo, feed
from atlas.analyses.distances import HeadDistances
from atlas.corpus import read_corpus
from atlas.model import Runner, default_model_path
from atlas.options import BuildOptions

ROOT = Path(__file__).resolve().parent.parent
TREEBANK = ROOT.parent / "shared" / "data" / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
EXAMPLES = ROOT / "examples" / "sentences.txt"
BUILD = importlib.import_module("atlas.build")  # the module (atlas.build is the function)
STATISTICS = ("heads", "examples", "pairs")  # with "distances": the 0.3× target
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


def texts(conllu: Path) -> list[str]:
    prefix = "# text = "
    lines = conllu.read_text(encoding="utf-8").splitlines()
    return [line[len(prefix) :].strip() for line in lines if line.startswith(prefix)]


def forward(runner: Runner, examples, batch_size: int) -> float:
    """Seconds for the bare forward pass: the Runner's batches, attention only."""
    started = time.perf_counter()
    for _ in runner.run(examples, batch_size=batch_size, capture={ATTENTION}):
        pass
    return time.perf_counter() - started


def timed(analyses: Sequence[Analysis], spent: dict[str, float]) -> Sequence[Analysis]:
    """Wrap each analysis's add, settle and finish (on the instance; add_layer too where an
    analysis has one) to add their time to ``spent``."""
    for analysis in analyses:
        for method in ("add", "add_layer", "settle", "finish"):
            if not hasattr(analysis, method):
                continue
            setattr(analysis, method, _clocked(getattr(analysis, method), spent, analysis.name))
    return analyses


def _clocked(function: Callable, spent: dict[str, float], key: str) -> Callable:
    def clocked(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - started

    return clocked


@contextmanager
def build_clocks(spent: dict[str, float]):
    """Time the model load, the measuring pass and the site inside ``atlas.build``."""

    class TimedRunner(Runner):
        def __init__(self, *args, **kwargs):
            started = time.perf_counter()
            super().__init__(*args, **kwargs)
            spent["load"] += time.perf_counter() - started

    with (
        mock.patch.object(BUILD, "Runner", TimedRunner),
        mock.patch.object(BUILD, "measure", _clocked(BUILD.measure, spent, "measure")),
        mock.patch.object(BUILD, "render_site", _clocked(BUILD.render_site, spent, "site")),
    ):
        yield


def one_build(
    corpus: Path, out: Path, batch_size: int, views: int, limit: int | None = None
) -> dict[str, float]:
    """Seconds of one whole ``atlas.build``, and of its parts."""
    spent: dict[str, float] = defaultdict(float)
    analyses = timed(default_analyses(BuildOptions(views=views)), spent)
    site.vega_bundle.cache_clear()  # read again, as a new process would
    with build_clocks(spent):
        started = time.perf_counter()
        result = atlas.build(
            corpus, out, batch_size=batch_size, views=views, analyses=analyses, limit=limit
        )
        spent["build"] = time.perf_counter() - started
    expected = len(read_corpus(corpus, limit=limit))
    if len(result.sentences) != expected or not (out / "atlas.json").is_file():
        raise SystemExit(f"the build of {corpus} is incomplete")
    shutil.rmtree(out)
    return spent


def corpus_of(args, work: Path) -> tuple[Path, int | None]:
    """The build's input and --limit: the CoNLL-U file itself (``--trees``), or its text lines
    as a .txt file."""
    if args.trees and not args.smoke:
        return args.treebank, args.sentences or 1000
    sentences = _smoke_texts() if args.smoke else texts(args.treebank)[: args.sentences or 1000]
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return corpus, None


def build_mode(args, work: Path) -> None:
    corpus, limit = corpus_of(args, work)
    work.mkdir(parents=True, exist_ok=True)
    examples = read_corpus(corpus, limit=limit)
    load_before = os.getloadavg()
    runner = Runner()
    forward(runner, examples[: 2 * args.batch_size], args.batch_size)  # warm-up
    one_build(corpus, work / "warm-up", args.batch_size, args.views, limit)
    runs = []
    for number in range(args.runs):
        seconds = forward(runner, examples, args.batch_size)
        site_folder = work / f"site-{number}"
        runs.append(
            {
                "forward": seconds,
                **one_build(corpus, site_folder, args.batch_size, args.views, limit),
            }
        )
    tokens = sum(len(runner.encode(e)["ids"]) for e in examples)
    source = EXAMPLES.name if args.smoke else args.treebank.name
    print(
        f"\n{len(examples)} sentences ({tokens} tokens) of {source}, default model, batch size "
        f"{args.batch_size}, --views {args.views}, {args.runs} runs"
    )
    print(_machine(load_before))
    print_table(runs, _build_rows(runs[0]))


def _build_rows(run: dict[str, float]) -> list[tuple[str, Callable[[dict], float], str]]:
    """(label, value of a run, format): seconds, then ratios to the forward pass."""
    analyses = [k for k in run if k not in {"forward", "load", "measure", "site", "build"}]
    stats = [k for k in analyses if k in STATISTICS]
    rows = [
        ("bare forward pass, s", lambda r: r["forward"], ".2f"),
        ("whole build, s", lambda r: r["build"], ".2f"),
        ("  model load, s", lambda r: r["load"], ".2f"),
        ("  measuring pass (forward + analyses), s", lambda r: r["measure"], ".2f"),
        ("  site (render + write), s", lambda r: r["site"], ".2f"),
    ]
    rows += [(f"  analysis {name} (add, settle, finish), s", _get(name), ".2f")
             for name in analyses]  # fmt: skip
    rows += [
        ("build / forward", lambda r: r["build"] / r["forward"], ".2f"),
        ("build without load / forward", lambda r: (r["build"] - r["load"]) / r["forward"], ".2f"),
        ("statistics (" + ", ".join(stats) + ") / forward",
         lambda r: sum(r[k] for k in stats) / r["forward"], ".3f"),
        ("distances / forward", lambda r: r.get("distances", 0.0) / r["forward"], ".3f"),
        ("statistics + distances / forward",
         lambda r: (sum(r[k] for k in stats) + r.get("distances", 0.0)) / r["forward"], ".3f"),
    ]  # fmt: skip
    return rows


def processes_mode(args, work: Path) -> None:
    """Child process against child process: ``atlas build`` and the bare forward pass."""
    corpus, limit = corpus_of(args, work)
    count = len(read_corpus(corpus, limit=limit))
    common = ["--batch-size", str(args.batch_size)]
    build = [sys.executable, "-m", "atlas.cli", "build", str(corpus), *common, "-q"]
    build += ["--views", str(args.views)] + (["--limit", str(limit)] if limit else [])
    bare = [sys.executable, str(Path(__file__).resolve()), str(corpus), "--forward-only", *common]
    bare += ["--sentences", str(limit)] if limit else []
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    load_before = os.getloadavg()

    def child(command: list[str]) -> tuple[float, float]:
        """Wall seconds and CPU seconds (user + system, all threads) of a child process."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu

    child(bare)  # warm-up: the page cache, the vega bundle's cache
    runs = []
    for number in range(args.runs):
        forward_wall, forward_cpu = child(bare)
        build_wall, build_cpu = child([*build, "-o", str(work / f"p{number}")])
        runs.append({"forward": forward_wall, "build": build_wall,
                     "forward_cpu": forward_cpu, "build_cpu": build_cpu})  # fmt: skip
    print(f"\nprocess against process: {count} sentences of {corpus.name}, default options, batch "
          f"size {args.batch_size}, --views {args.views}, {args.runs} runs")  # fmt: skip
    print(_machine(load_before))
    print_table(
        runs,
        [
            ("bare forward process (imports, model load, forward), s", _get("forward"), ".2f"),
            ("atlas build process, s", _get("build"), ".2f"),
            ("build / forward", lambda r: r["build"] / r["forward"], ".2f"),
            ("bare forward process, CPU s (user + sys)", _get("forward_cpu"), ".2f"),
            ("atlas build process, CPU s (user + sys)", _get("build_cpu"), ".2f"),
            ("build / forward, CPU", lambda r: r["build_cpu"] / r["forward_cpu"], ".2f"),
        ],
    )


def forward_only(args) -> None:
    """The bare forward process: import torch and transformers, load the model, run it."""
    import torch  # noqa: F401  (what any run of the model imports)
    import transformers  # noqa: F401

    corpus = args.treebank
    examples = read_corpus(corpus, limit=args.sentences)
    forward(Runner(), examples, args.batch_size)


def _get(key: str) -> Callable[[dict], float]:
    return lambda run: run[key]


def bert_base_mode(args, work: Path) -> None:
    model = make_model(work / "model", smoke=args.smoke)
    length = 32 if args.smoke else 128
    count = 8 if args.smoke else args.sentences or 500
    source = _smoke_texts() if args.smoke else texts(args.treebank)
    joined, position = [], 0
    for _ in range(count):  # consecutive sentences, enough characters for `length` tokens
        text = ""
        while len(text) < 10 * length:
            text, position = f"{text} {source[position % len(source)]}".strip(), position + 1
        joined.append(text)
    corpus = work / "long.txt"
    corpus.write_text("\n".join(joined) + "\n", encoding="utf-8")
    examples = read_corpus(corpus)
    load_before = os.getloadavg()
    runner = Runner(str(model), max_length=length)
    lengths = {len(runner.encode(e)["ids"]) for e in examples}
    if lengths != {length} or len(examples) != count:
        raise SystemExit(f"expected {count} texts of {length} tokens, got lengths {lengths}")
    forward(runner, examples[: args.batch_size], args.batch_size)  # warm-up
    runs = []
    for _ in range(args.runs):
        seconds = forward(runner, examples, args.batch_size)
        spent: dict[str, float] = defaultdict(float)
        distances = timed([HeadDistances()], spent)[0]
        info = runner.info
        distances.start(RunInfo(info.layers, info.heads, info.causal, count, device=runner.device))
        for record in runner.run(examples, batch_size=args.batch_size, capture={ATTENTION}):
            feed(distances, record)
        distances.finish({})
        runs.append({"forward": seconds, "distances": spent["distances"]})
    info = runner.info
    print(f"\n{count} texts of {length} tokens, random BERT ({info.layers} layers × {info.heads} "
          f"heads, hidden {info.head_dim * info.heads}), batch size {args.batch_size}, "
          f"{args.runs} runs, distances on {runner.device} in {_threads()} threads")  # fmt: skip
    print(_machine(load_before))
    print_table(
        runs,
        [
            ("bare forward pass, s", lambda r: r["forward"], ".2f"),
            ("head distances (add + finish), s", lambda r: r["distances"], ".2f"),
            ("distances / forward", lambda r: r["distances"] / r["forward"], ".3f"),
        ],
    )


def make_model(folder: Path, smoke: bool = False) -> Path:
    """A random BERT-base (or, for --smoke, a tiny BERT) with the default model's tokenizer."""
    import torch
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    source = Path(default_model_path())
    folder.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    size = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12}
    size["intermediate_size"] = 4 * size["hidden_size"]
    if smoke:
        size = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
        size["intermediate_size"] = 128
    vocab = sum(1 for _ in (source / "vocab.txt").open(encoding="utf-8"))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=vocab, **size)).save_pretrained(folder)
    return folder


def _smoke_texts() -> list[str]:
    """Single sentences of examples/sentences.txt (its tab-separated pairs and comments left
    out)."""
    lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
    return [
        line for line in lines if line.strip() and "\t" not in line and not line.startswith("#")
    ][:24]


def _threads() -> int:
    from atlas.analyses.distances import _threads

    return _threads()


def _machine(load_before: tuple[float, float, float]) -> str:
    import torch

    after = os.getloadavg()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads; load average (1, 5, 15 "
        f"min) before {_load(load_before)}, after {_load(after)}"
    )


def _load(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def print_table(runs: list[dict], rows: list[tuple[str, Callable[[dict], float], str]]) -> None:
    """One column per run and the median (of each row's own values, ratios included)."""
    print()
    print("| | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | median |")
    print("| --- |" + " ---: |" * (len(runs) + 1))
    for label, value, fmt in rows:
        values = [value(run) for run in runs]
        cells = [format(v, fmt) for v in [*values, statistics.median(values)]]
        print(f"| {label} | " + " | ".join(cells) + " |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("treebank", nargs="?", type=Path, default=TREEBANK)
    parser.add_argument("--sentences", type=int)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--views", type=int, default=200)
    parser.add_argument("--bert-base", action="store_true", help="distances at BERT-base size")
    parser.add_argument("--smoke", action="store_true", help="both modes, tiny, once (for CI)")
    parser.add_argument("--trees", action="store_true", help="build from the CoNLL-U file itself")
    parser.add_argument("--processes", action="store_true", help="child process against child")
    parser.add_argument("--forward-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.forward_only:
        forward_only(args)
        return
    if args.smoke:
        args.runs, args.views = 1, 8
    elif not args.treebank.is_file():
        parser.error(f"no treebank at {args.treebank} (give the CoNLL-U file)")
    with tempfile.TemporaryDirectory(prefix="atlas-speed-") as folder:
        work = Path(folder)
        if args.processes:
            processes_mode(args, work / "processes")
        elif args.smoke or not args.bert_base:
            build_mode(args, work / "build")
        if args.smoke or args.bert_base:
            bert_base_mode(args, work / "bert-base")


if __name__ == "__main__":
    sys.exit(main())
