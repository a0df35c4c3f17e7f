"""Token importance on sentence pages and the importance plots of the overview, in headless
Chromium (file://): the rollout bars are drawn, equal the rollout stored in the page's data
script (computed in the build from the float attention), follow the chosen token, and nothing
errs or leaves the site."""

from __future__ import annotations

import numpy as np
import pytest
from browser import open_sentence_page, require_chromium

from atlas.result import load
from atlas.viewdata import rollout

require_chromium()

ROWS = "[...document.querySelectorAll('#rollout-bars .ti-row')]"
BARS = f"() => {ROWS}.map((r) => Number(r.dataset.value))"
WIDTHS = f"() => {ROWS}.map((r) => r.querySelector('.ti-bar').getBoundingClientRect().width)"


def test_rollout_bars_drawn_and_equal_the_stored_rollout(browser, default_site):
    atlas = load(default_site)
    view = next(v for v in atlas.views if v.index == 2)
    expected = view.rollout_matrix()  # as stored: the page draws it, computes nothing
    # the stored values, not those the page's uint8 attention would roll out to
    from_uint8 = rollout(view.matrix(atlas.model.layers, atlas.model.heads))[-1]
    assert np.abs(from_uint8 - expected).max() > 1e-4
    page, report = open_sentence_page(browser, default_site / "sentences" / "0003.html")
    page.wait_for_selector("#rollout-bars .ti-row")
    assert page.locator("#rollout-bars .ti-bar").count() == view.n
    first = np.array(page.evaluate(BARS))
    np.testing.assert_array_equal(first, expected[0])
    assert first.sum() == pytest.approx(1.0, abs=1e-3)
    widths = page.evaluate(WIDTHS)
    assert max(widths) > 50 and widths.index(max(widths)) == int(first.argmax())
    page.select_option("#rollout-row", "4")
    np.testing.assert_array_equal(page.evaluate(BARS), expected[4])
    assert "Not defined for this model" in page.locator("#token-importance").inner_text()
    assert report.clean, report
    page.close()


def test_overview_draws_importance_plots(browser, default_site):
    page, report = browser.open(default_site / "index.html", wait_for="#head-importance svg")
    text = page.locator("#head-importance").inner_text()
    assert "Spearman ρ" in text and "not defined" in text
    assert page.locator("#head-importance svg").count() >= 2
    points = page.locator("#head-importance svg .mark-symbol path").count()
    assert points >= 2 * 72
    assert report.clean, report
    page.close()
