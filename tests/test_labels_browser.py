"""The sentences index's label filters, in headless Chromium, on a site built with a tiny
sequence classifier and gold labels."""

from __future__ import annotations

import pytest
from browser import require_chromium
from conftest import build
from test_labels import LABELLED
from tiny_models import make_tiny_task_model

from atlas.result import load

require_chromium()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labels-site")
    model = make_tiny_task_model("sequence-classification", folder / "model")
    source = folder / "in.txt"
    source.write_text(LABELLED, encoding="utf-8")
    assert build([str(source), "-o", str(folder / "site"), "--model", str(model)]) == 0
    return folder / "site"


def visible_numbers(page) -> list[int]:
    """The sentence numbers of the rows shown."""
    return [
        int(text)
        for text in page.eval_on_selector_all(
            "table.sentences tbody tr:not([hidden])", "rows => rows.map(r => r.cells[0].innerText)"
        )
    ]


def test_predicted_label_filter_shows_only_that_label(browser, site):
    """Choosing a predicted label keeps exactly the sentences predicted so (and says how
    many); with the gold filter too, both apply; "any" shows every sentence again."""
    atlas = load(site)
    predicted = [p["label"] for p in atlas.results["predictions"]["sentences"]]
    gold = [s.label for s in atlas.sentences]
    page, report = browser.open(site / "sentences" / "index.html")
    assert visible_numbers(page) == list(range(1, len(predicted) + 1))
    for label in sorted(set(predicted)):
        page.select_option("select[data-filter=predicted]", label)
        want = [i + 1 for i, p in enumerate(predicted) if p == label]
        assert visible_numbers(page) == want
        assert page.inner_text(".filter-count") == f"{len(want)} of {len(predicted)} sentences"
    label = predicted[0]
    page.select_option("select[data-filter=predicted]", label)
    page.select_option("select[data-filter=gold]", "people")
    both = [i + 1 for i in range(len(gold)) if predicted[i] == label and gold[i] == "people"]
    assert visible_numbers(page) == both
    page.select_option("select[data-filter=predicted]", "")
    page.select_option("select[data-filter=gold]", "")
    assert visible_numbers(page) == list(range(1, len(predicted) + 1))
    assert page.inner_text(".filter-count") == ""
    assert report.clean, report
    page.close()


def test_sentence_page_shows_the_prediction(browser, site):
    """A sentence page shows its predicted label and probability table, and its views still
    draw (no script error)."""
    atlas = load(site)
    prediction = atlas.results["predictions"]["sentences"][0]
    page, report = browser.open(site / "sentences" / "0001.html")
    page.wait_for_selector("#head-view[data-lines]")
    assert page.inner_text("#prediction .class-label.predicted") == prediction["label"]
    rows = page.locator("#prediction table.probabilities tbody tr").count()
    assert rows == len(atlas.model.classes)
    assert report.clean, report
    page.close()
