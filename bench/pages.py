"""The view data and the site of a build, in CPU time, replayed from one captured build.

    .venv/bin/python bench/pages.py capture CORPUS [--work DIR]
    .venv/bin/python bench/pages.py time [--work DIR] [--runs 3] [--site OUT]

``capture`` builds CORPUS with the default options into a temporary folder and keeps, in
``--work`` (pickles): every ``ViewMaker``'s record, arguments and layers of attention (all the
view data is made from) and the Atlas handed to ``render_site`` with its arguments.

``time`` makes those views again (``ViewMaker``, layer by layer, then ``view``; the first 16
records check the vectors, as the first batch of a build does) and renders and writes the site
again into a temporary folder (with the build's ``--max-site-mb`` rounds), each timed in this
process's CPU time, the vega bundle already in memory. ``--site OUT`` keeps the first site.

Run ``time`` with PYTHONPATH set to each of two code trees, alternately, to compare them on the
same input without the forward pass (the pickles need classes both trees share).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHECKED = 16  # records that check their vectors: the first batch of a build (--batch-size)


def capture(corpus: Path, work: Path) -> None:
    import atlas
    from atlas import viewdata
    from atlas.analyses import views

    build = importlib.import_module("atlas.build")
    makers: list[dict] = []

    class Capturing(viewdata.ViewMaker):
        def __init__(self, record, **arguments):
            arguments.pop("check", None)
            super().__init__(record, **arguments)
            self.kept = {"record": record, "arguments": arguments, "layers": [], "vectors": None}
            makers.append(self.kept)

        def layer(self, layer: int, attention: np.ndarray) -> None:
            self.kept["layers"].append((layer, np.array(attention, copy=True)))
            super().layer(layer, attention)

        def view(self, vectors: bool = True):
            self.kept["vectors"] = vectors
            return super().view(vectors=vectors)

    views.ViewMaker = Capturing
    render_site = build.render_site

    def capturing_render(atlas_, output, **arguments):
        analyses = [type(a) for a in arguments.get("analyses", ())]
        with open(work / "atlas.pkl", "wb") as file:
            pickle.dump((atlas_, {**arguments, "analyses": analyses}), file)
        return render_site(atlas_, output, **arguments)

    build.render_site = capturing_render
    with tempfile.TemporaryDirectory(prefix="atlas-bench-pages-") as folder:
        atlas.build(corpus, Path(folder) / "site")
    for kept in makers:  # what the analyses stashed on the records is not the views' input
        kept["record"]._stash, kept["record"]._derived = {}, {}
        kept["record"]._layer_derived = {}
    with open(work / "makers.pkl", "wb") as file:
        pickle.dump(makers, file)
    print(f"kept {len(makers)} view makers and the Atlas in {work}")


def time_views(work: Path) -> float:
    from atlas import viewdata

    with open(work / "makers.pkl", "rb") as file:
        makers = pickle.load(file)
    checks = "check" in inspect.signature(viewdata.ViewMaker).parameters
    start = time.process_time()
    for kept in makers:
        record = kept["record"]
        extra = {"check": record.index < CHECKED} if checks else {}
        maker = viewdata.ViewMaker(record, **kept["arguments"], **extra)
        for layer, attention in kept["layers"]:
            maker.layer(layer, attention)
        if kept["vectors"] is not None:
            maker.view(vectors=kept["vectors"])
    return time.process_time() - start


def time_site(work: Path, keep: Path | None) -> float:
    from atlas import site

    build = importlib.import_module("atlas.build")
    with open(work / "atlas.pkl", "rb") as file:
        atlas_, arguments = pickle.load(file)
    site.vega_bundle()
    with tempfile.TemporaryDirectory(prefix="atlas-bench-pages-") as folder:
        start = time.process_time()
        build.render_site(atlas_, Path(folder) / "site", **arguments)
        spent = time.process_time() - start
        if keep is not None:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(Path(folder) / "site", keep)
    return spent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("capture", "time"))
    parser.add_argument("corpus", nargs="?", type=Path)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "atlas-pages")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--site", type=Path, help="keep the first run's site here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.mode == "capture":
        if args.corpus is None:
            parser.error("capture needs a CORPUS")
        capture(args.corpus, args.work)
        return
    for run in range(args.runs):
        views = time_views(args.work)
        spent = time_site(args.work, args.site if run == 0 else None)
        print(f"run {run + 1}: views {views:.2f} s, site {spent:.2f} s (CPU)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
