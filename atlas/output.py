"""Write the site into its output folder, replacing only what the atlas wrote before.

An output folder is often more than the site: a ``CNAME``, a ``.git/`` to publish it from, the
input file, notes. So the atlas keeps a manifest in the site of the files it wrote, with the
sha256 of each, and a rebuild replaces and removes exactly those that still hold what it wrote,
and touches nothing else.

The manifest, ``.atlas-manifest.json``, is byte-stable (no times, no pids), so that two builds
of the same input stay byte-identical::

    {
     "format": "attention-atlas-manifest/2",
     "atlas_version": "0.2.0",
     "files": {".nojekyll": "e3b0c4...", "assets/atlas.css": "9f86d0...", ...}
    }

``files`` maps every file the build wrote (relative, ``/``-separated, sorted) to the sha256 of
its content; the manifest does not list itself. A folder is an atlas site when its manifest
parses, has this ``format`` (or format 1, below) and lists only plain relative paths: none
absolute, none with ``..``, none in a ``.git`` folder, none of the atlas's own names. Nothing
else makes a folder a site (not an ``atlas.json``, which may be anyone's file).

A listed file is the atlas's only while it is a plain file (not a link), reached through plain
folders, whose sha256 is still the manifest's. One the user edited, or one a tampered manifest
lists, is the user's: kept where the new site does not write it (a warning names it), refused
where it does (unless ``force``). A format-1 manifest (atlas 0.2.0 and older: a list, no
hashes) still makes a site, but nothing proves its files are the atlas's: those the new site
writes again are replaced, the others are kept, and the warning names them.

For an output folder DIR:

- missing or empty: it is created and written.
- an atlas site: the new files are written; the atlas's files that the new build no longer
  writes are removed, then the folders that removal left empty. Nothing else is touched.
- not empty and not a site: refused, unless ``force``: then the files are written, replacing
  files of the same name, and nothing is removed.
- a file the build writes exists and is not the atlas's (above): refused unless ``force``, so
  a user's file is never overwritten silently. A folder of the user's where the site has a
  file, a file where the site has a folder, or a link where the site has a folder (the commit
  never writes through a link, wherever it points), is refused unless ``clean``.
- ``clean``: everything else in DIR is removed too, so that it holds the site and nothing more
  (a link is removed, never what it points to). It is refused on a non-empty folder that is not
  a site unless ``force`` is given as well.

One build at a time (``claim``): a build holds an OS lock (flock) on DIR itself from the check
before the model loads to the end of the commit. No lock file is written (so none is left by
a kill, and none is needed beside a read-only parent); the lock goes with the process, however
it ends. A second build into DIR is refused in one line naming the first one's pid (on a file
system without flock, some network ones, builds are not kept apart; a debug line says so). DIR is
resolved once: a link to it is followed, and its staging folder and the cleanup of a killed
build's both sit beside the real folder.

How a failed or killed build is kept from leaving half a site:

1. Every refusal is decided before DIR is touched: the folder itself before anything is
   written (``check_output``: DIR itself, or its nearest existing parent, must take a new
   file), the user's files, links and folders in the way once the staged site's list of files
   is known (``_plan``).
2. Staging: every file, as the renderer makes it, and the new manifest, are written into a new
   folder ``.NAME.tmp-*`` beside DIR (NAME: the resolved folder's name, so ``-o .`` in two
   folders never mix). The folder holds a marker written first and removed last, and its own
   lock. The slow part that can fail (a full disk, a template error) happens here, before DIR
   is touched; on any error or Ctrl-C the staging folder is removed and DIR is as it was.
3. Commit (``_commit``), through a journal in a folder of its own inside DIR
   (``.atlas-commit-*``, on DIR's file system): the list of new files and their sha256 is
   written first; then the old files the commit replaces or removes (with ``clean``,
   everything else in DIR) are moved aside into it, renames that need no space; then each
   staged file is moved in (``os.replace``, atomic per file), then the new manifest; then the
   journal is renamed: the commit point. Only then are the old files deleted.
   A failure before the commit point (a full disk, a read-only subfolder: EACCES, EROFS) puts
   everything back at once, the old site whole, and the error says why. Ctrl-C and SIGTERM are
   held until the commit ends; the CLI then says the site was written. A kill (SIGKILL, OOM)
   leaves the journal: the next build into DIR, holding the lock, first puts the old site back
   (or, past the commit point, finishes removing the old files), then removes the staging
   folders no live build holds (their lock is free). Files are not fsynced: a power cut may
   lose what the kernel had not yet written.
   Where a rename cannot work, a file is copied into the commit folder and renamed from there
   (DIR a mount point: the staging folder is on another file system), or written in place (the
   target is itself a mount point, a file bound into DIR; its old content is copied aside).

Where DIR's parent cannot be written but DIR can (a writable mount point under a read-only
parent), the staging folder is made inside DIR instead, as ``DIR/.atlas-staging-*``: the same
steps, renames within DIR, and the folder is removed at the end (or by the next build, if a
hard kill left it); ``clean`` never removes it while it is in use.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath

from . import __version__

try:
    import fcntl
except ImportError:  # no POSIX locks (Windows): builds are then not kept apart
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MANIFEST = ".atlas-manifest.json"
FORMAT = "attention-atlas-manifest/2"
FORMAT_1 = "attention-atlas-manifest/1"  # a list of files without hashes (atlas 0.2.0 and older)
# The staging folder's marker, written first and removed last, so a staging folder that a killed
# build left is known as the atlas's by its content as well as its name.
PENDING = ".pending-manifest.json"
# The staging folder inside DIR, used only where DIR's parent cannot take one (DIR a writable
# mount point under a read-only parent).
INSIDE = ".atlas-staging-"
# The commit's own folder inside DIR: its journal, the old files moved aside, scratch copies.
COMMIT = ".atlas-commit-"
JOURNAL_FORMAT = "attention-atlas-journal/1"
ASIDE, MOVING_IN, DONE = "journal-1-aside.json", "journal-2-in.json", "journal-3-done.json"
HASH = re.compile(r"[0-9a-f]{64}")


class OutputError(RuntimeError):
    """The output folder cannot be written as asked; the message is one line."""


class SiteWritten(KeyboardInterrupt):
    """Ctrl-C or SIGTERM that came while the site was being committed: it was held until the
    commit ended, so the whole new site is in the output folder (the CLI says so)."""


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _file_digest(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def manifest_bytes(files: Mapping[str, bytes]) -> bytes:
    """The manifest of a site of these files (path -> content)."""
    return _manifest({path: digest(content) for path, content in files.items()})


def _manifest(hashes: Mapping[str, str]) -> bytes:
    """Sorted, no times, no pids: the same site gives the same bytes."""
    body = {"format": FORMAT, "atlas_version": __version__, "files": dict(sorted(hashes.items()))}
    return (json.dumps(body, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def read_manifest(out: Path) -> dict[str, str | None] | None:
    """The files an earlier build wrote into ``out`` with their sha256 (None where an older
    manifest kept none), or None if ``out`` is no atlas site."""
    files, _ = _read_manifest(Path(out))
    return files


def check_output(out: Path, *, force: bool = False, clean: bool = False) -> None:
    """Refuse an output folder that the atlas may not write into, before any work is done."""
    out = Path(out)
    _check_place(out)
    if not out.is_dir() or force or not any(not _own_entry(p) for p in out.iterdir()):
        return
    files, why = _read_manifest(out)
    if files is not None:
        return
    how = "--clean --force to empty it" if clean else "--force to write into it, keeping its files"
    if (out / "atlas.json").is_file():
        how += " (a site from an atlas without manifests needs --force once)"
    raise OutputError(
        f"{out}: folder is not empty and is not an atlas site ({why}); "
        f"choose another -o or use {how}"
    )


def _check_place(out: Path) -> None:
    """Refuse an output that is no folder, or one that cannot be written (a real probe, which
    also catches a read-only file system, where permission bits would not): an existing DIR
    must take a new file itself (the commit works inside it); a new one, its nearest existing
    parent."""
    if out.is_symlink() and not out.exists():
        raise OutputError(f"{out}: is a broken link")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.is_dir():
        folder, shown = out, "this folder"
    else:
        folder = out.absolute().parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            raise OutputError(f"{out}: {folder} is not a folder")
        shown = str(folder)
    problem = _probe(folder)
    if problem:
        raise OutputError(f"{out}: cannot write into {shown} ({problem})")


def _probe(folder: Path) -> str:
    """Why a new file cannot be made in ``folder``; "" when it can."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return str(err.strerror or err)
    return ""


# Keeping builds apart: a lock on DIR for the whole build, a lock on each staging folder.

_held: dict[tuple[int, int], list[int]] = {}  # (device, inode) of a DIR -> [thread, depth]


@contextlib.contextmanager
def claim(out: Path, *, force: bool = False, clean: bool = False) -> Iterator[None]:
    """Hold the output folder for one build, from the check before the model loads to the end
    of the commit: refuse it if it cannot be written or another build holds it, finish or undo
    what a killed build left in and beside it, then check it (``check_output``). The lock is an
    OS lock (flock) on the folder itself, so no lock file is written, none is left by a kill,
    and a read-only parent or a mount point needs none. A folder made for the lock is removed
    again if the build writes nothing into it. Reentrant in one thread (``write`` claims too)."""
    out = Path(out)
    _check_place(out)
    made: list[Path] = []
    for folder in reversed([out.absolute(), *out.absolute().parents]):
        if not folder.exists():
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            except OSError as err:
                _remove_empty(made)
                raise OutputError(f"{out}: cannot make {folder} ({err.strerror or err})") from None
            made.append(folder)
    try:
        with _locked(out) as first:
            try:
                if first:
                    try:
                        with _interrupts_held():  # a rollback is not cut in two either
                            recover(out)
                        remove_stale_staging(out)
                    except OSError as err:
                        raise OutputError(
                            f"{out}: cannot undo what a killed build left ({err.strerror or err})"
                        ) from None
                check_output(out, force=force, clean=clean)
                yield
            finally:
                if first:
                    _remove_empty(made)
    finally:
        _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders made for a claim, deepest first, where they are still empty."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()
    folders.clear()


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[bool]:
    """Lock the folder ``out`` (yields True), or, where this thread holds it already, go on
    under that lock (False); refuse in one line where another build holds it."""
    try:
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise OutputError(f"{out}: cannot open this folder ({err.strerror or err})") from None
    try:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        mine = _held.get(key)
        if mine is not None and mine[0] == threading.get_ident():
            mine[1] += 1
            try:
                yield False
            finally:
                mine[1] -= 1
            return
        if _lock(fd) is False:
            pid = _lock_holder(st)
            raise OutputError(
                f"{out}: another atlas build is writing into this folder"
                f"{f' (pid {pid})' if pid else ''}; wait for it to end or choose another -o"
            )
        _held[key] = [threading.get_ident(), 1]
        try:
            yield True
        finally:
            del _held[key]
    finally:
        os.close(fd)  # and with it the lock; a killed build's lock goes with its process


def _lock(fd: int) -> bool | None:
    """Take the exclusive lock on ``fd`` without waiting: True, False where another process
    (or another open of it) holds it, None where this file system has no such locks."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as err:  # ENOLCK, EOPNOTSUPP: some network file systems
        log.debug("no file locks on this file system (%s); builds are not kept apart", err)
        return None
    return True


def _lock_holder(st: os.stat_result) -> int | None:
    """The pid holding the flock on this file, from /proc/locks (Linux), for the message."""
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with contextlib.suppress(OSError):
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == wanted:
                with contextlib.suppress(ValueError):
                    return int(fields[4])
    return None


def _free(folder: Path) -> bool:
    """Whether no live build holds this staging folder (its lock can be taken)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        return _lock(fd) is not False
    finally:
        os.close(fd)


# What killed builds leave: staging folders beside or inside DIR, a commit folder inside it.


def _staging_prefix(real: Path) -> str:
    """Staging folders of DIR (resolved) are named after it: ``.NAME.tmp-*`` beside it."""
    return f".{real.name or 'root'}.tmp-"


def _own_staging(path: Path) -> bool:
    """A staging folder of the atlas: a real folder, empty or holding the marker it writes
    first and removes last."""
    return (
        path.is_dir()
        and not path.is_symlink()
        and (not any(path.iterdir()) or _pending_manifest(path))
    )


def _own_entry(path: Path) -> bool:
    """An entry of DIR that is the atlas's own work folder, not the user's or the site's."""
    if path.name.startswith(INSIDE):
        return _own_staging(path)
    return path.name.startswith(COMMIT) and path.is_dir() and not path.is_symlink()


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the staging folders that killed builds left beside ``out`` (``.NAME.tmp-*``, named
    after the resolved folder) or inside it (``.atlas-staging-*``): only real folders that are
    empty or hold the atlas's marker, and that no live build holds (their lock is free)."""
    real = Path(out).resolve()
    candidates = sorted(real.parent.glob(f"{glob.escape(_staging_prefix(real))}*"))
    if real.is_dir():
        candidates += sorted(real.glob(f"{INSIDE}*"))
    removed = []
    for candidate in candidates:
        if _own_staging(candidate) and _free(candidate):
            _remove_own(candidate, PENDING)
            removed.append(candidate)
    if removed:
        log.info("removed %d unfinished build folder(s) beside or in %s", len(removed), out)
    return removed


def _pending_manifest(folder: Path) -> bool:
    try:
        data = json.loads((folder / PENDING).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") in (FORMAT, FORMAT_1)


def _remove_own(folder: Path, marker: str) -> None:
    """Remove a work folder of the atlas, its marker last: a kill midway leaves a folder that
    is still known as the atlas's, and the next build finishes the job."""
    _empty(folder, keep=marker)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder / marker)
    folder.rmdir()


def recover(out: Path) -> None:
    """Finish what a killed commit left in ``out`` (call it holding the lock, as ``claim``
    does): before its commit point, every file is put back as it was (the old site, whole);
    after it, the folder of old files is removed (the new site, whole)."""
    out = Path(out).resolve()
    if not out.is_dir():
        return
    for folder in sorted(out.glob(f"{COMMIT}*")):
        if folder.is_symlink() or not folder.is_dir():
            continue
        names = {p.name for p in folder.iterdir()}
        journal = _read_journal(folder)
        if journal is not None:
            log.warning("%s: a build was killed while committing; putting the old site back", out)
            _roll_back(out, folder, journal)
        elif DONE in names:
            _remove_own(folder, DONE)
        elif names <= {ASIDE + ".part"}:
            _remove_own(folder, ASIDE + ".part")


def _read_journal(folder: Path) -> dict | None:
    for name in (MOVING_IN, ASIDE):
        try:
            body = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        new = body.get("new") if isinstance(body, dict) else None
        if (
            body.get("format") == JOURNAL_FORMAT
            and isinstance(new, dict)
            and all(
                (p == MANIFEST or _safe(p)) and isinstance(h, str) and HASH.fullmatch(h)
                for p, h in new.items()
            )
        ):
            return {"phase": name, "new": new}
    return None


def _read_manifest(out: Path) -> tuple[dict[str, str | None] | None, str]:
    """(files with their hashes, "") for a valid manifest, else (None, why it is not one)."""
    path = out / MANIFEST
    if not path.is_file():
        return None, f"no {MANIFEST}"
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None, f"{MANIFEST} is not valid JSON"
    if not isinstance(body, dict) or body.get("format") not in (FORMAT, FORMAT_1):
        return None, f"{MANIFEST} is not an atlas manifest of format {FORMAT}"
    listed = body.get("files")
    if body["format"] == FORMAT_1 and isinstance(listed, list):
        files: dict = dict.fromkeys(listed)
    elif body["format"] == FORMAT and isinstance(listed, dict):
        files = listed
        if not all(isinstance(h, str) and HASH.fullmatch(h) for h in files.values()):
            return None, f"{MANIFEST} has a bad file list"
    else:
        return None, f"{MANIFEST} has a bad file list"
    if not all(isinstance(p, str) and _safe(p) for p in files):
        return None, f"{MANIFEST} has a bad file list"
    return files, ""


def _safe(relative: str) -> bool:
    """A plain relative path inside the folder: no '..', no absolute path, no odd spelling,
    nothing in a .git folder, none of the atlas's own names."""
    path = PurePosixPath(relative)
    return (
        bool(relative)
        and not path.is_absolute()
        and path.as_posix() == relative
        and ".." not in path.parts
        and not any(part.lower() == ".git" for part in path.parts)
        and relative not in (MANIFEST, PENDING)
        and not path.parts[0].startswith((INSIDE, COMMIT))
        and "\\" not in relative
        and "\0" not in relative
    )


def _folders(paths: Iterable[str]) -> set[str]:
    """Every folder these files sit in, as relative paths ('a', 'a/b'), not the root."""
    return {p.as_posix() for path in paths for p in PurePosixPath(path).parents if p.parts}


def _plain_parents(out: Path, relative: str) -> bool:
    """Whether no folder on the way from ``out`` to ``relative`` is a link (or a file)."""
    path = out
    for part in PurePosixPath(relative).parts[:-1]:
        path = path / part
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            return False
    return True


# Writing: stage beside DIR, plan, commit through a journal.


def write(
    files: Mapping[str, bytes] | Iterable[tuple[str, bytes]],
    out: Path,
    *,
    force: bool = False,
    clean: bool = False,
    again: Callable[[dict[str, int]], Iterable[tuple[str, bytes]] | None] | None = None,
) -> dict[str, int]:
    """Put the site's files into ``out``: stage them beside it, then commit them.

    ``files`` may be an iterable of (path, bytes), such as ``site.render``'s: each file is
    written into the staging folder as it comes and then let go, so the site is never held in
    memory whole. ``again`` (the size budget) is called with the sizes of the staged files and
    returns other files to stage instead, or None to keep these. Returns the size of every file
    written, by path."""
    out = Path(out)
    with claim(out, force=force, clean=clean):
        real = out.resolve()
        old = read_manifest(real) or {}
        staging, lock = _make_staging(out, real)
        committed = False
        try:
            items = files.items() if isinstance(files, Mapping) else files
            hashes, sizes = _stage(staging, items)
            while again is not None and (instead := again(sizes)) is not None:
                _empty(staging)
                hashes, sizes = _stage(staging, instead)
            aside, kept = _plan(out, real, set(hashes), old, force=force, clean=clean)
            if kept:
                log.warning(
                    "kept %d file(s) the manifest lists that changed since the atlas wrote them "
                    "or that an older manifest lists without a hash (%s%s); remove them if "
                    "they are old pages",
                    len(kept),
                    ", ".join(kept[:3]),
                    ", ..." if len(kept) > 3 else "",
                )
            with _interrupts_held():
                _commit(staging, out, real, hashes, aside, old, clean=clean)
                committed = True
        except KeyboardInterrupt:
            if committed:
                raise SiteWritten(str(out)) from None
            raise
        except OSError as err:
            raise OutputError(f"{out}: cannot write the site ({err.strerror or err})") from None
        finally:
            with contextlib.suppress(OSError):
                _remove_own(staging, PENDING)
            os.close(lock)
    return sizes


def _make_staging(out: Path, real: Path) -> tuple[Path, int]:
    """A new staging folder beside DIR (named after the resolved folder, on its parent's file
    system: renames), or, where the parent takes no new folder, inside DIR; and the descriptor
    that holds its lock, so no other build takes it for a killed build's leftovers."""
    try:
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(real), dir=real.parent))
    except OSError as err:
        problem = err.strerror or err
        try:
            staging = Path(tempfile.mkdtemp(prefix=INSIDE, dir=real))
        except OSError:
            raise OutputError(f"{out}: cannot write here ({problem})") from None
    fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    _lock(fd)
    return staging, fd


def _stage(staging: Path, files: Iterable[tuple[str, bytes]]) -> tuple[dict[str, str], dict]:
    """Write every file into the staging folder as it comes, then the new manifest; returns the
    sha256 and the size of each file. The marker goes first, so a build killed while staging
    leaves a folder the next build recognises as its own."""
    (staging / PENDING).write_bytes(_manifest({}))
    hashes: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for relative, content in files:
        if not _safe(relative):
            raise ValueError(f"not a path the site may write: {relative!r}")
        if relative in sizes:
            raise ValueError(f"the site writes {relative!r} twice")
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        hashes[relative] = digest(content)
        sizes[relative] = len(content)
    (staging / MANIFEST).write_bytes(_manifest(hashes))
    return hashes, sizes


def _empty(folder: Path, keep: str = PENDING) -> None:
    """Remove everything inside a work folder of the atlas but its marker ``keep``."""
    for entry in os.scandir(folder):
        if entry.name == keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def _plan(
    out: Path,
    real: Path,
    new: set[str],
    old: Mapping[str, str | None],
    *,
    force: bool,
    clean: bool,
) -> tuple[list[str], list[str]]:
    """Decide, before DIR is touched, what the commit moves aside and what it keeps; refuse what
    would change a file of the user's. A file is the atlas's when the manifest lists it, it is
    a plain file (not a link) reached through plain folders, and its sha256 is the one the
    manifest keeps; one an older manifest lists without a hash counts only where the new site
    writes it again. Moved aside: the atlas's files that the new site replaces or no longer
    has, and, with ``force`` or ``clean``, the user's files it writes over. Kept: listed files
    that are not the atlas's (changed, behind a link). Refused: a link to a folder where the
    site writes into a folder, a folder in the way of a file or a file in the way of a folder
    (both unless ``clean``), a file of the user's the site would write over (unless
    ``force``)."""
    if not real.is_dir():
        return [], []
    known: dict[str, bool] = {}

    def ours(relative: str) -> bool:
        if relative not in known:
            path = real / relative
            expected = old.get(relative, "")
            if (
                relative not in old
                or not _plain_parents(real, relative)
                or path.is_symlink()
                or not path.is_file()
            ):
                known[relative] = False
            elif expected is None:
                known[relative] = relative in new
            else:
                known[relative] = _file_digest(path) == expected
        return known[relative]

    if not clean:
        for folder in sorted(_folders(new)):
            path = real / folder
            if path.is_symlink():
                raise OutputError(
                    f"{out / folder}: is a link; the atlas does not write through links into "
                    "other folders: replace it by a folder, or use --clean"
                )
            if path.exists() and not path.is_dir() and not ours(folder):
                raise OutputError(
                    f"{out / folder}: is a file where the site needs a folder; "
                    "move it away or use --clean"
                )
        for relative in sorted(new):
            path = real / relative
            if path.is_dir() and not path.is_symlink():
                raise OutputError(
                    f"{out / relative}: is a folder where the site writes a file; "
                    "move it away or use --clean"
                )
    aside, kept, theirs = [], [], []
    for relative in sorted(new | set(old)):
        path = real / relative
        if (
            not _plain_parents(real, relative)
            or not os.path.lexists(path)
            or (path.is_dir() and not path.is_symlink())
        ):
            if relative in old and relative not in new and os.path.lexists(path):
                kept.append(relative)
            continue
        if ours(relative) or (relative in new and (force or clean)):
            aside.append(relative)
        elif relative in new:
            theirs.append(relative)
        else:
            kept.append(relative)
    if theirs:
        raise OutputError(
            f"{out}: {len(theirs)} file(s) the atlas did not write (or that changed since it "
            f"wrote them) would be overwritten ({', '.join(theirs[:3])}"
            f"{', ...' if len(theirs) > 3 else ''}); move them away or use --force"
        )
    return aside, [] if clean else kept


def _commit(
    staging: Path,
    out: Path,
    real: Path,
    new: dict[str, str],
    aside: list[str],
    old: Mapping[str, str | None],
    *,
    clean: bool,
) -> None:
    """Move the staged site into DIR through a journal, so that a failure at any step (a full
    disk, a read-only subfolder, a kill) leaves a whole site: the old one, put back at once or
    by the next build, or the new one.

    1. A commit folder is made inside DIR (``.atlas-commit-*``, DIR's own file system) with its
       journal: the files the new site writes and their sha256.
    2. Aside: the old files the commit replaces or removes (and, with ``clean``, everything
       else in DIR) are moved into the commit folder's ``old/`` (renames, no space needed); the
       old manifest is copied there. The journal is renamed to say this step is done.
    3. In: each staged file is moved into DIR, then the new manifest.
    4. Commit point: the journal is renamed to say so. Then the folders that stale files left
       empty are removed, and the commit folder with the old files.

    Before the commit point, a failure puts back what was moved (``_roll_back``); a kill leaves
    the journal, and the next build does the same."""
    folder = Path(tempfile.mkdtemp(prefix=COMMIT, dir=real))
    scratch, moved = folder / "tmp", folder / "old"
    journal = {"format": JOURNAL_FORMAT, "new": {**new, MANIFEST: _file_digest(staging / MANIFEST)}}
    try:
        part = folder / (ASIDE + ".part")
        part.write_bytes(json.dumps(journal, indent=1, sort_keys=True).encode("utf-8"))
        os.replace(part, folder / ASIDE)
        scratch.mkdir()
        moved.mkdir()
        if clean:
            removed = _clean_aside(real, set(new), _folders(new), moved, scratch, folder.name)
            if removed:
                log.info("--clean: removed %d files and folders the atlas did not write", removed)
        for relative in aside:
            _move_aside(real / relative, moved / relative, scratch, keep=relative in new)
        if (real / MANIFEST).is_file():
            shutil.copyfile(real / MANIFEST, moved / MANIFEST)
        os.replace(folder / ASIDE, folder / MOVING_IN)
        for relative in sorted(new):
            target = real / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            _move(staging / relative, target, scratch)
        _move(staging / MANIFEST, real / MANIFEST, scratch)
        os.replace(folder / MOVING_IN, folder / DONE)  # the commit point
    except BaseException:
        try:
            _roll_back(real, folder, _read_journal(folder) or {"phase": ASIDE, "new": {}})
        except OSError as err:
            raise OutputError(
                f"{out}: cannot write the site, nor put the old one back ({err.strerror or err}); "
                "the next build into it puts it back"
            ) from None
        raise
    stale = set(old) - set(new)
    if stale:
        log.info("removed %d pages and files of the previous build", len(set(aside) & stale))
    try:
        _prune(real, _folders(stale))
        _remove_own(folder, DONE)
    except OSError as err:
        log.warning("%s: the site is written; removing %s failed (%s)", out, folder.name, err)


def _roll_back(real: Path, folder: Path, journal: dict) -> None:
    """Put DIR back as it was before the commit: remove the new files that were moved in (those
    whose content is still the new site's), the folders that left empty, and move every old
    file back from the commit folder; then remove the commit folder, its journal last. Safe to
    run again after a kill midway."""
    moved, scratch = folder / "old", folder / "tmp"
    if journal["phase"] == MOVING_IN:  # before it, no new file is in DIR
        for relative, expected in journal["new"].items():
            path = real / relative
            if (
                _plain_parents(real, relative)
                and path.is_file()
                and not path.is_symlink()
                and _file_digest(path) == expected
            ):
                with contextlib.suppress(OSError):  # EBUSY: a mount point, put back in place
                    path.unlink()
        _prune(real, _folders(journal["new"]))
        # No new file is left in DIR: a rerun must not remove an old file put back below that
        # has the same content as a new one.
        os.replace(folder / MOVING_IN, folder / ASIDE)
    if moved.is_dir():
        scratch.mkdir(exist_ok=True)
        _restore(moved, real, scratch)
    for marker in (MOVING_IN, ASIDE):
        if (folder / marker).exists():
            _remove_own(folder, marker)
            return
    shutil.rmtree(folder)  # failed before its journal was written: nothing was moved


def _restore(source: Path, target: Path, scratch: Path) -> None:
    """Move everything under ``source`` back to the same place under ``target``."""
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        path = target / entry.name
        if entry.is_dir(follow_symlinks=False):
            if path.is_dir() and not path.is_symlink():
                _restore(Path(entry.path), path, scratch)
                continue
            if not os.path.lexists(path):
                os.replace(entry.path, path)
                continue
        elif not path.is_dir() or path.is_symlink():
            if _same_file_content(Path(entry.path), path):
                os.unlink(entry.path)  # copied aside and never overwritten (a read-only mount)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            _move(Path(entry.path), path, scratch)
            continue
        log.warning("%s: left in %s, something else is in its place", path, source)


def _same_file_content(a: Path, b: Path) -> bool:
    """Both plain files with the same bytes."""
    plain = all(p.is_file() and not p.is_symlink() for p in (a, b))
    return plain and filecmp.cmp(a, b, shallow=False)


def _prune(real: Path, folders: Iterable[str]) -> None:
    """Remove these folders where they are empty (not links), deepest first."""
    for folder in sorted(folders, key=lambda f: (-f.count("/"), f)):
        path = real / folder
        if _plain_parents(real, folder) and path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.rmdir()


def _move_aside(source: Path, target: Path, scratch: Path, *, keep: bool) -> None:
    """Move a file of DIR into the commit folder. Where it cannot be renamed (a file bound into
    DIR, a mount point: EBUSY, EXDEV) it is copied there, and left in place if ``keep`` (the new
    file is then written over it in place) or else removed."""
    if not os.path.lexists(source):
        return  # moved aside already (--clean)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
        return
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EBUSY):
            raise
    shutil.copyfile(source, target, follow_symlinks=False)
    if not keep:
        source.unlink()


def _move(source: Path, target: Path, scratch: Path) -> None:
    """os.replace, falling back where a rename cannot work: across file systems (DIR a mount
    point, EXDEV) copy into the commit folder, on DIR's file system, then replace; onto a mount
    point itself (a file bound into DIR, EBUSY) write the target in place."""
    try:
        os.replace(source, target)
        return
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EBUSY):
            raise
    fd, name = tempfile.mkstemp(dir=scratch)
    os.close(fd)
    copy = Path(name)
    try:
        shutil.copyfile(source, copy)
        try:
            os.replace(copy, target)
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.EBUSY):
                raise
            shutil.copyfile(source, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            copy.unlink()


def _clean_aside(
    real: Path,
    files: set[str],
    folders: set[str],
    moved: Path,
    scratch: Path,
    commit: str,
    prefix: str = "",
) -> int:
    """Move everything in DIR but the site's files, the folders they sit in, the manifest and
    the atlas's work folders into the commit folder (``--clean``), where it is removed at the
    end or put back if the commit fails. A folder that cannot be moved (a mount point) is
    emptied instead, for good."""
    removed = 0
    for entry in sorted(os.scandir(real / prefix), key=lambda e: e.name):
        relative = prefix + entry.name
        if relative == MANIFEST or (
            not prefix and (entry.name == commit or _own_entry(Path(entry.path)))
        ):
            continue
        if entry.is_dir(follow_symlinks=False):
            if relative in folders:
                removed += _clean_aside(
                    real, files, folders, moved, scratch, commit, relative + "/"
                )
                continue
            (moved / relative).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(entry.path, moved / relative)
            except OSError as err:
                if err.errno not in (errno.EXDEV, errno.EBUSY):
                    raise
                shutil.rmtree(entry.path)
        elif relative in files:
            continue
        else:
            _move_aside(Path(entry.path), moved / relative, scratch, keep=False)
        removed += 1
    return removed


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while the block runs and deliver them after, so a commit is never
    cut in two."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is None  # set outside Python: cannot be put back
    ):
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in held}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if caught:
            signal.raise_signal(caught[0])
