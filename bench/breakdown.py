"""Where an ``atlas build`` spends its time, by analysis, under cProfile.

    .venv/bin/python bench/breakdown.py ../shared/data/ud-english-ewt/en_ewt-ud-dev.conllu \
        --limit 1000 [--top 20] [--save build.prof]

Runs ``atlas build INPUT -o <temporary folder> [BUILD OPTIONS]`` (the CLI, in this process)
under cProfile and prints, for every analysis, the cumulative seconds of its ``add``,
``add_layer``, ``settle`` and ``finish`` (the profiler's own overhead included, so compare the
parts, not the totals with bench/speed.py), then the model's forward passes, the site, and the
functions with the most time of their own. Arguments after the input go to ``atlas build``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from atlas import cli

PHASES = ("add", "add_layer", "settle", "finish")


def by_analysis(stats: pstats.Stats) -> dict[str, dict[str, float]]:
    """Cumulative seconds of each analysis module's phase methods (atlas/analyses/NAME.py)."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        path = Path(filename)
        if path.parent.name == "analyses" and function in PHASES:
            cumulative = row[3]
            out[path.stem][function] = out[path.stem].get(function, 0.0) + cumulative
    return out


def cumulative_of(stats: pstats.Stats, file_end: str, function: str) -> float:
    return sum(
        row[3]
        for (filename, _, name), row in stats.stats.items()  # type: ignore[attr-defined]
        if filename.endswith(file_end) and name == function
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--save", type=Path, help="also write the raw profile here")
    args, build_args = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="atlas-profile-") as folder:
        command = ["build", args.input, "-o", str(Path(folder) / "site"), "-q", *build_args]
        profiler = cProfile.Profile()
        profiler.runcall(cli.main, command)
    if args.save:
        profiler.dump_stats(args.save)
    stats = pstats.Stats(profiler)
    total = max(row[3] for row in stats.stats.values())  # type: ignore[attr-defined]
    print(f"atlas build {' '.join(command[1:2] + build_args)}: {total:.1f} s under cProfile\n")
    print("| analysis | " + " | ".join(PHASES) + " | together |")
    print("| --- |" + " ---: |" * (len(PHASES) + 1))
    parts = by_analysis(stats)
    for name, phases in sorted(parts.items(), key=lambda item: -sum(item[1].values())):
        cells = [f"{phases[p]:.2f}" if p in phases else "" for p in PHASES]
        print(f"| {name} | " + " | ".join(cells) + f" | {sum(phases.values()):.2f} |")
    print()
    print(f"the runner's batches (model passes, records; its generator's own time): "
          f"{cumulative_of(stats, 'running.py', 'run'):.2f} s; the site (site.render): "
          f"{cumulative_of(stats, 'site.py', 'render'):.2f} s\n")  # fmt: skip
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    sys.exit(main())
