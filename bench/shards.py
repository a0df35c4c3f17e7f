"""Throughput of sharded builds (issue 21): ``atlas build --shards W`` with W = 1 and 2 Ray
workers at one torch thread each, against one process with 2 torch threads.

    .venv/bin/python bench/shards.py [CONLLU] [--sentences 2000] [--runs 1] [--model NAME]
    .venv/bin/python bench/shards.py --driver-memory 1000,10000 [--shards 8]
    .venv/bin/python bench/shards.py --smoke

The first ``--sentences`` ``# text =`` lines of a CoNLL-U file (by default the UD English EWT dev
split in ../shared/data, else examples/ud-ewt-sample.conllu), cycled when it has fewer, as a .txt
corpus. Each run starts ``atlas build`` (the CLI, as a user does) as a child process into a
temporary folder and times it from start to exit: one process with OMP_NUM_THREADS=2, then
``--shards 1`` and ``--shards 2`` with OMP_NUM_THREADS=1 (Ray gives each task one CPU and one
thread; its local instance is started and stopped by the build, and that cost is timed on its
own: ``ray.init`` to ``ray.shutdown``). Prints a Markdown table of the medians, sentences a
second, and the load average (the machine may be shared: read the load with the times).

Every build runs with ``--views 20 --importance 0``: head importance ablates a fixed sample of the
first sentences (one shard's work, not throughput), and the driver renders the same site in
every way.

``--driver-memory N,M,...``: for each size, one ``atlas build --shards S`` (default 8, local
Ray) of that many sentences, timed, with the driver process's peak resident memory
(``getrusage``: the driver alone, not Ray's workers or daemons): is it flat in the corpus size?

``--smoke``: 40 sentences, one run, for CI: non-zero exit only if something breaks. Without
Ray installed it says so and exits 0 (Ray is the optional extra).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "data" / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
SAMPLE = ROOT / "examples" / "ud-ewt-sample.conllu"
TEXT = re.compile(r"^# text = (.+)$", re.MULTILINE)


def corpus(conllu: Path, sentences: int, folder: Path) -> Path:
    """The CoNLL-U file's texts, cycled to ``sentences`` lines, as a .txt corpus."""
    texts = TEXT.findall(conllu.read_text(encoding="utf-8"))
    path = folder / f"ud-{sentences}.txt"
    lines = itertools.islice(itertools.cycle(texts), sentences)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def timed_build(path: Path, args: list[str], threads: int, folder: Path) -> float:
    """Seconds of one ``atlas build`` child process, start to exit."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "atlas.cli", "build", str(path), "-q", "--clean",
               "-o", str(folder / "site"), *args]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    return time.perf_counter() - started


DRIVER = """
import resource, sys
from atlas.cli import main
code = main(sys.argv[1:])
print("driver peak RSS kB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def driver_memory(path: Path, shards: int, folder: Path, extra: list[str]) -> tuple[float, float]:
    """(seconds, the driver's peak resident memory in MB) of one ``atlas build --shards``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", DRIVER, "build", str(path), "-q", "--clean",
               "-o", str(folder / "site"), "--shards", str(shards), *extra]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    kb = int(re.findall(r"driver peak RSS kB (\d+)", done.stderr)[-1])
    return seconds, kb / 1024


def ray_start_stop() -> float:
    """Seconds to start and stop a local Ray of 2 CPUs (what each --shards build pays)."""
    code = (
        "import ray, time; t = time.perf_counter(); "
        "ray.init(num_cpus=2, include_dashboard=False, logging_level='ERROR'); ray.shutdown(); "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("conllu", nargs="?", type=Path, default=DEV if DEV.exists() else SAMPLE)
    p.add_argument("--sentences", type=int, default=2000)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--model", help="hub id or folder (default: the default model)")
    p.add_argument("--smoke", action="store_true", help="40 sentences, one run (CI)")
    p.add_argument("--driver-memory", metavar="N,M", help="sizes for the driver's peak memory")
    p.add_argument("--shards", type=int, default=8, help="shards of --driver-memory (8)")
    args = p.parse_args()
    try:
        import ray  # noqa: F401
    except ImportError:
        print("bench/shards.py needs Ray: pip install 'attention-atlas[ray]'; skipped")
        return 0
    if args.smoke:
        args.sentences, args.runs = 40, 1
    # importance off: its ablation is a fixed cost on the first sentences (one shard's), not
    # throughput; views kept few: rendering is the driver's, the same in every way
    extra = ["--views", "20", "--importance", "0"] + (["--model", args.model] if args.model else [])
    if args.driver_memory:
        return memory_table(args, [int(n) for n in args.driver_memory.split(",")], extra)
    ways = {
        "one process, 2 threads": (extra, 2),
        "--shards 1 (1 worker, 1 thread)": ([*extra, "--shards", "1"], 1),
        "--shards 2 (2 workers, 1 thread each)": ([*extra, "--shards", "2"], 1),
    }
    times: dict[str, list[float]] = {way: [] for way in ways}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = corpus(args.conllu, args.sentences, folder)
        for _ in range(args.runs):
            for way, (build_args, threads) in ways.items():
                times[way].append(timed_build(path, build_args, threads, folder))
        ray_cost = statistics.median(ray_start_stop() for _ in range(args.runs))
    print(f"{args.sentences} sentences of {args.conllu.name} (cycled), {args.runs} run(s), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print()
    print("| build | median s | sentences/s | runs (s) |")
    print("|---|---:|---:|---|")
    for way, seconds in times.items():
        median = statistics.median(seconds)
        runs = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"| {way} | {median:.1f} | {args.sentences / median:.1f} | {runs} |")
    print()
    print(f"starting and stopping a local Ray (2 CPUs), part of each --shards time: "
          f"{ray_cost:.1f} s")  # fmt: skip
    return 0


def memory_table(args: argparse.Namespace, sizes: list[int], extra: list[str]) -> int:
    print(f"atlas build --shards {args.shards} --views 20 --importance 0 (local Ray), "
          f"{args.conllu.name} cycled, {os.cpu_count()} CPUs")  # fmt: skip
    print()
    print("| sentences | s | sentences/s | driver peak RSS MB | load average after |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n in sizes:
            path = corpus(args.conllu, n, folder)
            seconds, mb = driver_memory(path, args.shards, folder, extra)
            print(f"| {n} | {seconds:.0f} | {n / seconds:.1f} | {mb:.0f} | "
                  f"{os.getloadavg()[0]:.2f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
