"""The output folder under concurrency, faults, kills, links and tampered manifests (issue 17).

Each class of case, not one instance: two builds at once (real processes, one paused at a
point the test controls), a failure at every step of the commit, SIGKILL at every step of it,
a link at every folder of the site, manifests that list what the atlas did not write. The
promise checked everywhere: DIR holds a whole site, the old or the new, the user's files are as
they were, and nothing of the atlas's is left beside or inside DIR.
"""

from __future__ import annotations

import errno
import importlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_output import BIG, SMALL, STORED_SITE, THEIRS, files_of, put, snapshot

from atlas import output
from atlas.cli import main
from atlas.output import MANIFEST, OutputError, write

build_module = importlib.import_module("atlas.build")  # atlas.build is also the function
OLD = {**THEIRS, **BIG, MANIFEST: output.manifest_bytes(BIG)}
NEW = {**THEIRS, **SMALL, MANIFEST: output.manifest_bytes(SMALL)}


def site_with_theirs(tmp_path: Path) -> Path:
    out = tmp_path / "site"
    write(BIG, out)
    put(out, THEIRS)
    assert files_of(out) == OLD
    return out


def leftovers(parent: Path) -> list[str]:
    """Anything of the atlas's own work left anywhere under ``parent``."""
    marks = (".tmp-", output.INSIDE, output.COMMIT, ".atlas-tmp")
    return sorted(str(p) for p in parent.rglob("*") if any(m in p.name for m in marks))


def in_child(work: Callable[[], None], *, wait_for: Path | None = None) -> int:
    """Run ``work`` in a forked child process; returns its pid. With ``wait_for``, return once
    that file exists (the child made it), or fail."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            work()
        except BaseException:
            code = 3
        os._exit(code)
    if wait_for is not None:
        deadline = time.monotonic() + 30
        while not wait_for.exists():
            done, status = os.waitpid(pid, os.WNOHANG)
            assert done == 0, f"the child ended before it paused (status {status})"
            assert time.monotonic() < deadline, "the child never paused"
            time.sleep(0.01)
    return pid


def ended(pid: int) -> int:
    """Wait for the child; its exit status, or minus the signal that ended it."""
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def pause_after_staging(paused: Path, go: Path) -> None:
    """In the child: stage, then say so and wait for ``go`` before committing."""
    real = output._stage

    def stage(*args):
        result = real(*args)
        paused.write_text(str(os.getpid()))
        while not go.exists():
            time.sleep(0.01)
        return result

    output._stage = stage


# 1. Two builds at once into one folder.


@pytest.mark.parametrize("second", ["write", "render", "render-clean", "bad-theme"])
def test_a_second_build_into_a_folder_in_use_is_refused(tmp_path, capsys, second):
    """The first build, paused with its site staged, then goes on and writes a whole site; the
    second is refused in one line naming the first's pid, and touches nothing (on the old
    code it deleted the first one's staging folder, so the first died mid-commit)."""
    out = site_with_theirs(tmp_path)
    paused, go = tmp_path / "paused", tmp_path / "go"

    def first() -> None:
        pause_after_staging(paused, go)
        write(SMALL, out)

    theme = tmp_path / "theme"
    put(theme, {"index.html": b"{{ oops("})
    pid = in_child(first, wait_for=paused)
    try:
        before = snapshot(tmp_path)
        if second == "write":
            with pytest.raises(OutputError) as err:
                write(BIG, out)
            message = str(err.value)
        else:
            options = {"render-clean": ["--clean"], "bad-theme": ["--templates", str(theme)]}
            code = main(
                ["render", str(STORED_SITE), "-o", str(out), "-q", *options.get(second, [])]
            )
            assert code == 2
            message = capsys.readouterr().err
            assert message.count("\n") == 1
            message = message.strip().removeprefix("atlas: error: ")
        assert message == (
            f"{out}: another atlas build is writing into this folder (pid {pid}); "
            "wait for it to end or choose another -o"
        )
        assert snapshot(tmp_path) == before
    finally:
        go.write_text("go")
        assert ended(pid) == 0
    assert files_of(out) == NEW
    assert leftovers(tmp_path) == []


def test_the_lock_is_held_while_the_model_runs(tmp_path, monkeypatch, tiny_model):
    """From the check before the model loads to the end of the commit: a build into the same
    folder started while the model runs is refused."""
    source = tmp_path / "in.txt"
    source.write_text("The cat sat .\n")
    out = tmp_path / "site"
    seen = []
    real_runner = build_module.Runner

    def runner(*args, **kwargs):
        with pytest.raises(OutputError, match="another atlas build is writing into this folder"):
            in_thread_write(out)
        seen.append(True)
        return real_runner(*args, **kwargs)

    monkeypatch.setattr(build_module, "Runner", runner)
    build_module.build(source, out, model=str(tiny_model("bert")), importance=0)
    assert seen == [True]
    assert (out / MANIFEST).is_file()


def in_thread_write(out: Path) -> None:
    """A write from another thread: another build as far as the lock is concerned."""
    import threading

    failure: list[BaseException] = []

    def run() -> None:
        try:
            write(SMALL, out)
        except BaseException as err:
            failure.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def test_a_stale_staging_folder_of_a_live_build_is_left(tmp_path):
    """A staging folder with the marker is removed only when no live build holds its lock."""
    out = tmp_path / "site"
    live = tmp_path / ".site.tmp-live"
    live.mkdir()
    (live / output.PENDING).write_bytes(output.manifest_bytes({}))
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert output._lock(fd) is True
        write(SMALL, out)
        assert (live / output.PENDING).is_file(), "held by a live build: left"
    finally:
        os.close(fd)
    write(SMALL, out)
    assert not live.exists(), "its build is gone: removed"


def test_dot_in_two_sibling_folders_at_once(tmp_path, monkeypatch):
    """`-o .` stages as `.NAME.tmp-*`, named after the resolved folder (the old code staged
    every `-o .` as `..tmp-*` beside it and removed any such folder): a build in one folder
    while another runs in its sibling leaves the other's staging alone."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    paused, go = tmp_path / "paused", tmp_path / "go"

    def first() -> None:
        os.chdir(a)
        pause_after_staging(paused, go)
        write(SMALL, Path("."))

    pid = in_child(first, wait_for=paused)
    try:
        staging = [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
        assert len(staging) == 1 and staging[0].startswith(".a.tmp-")
        monkeypatch.chdir(b)
        assert main(["render", str(STORED_SITE), "-o", ".", "-q"]) == 0
    finally:
        go.write_text("go")
        assert ended(pid) == 0
    assert files_of(a) == {**SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    assert (b / "index.html").is_file()
    assert leftovers(tmp_path) == []


# 3. A failure at each step of the commit: the old site, whole, at once; no --clean needed.


def count_calls(monkeypatch, name: str, module=os) -> list[int]:
    """Count the calls of ``module.name`` during one commit of SMALL over BIG."""
    calls = [0]
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def commit_steps(tmp_path: Path, monkeypatch, clean: bool = False) -> int:
    """How many os.replace calls one commit of SMALL over BIG (with THEIRS) makes."""
    out = site_with_theirs(tmp_path / "count")
    with monkeypatch.context() as patch:
        calls = count_calls(patch, "replace")
        write(SMALL, out, clean=clean, force=clean)
    return calls[0]


def fail_at(monkeypatch, step: int, code: int) -> None:
    """Make the ``step``-th os.replace fail with ``code`` (ENOSPC: a full disk; EACCES: a
    read-only subfolder, which root's chmod cannot make)."""
    real = os.replace
    calls = [0]

    def replace(source, target):
        calls[0] += 1
        if calls[0] == step:
            raise OSError(code, os.strerror(code))
        return real(source, target)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("clean", [False, True], ids=["keep", "clean"])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES], ids=["ENOSPC", "EACCES"])
def test_a_failure_at_every_step_of_the_commit(tmp_path, monkeypatch, code, clean):
    steps = commit_steps(tmp_path, monkeypatch, clean)
    for step in range(1, steps + 1):
        root = tmp_path / f"step{step}"
        out = site_with_theirs(root)
        with monkeypatch.context() as patch:
            fail_at(patch, step, code)
            with pytest.raises(OutputError, match=f"cannot write the site \\({os.strerror(code)}"):
                write(SMALL, out, clean=clean, force=clean)
        assert files_of(out) == OLD, f"step {step}: the old site, whole"
        assert leftovers(root) == [], step
        write(SMALL, out)  # and the next build, without --clean, writes the new one
        assert files_of(out) == NEW, step


def test_a_full_disk_while_copying_into_a_mount_point(tmp_path, monkeypatch):
    """DIR on another file system: every move is a copy, and the disk fills on one of them."""
    out = site_with_theirs(tmp_path)
    real_replace, real_copy = os.replace, output.shutil.copyfile
    copies = [0]

    def replace(source, target):
        if ".tmp-" in str(source):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real_replace(source, target)

    def copyfile(source, target, **kwargs):
        copies[0] += 1
        if copies[0] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_copy(source, target, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(output.shutil, "copyfile", copyfile)
    with pytest.raises(OutputError, match="No space left on device"):
        write(SMALL, out)
    assert files_of(out) == OLD
    assert leftovers(tmp_path) == []
    monkeypatch.setattr(output.shutil, "copyfile", real_copy)
    write(SMALL, out)
    assert files_of(out) == NEW


# 5. Kills during the commit, and Ctrl-C or SIGTERM during it.


def kill_at(step: int) -> None:
    """In the child: SIGKILL itself at the ``step``-th os.replace."""
    real = os.replace
    calls = [0]

    def replace(source, target):
        calls[0] += 1
        if calls[0] == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(source, target)

    os.replace = replace


@pytest.mark.parametrize("linked", [False, True], ids=["folder", "linked-folder"])
def test_sigkill_at_every_step_of_the_commit(tmp_path, monkeypatch, linked):
    """A real process killed at each step: the next build finds a whole site (the old one
    before the commit point, the new after) and leaves nothing behind; with DIR a link, too
    (staging goes beside the link's target, and so does the cleanup)."""
    steps = commit_steps(tmp_path, monkeypatch)
    for step in range(1, steps + 2):
        root = tmp_path / f"step{step}"
        target = site_with_theirs(root)
        out = target
        if linked:
            out = root / "link"
            out.symlink_to(target)

        def commit(step: int = step, out: Path = out) -> None:
            kill_at(step)
            write(SMALL, out)

        pid = in_child(commit)
        assert ended(pid) == (-signal.SIGKILL if step <= steps else 0), step
        with output.claim(out):  # what the next build does first
            pass
        assert files_of(target) in (OLD, NEW), f"step {step}: a whole site"
        assert leftovers(root) == [], step
        write(SMALL, out)
        assert files_of(target) == NEW


def test_sigkill_while_staging(tmp_path):
    """Killed with its site staged: DIR untouched, and the next build removes the staging
    folder (its lock died with its process) and leaves nothing behind."""
    out = site_with_theirs(tmp_path)
    paused, go = tmp_path / "paused", tmp_path / "go"

    def staging() -> None:
        pause_after_staging(paused, go)
        write(SMALL, out)

    pid = in_child(staging, wait_for=paused)
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".site.tmp-")]
    os.kill(pid, signal.SIGKILL)
    assert ended(pid) == -signal.SIGKILL
    assert files_of(out) == OLD
    write(SMALL, out)
    assert files_of(out) == NEW
    assert leftovers(tmp_path) == []


def test_sigkill_while_putting_the_old_site_back(tmp_path, monkeypatch):
    """A kill during the recovery of a kill: the recovery after it still finishes."""
    steps = commit_steps(tmp_path, monkeypatch)
    for again in (1, 3, 6):
        root = tmp_path / f"again{again}"
        out = site_with_theirs(root)

        def commit(out: Path = out) -> None:
            kill_at(steps - 1)
            write(SMALL, out)

        def recover(out: Path = out, again: int = again) -> None:
            kill_at(again)
            output.recover(out)

        assert ended(in_child(commit)) == -signal.SIGKILL
        assert ended(in_child(recover)) in (-signal.SIGKILL, 0)
        with output.claim(out):
            pass
        assert files_of(out) == OLD
        assert leftovers(root) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_during_the_commit_says_the_site_was_written(
    tmp_path, monkeypatch, capsys, signum
):
    """Held until the commit ends: the site is whole, and the CLI says so (the old code said
    "nothing was written")."""
    out = tmp_path / "site"
    real = os.replace
    calls = [0]

    def replace(source, target):
        calls[0] += 1
        if calls[0] == 5:
            signal.raise_signal(signum)
        return real(source, target)

    monkeypatch.setattr(os, "replace", replace)
    assert main(["render", str(STORED_SITE), "-o", str(out), "-q"]) == 130
    err = capsys.readouterr().err
    assert err == f"atlas: interrupted after the whole site was written to {out}\n"
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert sorted(files_of(out)) == sorted([*listed, MANIFEST])
    assert leftovers(tmp_path) == []


# 4. Links anywhere on the way.


@pytest.mark.parametrize("folder", ["heads", "sentences", "data"])
@pytest.mark.parametrize("where", ["outside", "inside"])
def test_a_linked_folder_of_the_site_is_refused(tmp_path, folder, where):
    """The commit never writes through a link (the old code overwrote outside/L01-H01.html)."""
    out = tmp_path / "site"
    write(SMALL, out)
    target = tmp_path / "outside" if where == "outside" else out / "elsewhere"
    put(target, {"0002.html": b"the user's", "index.html": b"the user's"})
    if (out / folder).exists():
        for path in (out / folder).iterdir():
            path.unlink()
        (out / folder).rmdir()
    (out / folder).symlink_to(target)
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match=f"site/{folder}: is a link; the atlas does not write"):
        write(BIG, out)
    assert snapshot(tmp_path) == before
    write(BIG, out, clean=True)  # --clean removes the link, not what it points to
    assert not (out / folder).is_symlink()
    assert files_of(target) == {"0002.html": b"the user's", "index.html": b"the user's"} or (
        where == "inside"
    )
    assert files_of(out) == {**BIG, MANIFEST: output.manifest_bytes(BIG)}


def test_a_link_where_the_site_writes_a_file(tmp_path):
    """A link of the user's named like a page is the user's: refused; with --force the link is
    replaced, and the file it points to is never written."""
    out = tmp_path / "site"
    write(SMALL, out)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"the user's")
    (out / "index.html").unlink()
    (out / "index.html").symlink_to(secret)
    with pytest.raises(OutputError, match=r"would be overwritten \(index.html\)"):
        write(SMALL, out)
    write(SMALL, out, force=True)
    assert secret.read_bytes() == b"the user's"
    assert not (out / "index.html").is_symlink()
    assert files_of(out) == {**SMALL, MANIFEST: output.manifest_bytes(SMALL)}


def test_a_linked_parent_of_the_output(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real)
    write(BIG, tmp_path / "via" / "site")
    write(SMALL, tmp_path / "via" / "site")
    assert files_of(real / "site") == {**SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    assert leftovers(tmp_path) == []


# 6. Tampered manifests.


def tamper(out: Path, files: dict) -> None:
    body = {"format": output.FORMAT, "atlas_version": "0", "files": files}
    (out / MANIFEST).write_text(json.dumps(body))


def test_a_listed_file_the_atlas_did_not_write_is_not_deleted(tmp_path):
    """The old code deleted anything a manifest listed; now only what still has the content
    the atlas wrote (its sha256)."""
    out = site_with_theirs(tmp_path)
    listed = json.loads((out / MANIFEST).read_text())["files"]
    tamper(out, {**listed, "notes.md": output.digest(b"what the atlas wrote"), "CNAME": "0" * 64})
    write(SMALL, out)
    assert files_of(out) == NEW


@pytest.mark.parametrize(
    "path", [".git/config", ".git/HEAD", "a/.GIT/x", "/etc/passwd", "../x", ".atlas-commit-x/y"]
)
def test_a_manifest_listing_an_unsafe_path_is_no_manifest(tmp_path, path):
    out = site_with_theirs(tmp_path)
    listed = json.loads((out / MANIFEST).read_text())["files"]
    tamper(out, {**listed, path: output.digest(THEIRS.get(path, b""))})
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="has a bad file list"):
        write(SMALL, out)
    assert snapshot(tmp_path) == before


def test_an_edited_page_is_kept_or_refused(tmp_path, caplog, monkeypatch):
    """A page the user edited is theirs now: kept when the new site no longer has it, refused
    when the new site writes it (unless --force)."""
    monkeypatch.setattr(logging.getLogger("atlas"), "propagate", True)  # the CLI turns it off
    caplog.set_level(logging.WARNING, logger="atlas")  # and -q raises its level
    out = tmp_path / "site"
    write(BIG, out)
    (out / "sentences" / "0002.html").write_bytes(b"two, with my notes")
    with pytest.raises(OutputError, match=r"changed since it wrote them\) would be overwritten"):
        write({**SMALL, "sentences/0002.html": b"two, again"}, out)
    write(SMALL, out)
    assert (out / "sentences" / "0002.html").read_bytes() == b"two, with my notes"
    assert "kept 1 file(s)" in caplog.text
    (out / "index.html").write_bytes(b"my index")
    write(SMALL, out, force=True)
    assert (out / "index.html").read_bytes() == SMALL["index.html"]


def test_an_older_manifest_without_hashes(tmp_path):
    """Format 1 (a list, no hashes) still makes a site; its files are replaced where the new
    site writes them again, and kept where it does not (nothing proves they are the atlas's)."""
    out = tmp_path / "site"
    put(out, {**BIG, "notes.md": b"mine"})
    body = {"format": output.FORMAT_1, "files": sorted([*BIG, "notes.md"])}
    (out / MANIFEST).write_text(json.dumps(body))
    write(SMALL, out)
    stale = {p: c for p, c in BIG.items() if p not in SMALL}
    assert files_of(out) == {
        **stale,
        "notes.md": b"mine",
        **SMALL,
        MANIFEST: output.manifest_bytes(SMALL),
    }


# 13a. An existing DIR that cannot be written, under a parent that can.


def test_a_read_only_folder_is_refused_before_the_model_loads(tmp_path, monkeypatch, capsys):
    """The old code probed only the parent, so the model ran and the write failed after it.
    Root writes through chmod, so the probe fails as a read-only mount makes it fail; the model
    named here does not exist, so an error about it would mean the model was loaded first."""
    out = tmp_path / "site"
    out.mkdir()
    real = output._probe
    monkeypatch.setattr(
        output, "_probe", lambda f: "Read-only file system" if f == out else real(f)
    )
    source = tmp_path / "in.txt"
    source.write_text("The cat sat .\n")
    code = main(["build", str(source), "-o", str(out), "--model", str(tmp_path / "none")])
    assert code == 2
    assert capsys.readouterr().err == (
        f"atlas: error: {out}: cannot write into this folder (Read-only file system)\n"
    )
