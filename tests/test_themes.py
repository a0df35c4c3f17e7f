"""A theme (--templates DIR) holds only its own files: a symbolic link anywhere in it (a
template, a folder it includes from, an asset, the assets folder) is refused in one line, so a
shared theme cannot copy a file of the build machine (a key, /etc/passwd) into a published
site; and a theme cannot write a page of unbounded size."""

from __future__ import annotations

import os
import pathlib

import pytest
from conftest import ROOT

from atlas import budget, site
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


def write_theme(home: pathlib.Path, template: str) -> None:
    (home / "theme" / "index.html").write_text(template)


def test_a_theme_cannot_write_a_100_mb_page(home, capsys):
    """{{ 'a' * 100000000 }} is refused before the string is made, naming the template line."""
    write_theme(
        home, "{% extends 'base.html' %}{% block main %}\n{{ 'a' * 100000000 }}{% endblock %}"
    )
    status, err = render(home, capsys)
    assert status == 2
    assert err == (
        f"atlas: error: template {home / 'theme' / 'index.html'}:2: str * int would make "
        "100,000,000 characters or items, over 10,000,000\n"
    )
    assert sorted(os.listdir(home)) == ["ssh", "theme"]


def test_a_page_is_cut_off_once_it_passes_githubs_limit_per_file(home, capsys):
    """Values within the limit, repeated until the page passes 100 MB: stopped there, not
    held whole in memory."""
    write_theme(home, "{% for i in range(100000) %}{{ 'a' * 9000000 }}{% endfor %}")
    status, err = render(home, capsys)
    assert status == 2
    assert err == (
        f"atlas: error: template {home / 'theme' / 'index.html'}: the page index.html is over "
        "100 MB, GitHub's limit per file; stopped there\n"
    )
    assert site.MAX_PAGE_BYTES == budget.PAGES_FILE_BYTES


TOO_LARGE = {
    "repeat": "{{ 'a' * 100000000 }}",
    "repeat a list": "{{ ([('x' * 10000)] * 10000)|join }}",
    "power": "{{ 10 ** 1000000 }}",
    "doubling by +": "{% set ns = namespace(x='a' * 10**6) %}"
    "{% for i in range(30) %}{% set ns.x = ns.x + ns.x %}{% endfor %}",
    "doubling by ~": "{% set ns = namespace(x='a' * 10**6) %}"
    "{% for i in range(30) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
    "center": "{{ 'a'|center(10**9) }}",
    "ljust": "{{ 'a'.ljust(10**9) }}",
    "% width": "{{ '%1000000000s' % 'a' }}",
    "% width from arguments": "{{ '%*s' % (10**9, 'a') }}",
    "format width": "{{ '{:1000000000}'.format('a') }}",
    "format width from arguments": "{{ '{:{}}'.format('a', 10**9) }}",
    "format filter": "{{ '%1000000000s'|format('a') }}",
    "doubling a number's bits": "{% set ns = namespace(x=10 ** 20000) %}"
    "{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}{% endfor %}",
    "batch": "{{ [1]|batch(10**9, 'x')|list }}",
    "lipsum": "{{ lipsum(10**9) }}",
    "wordwrap": "{{ ('a ' * 10**6)|wordwrap(1, wrapstring='b' * 1000) }}",
    "join": "{{ (['a'] * 10**6)|join('b' * 1000) }}",
    "replace filter": "{{ ('a' * 10**6)|replace('a', 'a' * 20) }}",
    "replace": "{{ ('a' * 10**6).replace('a', 'a' * 20) }}",
    "block set": "{% set big = 'a' * 5000000 %}{% set x %}"
    "{% for i in range(100000) %}{{ big }}{% endfor %}{% endset %}",
    "macro": "{% set big = 'a' * 5000000 %}{% macro m() %}"
    "{% for i in range(100000) %}{{ big }}{% endfor %}{% endmacro %}{{ m() }}",
}


@pytest.mark.parametrize("template", TOO_LARGE.values(), ids=TOO_LARGE.keys())
def test_every_way_to_make_a_large_value_is_bounded(template):
    """Each is refused before it holds more than MAX_VALUE characters (a few times that at
    most while it is refused), in well under a second."""
    env = site.environment()
    with pytest.raises(site.TooLarge, match="over"):
        site.render_page(env.from_string(template).generate(), "t.html", "t.html")


def test_what_pages_do_with_numbers_and_strings_still_works():
    env = site.environment()
    template = (
        "{{ '{:,}'.format(110000000) }} {{ '%+d'|format(3) }} {{ 'ab' * 3 }} {{ [1] + [2] }} "
        "{{ 'x' ~ 'y' }} {{ 2 ** 10 }} {{ '%.2f' % 1.5 }} {{ 'a'|center(5) }} "
        "{{ ['a', 'b']|join(', ') }} {{ 'abc'.replace('b', 'BB') }}"
    )
    page = site.render_page(env.from_string(template).generate(), "t.html", "t.html")
    assert page == b"110,000,000 +3 ababab [1, 2] xy 1024 1.50   a   a, b aBBc"


def test_a_theme_cannot_change_the_atlas_other_pages_are_made_from(home, capsys):
    write_theme(home, "{{ atlas.heads.clear() }}{{ atlas.results.clear() }}")
    status, err = render(home, capsys)
    assert status == 2
    assert "not allowed in a theme: access to attribute 'clear' of 'list' object" in err


def test_atlas_build_refuses_a_linked_theme_before_the_model_runs(home, capsys):
    (home / "theme" / "assets" / "id_ed25519").symlink_to(home / "ssh" / "id_ed25519")
    (home / "in.txt").write_text("A sentence.\n")
    missing = str(home / "no-such-model")
    status = main(["build", str(home / "in.txt"), "-o", str(home / "site"), "-q",
                   "--model", missing, "--templates", str(home / "theme")])  # fmt: skip
    assert status == 2
    assert "assets/id_ed25519 is a symbolic link" in capsys.readouterr().err
    assert not (home / "site").exists()


def test_every_method_that_changes_a_container_is_refused():
    from jinja2.sandbox import _mutable_spec

    assert set().union(*(names for _, names in _mutable_spec)) == site.MUTATING
