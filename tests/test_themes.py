"""A theme (--templates DIR) holds only its own files: a symbolic link anywhere in it (a
template, a folder it includes from, an asset, the assets folder) is refused in one line, so a
shared theme cannot copy a file of the build machine (a key, /etc/passwd) into a published
site; and a theme cannot write a page of unbounded size."""

from __future__ import annotations

import os
import pathlib

import pytest
from conftest import ROOT

from atlas import site
from atlas.cli import main

STORED = ROOT / "tests" / "snapshots" / "stored-atlas"
SECRET = "-----BEGIN OPENSSH PRIVATE KEY----- not for the site"


@pytest.fixture
def home(tmp_path: pathlib.Path) -> pathlib.Path:
    """A folder beside the theme holding a 'private key' and a folder of them."""
    (tmp_path / "ssh").mkdir()
    (tmp_path / "ssh" / "id_ed25519").write_text(SECRET)
    (tmp_path / "ssh" / "key.html").write_text(SECRET)
    (tmp_path / "theme" / "assets").mkdir(parents=True)
    return tmp_path


def render(home: pathlib.Path, capsys) -> tuple[int, str]:
    status = main(["render", str(STORED), "-o", str(home / "site"), "-q", "--templates",
                   str(home / "theme")])  # fmt: skip
    return status, capsys.readouterr().err


def assert_refused(home: pathlib.Path, capsys, relative: str, what: str = "is a symbolic link"):
    status, err = render(home, capsys)
    assert status == 2, err
    assert err == (
        f"atlas: error: theme {home / 'theme'}: {relative} {what}; a theme may hold only its "
        "own files (copy the file in)\n"
    )
    assert not (home / "site").exists()  # nothing written, no staging left beside it
    assert sorted(os.listdir(home)) == ["ssh", "theme"]


def test_a_template_that_links_to_a_private_key_is_refused(home, capsys):
    (home / "theme" / "index.html").symlink_to(home / "ssh" / "key.html")
    assert_refused(home, capsys, "index.html")


def test_an_include_through_a_linked_folder_is_refused(home, capsys):
    (home / "theme" / "parts").symlink_to(home / "ssh", target_is_directory=True)
    (home / "theme" / "index.html").write_text('{% include "parts/key.html" %}')
    assert_refused(home, capsys, "parts")


def test_an_asset_that_links_to_a_private_key_is_refused(home, capsys):
    (home / "theme" / "assets" / "id_ed25519").symlink_to(home / "ssh" / "id_ed25519")
    assert_refused(home, capsys, "assets/id_ed25519")


def test_a_linked_assets_folder_is_refused(home, capsys):
    (home / "theme" / "assets").rmdir()
    (home / "theme" / "assets").symlink_to(home / "ssh", target_is_directory=True)
    assert_refused(home, capsys, "assets")


def test_a_link_to_a_system_file_is_refused_even_unused(home, capsys):
    (home / "theme" / "passwd.txt").symlink_to("/etc/passwd")
    assert_refused(home, capsys, "passwd.txt")


def test_a_pipe_in_a_theme_is_refused_not_read(home, capsys):
    os.mkfifo(home / "theme" / "assets" / "pipe.js")
    assert_refused(home, capsys, "assets/pipe.js", "is not a plain file")


def test_a_theme_of_its_own_files_renders_and_a_linked_theme_folder_is_the_users_choice(
    home, capsys
):
    (home / "theme" / "assets" / "extra.css").write_text("body { color: teal }")
    (home / "theme" / "sections").mkdir()
    (home / "theme" / "sections" / "mine.html").write_text("<p>my section</p>")
    (home / "theme" / "index.html").write_text(
        "{% extends 'base.html' %}{% block main %}{% include 'sections/mine.html' %}{% endblock %}"
    )
    (home / "linked").symlink_to(home / "theme", target_is_directory=True)
    status = main(["render", str(STORED), "-o", str(home / "site"), "-q", "--templates",
                   str(home / "linked")])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert (home / "site" / "assets" / "extra.css").read_text() == "body { color: teal }"
    assert "<p>my section</p>" in (home / "site" / "index.html").read_text()


def test_a_file_linked_in_after_the_check_is_refused_when_read(home):
    """The loader and the assets check each file they read, not only the first walk."""
    (home / "theme" / "index.html").write_text("mine")
    loader = site.ThemeLoader(home / "theme")
    (home / "theme" / "index.html").unlink()
    (home / "theme" / "index.html").symlink_to(home / "ssh" / "key.html")
    with pytest.raises(site.SiteError, match=r"index\.html resolves outside the theme's folder"):
        loader.get_source(site.environment(), "index.html")
