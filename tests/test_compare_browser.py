"""A compare atlas's sentence page in headless Chromium: the A/B switch mounts every view on the
other model's attention (the head view draws B's weights, and A's again after switching back),
and the difference map draws B − A of the selected head."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from browser import Browser, dataset, open_sentence_page, require_chromium
from test_compare import compare_site, perturbed  # noqa: F401 (fixtures)

from atlas import contract
from atlas.result import load

require_chromium()

LINES = "AtlasHeadView.of(document.getElementById('head-view')).lines()"
THRESHOLD = 0.02  # the head view's default: lines below it are hidden


def expected_lines(matrix: np.ndarray, head: int) -> list[list]:
    """[head, from, to, weight] of every line the head view draws for one head."""
    n = matrix.shape[0]
    return [
        [head, i, j, pytest.approx(float(matrix[i, j]), abs=1e-6)]
        for i in range(n)
        for j in range(n)
        if matrix[i, j] >= THRESHOLD
    ]


def test_the_switch_and_the_difference_map(compare_site):  # noqa: F811
    atlas = load(compare_site)
    a = atlas.view(1).matrix(2, 4)[1, 0]  # sentence 2, L2-H1, as the page decodes it
    b = next(v for v in atlas.views_b if v.index == 1).matrix(2, 4)[1, 0]
    assert np.abs(b - a).max() > 0.02  # the perturbed layer: something to see
    with Browser() as browser:
        page, report = open_sentence_page(
            browser, compare_site / "sentences" / "0002.html", "L2-H1"
        )
        section = ".sentence-views"
        assert dataset(page, section)["model"] == "A"
        lines_a = page.evaluate(LINES)
        assert sorted(lines_a) == sorted(expected_lines(a, 1))
        page.click("#model-switch button[data-value=B]")
        page.wait_for_function("document.querySelector('.sentence-views').dataset.model === 'B'")
        lines_b = page.evaluate(LINES)
        assert sorted(lines_b) == sorted(expected_lines(b, 1))
        assert lines_b != lines_a
        assert page.evaluate("location.hash") == "#L2-H1"  # the selection stays
        assert page.inner_text("#selected-label") == atlas.head(2, 1).parts["compare"]["label_b"]
        assert dataset(page, "#selected-heatmap")["layer"] == "2"
        # the difference map: B − A of the selected head, its scale the largest |B − A|
        diff = dataset(page, "#diff-heatmap")
        assert (diff["layer"], diff["head"]) == ("2", "1")
        assert float(diff["max"]) == pytest.approx(np.abs(b - a).max(), abs=1e-6)
        top = np.abs(b - a).max()
        cells = [np.argmax(b - a), np.argmin(b - a), np.flatnonzero(b == a)[0]]
        for row, col in (np.unravel_index(c, a.shape) for c in cells):
            drawn = pixel(page, diff, row, col)
            assert np.abs(np.subtract(drawn[:3], colour((b - a)[row, col] / top))).max() <= 1
        # arrow keys move the selection; the difference map follows
        page.keyboard.press("ArrowRight")
        assert dataset(page, "#diff-heatmap")["head"] == "2"
        page.click("#model-switch button[data-value=A]")
        assert sorted(page.evaluate(LINES)) == sorted(
            expected_lines(atlas.view(1).matrix(2, 4)[1, 1], 2)
        )
        assert report.clean, report


ROLLOUT = (
    "() => [...document.querySelectorAll('#rollout-bars .ti-row')]"
    ".map((r) => Number(r.dataset.value))"
)


def test_the_rollout_follows_the_switch(compare_site):  # noqa: F811
    """Each model's rollout is stored with its own attention; the bars draw the model shown,
    on the token row chosen."""
    atlas = load(compare_site)
    a = atlas.view(1).rollout_matrix()
    b = next(v for v in atlas.views_b if v.index == 1).rollout_matrix()
    assert np.abs(b - a).max() > 1e-3
    with Browser() as browser:
        page, report = open_sentence_page(browser, compare_site / "sentences" / "0002.html")
        page.wait_for_selector("#rollout-bars .ti-row")
        np.testing.assert_array_equal(page.evaluate(ROLLOUT), a[0])
        page.select_option("#rollout-row", "2")
        page.click("#model-switch button[data-value=B]")
        page.wait_for_function(f"({ROLLOUT})()[0] === {float(b[2, 0])!r}")
        np.testing.assert_array_equal(page.evaluate(ROLLOUT), b[2])
        assert page.input_value("#rollout-row") == "2"
        page.click("#model-switch button[data-value=A]")
        page.wait_for_function(f"({ROLLOUT})()[0] === {float(a[2, 0])!r}")
        np.testing.assert_array_equal(page.evaluate(ROLLOUT), a[2])
        assert report.clean, report


def colour(t: float) -> list[int]:
    """The difference map's colour of t in -1..1: the contract's diverging scale, linear between
    its stops (blue at -1, near white at 0, orange, B higher, at 1)."""
    stops = [[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in contract.DIVERGING]
    x = (max(-1.0, min(1.0, t)) + 1) / 2 * (len(stops) - 1)
    k = min(len(stops) - 2, int(x))
    return [round(a + (b - a) * (x - k)) for a, b in zip(stops[k], stops[k + 1], strict=True)]


def pixel(page, diff: dict, row: int, col: int) -> list[int]:
    """The RGBA of the centre of the map's cell (row, col), read from the canvas."""
    x = float(diff["labelWidth"]) + (col + 0.5) * float(diff["cell"])
    y = float(diff["labelWidth"]) + (row + 0.5) * float(diff["cell"])
    return page.evaluate(
        """([x, y]) => {
          const canvas = document.getElementById('diff-heatmap');
          const ratio = canvas.width / canvas.getBoundingClientRect().width;
          const at = [Math.floor(x * ratio), Math.floor(y * ratio)];
          return [...canvas.getContext('2d').getImageData(...at, 1, 1).data];
        }""",
        [x, y],
    )


def test_the_badge_shows_the_pattern_of_the_model_shown(compare_site, tmp_path):  # noqa: F811
    """While B's attention is shown, the selected head's badge is B's label (from the config's
    labelB), and A's again after switching back. The tiny models' heads share their labels, so
    a copy of the site gives L2-H1 another label in B."""
    atlas = load(compare_site)
    site = tmp_path / "site"
    shutil.copytree(compare_site, site)
    config_js = site / contract.CONFIG_SCRIPT
    prefix = f"window.{contract.CONFIG_GLOBAL} = "
    config = json.loads(config_js.read_text().removeprefix(prefix).rstrip().rstrip(";"))
    entry = config["headList"][4]  # L2-H1
    assert entry["labelB"] == atlas.head(2, 1).parts["compare"]["label_b"]
    entry["labelB"], entry["labelClassB"] = "self", contract.label_class("self")
    config_js.write_text(contract.config_script(config))
    with Browser() as browser:
        page, report = open_sentence_page(browser, site / "sentences" / "0002.html", "L2-H1")
        assert page.inner_text("#selected-label") == atlas.head(2, 1).label
        page.click("#model-switch button[data-value=B]")
        page.wait_for_function("document.querySelector('.sentence-views').dataset.model === 'B'")
        assert page.inner_text("#selected-label") == "self"
        page.click("#model-switch button[data-value=A]")
        assert page.inner_text("#selected-label") == atlas.head(2, 1).label
        assert report.clean, report
