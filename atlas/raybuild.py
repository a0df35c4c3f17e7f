"""``atlas build INPUT --shards N [--ray ADDRESS]``: the N ranges of atlas/shards.py as Ray tasks.

Each task reads its own input, loads the model (once per worker process: ``shards.runner_for``)
and measures its range; its unfinished states come back through Ray's object store. The driver
merges each in corpus order as its turn comes (``Shards``: it never holds every shard's states),
finishes and renders the site as ``atlas merge`` does. A task whose
worker dies (a killed process, a lost node) is run again by Ray (``RETRIES``); an error of the
input or the model fails the build with its one line; Ctrl-C cancels every task.

Ray is an optional extra: ``pip install 'attention-atlas[ray]'``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .options import BuildOptions
from .output import claim
from .pipeline import Part
from .shards import (
    Fingerprint,
    ShardError,
    finish_and_render,
    measure_shard,
    ranges,
    read_input,
)

log = logging.getLogger("atlas")
EXTRA = "attention-atlas[ray]"
RETRIES = 3  # times Ray runs a shard again whose worker died (not for an error it raised)


def require_ray():
    """The ``ray`` module, or one line naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ShardError(
            f"--shards needs Ray: pip install '{EXTRA}' (or use --shard K/N and atlas merge)"
        ) from None
    return ray


def build_sharded(
    input: str | Path,
    output: str | Path,
    options: BuildOptions,
    shards: int,
    *,
    address: str | None = None,
    gpus_per_shard: float = 0,
    work: Callable[..., Any] = measure_shard,
):
    """Measure ``input`` as ``shards`` Ray tasks, merge, finish and write the site to
    ``output``; returns the Atlas as written. ``address``: a Ray cluster to join (None: the
    one this process already joined, else a local Ray started and stopped here).
    ``work``: what a task runs (``measure_shard``; tests give it a worker that dies)."""
    ray = require_ray()
    input, output = Path(input), Path(output)
    with claim(output, **options.write_options):
        examples = read_input(input, options)
        spans = ranges(len(examples), shards, options.batch_size)
        own = not ray.is_initialized()
        if own:
            log.info(f"joining the Ray cluster at {address}" if address else "starting a local Ray")
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False)  # fmt: skip
        try:
            _check_gpus(ray, gpus_per_shard)
            # the driver loads the model for the finish while the workers measure, then merges
            # each shard's state as its turn comes
            with Shards(ray, work, input, options, spans, gpus_per_shard) as parts:
                return finish_and_render(input, examples, options, parts, output)
        finally:
            if own:
                ray.shutdown()


def _check_gpus(ray, wanted: float) -> None:
    """Refuse GPUs the cluster does not have: Ray would wait for them without end."""
    have = ray.cluster_resources().get("GPU", 0)
    if wanted > have:
        raise ShardError(
            f"--gpus-per-shard {wanted:g}: the Ray cluster has {have:g} GPUs "
            "(leave it out on a machine without one)"
        )


class Shards:
    """The shards' Ray tasks, all started at once. Iterating gives their Parts in corpus order,
    each taken from Ray's object store only when those before it are merged: a shard that
    finishes early waits there (a task returns its fingerprint and its part as two objects, so
    the driver checks the one and leaves the other), and a part's object is freed once its state
    is copied out. The driver holds the merged states and one part, not N. Progress over shards
    and sentences; on leaving with an error (or Ctrl-C), every task still running is cancelled."""

    def __init__(self, ray, work, input: Path, options: BuildOptions, spans: list[range],
                 gpus: float) -> None:  # fmt: skip
        from tqdm.auto import tqdm

        self.ray, self.spans = ray, spans
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=RETRIES, num_returns=2)(_shard)
        worker_options = options.replace(progress=False, templates=None)
        self.progress = ray.remote(num_cpus=0)(Progress).remote() if options.progress else None
        self.pending: dict[Any, int] = {}  # each running task's fingerprint: its shard
        self.parts: dict[int, Any] = {}  # each shard's part, until it is merged
        for k, span in enumerate(spans, 1):
            part, fingerprint = task.remote(
                work, self.progress, str(input.absolute()), worker_options, span
            )
            self.pending[fingerprint], self.parts[k] = k, part
        self.done: set[int] = set()  # shards finished and checked, merged or waiting
        self.total = spans[-1].stop if spans else 0
        self.expected = Fingerprint.of(input, options, self.total)
        sizes = "/".join(str(len(span)) for span in spans)
        log.info("started %d shards of %s sentences", len(spans), sizes)
        self.bars = [
            tqdm(total=len(spans), unit="shard", desc="shards", disable=not options.progress),
            tqdm(total=self.total, unit="sent", desc="sentences", disable=not options.progress),
        ]

    def __enter__(self) -> Shards:
        return self

    def __exit__(self, kind, error, trace) -> None:
        try:
            if error is not None:  # an error, Ctrl-C: no task goes on without the build
                self.cancel()
        finally:
            for bar in self.bars:
                bar.close()

    def __iter__(self) -> Iterator[Part]:
        for k in range(1, len(self.spans) + 1):
            while k not in self.done:
                self._wait()
            yield self._take(k)  # not kept in a local: let go of it while the next is taken

    def _wait(self) -> None:
        """Wait for the next task to finish (or a second, to show progress); check its
        fingerprint: its error, if it failed, is the build's."""
        ray, n = self.ray, len(self.spans)
        ready, _ = ray.wait(list(self.pending), num_returns=1,
                            timeout=1 if self.progress else None)  # fmt: skip
        if self.progress is not None:  # a retried shard counts again: at most the corpus
            count = ray.get(self.progress.count.remote())
            self.bars[1].update(min(self.total, count) - self.bars[1].n)
        for ref in ready:
            k = self.pending.pop(ref)
            why = self.expected.differs(_result(ray, ref, k, n))
            if why:
                raise ShardError(f"shard {k}/{n} measured {why}")
            self.done.add(k)
            self.bars[0].update(1)
            span = self.spans[k - 1]
            log.debug("shard %d/%d done: sentences %d–%d", k, n, span.start + 1, span.stop)

    def _take(self, k: int) -> Part:
        """Shard ``k``'s part, copied out of the object store, whose object is then freed (the
        driver held its only reference)."""
        return _result(self.ray, self.parts.pop(k), k, len(self.spans))

    def cancel(self) -> None:
        """Cancel every task still running and read their errors (else Ray prints each as a
        traceback)."""
        for ref in self.pending:
            self.ray.cancel(ref, force=True)
        for ref in self.pending:
            with contextlib.suppress(Exception):
                self.ray.get(ref, timeout=10)
        self.pending.clear()
        self.parts.clear()


class Progress:
    """Sentences measured so far by every worker (a Ray actor the driver reads)."""

    def __init__(self) -> None:
        self.done = 0

    def add(self, n: int) -> None:
        self.done += n

    def count(self) -> int:
        return self.done


def _shard(work: Callable[..., Any], progress, input: str, options: BuildOptions, span: range):
    """One Ray task: ``work`` (``measure_shard``) on ``span``, telling ``progress`` (an actor,
    or None) of each sentence."""
    report = None if progress is None else progress.add.remote
    return work(input, options, span, report=report)


def _result(ray, ref, k: int, n: int):
    """A finished task's result; its error as the one line it was (bad input, a model that
    does not load), or one line saying the worker died past its retries."""
    from ray.exceptions import RayTaskError, WorkerCrashedError

    try:
        # arrays in the object store are read-only views of shared memory: the merge adds into them
        return copy.deepcopy(ray.get(ref))
    except RayTaskError as err:
        if isinstance(err.cause, Exception):  # the CLI tells bad input from a bug by its type
            raise err.cause from None
        raise
    except WorkerCrashedError:
        raise ShardError(
            f"shard {k}/{n}: its worker died {RETRIES + 1} times (out of memory? see Ray's logs)"
        ) from None
