"""A site built from hostile data (words, sentence ids, labels and relation names that are HTML
and script) opens in Chromium with no script of the data run: every page, every word of the
Layers page's explorer, and each hostile string shown as text."""

from __future__ import annotations

import json
import pathlib

import pytest
from browser import require_chromium
from conftest import build

require_chromium()

# Each would run script (alert) if it reached the page as markup, or end a <script> early.
HOSTILE = [
    "<img src=x onerror=alert(1)>",
    '"><script>alert(2)</script>',
    "</script><script>alert(3)</script><!--",
    "<svg onload=alert(4)>",
    "'><iframe src=javascript:alert(5)>",
]
# Elements the strings above would make, were they parsed as markup.
INJECTED = (
    "() => document.querySelectorAll('img[src=x], svg[onload], iframe[src^=javascript]').length"
    " + [...document.scripts].filter((s) => /^alert\\(\\d\\)$/.test(s.text.trim())).length"
)
ORDINARY = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "home"]


def hostile_records() -> list[dict]:
    """Eight sentences; each hostile string is a word of every sentence (so of the Layers
    page's explorer, with fewer than 5 occurrences of some), a relation name, a sentence id
    and a label."""
    records = []
    for i in range(8):
        words = [ORDINARY[i], HOSTILE[i % len(HOSTILE)], ORDINARY[i + 1], HOSTILE[(i + 1) % 5]]
        words += ORDINARY[i + 2 : i + 4] + ([HOSTILE[2]] if i < 3 else [])
        relations = ["root", *(HOSTILE[(i + j) % len(HOSTILE)] for j in range(len(words) - 1))]
        records.append({
            "id": f"{HOSTILE[i % len(HOSTILE)]}-{i}",
            "words": words,
            "heads": [0, *range(1, len(words))],
            "deprels": relations,
            "label": HOSTILE[i % 2],
        })  # fmt: skip
    return records


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory, tiny_model) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("hostile")
    corpus = folder / "hostile.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in hostile_records()), encoding="utf-8")
    out = folder / "site"
    model = str(tiny_model("bert"))
    args = [str(corpus), "-o", str(out), "--model", model, "--compare", model]
    assert build([*args, "--min-relation", "1", "--title", HOSTILE[0]]) == 0
    return out


def test_every_page_of_a_hostile_site_opens_without_running_the_data(hostile_site, browser):
    pages = sorted(hostile_site.rglob("*.html"))
    names = {p.relative_to(hostile_site).as_posix() for p in pages}
    assert {"layers.html", "syntax.html", "compare.html", "sentences/0001.html"} <= names
    for path in pages:
        page, report = browser.open(path)
        page.wait_for_timeout(300)  # the scripts draw after load
        assert HOSTILE[0] in page.title(), path.name  # the site's title, as text
        ran = page.evaluate(INJECTED)
        assert not report.dialogs, (path.name, report.dialogs)
        assert not ran, path.name
        assert not [e for e in report.console_errors if "pageerror" in e], report.console_errors
        page.context.close()


def test_the_word_explorer_shows_each_hostile_word_as_text(hostile_site, browser):
    explorer = json.loads((hostile_site / "atlas.json").read_text())["results"]["layers"]
    words = [w["word"] for w in explorer["explorer"]]
    assert set(HOSTILE) <= set(words)
    assert any(not w["self_similarity"] for w in explorer["explorer"])  # "fewer than 5" line
    page, report = browser.open(hostile_site / "layers.html")
    page.wait_for_selector("#explorer-table tbody tr")
    for option, word in enumerate(words):
        page.select_option("#explorer-word", str(option))
        assert f"“{word}”" in page.locator("#explorer-similarity").inner_text()
    page.wait_for_timeout(100)
    assert not report.dialogs, report.dialogs
    assert not page.evaluate(INJECTED)


def test_hostile_ids_labels_and_relations_show_as_text(hostile_site, browser):
    page, report = browser.open(hostile_site / "sentences" / "index.html")
    text = page.locator("main").inner_text()
    assert f"{HOSTILE[1]}-1" in text and HOSTILE[1] in text
    page, report = browser.open(hostile_site / "syntax.html")
    assert HOSTILE[3] in page.locator("main").inner_text()
    assert not report.dialogs


def test_a_hostile_sentence_shown_in_a_notebook_runs_nothing(hostile_site, browser, tmp_path):
    """atlas.show inlines the page's scripts and data into an <iframe srcdoc>: the data stays
    data there too (a "</script>" in it cannot end the inlined script)."""
    import atlas

    shown = atlas.show(hostile_site, sentence=3, head="L1-H2")
    path = tmp_path / "notebook.html"
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>nb</title></head>"
        f"<body>{shown._repr_html_()}</body></html>",
        encoding="utf-8",
    )
    page, report = browser.open(path)
    frame = next(f for f in page.frames if f != page.main_frame)
    frame.wait_for_selector("#head-view[data-lines]")
    assert HOSTILE[2] in frame.locator("main").inner_text()
    assert not report.dialogs, report.dialogs
    assert not frame.evaluate(INJECTED)
    assert not page.evaluate(INJECTED)


@pytest.mark.parametrize("page_name", ["sentences/0002.html", "heads/index.html"])
def test_a_hostile_address_runs_nothing(hostile_site, browser, page_name):
    """What follows # in the address is read by the pages (a head, a search): never markup."""
    for fragment in HOSTILE[:2]:
        page, report = browser.open(hostile_site / page_name, fragment=fragment)
        page.wait_for_timeout(300)
        assert not report.dialogs and not page.evaluate(INJECTED), (page_name, fragment)
        page.context.close()


def test_the_checks_see_hostile_strings_parsed_as_markup(browser, tmp_path):
    """The test's own checks, on a page that puts each hostile string in as markup."""
    path = tmp_path / "unsafe.html"
    path.write_text(f"<!doctype html><title>x</title><body>{''.join(HOSTILE)}</body>")
    page, report = browser.open(path)
    page.wait_for_timeout(300)
    assert report.dialogs and page.evaluate(INJECTED) >= 2
