"""The Layers page and the sentence pages' per-token drift, built from a real treebank with the
default model, in headless Chromium."""

from __future__ import annotations

import json

import pytest
from browser import require_chromium

import atlas

require_chromium()


@pytest.fixture(scope="module")
def layers_site(tmp_path_factory):
    out = tmp_path_factory.mktemp("layers") / "site"
    built = atlas.build("examples/ud-ewt-sample.conllu", out, limit=40, views=12)
    return out, built


def test_a_treebank_site_has_a_layers_page_and_per_token_tables(layers_site):
    out, built = layers_site
    data = json.loads((out / "atlas.json").read_text())["results"]["layers"]
    assert data["word_level"] is True
    assert data["curves"]["drift"][0] == pytest.approx(1.0, abs=1e-6)
    assert len(data["curves"]["anisotropy"]) == built.model.layers + 1
    assert (out / "layers.html").is_file()
    page = (out / "sentences" / "0001.html").read_text()
    assert 'id="moved-table"' in page


def test_the_word_explorer_follows_the_word_and_layer(layers_site, browser):
    out, _ = layers_site
    data = json.loads((out / "atlas.json").read_text())["results"]["layers"]
    page, report = browser.open(out / "layers.html")
    page.wait_for_selector("#explorer-table tbody tr")
    rows = page.locator("#explorer-table tbody tr")
    first = data["explorer"][0]
    assert rows.count() == len(first["occurrences"])
    last = len(data["layers"]) - 1
    nearest = first["nearest"][last][0][0]
    assert f"occurrence {nearest[0] + 1} " in rows.nth(0).inner_text()
    assert f"{nearest[1]:.3f}" in rows.nth(0).inner_text()
    page.fill("#explorer-layer", "0")
    page.dispatch_event("#explorer-layer", "input")
    nearest0 = first["nearest"][0][0][0]
    assert f"{nearest0[1]:.3f}" in rows.nth(0).inner_text()
    assert page.locator("#explorer-layer-value").inner_text() == "0"
    second = data["explorer"][1]
    page.select_option("#explorer-word", "1")
    assert rows.count() == len(second["occurrences"])
    page.wait_for_selector("div.vega.drawn")
    assert page.locator("div.vega.drawn").count() == 1  # the curves chart
    assert report.clean, report
