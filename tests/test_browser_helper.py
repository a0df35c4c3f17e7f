"""Proves that tests/browser.py catches console errors, page errors, network use and dialogs,
and that its axe-core check finds violations (and refuses to be skipped in CI)."""

from __future__ import annotations

import pathlib

import browser as helper
import pytest
from browser import Browser, axe_violations, require_axe, require_chromium

require_chromium()


def _page(tmp_path: pathlib.Path, body: str) -> pathlib.Path:
    path = tmp_path / "page.html"
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>t</title></head>"
        f"<body>{body}</body></html>",
        encoding="utf-8",
    )
    return path


def test_console_error(browser: Browser, tmp_path: pathlib.Path) -> None:
    _, report = browser.open(_page(tmp_path, '<script>console.error("boom")</script>'))
    assert report.console_errors == ["boom"]


def test_page_error(browser: Browser, tmp_path: pathlib.Path) -> None:
    _, report = browser.open(_page(tmp_path, '<script>throw new Error("x")</script>'))
    assert len(report.console_errors) == 1
    assert "pageerror" in report.console_errors[0]
    assert "x" in report.console_errors[0]


def test_external_request_blocked(browser: Browser, tmp_path: pathlib.Path) -> None:
    page, report = browser.open(_page(tmp_path, '<img src="https://example.com/x.png">'))
    assert report.external_requests == ["https://example.com/x.png"]
    # Aborted, so the image never loaded.
    assert page.evaluate("document.images[0].naturalWidth") == 0


def test_dialog(browser: Browser, tmp_path: pathlib.Path) -> None:
    _, report = browser.open(_page(tmp_path, "<script>alert(1)</script>"))
    assert report.dialogs == ["alert: 1"]


def test_clean_page(browser: Browser, tmp_path: pathlib.Path) -> None:
    _, report = browser.open(_page(tmp_path, "<p id='ok'>hello</p>"), wait_for="#ok")
    assert report == type(report)()
    assert report.clean


def test_missing_local_file(browser: Browser, tmp_path: pathlib.Path) -> None:
    _, report = browser.open(_page(tmp_path, '<script src="missing.js"></script>'))
    assert len(report.failed_requests) == 1
    assert "missing.js" in report.failed_requests[0]
    assert report.external_requests == []


def test_report_is_live(browser: Browser, tmp_path: pathlib.Path) -> None:
    body = "<button onclick=\"console.error('late')\">b</button>"
    page, report = browser.open(_page(tmp_path, body))
    assert report.console_errors == []
    page.click("button")
    page.wait_for_timeout(50)
    assert report.console_errors == ["late"]


def test_screenshot(browser: Browser, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "shots" / "page.png"
    report = browser.screenshot(_page(tmp_path, "<h1>hi</h1>"), out)
    assert report.clean
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_axe_finds_serious_violations_and_passes_a_clean_page(
    browser: Browser, tmp_path: pathlib.Path
) -> None:
    require_axe()
    bad = _page(
        tmp_path, "<main><img src='data:,'><button></button><p style='color:#ccc'>faint</p></main>"
    )
    page, _ = browser.open(bad)
    found = axe_violations(page)
    assert {line.split(" ")[0] for line in found} >= {"image-alt", "button-name", "color-contrast"}
    assert all("(serious)" in line or "(critical)" in line for line in found)
    good = _page(tmp_path, "<main><h1>Fine</h1><img src='data:,' alt='nothing'></main>")
    good.write_text(good.read_text().replace("<html>", "<html lang='en'>"))
    page, report = browser.open(good)
    assert axe_violations(page) == [] and report.clean, report


def test_a_missing_axe_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setattr(helper, "AXE", tmp_path / "no-axe.min.js")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="npm ci"):
        require_axe()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must not be skipped in CI"):
        require_axe()
