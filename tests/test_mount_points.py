"""An output folder on another file system than the folder it is staged in (issue 8).

``-o /mnt/x`` where /mnt/x is a mount point stages the site in /mnt, another file system, so
every rename into DIR fails with EXDEV; a file bound into DIR (a mount point itself) cannot be
renamed over at all (EBUSY). Both are tested twice: with real mounts in a user and mount
namespace (``unshare``), skipped only where the kernel or container forbids one, and by making
``os.replace`` fail the way those mounts make it fail.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_output import BIG, SMALL, STORED_SITE, THEIRS, files_of, put

from atlas import output
from atlas.cli import main
from atlas.output import MANIFEST, write

ROOT = Path(__file__).resolve().parent.parent


def nothing_beside(parent: Path, *names: str) -> None:
    """No staging folder, no `.old` folder, no half-copied file left anywhere under ``parent``."""
    left = [
        p.relative_to(parent).as_posix()
        for p in parent.rglob("*")
        if ".tmp-" in p.name or ".old" in p.name or p.name.endswith(".atlas-tmp")
    ]
    assert left == []
    assert sorted(p.name for p in parent.iterdir()) == sorted(names)


def assert_small_site(out: Path) -> None:
    """SMALL written over BIG: stale pages gone, the user's files as they were, the manifest
    naming exactly the site's files."""
    assert files_of(out) == {**THEIRS, **SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    assert list(json.loads((out / MANIFEST).read_bytes())["files"]) == sorted(SMALL)


def failing_replace(monkeypatch, code: int, staging_only: bool = True, onto: Path | None = None):
    """Make os.replace fail with ``code`` for moves out of the staging folder into DIR (or, with
    ``onto``, for every move onto or off that one file), as a mount makes it fail."""
    real = os.replace
    failed = []

    def replace(source, target):
        from_staging = ".tmp-" in str(source)  # the staging folder, .DIR.tmp-*
        if (onto is None and from_staging) or (
            onto is not None and onto in (Path(source), Path(target))
        ):
            failed.append(target)
            raise OSError(code, os.strerror(code))
        real(source, target)

    monkeypatch.setattr(os, "replace", replace)
    return failed


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EBUSY], ids=["EXDEV", "EBUSY"])
def test_moves_that_cannot_rename_fall_back_to_copies(tmp_path, monkeypatch, code):
    out = tmp_path / "site"
    failed = failing_replace(monkeypatch, code)
    write(BIG, out)
    put(out, THEIRS)
    write(SMALL, out)
    assert len(failed) == len(BIG) + 1 + len(SMALL) + 1, "every move took the fallback"
    assert_small_site(out)
    nothing_beside(tmp_path, "site")


@pytest.mark.slow  # two renders through the command line
@pytest.mark.parametrize("code", [errno.EXDEV, errno.EBUSY], ids=["EXDEV", "EBUSY"])
def test_the_current_folder_on_another_file_system(tmp_path, monkeypatch, code):
    """`-o .` where . is a mount point, built twice through the command line: the second build
    removes a page the first one listed and keeps the user's files."""
    site = tmp_path / "gh-pages"
    site.mkdir()
    (site / "CNAME").write_text("atlas.example.org\n")
    monkeypatch.chdir(site)
    failed = failing_replace(monkeypatch, code)
    assert main(["render", str(STORED_SITE), "-o", ".", "-q", "--force"]) == 0
    first = files_of(site)
    manifest = json.loads(first[MANIFEST])
    stale = {"sentences/9999.html": b"a page of an older corpus"}
    older = {
        **manifest,
        "files": {**manifest["files"], **{p: output.digest(c) for p, c in stale.items()}},
    }
    put(site, {**stale, MANIFEST: json.dumps(older).encode()})
    put(site, {"notes.md": b"mine"})
    assert main(["render", str(STORED_SITE), "-o", ".", "-q"]) == 0
    assert failed
    assert files_of(site) == {**first, "notes.md": b"mine"}
    assert sorted(files_of(site)) == sorted([*manifest["files"], MANIFEST, "CNAME", "notes.md"])
    nothing_beside(tmp_path, "gh-pages")


def test_a_file_that_is_itself_a_mount_point_is_written_in_place(tmp_path, monkeypatch):
    """Nothing can be renamed over a file bound into DIR: it is overwritten where it is."""
    out = tmp_path / "site"
    write(BIG, out)
    bound = out / "index.html"
    inode = bound.stat().st_ino
    failed = failing_replace(monkeypatch, errno.EBUSY, onto=bound)
    write(SMALL, out)
    assert len(failed) == 3, "moving it aside, from the staging folder, then from a copy"
    assert bound.stat().st_ino == inode
    assert files_of(out) == {**SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    nothing_beside(tmp_path, "site")


def test_another_error_while_moving_is_still_an_error(tmp_path, monkeypatch):
    out = tmp_path / "site"
    failing_replace(monkeypatch, errno.EACCES)
    with pytest.raises(output.OutputError, match=r"site: cannot write the site \(Permission"):
        write(SMALL, out)
    nothing_beside(tmp_path)  # not even the folder made for it


# Real mounts: a tmpfs as DIR, and a file bound into it, in a namespace of their own.

SCENARIO = """
import json, os, subprocess, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_output import BIG, SMALL, THEIRS, STORED_SITE, put, snapshot
from atlas.cli import main
from atlas.output import write

tmp = Path(sys.argv[1])
site, dot, bound = tmp / "site", tmp / "dot", tmp / "bound.html"
result = {}
mount = lambda *args: subprocess.run(["mount", *args], check=True)
text = lambda snap: {k: None if v is None else v.decode("latin-1") for k, v in snap.items()}

mount("-t", "tmpfs", "atlas-test", str(site))
write(BIG, site)
put(site, THEIRS)
write(SMALL, site)
result["site"] = text(snapshot(site))

bound.write_bytes(b"the user's file, bound into the site")
mount("--bind", str(bound), str(site / "index.html"))
# the bound file is the user's (not what the atlas wrote there): written over with --force
write({**SMALL, "index.html": b"<h1>written in place</h1>"}, site, force=True)
result["bound"] = bound.read_bytes().decode()

mount("-t", "tmpfs", "atlas-test", str(dot))
os.chdir(dot)
codes = [main(["render", str(STORED_SITE), "-o", ".", "-q"]) for _ in range(2)]
result["dot"] = {"codes": codes, "files": text(snapshot(dot))}
result["beside"] = sorted(p.name for p in tmp.iterdir())
(tmp / "result.json").write_text(json.dumps(result))
"""


def in_mount_namespace(tmp_path: Path, script: str) -> subprocess.CompletedProcess:
    """Run ``script`` (Python) as root of a new user and mount namespace, or skip the test if
    this machine cannot make one with a tmpfs in it."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare command: cannot make a mount namespace here")
    namespace = [unshare, "--user", "--map-root-user", "--mount"]
    probe = subprocess.run(
        [*namespace, "mount", "-t", "tmpfs", "atlas-probe", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.strip()}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.run(
        [*namespace, sys.executable, "-c", script, str(tmp_path), str(ROOT / "tests")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow  # mounts file systems
def test_real_mount_points(tmp_path):
    for name in ("site", "dot"):
        (tmp_path / name).mkdir()
    ran = in_mount_namespace(tmp_path, SCENARIO)
    assert ran.returncode == 0, ran.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    expected = {**THEIRS, **SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    assert {k: v for k, v in result["site"].items() if v is not None} == {
        k: v.decode("latin-1") for k, v in expected.items()
    }
    assert result["bound"] == "<h1>written in place</h1>"
    assert result["dot"]["codes"] == [0, 0]
    reference = tmp_path / "reference"
    assert main(["render", str(STORED_SITE), "-o", str(reference), "-q"]) == 0
    assert {k: v for k, v in result["dot"]["files"].items() if v is not None} == {
        k: v.decode("latin-1") for k, v in files_of(reference).items()
    }
    assert result["beside"] == ["bound.html", "dot", "site"]


READ_ONLY_PARENT = """
import json, subprocess, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_output import BIG, SMALL, THEIRS, STORED_SITE, put, snapshot
from atlas.cli import main
from atlas.output import write

tmp = Path(sys.argv[1])
parent = tmp / "parent"
site = parent / "site"
mount = lambda *args: subprocess.run(["mount", *args], check=True)
text = lambda snap: {k: None if v is None else v.decode("latin-1") for k, v in snap.items()}
mount("-t", "tmpfs", "atlas-parent", str(parent))
site.mkdir()
mount("-t", "tmpfs", "atlas-site", str(site))
mount("-o", "remount,ro", str(parent))
result = {"parent_read_only": subprocess.run(["touch", str(parent / "x")]).returncode != 0}
write(BIG, site)
put(site, THEIRS)
write(SMALL, site)
result["site"] = text(snapshot(site))
write(SMALL, site, clean=True)
result["clean"] = text(snapshot(site))
result["render"] = main(["render", str(STORED_SITE), "-o", str(site), "-q", "--clean"])
result["rendered"] = sorted(p.name for p in site.iterdir())
(tmp / "result.json").write_text(json.dumps(result))
"""


@pytest.mark.slow  # mounts file systems
def test_a_writable_mount_point_under_a_read_only_parent(tmp_path):
    """DIR a tmpfs of its own under a read-only file system: the site is staged inside DIR,
    the user's files are kept, --clean keeps only the site, and no staging folder is left."""
    (tmp_path / "parent").mkdir()
    ran = in_mount_namespace(tmp_path, READ_ONLY_PARENT)
    assert ran.returncode == 0, ran.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["parent_read_only"]
    expected = {**THEIRS, **SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    assert {k: v for k, v in result["site"].items() if v is not None} == {
        k: v.decode("latin-1") for k, v in expected.items()
    }
    clean = {**SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    assert {k: v for k, v in result["clean"].items() if v is not None} == {
        k: v.decode("latin-1") for k, v in clean.items()
    }
    assert result["render"] == 0
    assert not [name for name in result["rendered"] if "staging" in name or ".tmp-" in name]
    assert "index.html" in result["rendered"] and MANIFEST in result["rendered"]


def parent_refuses(monkeypatch, out: Path) -> None:
    """Make out's parent take no new file or folder, as a read-only file system does."""
    parent = out.resolve().parent
    real_mkdtemp, real_probe = output.tempfile.mkdtemp, output._probe

    def mkdtemp(*args, dir=None, **kwargs):
        if Path(dir).resolve() == parent:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkdtemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(output.tempfile, "mkdtemp", mkdtemp)

    def probe(folder: Path) -> str:
        return "Read-only file system" if folder.resolve() == parent else real_probe(folder)

    monkeypatch.setattr(output, "_probe", probe)


def test_read_only_parent_stages_inside_the_folder(tmp_path, monkeypatch):
    out = tmp_path / "site"
    out.mkdir()
    parent_refuses(monkeypatch, out)
    write(BIG, out)
    put(out, THEIRS)
    write(SMALL, out)
    assert_small_site(out)
    write(SMALL, out, clean=True)
    assert files_of(out) == {**SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_read_only_parent_and_no_folder_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "site"
    parent_refuses(monkeypatch, out)
    with pytest.raises(output.OutputError, match=r"cannot write into .*Read-only file system"):
        write(SMALL, out)
    assert not out.exists()


def test_a_killed_build_staged_inside_is_cleaned_up(tmp_path, monkeypatch):
    """What a hard kill leaves inside DIR (the staging folder with its pending manifest) does
    not make DIR look like someone's folder, and the next build removes it; a folder of the
    user's with a similar name but no pending manifest stays."""
    out = tmp_path / "site"
    left = out / ".atlas-staging-abc123"
    left.mkdir(parents=True)
    (left / ".pending-manifest.json").write_bytes(output.manifest_bytes({}))
    (left / "index.html").write_bytes(b"half")
    parent_refuses(monkeypatch, out)
    write(SMALL, out)
    assert files_of(out) == {**SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    theirs = out / ".atlas-staging-mine"
    (theirs / "notes.md").parent.mkdir()
    (theirs / "notes.md").write_bytes(b"mine")
    write(SMALL, out)
    assert (theirs / "notes.md").read_bytes() == b"mine"


FULL_AND_READ_ONLY = """
import json, os, subprocess, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_output import THEIRS, put, snapshot
from atlas.output import OutputError, write

tmp = Path(sys.argv[1])
mount = lambda *args: subprocess.run(["mount", *args], check=True)
text = lambda snap: {k: None if v is None else v.decode("latin-1") for k, v in snap.items()}
result = {}

# A full disk: DIR a 1 MB tmpfs, so every move is a copy (EXDEV), and the new site is too big.
full = tmp / "full"
mount("-t", "tmpfs", "-o", "size=1m", "atlas-full", str(full))
old = {"index.html": b"old", **{f"data/{i}.js": b"o" * 100_000 for i in range(4)}}
write(old, full)
put(full, THEIRS)
result["full_before"] = text(snapshot(full))
try:
    write({"index.html": b"new", **{f"data/{i}.js": b"n" * 100_000 for i in range(12)}}, full)
    result["full_error"] = ""
except OutputError as err:
    result["full_error"] = str(err)
result["full_after"] = text(snapshot(full))
write({"index.html": b"again", "data/0.js": b"small"}, full)  # re-render: no --clean needed
result["full_again"] = text(snapshot(full))

# A read-only subfolder: site/sentences bound read-only into the site.
site = tmp / "site"
mount("-t", "tmpfs", "atlas-site", str(site))
old = {"index.html": b"old", "sentences/1.html": b"old one", "z.html": b"old z"}
write(old, site)
mount("--bind", str(site / "sentences"), str(site / "sentences"))
mount("-o", "remount,ro,bind", str(site / "sentences"))
result["ro_before"] = text(snapshot(site))
try:
    write({"index.html": b"new", "sentences/1.html": b"new one", "z.html": b"new z"}, site)
    result["ro_error"] = ""
except OutputError as err:
    result["ro_error"] = str(err)
result["ro_after"] = text(snapshot(site))
result["beside"] = sorted(p.name for p in tmp.iterdir())
(tmp / "result.json").write_text(json.dumps(result))
"""


def test_a_full_disk_and_a_read_only_subfolder_while_committing(tmp_path):
    """Real mounts: the commit fails midway (no space; a read-only subfolder) and the old site
    is put back whole; after the full disk, the next build writes without --clean. The old
    code left a manifest naming files that were not there."""
    for name in ("full", "site"):
        (tmp_path / name).mkdir()
    ran = in_mount_namespace(tmp_path, FULL_AND_READ_ONLY)
    assert ran.returncode == 0, ran.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert "cannot write the site (No space left on device)" in result["full_error"]
    assert result["full_after"] == result["full_before"]
    assert result["full_again"]["index.html"] == "again"
    assert "data/1.js" not in result["full_again"]
    assert "cannot write the site (Read-only file system)" in result["ro_error"]
    assert result["ro_after"] == result["ro_before"]
    assert result["beside"] == ["full", "site"]
    for key in ("full_after", "full_again", "ro_after"):
        assert not [p for p in result[key] if "atlas-commit" in p or "atlas-tmp" in p], key
