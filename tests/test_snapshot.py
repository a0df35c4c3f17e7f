"""Golden pages: a small site rendered from a stored atlas, compared byte for byte with the
pages kept in tests/snapshots/ (after pdoc's test/test_snapshot.py).

The stored atlas (tests/snapshots/stored-atlas/: atlas.json and its data/) was built once with
the tiny random BERT of tests/tiny_models.py, so rendering it needs no model and gives the same
bytes on every machine. A change to a template shows here as a readable diff of the page it changes.

Refresh, after checking that every change is meant (rebuilds the stored atlas too):

    .venv/bin/python tests/test_snapshot.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from atlas.result import load
from atlas.site import render

HERE = Path(__file__).resolve().parent
SNAPSHOTS = HERE / "snapshots"
STORED = SNAPSHOTS / "stored-atlas"  # the input: atlas.json and data/
PAGES = [
    "index.html",
    "heads/index.html",
    "definitions.html",
    "heads/L01-H01.html",
    "heads/L02-H03.html",
    "sentences/index.html",
    "sentences/0001.html",
    "sentences/0003.html",
    "assets/config.js",
]


def snapshot_name(page: str) -> str:
    return page.replace("/", "__")


@pytest.mark.parametrize("page", PAGES)
def test_page_matches_its_snapshot(page):
    files = dict(render(load(STORED)))
    expected = (SNAPSHOTS / snapshot_name(page)).read_text(encoding="utf-8")
    assert files[page].decode("utf-8") == expected, (
        f"{page} differs from tests/snapshots/{snapshot_name(page)}; if the change is meant, "
        "refresh with: .venv/bin/python tests/test_snapshot.py"
    )


def test_render_of_the_stored_atlas_keeps_its_data():
    """The stored atlas renders data files equal to the stored ones (the data format holds)."""
    files = dict(render(load(STORED)))
    for path in sorted((STORED / "data").iterdir()):
        assert files[f"data/{path.name}"] == path.read_bytes(), path.name


def refresh() -> None:
    """Rebuild the stored atlas with the tiny BERT, then every snapshot page from it."""
    sys.path.insert(0, str(HERE))
    from test_build import SENTENCES
    from tiny_models import make_tiny_model

    from atlas.build import build

    with tempfile.TemporaryDirectory() as tmp:
        model = make_tiny_model("bert", Path(tmp) / "tiny-bert")
        source = Path(tmp) / "snapshot.txt"
        source.write_text(SENTENCES, encoding="utf-8")
        site = Path(tmp) / "site"
        build(source, site, model=str(model), model_name="tiny-bert", title="Snapshot")
        if STORED.exists():
            shutil.rmtree(STORED)
        (STORED / "data").mkdir(parents=True)
        shutil.copy(site / "atlas.json", STORED / "atlas.json")
        for path in (site / "data").iterdir():
            shutil.copy(path, STORED / "data" / path.name)
    files = dict(render(load(STORED)))
    for page in PAGES:
        (SNAPSHOTS / snapshot_name(page)).write_bytes(files[page])
    print(f"refreshed {len(PAGES)} snapshots and the stored atlas in {SNAPSHOTS}")


if __name__ == "__main__":
    refresh()
