"""The pages check the data format (atlas/contract.py DATA_FORMAT): a data script or search
index of another format is not drawn, and the page says to rebuild the site."""

from __future__ import annotations

import pytest
from browser import require_chromium
from test_snapshot import STORED

from atlas import contract
from atlas.result import load
from atlas.site import render

require_chromium()

FORMAT = f'"format":{contract.DATA_FORMAT}'
MESSAGE = "#atlas-data-format"


@pytest.fixture
def site(tmp_path):
    """The snapshot's stored atlas, rendered (no model needed)."""
    for path, data in render(load(STORED)):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    return tmp_path


def other_format(path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(FORMAT) == 1, path
    path.write_text(text.replace(FORMAT, f'"format":{contract.DATA_FORMAT + 1}'), encoding="utf-8")


def test_a_data_script_of_another_format_shows_the_message_and_draws_nothing(browser, site):
    page, _ = browser.open(site / "sentences" / "0001.html")  # the right format: it draws
    page.wait_for_selector("#head-view[data-lines]")
    assert page.locator(MESSAGE).count() == 0
    page.close()

    other_format(site / "data" / "0001.js")
    page, _ = browser.open(site / "sentences" / "0001.html")
    message = page.locator(MESSAGE)
    message.wait_for()
    assert message.is_visible()
    text = message.text_content()
    assert f"format {contract.DATA_FORMAT + 1}" in text and "rebuild it" in text
    assert f"read format {contract.DATA_FORMAT}" in text
    page.wait_for_timeout(300)
    for view in ("#head-view", "#model-view", "#neuron-view"):  # nothing drawn
        assert page.locator(f"{view} canvas, {view} svg, {view} .hv-token").count() == 0, view
    assert page.locator("#head-view[data-lines]").count() == 0
    page.screenshot(path=str(site / "refused.png"))
    page.close()


def test_a_search_index_of_another_format_is_refused(browser, site):
    other_format(site / contract.SEARCH_SCRIPT)
    page, _ = browser.open(site / "index.html")
    box = page.locator("#site-search")
    box.click()
    page.keyboard.type("the")
    message = page.locator(MESSAGE)
    message.wait_for()
    assert "the search index" in message.text_content()
    assert not [
        t
        for t in page.locator("#site-search-list [role=option]").all_inner_texts()
        if t.startswith("#")
    ], "no sentence found from an index of another format"
    page.close()
