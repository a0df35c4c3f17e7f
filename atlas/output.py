"""Write the site into its output folder, replacing only what the atlas wrote before.

An output folder is often more than the site: a ``CNAME``, a ``.git/`` to publish it from, the
input file, notes. So the atlas keeps a manifest in the site of the files it wrote, and a rebuild
replaces and removes exactly those and touches nothing else.

The manifest, ``.atlas-manifest.json``, is byte-stable (no times), so that two builds of the same
input stay byte-identical::

    {
     "format": "attention-atlas-manifest/1",
     "atlas_version": "0.1.0",
     "files": [".nojekyll", "assets/atlas.css", "atlas.json", "heads/L1H1.html", ...]
    }

``files`` is every file the build wrote, relative, ``/``-separated, sorted; the manifest does not
list itself. A folder is an atlas site when its manifest parses and has this ``format``; nothing
else makes it one (not an ``atlas.json``, which may be anyone's file).

For an output folder DIR:

- missing or empty: it is created and written.
- an atlas site: the new files are written; files the old manifest lists that the new build no
  longer writes are removed, then the folders that removal left empty. Nothing else is touched.
- not empty and not a site: refused, unless ``force``: then the files are written, replacing
  files of the same name, and nothing is removed.
- a file the build writes exists and no manifest lists it (the user's): refused unless ``force``,
  so a user's file is never overwritten silently. A folder of the user's where the site has a
  file, or a file where the site has a folder, is refused unless ``clean``.
- ``clean``: everything else in DIR is removed too, so that it holds the site and nothing more.
  It is refused on a non-empty folder that is not a site unless ``force`` is given as well.

How an interrupted build is kept from leaving half a site:

1. Every refusal is decided before DIR is touched: the folder itself before anything is
   written (``check_output``, which the build calls before the model loads), the user's files
   the site would overwrite once the staged site's list of files is known.
2. Staging: every file, as the renderer makes it, and both manifests below, are written into a
   new folder ``.DIR.tmp-*`` beside DIR. The slow part that can fail (a full disk, a template
   error) happens here, before DIR is touched; on any error or Ctrl-C the staging folder is
   removed and DIR is as it was.
3. Commit, renames only (milliseconds): first a manifest listing the old and new files together,
   so that whatever is moved in from then on is known as the atlas's; then each file is moved in
   with ``os.replace``, which is atomic per file (a reader sees the old file or the new, never a
   part); then stale files are removed and the final manifest is moved in. Ctrl-C during the
   commit is held until it ends and then delivered. Only a hard kill or a power cut in that window
   can leave old and new pages mixed, and the next build repairs it, because the manifest on disk
   already names them all. Where a rename cannot work, a file is copied beside its target and
   renamed over it (DIR a mount point: the staging folder is on another file system), or written
   in place (the target is itself a mount point, a file bound into DIR).

Where DIR's parent cannot be written but DIR can (a writable mount point under a read-only
parent), the staging folder is made inside DIR instead, as ``DIR/.atlas-staging-*``: the same
steps, renames within DIR, and the folder is removed at the end (or by the next build, if a
hard kill left it); ``clean`` never removes it while it is in use.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath

from . import __version__

log = logging.getLogger(__name__)

MANIFEST = ".atlas-manifest.json"
FORMAT = "attention-atlas-manifest/1"
PENDING = ".pending-manifest.json"  # only ever inside the staging folder
# The staging folder inside DIR, used only where DIR's parent cannot take one (DIR a writable
# mount point under a read-only parent).
INSIDE = ".atlas-staging-"


class OutputError(RuntimeError):
    """The output folder cannot be written as asked; the message is one line."""


def manifest_bytes(paths: Iterable[str]) -> bytes:
    """The manifest for these files: sorted, no times, so the same site gives the same bytes."""
    body = {"format": FORMAT, "atlas_version": __version__, "files": sorted(set(paths))}
    return (json.dumps(body, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def read_manifest(out: Path) -> set[str] | None:
    """The files an earlier build wrote into ``out``, or None if ``out`` is no atlas site."""
    files, _ = _read_manifest(Path(out))
    return files


def check_output(out: Path, *, force: bool = False, clean: bool = False) -> None:
    """Refuse an output folder that the atlas may not write into, before any work is done."""
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise OutputError(f"{out}: is a broken link")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    _check_writable(out)
    if not out.is_dir() or force or not any(not _own_staging(p) for p in out.iterdir()):
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


def _check_writable(out: Path) -> None:
    """Fail before the model runs, not after: the site is staged beside ``out``, so the nearest
    existing folder of its parent must take a new file (a real probe, which also catches a
    read-only file system, where permission bits would not); where it cannot, an existing
    ``out`` that takes one will do (the site is then staged inside it)."""
    folder = out.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{out}: {folder} is not a folder")
    problem = _probe(folder)
    if problem and out.is_dir() and not _probe(out):
        return
    if problem:
        raise OutputError(f"{out}: cannot write into {folder} ({problem})")


def _probe(folder: Path) -> str:
    """Why a new file cannot be made in ``folder``; "" when it can."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return str(err.strerror or err)
    return ""


def _own_staging(path: Path) -> bool:
    """A staging folder of the atlas inside DIR (``.atlas-staging-*``): empty, or holding the
    pending manifest it writes first."""
    return (
        path.name.startswith(INSIDE)
        and path.is_dir()
        and not path.is_symlink()
        and (not any(path.iterdir()) or _pending_manifest(path))
    )


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove what killed builds left beside ``out``: folders named ``.NAME.tmp-*`` (or, inside
    it, ``.atlas-staging-*``) that are empty or hold the atlas's pending manifest (written first
    when staging), and nothing else."""
    parent = out.absolute().parent
    removed = []
    if not parent.is_dir():
        return removed
    for candidate in sorted(parent.glob(f".{out.name}.tmp-*")):
        if candidate.is_symlink() or not candidate.is_dir():
            continue
        if any(candidate.iterdir()) and not _pending_manifest(candidate):
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    if out.is_dir():
        for candidate in sorted(out.glob(f"{INSIDE}*")):
            if _own_staging(candidate):
                shutil.rmtree(candidate, ignore_errors=True)
                removed.append(candidate)
    if removed:
        log.info("removed %d unfinished build folder(s) beside or in %s", len(removed), out)
    return removed


def _pending_manifest(folder: Path) -> bool:
    try:
        data = json.loads((folder / PENDING).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def write(
    files: Mapping[str, bytes] | Iterable[tuple[str, bytes]],
    out: Path,
    *,
    force: bool = False,
    clean: bool = False,
    again: Callable[[dict[str, int]], Iterable[tuple[str, bytes]] | None] | None = None,
) -> dict[str, int]:
    """Put the site's files into ``out``: stage them beside it, then move them in one by one.

    ``files`` may be an iterable of (path, bytes), such as ``site.render``'s: each file is
    written into the staging folder as it comes and then let go, so the site is never held in
    memory whole. ``again`` (the size budget) is called with the sizes of the staged files and
    returns other files to stage instead, or None to keep these. Returns the size of every file
    written, by path."""
    out = Path(out)
    check_output(out, force=force, clean=clean)
    remove_stale_staging(out)
    old = (read_manifest(out) if out.is_dir() else None) or set()
    staging = _make_staging(out)
    try:
        sizes = _stage(staging, files.items() if isinstance(files, Mapping) else files, old)
        while again is not None and (instead := again(sizes)) is not None:
            _empty(staging)
            sizes = _stage(staging, instead, old)
        new = set(sizes)
        _check_conflicts(out, new, old, force=force, clean=clean)
        with _interrupts_held():
            _commit(staging, out, new, old, clean=clean)
    except OSError as err:
        raise OutputError(f"{out}: cannot write the site ({err.strerror or err})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sizes


def _make_staging(out: Path) -> Path:
    """A new staging folder beside ``out`` (same file system as ``out``'s parent: renames), or,
    where the parent takes no new folder and ``out`` is an existing folder that does (a
    writable mount point under a read-only parent), inside ``out``."""
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as err:
        problem = err.strerror or err
    if out.is_dir():
        with contextlib.suppress(OSError):
            return Path(tempfile.mkdtemp(prefix=INSIDE, dir=out))
    raise OutputError(f"{out}: cannot write here ({problem})")


def _read_manifest(out: Path) -> tuple[set[str] | None, str]:
    """(files, "") for a valid manifest, else (None, why it is not one)."""
    path = out / MANIFEST
    if not path.is_file():
        return None, f"no {MANIFEST}"
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None, f"{MANIFEST} is not valid JSON"
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        return None, f"{MANIFEST} is not an atlas manifest of format {FORMAT}"
    listed = body.get("files")
    if not isinstance(listed, list) or not all(isinstance(p, str) and _safe(p) for p in listed):
        return None, f"{MANIFEST} has a bad file list"
    return set(listed) - {MANIFEST}, ""


def _safe(relative: str) -> bool:
    """A plain relative path inside the folder: no '..', no absolute path, no odd spelling."""
    path = PurePosixPath(relative)
    return (
        bool(relative)
        and not path.is_absolute()
        and path.as_posix() == relative
        and ".." not in path.parts
        and "\\" not in relative
        and "\0" not in relative
    )


def _folders(paths: Iterable[str]) -> set[str]:
    """Every folder these files sit in, as relative paths ('a', 'a/b'), not the root."""
    return {p.as_posix() for path in paths for p in PurePosixPath(path).parents if p.parts}


def _check_conflicts(out: Path, new: set[str], old: set[str], *, force: bool, clean: bool) -> None:
    """Refuse, before anything is written, to overwrite or remove what the user made."""
    if not out.is_dir() or clean:
        return  # nothing there yet; or --clean, which may remove whatever is in the way
    for folder in sorted(_folders(new)):
        path = out / folder
        if (path.is_symlink() or path.exists()) and not path.is_dir() and folder not in old:
            raise OutputError(
                f"{path}: is a file where the site needs a folder; move it away or use --clean"
            )
    theirs = []
    for relative in sorted(new):
        path = out / relative
        if path.is_dir() and not path.is_symlink():
            raise OutputError(
                f"{path}: is a folder where the site writes a file; move it away or use --clean"
            )
        if (path.is_symlink() or path.exists()) and relative not in old:
            theirs.append(relative)
    if theirs and not force:
        raise OutputError(
            f"{out}: {len(theirs)} file(s) the atlas did not write would be overwritten "
            f"({', '.join(theirs[:3])}{', ...' if len(theirs) > 3 else ''}); "
            "move them away or use --force"
        )


def _stage(staging: Path, files: Iterable[tuple[str, bytes]], old: set[str]) -> dict[str, int]:
    """Write every file into the staging folder as it comes, then both manifests; returns the
    size of each file. A pending manifest is written first (and again, complete, at the end),
    so a build killed while staging leaves a folder the next build recognises as its own."""
    (staging / PENDING).write_bytes(manifest_bytes(old))
    sizes: dict[str, int] = {}
    for relative, content in files:
        if relative in (MANIFEST, PENDING) or not _safe(relative):
            raise ValueError(f"not a path the site may write: {relative!r}")
        if relative in sizes:
            raise ValueError(f"the site writes {relative!r} twice")
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        sizes[relative] = len(content)
    (staging / PENDING).write_bytes(manifest_bytes(old | set(sizes)))
    (staging / MANIFEST).write_bytes(manifest_bytes(sizes))
    return sizes


def _empty(folder: Path) -> None:
    """Remove everything inside the staging folder, keeping the folder."""
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def _commit(staging: Path, out: Path, new: set[str], old: set[str], *, clean: bool) -> None:
    """Move the staged site into ``out``; remove stale files of the atlas (or all, if clean)."""
    out.mkdir(parents=True, exist_ok=True)
    if clean:
        inside = staging.parent.resolve() == out.resolve()  # staged in DIR: not to be cleaned
        removed = _clean(out, new, _folders(new), keep=staging.name if inside else "")
        if removed:
            log.info("--clean: removed %d files and folders the atlas did not write", removed)
    _move(staging / PENDING, out / MANIFEST)
    for relative in sorted(new):
        target = out / relative
        for folder in sorted(_folders([relative])):
            path = out / folder
            if (path.is_symlink() or path.exists()) and not path.is_dir():
                path.unlink()  # a file of the old site where a folder is now: checked before
        target.parent.mkdir(parents=True, exist_ok=True)
        _move(staging / relative, target)
    stale = _remove_stale(out, old - new)
    if stale:
        log.info("removed %d pages and files of the previous build", stale)
    _move(staging / MANIFEST, out / MANIFEST)


def _move(source: Path, target: Path) -> None:
    """os.replace, falling back where a rename cannot work: across file systems (DIR a mount
    point, EXDEV) copy beside the target, then replace; onto a mount point itself (a file bound
    into DIR, EBUSY) write the target in place."""
    try:
        os.replace(source, target)
        return
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EBUSY):
            raise
    beside = target.with_name(f".{target.name}.atlas-tmp")
    try:
        shutil.copyfile(source, beside)
        try:
            os.replace(beside, target)
        except OSError as err:
            if err.errno != errno.EBUSY:
                raise
            shutil.copyfile(source, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            beside.unlink()


def _remove_stale(out: Path, stale: set[str]) -> int:
    """Remove files of the old site that the new one lacks, then folders left empty by that."""
    root = out.resolve()
    removed = 0
    for relative in sorted(stale):
        path = out / relative
        if not path.parent.resolve().is_relative_to(root):
            continue  # reached through a link out of the site: not ours to remove
        if path.is_symlink() or path.is_file():
            path.unlink()
            removed += 1
    for folder in sorted(_folders(stale), key=lambda f: (-f.count("/"), f)):
        path = out / folder
        if (
            path.is_dir()
            and not path.is_symlink()
            and path.parent.resolve().is_relative_to(root)
            and not any(path.iterdir())
        ):
            path.rmdir()
    return removed


def _clean(out: Path, files: set[str], folders: set[str], prefix: str = "", keep: str = "") -> int:
    """Remove everything under ``out`` but these files, the folders they sit in, the manifest
    and ``keep`` (the staging folder, when it is inside ``out``)."""
    removed = 0
    for entry in sorted(os.scandir(out / prefix), key=lambda e: e.name):
        relative = prefix + entry.name
        if relative in (MANIFEST, keep):
            continue
        if entry.is_dir(follow_symlinks=False):
            if relative in folders:
                removed += _clean(out, files, folders, relative + "/")
                continue
            shutil.rmtree(entry.path)
        elif relative in files:
            continue
        else:
            os.unlink(entry.path)
        removed += 1
    return removed


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C while the block runs and deliver it after, so a commit is never cut in two."""
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
