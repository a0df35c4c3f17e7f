"""The head types of a model whose heads are known (examples/induction-model), as a reader sees
them in headless Chromium: the overview's Head types card lists the induction head of layer 2,
its page carries the badge beside its label, and the search box finds it by its type."""

from __future__ import annotations

import json

import pytest
from browser import require_chromium
from conftest import build
from test_induction import CORPUS, MODEL
from test_search_browser import OPTIONS, search

from atlas import contract

require_chromium()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("induction-pages") / "site"
    assert build([str(CORPUS), "-o", str(out), "--model", str(MODEL), "--views", "4",
                  "--importance", "0"]) == 0  # fmt: skip
    atlas = json.loads((out / "atlas.json").read_text(encoding="utf-8"))
    induction = [h for h in atlas["heads"] if "induction" in h["parts"]["types"]]
    assert induction
    return out, induction


def test_the_overview_head_page_and_search_show_the_induction_head(browser, site):
    out, induction = site
    names = [h["name"] for h in induction]
    page, rep = browser.open(out / "index.html")
    row = page.locator(".types-card tr[data-type=induction]")
    assert row.locator(".label").inner_text() == "induction"
    assert row.locator("td.head-list a").all_inner_texts() == names
    assert page.locator(".types-card").inner_text().count("32 sequences of 24 random tokens")
    # the search box: "induc" finds the induction heads by their type, named in the hit, then
    # the heads highest on the induction column
    texts = search(page, "induc")
    label = induction[0]["label"]
    assert texts[: len(names)] == [f"{name} {label} induction" for name in names]
    assert "1st highest on induction" in texts[len(names)]
    assert (
        page.locator(OPTIONS)
        .first.get_attribute("data-href")
        .endswith(contract.head_page(induction[0]["layer"], induction[0]["head"]))
    )
    assert rep.clean, rep
    page.close()
    head = induction[0]
    page, rep = browser.open(out / contract.head_page(head["layer"], head["head"]))
    badges = page.locator("h1 .label").all_inner_texts()
    assert badges[1:] == head["parts"]["types"] and "induction" in badges
    assert "This head is" in page.locator(".types-head").inner_text()
    assert rep.clean, rep
    page.close()
