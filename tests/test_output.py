"""The output folder: the atlas replaces and removes only what it wrote, and never half a site."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
from pathlib import Path

import pytest
from conftest import build

from atlas import __version__, output
from atlas.cli import main
from atlas.output import MANIFEST, OutputError, check_output, write

BIG = {
    ".nojekyll": b"",
    "atlas.json": b'{"sentences": 3}',
    "index.html": b"<h1>three sentences</h1>",
    "heads/index.html": b"<h1>heads</h1>",
    "sentences/0001.html": b"one",
    "sentences/0002.html": b"two",
    "sentences/0003.html": b"three",
    "data/0002.js": b"two();",
    "data/0003.js": b"three();",
}
SMALL = {
    ".nojekyll": b"",
    "atlas.json": b'{"sentences": 1}',
    "index.html": b"<h1>one sentence</h1>",
    "heads/index.html": b"<h1>heads</h1>",
    "sentences/0001.html": b"one, again",
}
# What a user keeps in the folder of a site, none of it written by the atlas.
THEIRS = {
    "CNAME": b"atlas.example.org\n",
    ".git/HEAD": b"ref: refs/heads/gh-pages\n",
    ".git/objects/ab/cdef": b"\x78\x01blob",
    "notes.md": b"# what to check next\n",
    "in.txt": b"The cat sat .\n",
    "theme/head.html": b"{% extends 'base.html' %}",
    "theme/index.html": b"named like a page of the site, in a folder the atlas never writes",
    "theme/assets/atlas.css": b"body { color: teal; }",
    "sentences/keep/0002.html": b"mine, in a folder of the site",
}


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and folder (None) under ``folder``, by relative path."""
    return {
        p.relative_to(folder).as_posix(): None if p.is_dir() else p.read_bytes()
        for p in folder.rglob("*")
    }


def files_of(folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in snapshot(folder).items() if v is not None}


def put(folder: Path, files: dict[str, bytes]) -> None:
    for relative, content in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(content)


def no_staging_left(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if ".tmp-" in p.name]


def test_a_new_folder_is_created_with_its_manifest(tmp_path):
    out = tmp_path / "deep" / "site"
    write(BIG, out)
    assert files_of(out) == {**BIG, MANIFEST: output.manifest_bytes(BIG)}
    assert no_staging_left(out.parent)


def test_the_manifest_format_is_byte_stable(tmp_path):
    write(BIG, tmp_path / "one")
    write(dict(reversed(BIG.items())), tmp_path / "two")
    text = (tmp_path / "one" / MANIFEST).read_bytes()
    assert text == (tmp_path / "two" / MANIFEST).read_bytes()
    assert json.loads(text) == {
        "format": "attention-atlas-manifest/2",
        "atlas_version": __version__,
        "files": {path: hashlib.sha256(BIG[path]).hexdigest() for path in sorted(BIG)},
    }
    assert list(json.loads(text)["files"]) == sorted(BIG)


def test_rebuild_keeps_every_file_the_atlas_did_not_write(tmp_path):
    out = tmp_path / "site"
    write(BIG, out)
    put(out, THEIRS)
    (out / "empty-folder-of-theirs").mkdir()
    write(SMALL, out)
    after = snapshot(out)
    for relative, content in THEIRS.items():
        assert after.get(relative) == content, relative
    assert after.get("empty-folder-of-theirs", b"gone") is None
    assert files_of(out) == {**THEIRS, **SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    # The stale pages went, and data/, which held only them; sentences/ holds theirs too.
    assert not (out / "sentences" / "0002.html").exists()
    assert not (out / "data").exists()
    assert (out / "sentences" / "keep").is_dir()
    assert no_staging_left(tmp_path)


def test_clean_removes_everything_else(tmp_path):
    out = tmp_path / "site"
    write(BIG, out)
    put(out, THEIRS)
    (out / "empty-folder-of-theirs").mkdir()
    os.symlink(tmp_path, out / "link-out")
    write(SMALL, out, clean=True)
    assert files_of(out) == {**SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    assert sorted(p for p, v in snapshot(out).items() if v is None) == ["heads", "sentences"]
    assert (tmp_path / "site").is_dir(), "the link was removed, not what it points to"


def test_a_folder_with_an_atlas_json_is_not_a_site(tmp_path):
    out = tmp_path / "thesis"
    put(out, {"atlas.json": b"my atlas of maps, not JSON", "chapter1.tex": b"irreplaceable"})
    before = snapshot(out)
    with pytest.raises(OutputError, match=r"not empty and is not an atlas site \(no "):
        check_output(out)
    with pytest.raises(OutputError, match="is not an atlas site"):
        write(SMALL, out)
    with pytest.raises(OutputError, match="--clean --force to empty it"):
        write(SMALL, out, clean=True)
    assert snapshot(out) == before
    assert no_staging_left(tmp_path)


@pytest.mark.parametrize(
    ("manifest", "why"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"format": "something-else/1", "files": []}', "not an atlas manifest"),
        (b'{"format": "attention-atlas-manifest/1", "files": ["../out.txt"]}', "bad file list"),
        (b'{"format": "attention-atlas-manifest/1", "files": "index.html"}', "bad file list"),
    ],
)
def test_a_bad_manifest_is_no_site(tmp_path, manifest, why):
    out = tmp_path / "site"
    put(out, {MANIFEST: manifest, "index.html": b"theirs"})
    with pytest.raises(OutputError, match=why):
        write(SMALL, out)
    assert (out / "index.html").read_bytes() == b"theirs"


def test_force_writes_into_a_folder_that_is_not_a_site_and_deletes_nothing(tmp_path):
    out = tmp_path / "site"
    (tmp_path / "out.txt").write_bytes(b"beside the site")
    mine = {"notes.md": b"keep me", "index.html": b"my page", "old/sentences/0002.html": b"x"}
    bogus = b'{"format": "attention-atlas-manifest/1", "files": ["../out.txt", "notes.md"]}'
    put(out, {**mine, MANIFEST: bogus})
    write(SMALL, out, force=True)
    assert files_of(out) == {
        **mine,
        **SMALL,  # index.html, of the same name, is replaced
        MANIFEST: output.manifest_bytes(SMALL),
    }
    assert (tmp_path / "out.txt").read_bytes() == b"beside the site"


def test_a_users_file_named_like_a_page_is_not_overwritten(tmp_path):
    out = tmp_path / "site"
    write(SMALL, out)
    put(out, {"sentences/0002.html": b"my own page", "data/0002.js": b"mine();"})
    before = snapshot(out)
    with pytest.raises(OutputError) as err:
        write(BIG, out)
    assert str(err.value) == (
        f"{out}: 2 file(s) the atlas did not write (or that changed since it wrote them) would be "
        "overwritten "
        "(data/0002.js, sentences/0002.html); move them away or use --force"
    )
    assert snapshot(out) == before
    assert no_staging_left(tmp_path)
    write(BIG, out, force=True)
    assert (out / "sentences" / "0002.html").read_bytes() == b"two"


def test_a_users_folder_or_file_in_the_way_is_refused(tmp_path):
    out = tmp_path / "site"
    put(out, {MANIFEST: output.manifest_bytes({}), "index.html/mine.txt": b"mine", "data": b"f"})
    before = snapshot(out)
    with pytest.raises(OutputError, match=r"index.html: is a folder where the site writes a file"):
        write(SMALL, out, force=True)
    (out / "index.html" / "mine.txt").unlink()
    (out / "index.html").rmdir()
    del before["index.html"], before["index.html/mine.txt"]
    with pytest.raises(OutputError, match=r"data: is a file where the site needs a folder"):
        write(BIG, out, force=True)
    assert snapshot(out) == before
    write(BIG, out, clean=True)
    assert files_of(out) == {**BIG, MANIFEST: output.manifest_bytes(BIG)}


def test_an_atlas_file_may_become_a_folder(tmp_path):
    out = tmp_path / "site"
    write({"index.html": b"a", "data": b"a file, once"}, out)
    write({"index.html": b"b", "data/0001.js": b"now a folder"}, out)
    assert files_of(out)["data/0001.js"] == b"now a folder"


def test_output_that_is_a_file(tmp_path):
    target = tmp_path / "site"
    target.write_text("a file")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        write(SMALL, target, force=True, clean=True)
    assert target.read_text() == "a file"


def test_an_empty_folder_is_written(tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    check_output(out)
    write(SMALL, out)
    assert files_of(out) == {**SMALL, MANIFEST: output.manifest_bytes(SMALL)}


def test_stale_files_behind_a_link_out_of_the_site_are_left(tmp_path):
    """A manifest can name a path through a link the user made; removal never follows it out."""
    elsewhere = tmp_path / "elsewhere"
    put(elsewhere, {"0002.html": b"not the atlas's"})
    out = tmp_path / "site"
    write(SMALL, out)
    os.symlink(elsewhere, out / "linked")
    listed = {**SMALL, "linked/0002.html": b"not the atlas's"}  # even its hash
    (out / MANIFEST).write_bytes(output.manifest_bytes(listed))
    write(SMALL, out)
    assert (elsewhere / "0002.html").read_bytes() == b"not the atlas's"


@pytest.mark.parametrize("bad", ["../escape.html", "/etc/x", "a//b", "./a", MANIFEST])
def test_the_site_writes_only_plain_relative_paths(tmp_path, bad):
    with pytest.raises(ValueError, match="not a path the site may write"):
        write({bad: b"x"}, tmp_path / "site")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError(errno.ENOSPC, "No space left")])
def test_a_failure_while_staging_leaves_the_old_site(tmp_path, monkeypatch, failure):
    out = tmp_path / "site"
    write(BIG, out)
    put(out, THEIRS)
    before = snapshot(out)
    real = output._stage

    def stage_then_fail(*args):
        real(*args)
        raise failure

    monkeypatch.setattr(output, "_stage", stage_then_fail)
    if isinstance(failure, OSError):
        with pytest.raises(OutputError, match=r"cannot write the site \(No space left\)"):
            write(SMALL, out)
    else:
        with pytest.raises(KeyboardInterrupt):
            write(SMALL, out)
    assert snapshot(out) == before
    assert no_staging_left(tmp_path)


def test_ctrl_c_during_the_commit_waits_for_it_to_end(tmp_path, monkeypatch):
    out = tmp_path / "site"
    write(BIG, out)
    put(out, THEIRS)
    real = os.replace
    calls = []

    def replace(source, target):
        calls.append(target)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)
        real(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(output.SiteWritten):
        write(SMALL, out)
    moved_in = [t for t in calls if Path(t).parent.name != "old" and ".atlas-commit-" not in str(t)]
    assert len(moved_in) == len(SMALL) + 1, "every file and the manifest were moved in"
    assert files_of(out) == {**THEIRS, **SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    assert no_staging_left(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_a_failure_mid_commit_puts_the_old_site_back(tmp_path, monkeypatch):
    """What the commit moved is put back at once: the old site, whole, and nothing beside it."""
    out = tmp_path / "site"
    write(SMALL, out)
    real = os.replace
    calls = []

    def replace(source, target):
        calls.append(target)
        if len(calls) == 4:
            raise OSError(errno.EIO, "Input/output error")
        real(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputError, match="Input/output error"):
        write(BIG, out)
    monkeypatch.setattr(os, "replace", real)
    assert files_of(out) == {**SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]
    write(BIG, out)
    write(SMALL, out)
    assert files_of(out) == {**SMALL, MANIFEST: output.manifest_bytes(SMALL)}


def test_an_output_folder_on_another_file_system(tmp_path, monkeypatch):
    """DIR may be a mount point: a rename from the staging folder then fails with EXDEV."""
    out = tmp_path / "site"
    write(BIG, out)
    real = os.replace

    def replace(source, target):
        if ".tmp-" in str(source):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(source, target)

    monkeypatch.setattr(os, "replace", replace)
    write(SMALL, out)
    assert files_of(out) == {**SMALL, MANIFEST: output.manifest_bytes(SMALL)}
    assert no_staging_left(tmp_path)


# End to end, through the command line with the tiny BERT.

GOOD = "The cat sat on the mat .\nThe dog ran home .\n"


@pytest.mark.slow  # two builds
def test_rebuild_through_the_cli_keeps_the_users_files(tiny_model, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text(GOOD)
    out = tmp_path / "site"
    model = ["--model", str(tiny_model("bert"))]
    assert build([str(source), "-o", str(out), *model]) == 0
    assert (out / "sentences" / "0002.html").is_file()
    put(out, THEIRS)
    source.write_text("Only one sentence now .\n")
    assert build([str(source), "-o", str(out), *model]) == 0
    assert not (out / "sentences" / "0002.html").exists(), "a stale page is removed"
    for relative, content in THEIRS.items():
        assert (out / relative).read_bytes() == content, relative
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert sorted(p for p in files_of(out) if p not in THEIRS) == sorted([*listed, MANIFEST])
    assert build([str(source), "-o", str(out), *model, "--clean"]) == 0
    assert sorted(files_of(out)) == sorted([*listed, MANIFEST])
    assert no_staging_left(tmp_path)


def test_cli_refuses_a_folder_that_is_not_a_site_before_loading_the_model(tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text(GOOD)
    out = tmp_path / "maps"
    put(out, {"atlas.json": b"a list of my maps", "notes.md": b"keep"})
    no_model = ["--model", str(tmp_path / "no-such-model")]
    assert build([str(source), "-o", str(out), *no_model]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("atlas: error: ")
    assert "is not an atlas site (no .atlas-manifest.json)" in err
    assert "--force" in err
    assert snapshot(out) == {"atlas.json": b"a list of my maps", "notes.md": b"keep"}


def test_cli_force_writes_into_it(tiny_model, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text(GOOD)
    out = tmp_path / "maps"
    theirs = {"atlas.json": b"not JSON", "notes.md": b"keep", "index.html": b"my index"}
    put(out, theirs)
    args = [str(source), "-o", str(out), "--model", str(tiny_model("bert"))]
    assert build(args) == 2
    assert snapshot(out) == theirs
    assert main(["build", *args, "-q", "--force"]) == 0
    assert (out / "notes.md").read_bytes() == b"keep"
    assert (out / "index.html").read_bytes() != b"my index"
    assert (out / MANIFEST).is_file()


# Leftovers of killed builds, SIGTERM, and outputs that cannot be written (issue 8).


def test_a_rebuild_removes_only_its_own_stale_staging_folders(tmp_path):
    """What SIGKILL leaves beside the site (a staging folder holding the pending manifest, or
    an empty one) goes at the next build; a folder of that name without the manifest stays."""
    from atlas.output import FORMAT, PENDING, write

    out = tmp_path / "site"
    killed = tmp_path / ".site.tmp-killed"
    (killed / "heads").mkdir(parents=True)
    (killed / PENDING).write_text(json.dumps({"format": FORMAT, "files": []}))
    (killed / "heads" / "L01-H01.html").write_text("half a site")
    empty = tmp_path / ".site.tmp-empty"
    empty.mkdir()
    mine = tmp_path / ".site.tmp-mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not the atlas's")
    write({"index.html": b"hello"}, out)
    assert not killed.exists() and not empty.exists()
    assert (mine / "notes.txt").read_text() == "not the atlas's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".site.tmp-mine", "site"]


def test_sigterm_while_staging_leaves_the_old_site(tmp_path, monkeypatch):
    """SIGTERM is handled as Ctrl-C: the staging folder goes, the old site stays, exit 130."""
    import signal

    from atlas import output
    from atlas.cli import terminate_as_interrupt

    out = tmp_path / "site"
    output.write({"index.html": b"old"}, out)
    real_stage = output._stage

    def stage_then_terminate(staging, files):
        real_stage(staging, files)
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(output, "_stage", stage_then_terminate)
    with pytest.raises(KeyboardInterrupt), terminate_as_interrupt():
        output.write({"index.html": b"new"}, out)
    assert (out / "index.html").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_sigterm_ends_the_command_as_an_interrupt(tmp_path, monkeypatch, capsys):
    import signal

    from atlas import cli

    monkeypatch.setattr(cli, "render_site", lambda *a, **k: signal.raise_signal(signal.SIGTERM))
    stored = Path(__file__).parent / "snapshots" / "stored-atlas"
    assert cli.main(["render", str(stored), "-o", str(tmp_path / "site"), "-q"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back afterwards


def test_an_output_that_cannot_be_written_fails_before_the_model_loads(tmp_path, capsys):
    """A read-only place (here /proc, read-only to root too) is refused at once: the model named
    here does not exist, and the error is about the output, not the model."""
    code = main(["build", str(tmp_path / "in.txt"), "-o", "/proc/atlas-site", "--model", "none"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("atlas: error: /proc/atlas-site: cannot write into /proc")


STORED_SITE = Path(__file__).parent / "snapshots" / "stored-atlas"


@pytest.mark.slow  # two builds
def test_the_current_folder_can_be_the_output(tmp_path, monkeypatch):
    """`-o .` (no folder to rename) is written in place through the manifest, twice, keeping
    the user's files and leaving nothing beside it."""
    site = tmp_path / "gh-pages"
    site.mkdir()
    (site / "CNAME").write_text("atlas.example.org\n")
    monkeypatch.chdir(site)
    assert main(["render", str(STORED_SITE), "-o", ".", "-q", "--force"]) == 0
    assert main(["render", str(STORED_SITE), "-o", ".", "-q"]) == 0
    assert (site / "index.html").is_file() and (site / MANIFEST).is_file()
    assert (site / "CNAME").read_text() == "atlas.example.org\n"
    assert [p.name for p in tmp_path.iterdir()] == ["gh-pages"]


def test_a_symlinked_output_is_followed(tmp_path):
    """The link stays a link and the site goes into its target."""
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "site"
    link.symlink_to(target)
    assert main(["render", str(STORED_SITE), "-o", str(link), "-q"]) == 0
    assert link.is_symlink() and (target / "index.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site", "target"]
