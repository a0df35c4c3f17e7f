"""Sharded builds: the corpus cut into N contiguous ranges, each measured on its own (a Ray task,
a Slurm array job, another machine), the analyses' states merged in corpus order and finished as
one pass does (``pipeline.measure_states`` / ``finish_parts``): the site is byte for byte the
one-process site.

Two ways, one format of work:

- ``atlas build INPUT --shard K/N --state-out PART`` measures range K of N and writes its states
  into the folder PART, atomically, with ``shard.json``: the model and its checksum, the options,
  the input's checksum, the range, and the checksum of every file. ``atlas merge PART... -o DIR``
  checks that the folders belong to one build and cover the corpus once, then finishes and
  writes the site (``merge``).
- ``atlas build INPUT --shards N [--ray ADDRESS]`` runs the N ranges as Ray tasks and takes their
  states back through Ray's object store (atlas/raybuild.py).

Both take ``--compare B`` (each shard loads both models and keeps A's states, B's and the compare
analysis's: atlas/comparison.py's ``ComparePart``; a state folder holds B's in ``model-b/`` and
records both models' checksums) and ``--generate N`` (each shard continues the prompts it
measures, ``generating``, and sends their generated ids back with its states: the driver's
examples are continued with them, atlas/generation.py's ``Continued``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import itertools
import json
import logging
import os
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .analyses import default_analyses
from .analyses.states import ARRAYS_NAME, JSON_NAME
from .build import _title, render_site, runner_of
from .comparison import (
    B_PART,
    ComparePart,
    finish_compare_parts,
    load_compare_part,
    measure_compare_states,
    save_compare_part,
)
from .corpus import Corpus, Example
from .generation import Continued, generated_ids, generations
from .loading import DEFAULT_MODEL, default_model_path
from .options import BuildOptions
from .output import claim
from .pipeline import Part, finish_parts, load_part, measure_states, save_part
from .running import PairedRunner, Runner, stream_window

log = logging.getLogger("atlas")

FORMAT = "attention-atlas shard state"
VERSION = 2  # 2: a --compare shard's B states (model-b/), a --generate shard's generations
MANIFEST = "shard.json"  # written last: a folder without it is not a finished shard state
PARTIAL = ".partial-"  # a state folder being written: ``.NAME.partial-PID`` beside NAME
PARTIAL_MARKER = ".attention-atlas-partial"  # inside it: what says the atlas made it
# Options that do not change what is measured or rendered: not recorded, free to differ.
# The models are recorded apart, with their checksums (``Fingerprint``).
UNRECORDED = ("model", "compare", "templates", "progress", "clean", "force")


class ShardError(ValueError):
    """Shards that cannot be run or merged; the message is one line."""


def shard_spec(text: str) -> tuple[int, int]:
    """``K/N`` (1 ≤ K ≤ N) as (K, N): shard K of N (argparse type of ``--shard``)."""
    import argparse

    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"K/N with whole numbers, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"K/N needs 1 ≤ K ≤ N, got {text!r}")
    return k, n


def ranges(total: int, shards: int, batch_size: int | None = None) -> list[range]:
    """``total`` sentences cut into ``shards`` contiguous ranges whose sizes differ by at most
    one (later ones the larger); with more shards than sentences some are empty. With the
    build's ``batch_size``, where every shard gets at least one of the windows a run sorts by
    length (``running.stream_window``), each cut moves to the nearest window's edge (sizes then
    differ by up to a window): no batch then holds two shards' sentences, so none is run by
    both, and a ``--generate`` shard continues its own prompts only (``generating``)."""
    window = stream_window(batch_size) if batch_size else 1
    if total < shards * window:
        window = 1
    cuts = [(total * k // shards + window // 2) // window * window for k in range(shards)]
    return [range(a, b) for a, b in itertools.pairwise([*cuts, total])]


def checksum(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks (a model's weights do not fit memory twice)."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return "sha256:" + sha.hexdigest()


def model_checksum(model: str | None) -> str:
    """One checksum of the files of the model ``model`` names (a folder, the default model's
    package, or a hub id's snapshot in the local cache): shards of one build must run the same
    weights, tokenizer and config, wherever each of them loaded its copy."""
    if model is None or (model == DEFAULT_MODEL and not Path(model).is_dir()):
        folder = Path(default_model_path())
    elif Path(model).is_dir():
        folder = Path(model)
    else:
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(model, local_files_only=True))
        except Exception:  # not cached as a snapshot: only its name can be compared
            return f"hub:{model}"
    sha = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in Path(relative).parts):
            continue  # .cache/, .gitattributes: not the model
        sha.update(f"{relative}\0{checksum(path)}\0".encode())
    return "sha256:" + sha.hexdigest()


def recorded_options(options: BuildOptions) -> dict[str, Any]:
    """The options a shard state records: those that change what is measured or rendered."""
    return {
        field.name: getattr(options, field.name)
        for field in dataclasses.fields(options)
        if field.name not in UNRECORDED
    }


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    """What every shard of one build shares: the model (as typed) and its checksum, with
    ``--compare`` model B and its checksum too, the options, the input (its path, its checksum)
    and its number of sentences."""

    model: str
    model_checksum: str
    options: dict[str, Any]
    input: str
    input_checksum: str
    sentences: int
    compare: str | None = None
    compare_checksum: str | None = None

    @classmethod
    def of(cls, input: Path, options: BuildOptions, sentences: int) -> Fingerprint:
        compare = options.compare
        return cls(
            model=_model_name(options.model),
            model_checksum=model_checksum(options.model),
            options=recorded_options(options),
            input=str(Path(input).absolute()),
            input_checksum=checksum(Path(input)),
            sentences=sentences,
            compare=None if compare is None else _model_name(compare),
            compare_checksum=None if compare is None else model_checksum(compare),
        )

    @property
    def models(self) -> str:
        """The model, or the model pair, as an error names it."""
        return self.model if self.compare is None else f"{self.model} vs {self.compare}"

    def differs(self, other: Fingerprint) -> str:
        """How ``other`` is of another build ("" if it is not): the first difference."""
        if (self.compare, other.compare) != (None, None):
            if (self.model_checksum, self.compare_checksum) != (
                other.model_checksum,
                other.compare_checksum,
            ):
                return f"another model pair ({other.models}, not {self.models})"
        elif self.model_checksum != other.model_checksum:
            return f"another model ({other.model}, not {self.model})"
        if self.options != other.options:
            changed = sorted(k for k in {*self.options, *other.options}
                             if self.options.get(k) != other.options.get(k))  # fmt: skip
            told = (f"{k} {other.options.get(k)!r}, not {self.options.get(k)!r}" for k in changed)
            return f"other options ({', '.join(told)})"
        if (self.input_checksum, self.sentences) != (other.input_checksum, other.sentences):
            return f"another input ({other.input}, not {self.input}: its checksum differs)"
        return ""


def _model_name(model: str | None) -> str:
    """The model as recorded: a folder as an absolute path (a merge may run elsewhere)."""
    if model is not None and Path(model).is_dir():
        return str(Path(model).absolute())
    return model or DEFAULT_MODEL


# --- a worker's shard ------------------------------------------------------------------------

# per process: a Ray worker that runs several shards loads once
_RUNNERS: dict[tuple, Runner | PairedRunner] = {}


def runner_for(options: BuildOptions) -> Runner | PairedRunner:
    """The options' model, with ``--compare`` both models (a ``PairedRunner``), loaded once
    per process."""
    key = (
        options.model,
        options.device,
        options.max_length,
        options.model_name,
        options.chat,
        options.generate,
        options.dtype,
        options.device_map,
        options.memory_gb,
        options.compare,
        options.compare_name,
    )
    if key not in _RUNNERS:
        _RUNNERS.clear()  # one model (or pair) at a time in memory
        runner = runner_of(options)
        if options.compare is not None:
            runner = PairedRunner(runner, runner_of(options, compare=True))
        _RUNNERS[key] = runner
    return _RUNNERS[key]


def model_a(runner: Runner | PairedRunner) -> Runner:
    """The runner of model A: the one that generates, and names the build."""
    return runner.a if isinstance(runner, PairedRunner) else runner


def read_input(input: Path, options: BuildOptions) -> Corpus:
    """The input, checked whole but not held (``corpus.Corpus``): a worker reads its range's
    examples, the driver the few it runs again and, once, each sentence's text for the site."""
    return Corpus(input, limit=options.limit, words=options.words)


class Counting:
    """A runner that calls ``report(1)`` for each record it gives (a worker's progress); the
    rest is the runner's."""

    def __init__(self, runner: Runner, report: Callable[[int], object]):
        self._runner, self._report = runner, report

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)

    def run(self, *args: Any, **kwargs: Any) -> Iterator:
        for record in self._runner.run(*args, **kwargs):
            yield record
            self._report(1)


def measure_shard(
    input: str | Path,
    options: BuildOptions,
    span: range,
    examples: Sequence[Example] | None = None,
    report: Callable[[int], object] | None = None,
) -> tuple[Part | ComparePart, Fingerprint]:
    """Measure the sentences ``span`` of ``input`` (read here: a worker reads its own input) and
    return their unfinished states (both models' with ``--compare``; with ``--generate``, the
    ids generated after its prompts too) with the build's fingerprint. ``report(n)``: told as
    each sentence is measured."""
    input = Path(input)
    examples = read_input(input, options) if examples is None else examples
    fingerprint = Fingerprint.of(input, options, len(examples))
    runner = runner_for(options)
    if options.generate:
        needed = generating(span, options, len(examples))
        # lazily, as a Continued: a worker holds its prompts' generated ids, not the corpus
        made = generated_ids(
            examples, model_a(runner), options.generate, options.batch_size, indices=needed
        )
        examples = Continued(examples, model_a(runner).tokenizer)
        examples.generated.update((i, array("i", ids)) for i, ids in made.items())
    if report is not None:
        runner = Counting(runner, report)
    measure = measure_compare_states if options.compare is not None else measure_states
    part = measure(examples, runner, default_analyses(options), span.start, span.stop, options)
    (part.a if isinstance(part, ComparePart) else part).generated = generations(examples, span)
    return part, fingerprint


def generating(span: range, options: BuildOptions, total: int) -> list[int]:
    """The prompts a ``--generate`` shard of the sentences ``span`` continues: those of every
    batch it runs, whole, as a one-pass run makes them, so those of each window that a run
    sorts by length (``running.stream_window``) holding one of its sentences; and, where it
    holds a sentence of head importance's sample, the whole sample (its passes batch the sample
    by length). Generation does not depend on the batch (atlas/generation.py): each prompt is
    continued as a one-process build continues it. Where the cuts fall on windows' edges
    (``ranges``: a corpus of at least a window a shard) a shard continues its own prompts only;
    else at most a window more on each side."""
    if not span:
        return []
    window = stream_window(options.batch_size)
    windows = range(span.start - span.start % window, min(total, -(-span.stop // window) * window))
    sample = min(max(options.importance, options.views), total) if options.importance else 0
    return sorted({*windows, *range(sample)}) if span.start < sample else list(windows)


# --- state folders ---------------------------------------------------------------------------


def write_state(
    part: Part | ComparePart,
    fingerprint: Fingerprint,
    shard: tuple[int, int],
    folder: Path,
    options: BuildOptions,
) -> None:
    """Write a shard's state into ``folder`` atomically: it is written beside, as
    ``.NAME.partial-PID`` (with a marker), and renamed into place once whole, ``shard.json``
    last, so ``folder`` is either the old state, the new one, or absent; never half written. A
    ``.partial`` folder a killed run left is removed first (the shard is redone)."""
    folder = Path(folder)
    check_state_out(folder)
    parent = folder.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_partials(folder):
        log.warning("%s: removing a shard state a killed run cut short", stale)
        _remove_state(stale)
    temp = parent / f".{folder.name}{PARTIAL}{os.getpid()}"
    temp.mkdir()
    try:
        (temp / PARTIAL_MARKER).touch()
        compare = isinstance(part, ComparePart)
        (save_compare_part if compare else save_part)(part, temp, default_analyses(options))
        files = {name: checksum(temp / name) for name in _state_files(compare)}
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "atlas": __version__,
            **dataclasses.asdict(fingerprint),
            "shard": list(shard),
            "start": part.start,
            "stop": part.stop,
            "files": files,
        }
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        (temp / PARTIAL_MARKER).unlink()
        _sync(temp)
        old = parent / f".{folder.name}.old-{os.getpid()}"
        if folder.exists():
            os.rename(folder, old)
        os.rename(temp, folder)
        if old.exists():
            _remove_state(old)
    except BaseException:
        if temp.exists():
            _remove_state(temp)
        raise


def check_state_out(folder: Path) -> None:
    """Refuse, before the model runs, a ``--state-out`` that is not free for a shard state:
    an existing folder must be empty or a shard state (which is replaced)."""
    if folder.exists() and not folder.is_dir():
        raise ShardError(f"--state-out {folder}: is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST).is_file():
        raise ShardError(
            f"--state-out {folder}: a folder that is not a shard state (give a new or empty one)"
        )


def stale_partials(folder: Path) -> list[Path]:
    """The ``.partial`` folders of ``folder`` that killed runs left (made by the atlas: marked)."""
    parent = folder.absolute().parent
    if not parent.is_dir():
        return []
    return [
        p
        for p in parent.glob(f".{glob.escape(folder.name)}{PARTIAL}*")
        if p.is_dir() and ((p / PARTIAL_MARKER).exists() or (p / MANIFEST).exists())
    ]


def _state_files(compare: bool) -> list[str]:
    """The files a part's state is written to, relative to its folder (a compare part's: B's
    too, in ``model-b/``)."""
    files = [JSON_NAME, ARRAYS_NAME]
    return [*files, *(f"{B_PART}/{name}" for name in files)] if compare else files


def _remove_state(folder: Path) -> None:
    """Remove a state folder's own files, then the folder (and ``model-b/``) if nothing else
    is in it."""
    for name in (PARTIAL_MARKER, JSON_NAME, ARRAYS_NAME, MANIFEST, *_state_files(compare=True)):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    for empty in (folder / B_PART, folder):
        with contextlib.suppress(OSError):
            empty.rmdir()


def _sync(folder: Path) -> None:
    """Flush the folder's files to disk before the rename makes them the state."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


@dataclasses.dataclass(frozen=True)
class State:
    """A shard state folder's manifest, checked whole."""

    folder: Path
    fingerprint: Fingerprint
    shard: tuple[int, int]
    span: range


def read_state(folder: Path) -> State:
    """A state folder's manifest; refuses (one line) what is not a whole shard state of this
    format version: a missing folder, one a killed run cut short, a file whose checksum differs."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not folder.is_dir():
        cut = stale_partials(folder)
        why = " (a killed run cut it short: run its shard again)" if cut else ""
        raise ShardError(f"{folder}: no such shard state folder{why}")
    if not manifest_path.is_file():
        raise ShardError(
            f"{folder}: not a whole shard state (no {MANIFEST}: cut short? run its shard again)"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ShardError(
            f"{folder}: {MANIFEST} is cut short or damaged; run its shard again"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ShardError(f"{folder}: not an attention-atlas shard state")
    if manifest.get("version") != VERSION:
        raise ShardError(
            f"{folder}: a shard state of format version {manifest.get('version')!r}; this atlas "
            f"({__version__}) reads version {VERSION}: run the shard again with it"
        )
    for name, expected in manifest["files"].items():
        if not (folder / name).is_file() or checksum(folder / name) != expected:
            raise ShardError(
                f"{folder}: {name} is missing, cut short or changed (its checksum differs); "
                f"run shard {manifest['shard'][0]}/{manifest['shard'][1]} again"
            )
    fields = {f.name for f in dataclasses.fields(Fingerprint)}
    return State(
        folder,
        Fingerprint(**{k: v for k, v in manifest.items() if k in fields}),
        tuple(manifest["shard"]),
        range(manifest["start"], manifest["stop"]),
    )


def check_states(states: Sequence[State]) -> list[State]:
    """The states in corpus order, refused in one line unless they are of one build (model,
    options, input) and their ranges cover its sentences once."""
    first = states[0]
    for state in states[1:]:
        why = first.fingerprint.differs(state.fingerprint)
        if why:
            raise ShardError(f"cannot merge {state.folder} with {first.folder}: {why}")
    ordered = sorted(states, key=lambda s: (s.span.start, s.span.stop))
    at = 0
    for state in ordered:
        if state.span.start < at:
            earlier = next(s for s in ordered if s.span.stop > state.span.start and s is not state)
            raise ShardError(
                f"{state.folder} and {earlier.folder} overlap (sentences "
                f"{state.span.start + 1}–{min(at, state.span.stop)})"
            )
        if state.span.start > at:
            raise ShardError(
                f"no state folder holds sentences {at + 1}–{state.span.start} (a shard is missing)"
            )
        at = state.span.stop
    total = first.fingerprint.sentences
    if at < total:
        raise ShardError(f"no state folder holds sentences {at + 1}–{total} (a shard is missing)")
    return ordered


# --- finishing -------------------------------------------------------------------------------


def finish_and_render(
    input: Path,
    examples: Sequence[Example],
    options: BuildOptions,
    parts: Iterable[Part] | Iterable[ComparePart],
    output: Path,
    input_name: str | None = None,
):
    """Merge the parts, given in corpus order, each as it comes (``pipeline.finish_parts``, or
    for ``--compare`` ``comparison.finish_compare_parts``: an iterator is drawn one part at a
    time, after the model is loaded), finish, and write the site as a one-process build does
    (the caller holds ``claim(output)``). The model (both, with ``--compare``) is loaded here: a
    few analyses run some sentences again as they finish (``Analysis.revisit``); with
    ``--generate``, on the prompts continued by the ids each part brings (``Continued``).
    ``input_name``: what the site calls the input (default: ``input``'s file name)."""
    input_name = input_name or input.name
    runner = runner_for(options)
    a = model_a(runner)
    b = runner.b.info.name if isinstance(runner, PairedRunner) else None
    if options.generate:
        examples = Continued(examples, a.tokenizer)
        parts = examples.take(parts)
    finish = finish_compare_parts if isinstance(runner, PairedRunner) else finish_parts
    atlas = finish(
        examples,
        runner,
        default_analyses(options),
        parts,
        options,
        title=options.title or _title(a.info.name, b, input_name),
        input_name=input_name,
    )
    if atlas.corpus.truncated:
        log.warning(
            "%d of %d sentences were truncated to %d tokens",
            atlas.corpus.truncated,
            atlas.corpus.sentences,
            a.max_length,
        )
    return render_site(
        atlas,
        output,
        templates=options.templates,
        analyses=options.analysis,
        max_site_mb=options.max_site_mb,
        **options.write_options,
    )


def build_shard(
    input: str | Path, folder: str | Path, shard: tuple[int, int], options: BuildOptions
) -> State:
    """``atlas build INPUT --shard K/N --state-out FOLDER``: measure range K of N and write its
    state folder."""
    input, folder = Path(input), Path(folder)
    check_state_out(folder)
    examples = read_input(input, options)
    k, n = shard
    span = ranges(len(examples), n, options.batch_size)[k - 1]
    log.info("shard %d/%d: sentences %d–%d of %d", k, n, span.start + 1, span.stop, len(examples))
    part, fingerprint = measure_shard(input, options, span, examples)
    write_state(part, fingerprint, shard, folder, options)
    log.info("wrote the shard's state to %s", folder)
    return read_state(folder)


def merge(
    folders: Sequence[str | Path],
    output: str | Path,
    *,
    input: str | Path | None = None,
    model: str | None = None,
    compare: str | None = None,
    templates: str | Path | None = None,
    progress: bool = False,
    clean: bool = False,
    force: bool = False,
):
    """``atlas merge PART... -o DIR``: check the state folders (one build, whole, covering the
    corpus once), merge them in corpus order, finish and write the site. ``input``, ``model``
    and ``compare`` (model B) replace the recorded paths (another machine's layout); their
    checksums must match."""
    output = Path(output)
    with claim(output, force=force, clean=clean):
        states = check_states([read_state(Path(f)) for f in folders])
        fingerprint = states[0].fingerprint
        options = BuildOptions(
            **fingerprint.options,
            model=model or fingerprint.model,
            compare=compare or fingerprint.compare,
            templates=templates,
            progress=progress,
            clean=clean,
            force=force,
        )
        input = Path(input or fingerprint.input)
        if not input.is_file():
            raise ShardError(f"{input}: the shards' input is not there (give it with --input)")
        if checksum(input) != fingerprint.input_checksum:
            raise ShardError(f"{input}: not the input the shards measured (its checksum differs)")
        if model is not None and model_checksum(model) != fingerprint.model_checksum:
            raise ShardError(f"--model {model}: not the model the shards ran (checksum differs)")
        if compare is not None and fingerprint.compare is None:
            raise ShardError(f"--compare {compare}: the shards compared no second model")
        if compare is not None and model_checksum(compare) != fingerprint.compare_checksum:
            raise ShardError(
                f"--compare {compare}: not the model B the shards ran (checksum differs)"
            )
        examples = read_input(input, options)
        # read one at a time as the merge draws them: the driver never holds every state
        analyses = default_analyses(options)
        load = load_compare_part if options.compare is not None else load_part
        parts = (load(s.folder, analyses) for s in states)
        log.info("merging %d shard states of %d sentences", len(states), len(examples))
        # named as the shards recorded it, wherever it is now: the site is the same
        return finish_and_render(input, examples, options, parts, output,
                                 Path(fingerprint.input).name)  # fmt: skip
