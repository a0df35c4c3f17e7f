"""The vega bundle is made once per vl-convert version and kept in the user's cache folder."""

from __future__ import annotations

import sys

import pytest
import vl_convert

from atlas import site


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder of our own, a fake vl-convert that counts its calls, no bundle in memory."""
    calls = []

    def bundle():
        calls.append(1)
        return "window.vegaEmbed = 1;"

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(vl_convert, "javascript_bundle", bundle)
    site.vega_bundle.cache_clear()
    yield tmp_path / "cache" / "attention-atlas", calls
    site.vega_bundle.cache_clear()


def test_bundle_is_made_once_and_then_read_from_the_cache(cache):
    folder, calls = cache
    first = site.vega_bundle()
    assert first == "(function () {\nwindow.vegaEmbed = 1;\n})();\n"
    path = folder / f"vega-bundle-{vl_convert.__version__}.js"
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temporary file left
    assert path.read_text(encoding="utf-8") == first
    site.vega_bundle.cache_clear()  # as in a new process
    assert site.vega_bundle() == first
    assert len(calls) == 1


def test_a_cut_short_cache_file_is_made_again(cache):
    folder, calls = cache
    folder.mkdir(parents=True)
    path = folder / f"vega-bundle-{vl_convert.__version__}.js"
    path.write_text("(function () {\nwindow.vega", encoding="utf-8")
    assert site.vega_bundle().endswith("\n})();\n")
    assert len(calls) == 1
    assert path.read_text(encoding="utf-8") == site.vega_bundle()


def test_an_unwritable_cache_is_no_error(cache, tmp_path, monkeypatch):
    _, calls = cache
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert site.vega_bundle() == "(function () {\nwindow.vegaEmbed = 1;\n})();\n"
    assert blocked.read_text() == "a file where the cache folder would go"
    assert len(calls) == 1


def test_each_vl_convert_version_has_its_own_file(cache, monkeypatch):
    folder, calls = cache
    site.vega_bundle()
    installed = vl_convert.__version__
    monkeypatch.setattr(vl_convert, "__version__", "9.9.9/dev")
    site.vega_bundle.cache_clear()
    site.vega_bundle()
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([f"vega-bundle-{installed}.js", "vega-bundle-9.9.9_dev.js"])
    assert len(calls) == 2
