"""``atlas build INPUT --shards N [--ray ADDRESS]``: the N ranges of atlas/shards.py as Ray tasks.

Each task reads its own input, loads the model (once per worker process: ``shards.runner_for``)
and measures its range; its unfinished states come back through Ray's object store. The driver
merges them in corpus order, finishes and renders the site as ``atlas merge`` does. A task whose
worker dies (a killed process, a lost node) is run again by Ray (``RETRIES``); an error of the
input or the model fails the build with its one line; Ctrl-C cancels every task.

Ray is an optional extra: ``pip install 'attention-atlas[ray]'``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .options import BuildOptions
from .output import claim
from .shards import (
    Fingerprint,
    ShardError,
    finish_and_render,
    measure_shard,
    ranges,
    read_input,
    refuse_unsharded,
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
    refuse_unsharded(options)
    input, output = Path(input), Path(output)
    with claim(output, **options.write_options):
        examples = read_input(input, options)
        spans = ranges(len(examples), shards)
        own = not ray.is_initialized()
        if own:
            log.info(f"joining the Ray cluster at {address}" if address else "starting a local Ray")
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False)  # fmt: skip
        try:
            _check_gpus(ray, gpus_per_shard)
            parts = _run(ray, work, input, options, spans, gpus_per_shard)
        finally:
            if own:
                ray.shutdown()
        return finish_and_render(input, examples, options, parts, output)


def _check_gpus(ray, wanted: float) -> None:
    """Refuse GPUs the cluster does not have: Ray would wait for them without end."""
    have = ray.cluster_resources().get("GPU", 0)
    if wanted > have:
        raise ShardError(
            f"--gpus-per-shard {wanted:g}: the Ray cluster has {have:g} GPUs "
            "(leave it out on a machine without one)"
        )


def _run(ray, work, input: Path, options: BuildOptions, spans: list[range], gpus: float) -> list:
    """Each span's Part, from its Ray task; progress over shards and sentences."""
    from tqdm.auto import tqdm

    task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=RETRIES)(_shard)
    worker_options = options.replace(progress=False, templates=None)
    progress = ray.remote(num_cpus=0)(Progress).remote() if options.progress else None
    pending = {
        task.remote(work, progress, str(input.absolute()), worker_options, span): (k, span)
        for k, span in enumerate(spans, 1)
    }
    total = spans[-1].stop if spans else 0
    log.info("started %d shards of %s sentences", len(spans), "/".join(str(len(s)) for s in spans))
    done: dict[int, Any] = {}
    expected = Fingerprint.of(input, options, spans[-1].stop if spans else 0)
    bars = [
        tqdm(total=len(spans), unit="shard", desc="shards", disable=not options.progress),
        tqdm(total=total, unit="sent", desc="sentences", disable=not options.progress),
    ]
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1 if progress else None)
            if progress is not None:  # a retried shard counts again: at most the corpus
                bars[1].update(min(total, ray.get(progress.count.remote())) - bars[1].n)
            if not ready:
                continue
            k, span = pending.pop(ready[0])
            part, fingerprint = _result(ray, ready[0], k, len(spans))
            why = expected.differs(fingerprint)
            if why:
                raise ShardError(f"shard {k}/{len(spans)} measured {why}")
            done[k] = part
            bars[0].update(1)
            log.debug("shard %d/%d done: sentences %d–%d", k, len(spans), span.start + 1, span.stop)
    except BaseException:  # an error, Ctrl-C: no task goes on without the build
        for ref in pending:
            ray.cancel(ref, force=True)
        for ref in pending:  # their errors read here, else Ray prints each as a traceback
            with contextlib.suppress(Exception):
                ray.get(ref, timeout=10)
        raise
    finally:
        for bar in bars:
            bar.close()
    return [done[k] for k in sorted(done)]


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
