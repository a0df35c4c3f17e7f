"""Time and peak memory of `atlas build` as the corpus grows (memory should stay flat).

    .venv/bin/python bench/scale.py CONLLU [N ...]

Takes the first N sentences (default 250, 1000, 2000) of a CoNLL-U file's `# text = ` lines
(e.g. ../shared/data/ud-english-ewt/en_ewt-ud-dev.conllu), builds an atlas of each with the
default model and `--views 50`, and prints wall time and peak resident memory of each build
(a child process each; its own peak from resource.getrusage).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Runs atlas in the child and prints the child's own peak RSS (KiB) as the last stderr line.
MEASURED = (
    "import resource, sys\n"
    "import atlas\n"
    "atlas.build(sys.argv[1], sys.argv[2], views=int(sys.argv[3]))\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


def texts(conllu: Path) -> list[str]:
    prefix = "# text = "
    lines = conllu.read_text(encoding="utf-8").splitlines()
    return [line[len(prefix) :].strip() for line in lines if line.startswith(prefix)]


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sentences = texts(Path(sys.argv[1]))
    sizes = [int(n) for n in sys.argv[2:]] or [250, 1000, 2000]
    work = Path(tempfile.mkdtemp(prefix="atlas-scale-"))
    print("| sentences | tokens | wall s | peak RSS MiB |")
    print("| ---: | ---: | ---: | ---: |")
    for n in sizes:
        corpus = work / f"ud-{n}.txt"
        corpus.write_text("\n".join(sentences[:n]) + "\n", encoding="utf-8")
        out = work / f"site-{n}"
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                MEASURED,
                str(corpus),
                str(out),
                "50",
            ],
            check=True,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
        peak_kib = int(done.stderr.strip().splitlines()[-1])
        tokens = json.loads((out / "atlas.json").read_text())["corpus"]["tokens"]
        print(f"| {min(n, len(sentences))} | {tokens} | {wall:.1f} | {peak_kib / 1024:.0f} |")


if __name__ == "__main__":
    main()
