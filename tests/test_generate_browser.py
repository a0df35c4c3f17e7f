"""Generated tokens in headless Chromium (file://): every view of a sentence page marks the
tokens the model generated, for the eye (a class with its own ink) and for a screen reader
(words, not colour alone); the page shows the prompt and the generation apart."""

from __future__ import annotations

import json

import pytest
from browser import axe_violations, open_sentence_page, require_axe, require_chromium
from conftest import build
from tiny_lm import make_tiny_chat_lm

require_chromium()

TOKENS = 4


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated")
    corpus = folder / "prompts.txt"
    corpus.write_text("the cat sat on the mat\na dog ran home\n", encoding="utf-8")
    model = make_tiny_chat_lm(folder / "lm")
    out = folder / "site"
    args = [str(corpus), "-o", str(out), "--model", str(model), "--importance", "0"]
    assert build([*args, "--generate", str(TOKENS), "--chat"]) == 0
    return out


def test_views_mark_the_generated_tokens(site, browser):
    atlas = json.loads((site / "atlas.json").read_text())
    n = atlas["sentences"][0]["tokens"]
    page, report = open_sentence_page(browser, site / "sentences" / "0001.html")
    seen = page.evaluate(
        """() => {
          const gen = (sel) => [...document.querySelectorAll(sel)].map((e) => [
            e.classList.contains('gen'), e.textContent.endsWith(' (generated)'),
            getComputedStyle(e).color]);
          return {
            list: gen('p.tokens .token'),
            headView: gen('#head-view .hv-token'),
            thumb: document.querySelector('#model-view canvas.thumb').getAttribute('aria-label'),
            prompt: document.querySelector('.prompt-generation .prompt').textContent,
            generation: document.querySelector('.prompt-generation .generation').textContent,
          };
        }"""
    )
    expected = [False] * (n - TOKENS) + [True] * TOKENS
    for where in ("list", "headView"):
        marks = seen[where]
        if where == "headView":  # two columns: attending tokens, then attended tokens
            assert len(marks) == 2 * n
            marks = marks[:n]
        assert [m[0] for m in marks] == expected, where
        assert [m[1] for m in marks] == expected, where  # words for a screen reader
        assert {m[2] for m, e in zip(marks, expected, strict=True) if e} == {"rgb(161, 74, 0)"}, (
            where
        )
        assert "rgb(161, 74, 0)" not in {
            m[2] for m, e in zip(marks, expected, strict=True) if not e
        }
    assert seen["thumb"].startswith("attention of L1-H1; tokens 1 to ")
    assert f"{n - TOKENS + 1} to {n} the model's generation" in seen["thumb"]
    assert seen["prompt"] == "the cat sat on the mat"
    assert seen["generation"] == atlas["sentences"][0]["generation"]
    assert report.clean, report


def test_a_generated_page_has_no_serious_accessibility_problem(site, browser):
    require_axe()
    page, _ = open_sentence_page(browser, site / "sentences" / "0001.html")
    assert axe_violations(page) == []


def test_screenshot(site, browser, tmp_path_factory):
    """A picture to look at (kept under the test's temp folder)."""
    out = tmp_path_factory.mktemp("shots") / "generated.png"
    report = browser.screenshot(
        site / "sentences" / "0001.html", out, wait_for="#head-view[data-lines]"
    )
    assert out.stat().st_size > 0 and report.clean, report
