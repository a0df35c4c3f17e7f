"""Shared fixtures: tiny models of each family, sites built once per test session, and one
headless Chromium per browser-test module."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from tiny_models import make_tiny_model

from atlas.cli import main

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "sentences.txt"


# Fixtures that cost more than a quick run allows: every test that uses one is marked slow.
SLOW_FIXTURES = {
    "default_site",  # the example corpus built with the real model (about 30 s)
    "compare_site",  # test_compare: a --compare build of two tiny models
    "single_sites",  # test_compare: two builds to compare
    "default_treebank",  # test_pages_browser: the default model over 40 UD sentences
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks the tests that drive Chromium (those of a *_browser.py module, or any that use the
    ``browser`` fixture) as ``browser``, and those that use a SLOW_FIXTURES fixture as ``slow``,
    so that a quick run leaves them out: -m "not slow and not browser" (the README)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.path.name.endswith("_browser.py") or "browser" in fixtures:
            item.add_marker(pytest.mark.browser)
        if fixtures & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One Chromium for a module's tests (tests/browser.py; the module calls require_chromium
    first, so a machine without it skips, or fails in CI, before this runs)."""
    from browser import Browser

    with Browser() as b:
        yield b


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A function: family name -> directory of a tiny random model of that family (cached)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # saving a model draws a bar on stderr
    made: dict[str, pathlib.Path] = {}

    def get(family: str) -> pathlib.Path:
        if family not in made:
            made[family] = make_tiny_model(family, tmp_path_factory.mktemp(f"tiny-{family}"))
        return made[family]

    return get


@pytest.fixture(scope="session")
def default_site(tmp_path_factory) -> pathlib.Path:
    """The example corpus built with the real default model (all-MiniLM-L6-v2), once."""
    out = tmp_path_factory.mktemp("default") / "site"
    assert main(["build", str(EXAMPLES), "-o", str(out), "-q"]) == 0
    return out


def build(args: list[str]) -> int:
    return main(["build", *args, "-q"])
