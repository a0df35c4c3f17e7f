"""Time and peak memory of `atlas build` as the corpus grows (memory should stay flat, time grow
linearly).

    .venv/bin/python bench/scale.py CONLLU [N ...] [--views N] [--batch-size N]

Takes N sentences (default 1000 and 10000) of a CoNLL-U file's `# text = ` lines (e.g.
../shared/data/ud-english-ewt/en_ewt-ud-dev.conllu, 2,001 sentences). Where N is more than the
file has, the sentences are cycled: taken again from the first, in the same order, and the table
says how many are distinct. Each build runs in a child process of its own, with the default
model and the build's default options (``--views 200``, ``--max-site-mb 25``) unless given,
and prints: wall time of the whole process (imports and model load included) and per sentence,
its CPU time (user + system, all threads) per sentence, which moves less than wall time when
other processes share the cores, and peak resident memory (the child's own, from
resource.getrusage), with RSS sampled every 0.2 s so that the table shows where the peak falls
(after load, during the measuring pass, at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The child: samples its own RSS in a thread, builds, prints a JSON line last on stderr.
MEASURED = """
import json, resource, sys, threading, time
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
samples, done = [], threading.Event()
def sample():
    start = time.monotonic()
    while not done.wait(0.2):
        samples.append((round(time.monotonic() - start, 2), rss()))
threading.Thread(target=sample, daemon=True).start()
started = time.monotonic()
import atlas
atlas.build(sys.argv[1], sys.argv[2], views=int(sys.argv[3]), batch_size=int(sys.argv[4]))
done.set()
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"peak": usage.ru_maxrss * 1024, "samples": samples,
                  "cpu": usage.ru_utime + usage.ru_stime}), file=sys.stderr)
"""


def texts(conllu: Path) -> list[str]:
    prefix = "# text = "
    lines = conllu.read_text(encoding="utf-8").splitlines()
    return [line[len(prefix) :].strip() for line in lines if line.startswith(prefix)]


def take(sentences: list[str], n: int) -> list[str]:
    """The first n sentences, cycled from the start when there are fewer than n."""
    return [sentences[i % len(sentences)] for i in range(n)]


def machine() -> str:
    cpus = os.cpu_count()
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                model,
            )
    except OSError:
        pass
    return f"{cpus} CPU cores ({model}), Python {platform.python_version()}"


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("conllu", type=Path)
    parser.add_argument("sizes", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--views", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    sentences = texts(args.conllu)
    work = Path(tempfile.mkdtemp(prefix="atlas-scale-"))
    print(f"machine: {machine()}; {args.conllu.name}: {len(sentences)} sentences")
    print(f"options: --views {args.views} --batch-size {args.batch_size}, default model")
    print()
    print(
        "| sentences (distinct) | tokens | wall s | wall ms / sentence | CPU ms / sentence "
        "| peak RSS MiB "
        "| RSS at 25% / 50% / 75% / 100% of the run, MiB | highest sample at "
        "| load before → after |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |")
    first = None
    for n in args.sizes:
        corpus = work / f"ud-{n}.txt"
        corpus.write_text("\n".join(take(sentences, n)) + "\n", encoding="utf-8")
        out = work / f"site-{n}"
        before = load()
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                MEASURED,
                str(corpus),
                str(out),
                str(args.views),
                str(args.batch_size),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
        if done.returncode:
            sys.exit(f"build of {n} sentences failed:\n{done.stderr[-3000:]}")
        report = json.loads(done.stderr.strip().splitlines()[-1])
        tokens = json.loads((out / "atlas.json").read_text())["corpus"]["tokens"]
        samples = report["samples"] or [(0, report["peak"])]
        at = [samples[min(len(samples) - 1, int(q * len(samples)))][1] for q in (0.25, 0.5, 0.75)]
        at.append(samples[-1][1])
        highest = max(range(len(samples)), key=lambda i: samples[i][1])
        peak = report["peak"] / 2**20
        first = first or peak
        print(
            f"| {n:,} ({min(n, len(sentences)):,}) | {tokens:,} | {wall:.1f} "
            f"| {1000 * wall / n:.1f} | {1000 * report['cpu'] / n:.1f} "
            f"| {peak:.0f} ({peak / first:.2f}×) "
            f"| {' / '.join(f'{v / 2**20:.0f}' for v in at)} "
            f"| {100 * (highest + 1) / len(samples):.0f}% | {before} → {load()} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
