"""Sharded builds (issue 21): one process, Ray shards (``--shards N``) and merged shard states
(``--shard K/N --state-out`` then ``atlas merge``) write the same site, every file byte for
byte; and the faults: a worker that dies, a shard that fails, Ctrl-C, a state folder cut short,
state folders that are not of one build.

One local Ray with 2 CPUs serves the module (starting one costs seconds); the corpora are small
(the UD sample's first sentences), so each build is a few seconds."""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
from test_output import files_of

from atlas import contract, shards
from atlas.cli import main
from atlas.options import BuildOptions

ray = pytest.importorskip("ray", reason="the ray extra: pip install 'attention-atlas[ray]'")

ROOT = Path(__file__).resolve().parent.parent
UD = ROOT / "examples" / "ud-ewt-sample.conllu"
SMALL = ["--limit", "20", "--views", "5", "--importance", "6", "--importance-ablation", "3"]


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for the module; builds join it rather than start their own."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tiny_model, tmp_path_factory):
    """The tiny BERT's arguments and its one-process site of 20 UD sentences (trees: syntax
    and its probe run; importance samples and ablates across the shards' cuts)."""
    args = [str(UD), "--model", str(tiny_model("bert")), *SMALL]
    site = tmp_path_factory.mktemp("one") / "site"
    assert main(["build", *args, "-o", str(site), "-q"]) == 0
    return args, files_of(site)


def merged(args: list[str], n: int, folder: Path) -> dict[str, bytes]:
    """The site of ``n`` shard states, each written by ``atlas build --shard K/N``, merged."""
    parts = [str(folder / f"part-{k}") for k in range(1, n + 1)]
    for k, part in enumerate(parts, 1):
        assert main(["build", *args, "--shard", f"{k}/{n}", "--state-out", part, "-q"]) == 0
    assert main(["merge", *parts[::-1], "-o", str(folder / "site"), "-q"]) == 0
    return files_of(folder / "site")


def on_ray(args: list[str], n: int, folder: Path) -> dict[str, bytes]:
    assert main(["build", *args, "--shards", str(n), "-o", str(folder / "site"), "-q"]) == 0
    return files_of(folder / "site")


@pytest.mark.parametrize("n", [2, 3])
def test_merged_shard_states_give_the_one_process_site(tiny, n, tmp_path):
    args, one = tiny
    assert json.loads(one["atlas.json"])["results"]["syntax"]["probe"]["available"]
    assert [len(r) for r in shards.ranges(20, n)] == ([10, 10] if n == 2 else [6, 7, 7])
    assert merged(args, n, tmp_path) == one


class OneAtATime:
    """Watches the parts a merge draws: as each is drawn, which of those drawn before it are
    still alive (the driver should have merged them and let them go)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.held: list[list[int]] = []
        self._refs: list[tuple[int, weakref.ref]] = []

    def check(self, part):
        gc.collect()
        self.held.append([start for start, ref in self._refs if ref() is not None])
        self.starts.append(part.start)
        self._refs.append((part.start, weakref.ref(part)))
        return part


def test_merge_reads_and_merges_one_state_folder_at_a_time(states, tiny, monkeypatch, tmp_path):
    """``atlas merge`` loads a state folder only once the one before it (in corpus order) is
    merged and let go: the driver never holds every shard's states."""
    _, one = tiny
    drawn = OneAtATime()
    load = shards.load_part
    monkeypatch.setattr(shards, "load_part", lambda folder, made: drawn.check(load(folder, made)))
    parts = [str(states / n) for n in ("3-of-3", "1-of-3", "2-of-3")]
    assert main(["merge", *parts, "-o", str(tmp_path / "site"), "-q"]) == 0
    assert drawn.starts == [0, 6, 13]
    assert drawn.held == [[], [], []]
    assert files_of(tmp_path / "site") == one


def test_merge_holds_a_range_of_the_corpus_not_the_corpus(states, tiny, monkeypatch, tmp_path):
    """The driver reads the input by ranges (``corpus.Corpus``): as it finishes (running some
    sentences again) and as it writes the site (every sentence's text), at most one range of
    examples is alive, not the corpus's 20, and the site is the one-process site."""
    from atlas import pipeline, site
    from atlas.corpus import Corpus, Example

    def alive() -> int:
        gc.collect()
        return sum(type(o) is Example for o in gc.get_objects())

    monkeypatch.setattr(Corpus, "BLOCK", 4)
    before, counts = alive(), []
    finish, files = pipeline._finish, site._files

    def finishing(*args, **kwargs):
        counts.append(alive() - before)
        return finish(*args, **kwargs)

    def rendering(*args, **kwargs):
        for made in files(*args, **kwargs):
            if made[0] in ("atlas.json", contract.SEARCH_SCRIPT, "sentences/index.html"):
                counts.append(alive() - before)
            yield made

    monkeypatch.setattr(pipeline, "_finish", finishing)
    monkeypatch.setattr(site, "_files", rendering)
    parts = [str(states / n) for n in ("1-of-3", "2-of-3", "3-of-3")]
    assert main(["merge", *parts, "-o", str(tmp_path / "site"), "-q"]) == 0
    assert len(counts) == 4 and max(counts) <= 4, counts
    assert files_of(tmp_path / "site") == tiny[1]


# Ray's tests are marked slow: a quick run (-m "not slow") leaves out Ray's start-up; CI runs them.


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 3])
def test_ray_shards_give_the_one_process_site(local_ray, tiny, n, tmp_path):
    args, one = tiny
    assert on_ray(args, n, tmp_path) == one


@pytest.mark.slow
def test_an_empty_shard_changes_nothing(local_ray, tiny, tmp_path):
    """Two sentences in three shards: the first holds none."""
    args = [*tiny[0], "--limit", "2"]
    assert [len(r) for r in shards.ranges(2, 3)] == [0, 1, 1]
    assert main(["build", *args, "-o", str(tmp_path / "one"), "-q"]) == 0
    one = files_of(tmp_path / "one")
    assert on_ray(args, 3, tmp_path / "ray") == one
    assert merged(args, 3, tmp_path / "merged") == one


@pytest.mark.slow
def test_the_default_model_sharded_gives_the_one_process_site(local_ray, tmp_path):
    args = [str(UD), "--limit", "10", "--views", "3", "--importance", "4",
            "--importance-ablation", "2"]  # fmt: skip
    assert main(["build", *args, "-o", str(tmp_path / "one"), "-q"]) == 0
    one = files_of(tmp_path / "one")
    assert on_ray(args, 2, tmp_path / "ray") == one
    assert merged(args, 3, tmp_path / "merged") == one


@pytest.mark.slow
def test_ray_shards_are_merged_in_corpus_order_as_they_come(local_ray, tiny, monkeypatch,
                                                           tmp_path):  # fmt: skip
    """Shard 2 finishes first: it waits in Ray's object store until shard 1 is merged, and the
    driver takes each shard's part only once the one before it is merged and let go."""
    from atlas import raybuild
    from atlas.shards import measure_shard

    marks = tmp_path / "marks"
    marks.mkdir()

    def second_first(input, options, span, report):
        deadline = time.monotonic() + 120
        while span.start == 0 and not (marks / "2").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        result = measure_shard(input, options, span, report=report)
        (marks / ("1" if span.start == 0 else "2")).write_text(str(time.monotonic()))
        return result

    drawn = OneAtATime()
    finish = raybuild.finish_and_render

    def watched(input, examples, options, parts, output):
        return finish(input, examples, options, (drawn.check(p) for p in parts), output)

    monkeypatch.setattr(raybuild, "finish_and_render", watched)
    args, one = tiny
    options = BuildOptions(model=args[2], limit=20, views=5, importance=6, ablation=3)
    raybuild.build_sharded(UD, tmp_path / "site", options, 2, work=second_first)
    assert float((marks / "2").read_text()) < float((marks / "1").read_text())
    assert drawn.starts == [0, 10]
    assert drawn.held == [[], []]
    assert files_of(tmp_path / "site") == one


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_worker_that_dies_is_run_again_with_the_same_result(local_ray, tiny, tmp_path):
    """Each shard's first worker dies (os._exit, as a kill or a lost node); Ray runs it again."""
    from atlas.raybuild import build_sharded
    from atlas.shards import measure_shard

    marks = tmp_path / "marks"
    marks.mkdir()

    def dies_once(input, options, span, report):
        mark = marks / f"died-{span.start}"
        if not mark.exists():
            mark.touch()
            os._exit(1)
        return measure_shard(input, options, span, report=report)

    args, one = tiny
    # with progress bars: the workers report each sentence, and the results do not change
    options = BuildOptions(
        model=args[2], limit=20, views=5, importance=6, ablation=3, progress=True
    )
    build_sharded(UD, tmp_path / "site", options, 2, work=dies_once)
    assert sorted(p.name for p in marks.iterdir()) == ["died-0", "died-10"]
    assert files_of(tmp_path / "site") == one


@pytest.mark.slow
def test_a_shard_that_fails_fails_the_build_with_its_one_line(local_ray, tmp_path, capsys):
    """The model is loaded by the workers first: its error is theirs, told as one line."""
    out = tmp_path / "site"
    code = main(["build", str(UD), "--limit", "4", "--model", "./no-such-model", "--shards", "2",
                 "-o", str(out), "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "atlas: error: --model ./no-such-model: no such model folder (and not a hub id, "
        "which is NAME or ORG/NAME)"
    ]
    assert not out.exists()


@pytest.mark.slow
def test_gpus_the_cluster_lacks_are_refused_not_waited_for(local_ray, capsys, tmp_path):
    out = tmp_path / "site"
    assert refused(capsys, "build", str(UD), "--limit", "2", "--shards", "2",
                   "--gpus-per-shard", "1", "-o", str(out)) == (
        "atlas: error: --gpus-per-shard 1: the Ray cluster has 0 GPUs (leave it out on a "
        "machine without one)"
    )  # fmt: skip
    assert not out.exists()


@pytest.mark.slow
def test_ctrl_c_stops_every_worker_and_leaves_the_old_site(tiny, tmp_path):
    """A build that starts its own local Ray, interrupted while its workers measure: exit 130,
    the old site as it was, and no process the build started left (Ray's workers, which run in
    process groups of their own, its raylet and daemons)."""
    args, one = tiny
    site = tmp_path / "site"
    site.mkdir()
    for relative, content in one.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_bytes(content)
    command = [sys.executable, "-m", "atlas.cli", "build", *args, "--shards", "2",
               "-o", str(site)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    for line in child.stderr:
        if line.startswith("started 2 shards"):
            break
    else:
        pytest.fail("the build did not start its shards")
    deadline = time.monotonic() + 120
    while not any("ray::_shard" in _command(p) for p in _descendants(child.pid)):
        assert time.monotonic() < deadline, "no worker ran a shard"
        time.sleep(0.2)
    started = _descendants(child.pid)
    child.send_signal(signal.SIGINT)
    rest = child.stderr.read()
    assert child.wait(60) == 130, rest
    assert rest.strip().splitlines()[-1] == "atlas: interrupted; nothing was written"
    assert files_of(site) == one
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and [p for p in started if Path(f"/proc/{p}").exists()]:
        time.sleep(0.5)
    left = [_command(p) for p in started if Path(f"/proc/{p}").exists()]
    assert not left, f"processes of the build outlived it: {left}"


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc: each process's parent)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# --- state folders ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def states(tiny, tmp_path_factory):
    """Shard states of the tiny build: 1/3, 2/3, 3/3 and 1/2."""
    args, _ = tiny
    folder = tmp_path_factory.mktemp("states")
    for spec in ("1/3", "2/3", "3/3", "1/2"):
        out = folder / spec.replace("/", "-of-")
        assert main(["build", *args, "--shard", spec, "--state-out", str(out), "-q"]) == 0
    return folder


def refused(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def copy_state(source: Path, target: Path) -> Path:
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def test_a_state_folder_records_the_build(states):
    manifest = json.loads((states / "2-of-3" / "shard.json").read_text())
    assert manifest["shard"] == [2, 3]
    assert (manifest["start"], manifest["stop"], manifest["sentences"]) == (6, 13, 20)
    assert manifest["options"]["views"] == 5
    assert manifest["model_checksum"].startswith("sha256:")
    assert manifest["input_checksum"] == shards.checksum(UD)
    assert set(manifest["files"]) == {"states.json", "states.npz"}


def test_merge_refuses_missing_and_overlapping_ranges(states, capsys, tmp_path):
    one, two, three, half = (str(states / n) for n in ("1-of-3", "2-of-3", "3-of-3", "1-of-2"))
    out = str(tmp_path / "site")
    assert refused(capsys, "merge", one, three, "-o", out) == (
        "atlas: error: no state folder holds sentences 7–13 (a shard is missing)"
    )
    assert refused(capsys, "merge", one, two, "-o", out) == (
        "atlas: error: no state folder holds sentences 14–20 (a shard is missing)"
    )
    assert refused(capsys, "merge", half, two, three, "-o", out) == (
        f"atlas: error: {two} and {half} overlap (sentences 7–10)"
    )
    assert not Path(out).exists()


def test_merge_refuses_states_of_another_build(states, tiny, capsys, tmp_path):
    args, _ = tiny
    one, two, three = (states / n for n in ("1-of-3", "2-of-3", "3-of-3"))
    other = tmp_path / "views-4"
    assert main(["build", *args, "--views", "4", "--shard", "3/3", "--state-out", str(other),
                 "-q"]) == 0  # fmt: skip
    out = str(tmp_path / "site")
    assert refused(capsys, "merge", str(one), str(two), str(other), "-o", out) == (
        f"atlas: error: cannot merge {other} with {one}: other options (views 4, not 5)"
    )
    for field, value, why in [
        ("model_checksum", "sha256:0", "another model"),
        ("input_checksum", "sha256:0", "another input"),
        ("version", 99, "a shard state of format version 99"),
    ]:
        edited = copy_state(three, tmp_path / field)
        manifest = json.loads((edited / "shard.json").read_text())
        (edited / "shard.json").write_text(json.dumps({**manifest, field: value}))
        assert why in refused(capsys, "merge", str(one), str(two), str(edited), "-o", out)


def test_merge_takes_the_input_and_model_moved_elsewhere_by_checksum(states, tiny, capsys,
                                                                    tmp_path):  # fmt: skip
    """Merged on another machine: the input and the model at other paths (``--input``,
    ``--model``) give the same site; a file of other bytes is refused."""
    args, one = tiny
    parts = [str(states / n) for n in ("1-of-3", "2-of-3", "3-of-3")]
    moved = tmp_path / "elsewhere.conllu"
    moved.write_bytes(UD.read_bytes())
    model = tmp_path / "copy" / Path(args[2]).name  # what the pages call it: its folder's name
    shutil.copytree(args[2], model)
    site = tmp_path / "site"
    assert main(["merge", *parts, "--input", str(moved), "--model", str(model), "-o", str(site),
                 "-q"]) == 0  # fmt: skip
    assert files_of(site) == one
    moved.write_bytes(UD.read_bytes() + b"\n")
    assert refused(capsys, "merge", *parts, "--input", str(moved), "-o", str(site)) == (
        f"atlas: error: {moved}: not the input the shards measured (its checksum differs)"
    )
    (model / "config.json").write_text("{}")
    assert refused(capsys, "merge", *parts, "--model", str(model), "-o", str(site)) == (
        f"atlas: error: --model {model}: not the model the shards ran (checksum differs)"
    )
    assert files_of(site) == one


def test_a_state_folder_cut_short_is_recognised_and_redone(states, tiny, capsys, monkeypatch,
                                                           tmp_path):  # fmt: skip
    """A kill while the state is written leaves only a ``.partial`` folder beside it: merge
    says so; the shard run again removes it and writes the state. A state folder whose file was
    cut short (a copy cut off) is refused by its checksum."""
    args, _ = tiny
    part = tmp_path / "part"

    def killed(folder):  # the process dies here: nothing after it runs, no clean-up either
        raise SystemExit("killed")

    monkeypatch.setattr(shards, "_sync", killed)
    monkeypatch.setattr(shards, "_remove_state", lambda folder: None)
    with pytest.raises(SystemExit):
        main(["build", *args, "--shard", "1/3", "--state-out", str(part), "-q"])
    monkeypatch.undo()
    [partial] = tmp_path.glob(".part.partial-*")
    assert not part.exists()
    assert refused(capsys, "merge", str(part), str(states / "2-of-3"), str(states / "3-of-3"),
                   "-o", str(tmp_path / "site")) == (
        f"atlas: error: {part}: no such shard state folder (a killed run cut it short: run its "
        "shard again)"
    )  # fmt: skip
    assert main(["build", *args, "--shard", "1/3", "--state-out", str(part), "-q"]) == 0
    assert not partial.exists()
    assert (part / "states.json").read_bytes() == (states / "1-of-3" / "states.json").read_bytes()

    cut = copy_state(states / "2-of-3", tmp_path / "cut")
    data = (cut / "states.npz").read_bytes()
    (cut / "states.npz").write_bytes(data[: len(data) // 2])
    assert refused(capsys, "merge", str(part), str(cut), str(states / "3-of-3"),
                   "-o", str(tmp_path / "site")) == (
        f"atlas: error: {cut}: states.npz is missing, cut short or changed (its checksum "
        "differs); run shard 2/3 again"
    )  # fmt: skip


def test_sharding_options_are_checked_in_one_line(capsys, tmp_path):
    out = str(tmp_path / "x")
    assert "give --state-out PART_DIR" in refused(capsys, "build", str(UD), "--shard", "1/2")
    assert "give --state-out PART_DIR" in refused(
        capsys, "build", str(UD), "--shard", "1/2", "--state-out", out, "-o", out
    )
    assert refused(capsys, "build", str(UD), "--state-out", out) == (
        "atlas: error: --state-out needs --shard K/N"
    )
    assert refused(capsys, "build", str(UD), "--ray", "auto", "-o", out) == (
        "atlas: error: --ray needs --shards N"
    )
    assert refused(capsys, "build", str(UD), "--gpus-per-shard", "1", "-o", out) == (
        "atlas: error: --gpus-per-shard needs --shards N"
    )
    with pytest.raises(SystemExit, match="2"):
        main(["build", str(UD), "--shard", "3/2", "--state-out", out])
    assert "K/N needs 1 ≤ K ≤ N" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):
        main(["build", str(UD), "--shards", "2", "--gpus-per-shard", "-1"])
    assert "--gpus-per-shard: must be 0 or more, got -1" in capsys.readouterr().err


def test_without_ray_shards_stop_with_one_line_naming_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is missing
    assert refused(capsys, "build", str(UD), "--shards", "2", "-o", str(tmp_path / "x")) == (
        "atlas: error: --shards needs Ray: pip install 'attention-atlas[ray]' (or use --shard "
        "K/N and atlas merge)"
    )
    assert not (tmp_path / "x").exists()


def test_a_shard_s_runner_takes_every_model_option_of_the_build(tiny_model):
    """A worker's model is loaded as a one-process build loads it (``build.runner_of``): its
    memory budget and length limit too (the workers once ignored --memory-gb)."""
    options = BuildOptions(model=str(tiny_model("bert")), device="cpu", memory_gb=0.25,
                           max_length=16)  # fmt: skip
    runner = shards.runner_for(options)
    assert runner.memory == int(0.25 * 2**30) and runner.max_length == 16
    assert shards.runner_for(options) is runner  # loaded once per process
