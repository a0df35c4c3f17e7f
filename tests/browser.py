"""Headless-Chromium helper for browser tests of the generated static site (file:// only).

Usage in a test module::

    from browser import Browser, require_chromium

    require_chromium()  # skip locally without Chromium; fail loudly when CI is set


    @pytest.fixture(scope="module")
    def browser() -> Iterator[Browser]:
        with Browser() as b:
            yield b

Every page is opened in its own browser context. Any request that is not file:, data: or
blob: is aborted before it leaves the machine and recorded in ``PageReport.external_requests``.
The report lists are filled by event listeners and keep growing after ``open`` returns;
Playwright delivers events during sync API calls, so after an interaction call e.g.
``page.wait_for_timeout(50)`` before inspecting the report.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser as PWBrowser
    from playwright.sync_api import (
        BrowserContext,
        ConsoleMessage,
        Dialog,
        Error,
        Page,
        Playwright,
        Request,
        Route,
        ViewportSize,
        WebSocketRoute,
    )

CHROMIUM = os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Belt and braces: even if something bypasses request interception (DNS prefetch,
    # preconnect), no host name resolves, so nothing can leave the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND",
]

VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
LOCAL_SCHEMES = ("file:", "data:", "blob:")


def chromium_available() -> bool:
    """True if the Chromium binary exists and the Python playwright package is importable."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    exe = shutil.which(CHROMIUM) or CHROMIUM
    return os.path.isfile(exe) and os.access(exe, os.X_OK)


def require_chromium() -> None:
    """Module-level guard: skip without Chromium, but fail loudly when $CI is set."""
    if chromium_available():
        return
    msg = f"Chromium ({CHROMIUM}) or the playwright package is not available"
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; browser tests must not be skipped in CI", pytrace=False)
    pytest.skip(msg, allow_module_level=True)


def _is_local(url: str) -> bool:
    return url.startswith(LOCAL_SCHEMES)


@dataclass
class PageReport:
    """What a page did; lists are live and keep filling while the page is open."""

    console_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True if every list is empty."""
        return not (
            self.console_errors or self.external_requests or self.dialogs or self.failed_requests
        )


class Browser:
    """Context manager: one Chromium per test module; ``open(path)`` returns (page, report)."""

    def __init__(self, viewport: ViewportSize | None = None) -> None:
        self.viewport: ViewportSize = viewport or VIEWPORT
        self._pw: Playwright | None = None
        self._browser: PWBrowser | None = None
        self._contexts: list[BrowserContext] = []

    def __enter__(self) -> Browser:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        try:
            self._browser = self._pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        except BaseException:
            self._pw.stop()
            self._pw = None
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        for ctx in self._contexts:
            with contextlib.suppress(Exception):
                ctx.close()
        self._contexts.clear()
        if self._browser is not None:
            try:
                self._browser.close()
            finally:
                self._browser = None
        if self._pw is not None:
            self._pw.stop()
            self._pw = None

    def _new_context(self, report: PageReport, timeout_ms: int) -> BrowserContext:
        if self._browser is None:
            raise RuntimeError("Browser is not started; use it as a context manager")
        ctx = self._browser.new_context(viewport=self.viewport, service_workers="block")
        ctx.set_default_timeout(timeout_ms)
        self._contexts.append(ctx)

        def block(route: Route) -> None:
            report.external_requests.append(route.request.url)
            route.abort("blockedbyclient")

        def block_ws(ws: WebSocketRoute) -> None:
            report.external_requests.append(ws.url)
            ws.close()

        ctx.route(lambda url: not _is_local(url), block)
        ctx.route_web_socket(lambda url: True, block_ws)
        return ctx

    def open(
        self,
        path: pathlib.Path,
        fragment: str = "",
        wait_for: str | None = None,
        timeout_ms: int = 15000,
    ) -> tuple[Page, PageReport]:
        """Open file://path#fragment with listeners attached first; wait for load and wait_for."""
        report = PageReport()
        ctx = self._new_context(report, timeout_ms)
        page = ctx.new_page()

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                report.console_errors.append(msg.text)

        def on_pageerror(err: Error) -> None:
            report.console_errors.append(f"pageerror: {err.name}: {err.message}")

        def on_dialog(dialog: Dialog) -> None:
            report.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        def on_requestfailed(req: Request) -> None:
            if req.url.startswith("file:"):
                report.failed_requests.append(f"{req.url} ({req.failure})")

        page.on("console", on_console)
        page.on("pageerror", on_pageerror)
        page.on("dialog", on_dialog)
        page.on("requestfailed", on_requestfailed)

        url = pathlib.Path(path).resolve().as_uri()
        if fragment:
            url += "#" + fragment.removeprefix("#")
        page.goto(url, wait_until="load", timeout=timeout_ms)
        if wait_for:
            page.wait_for_selector(wait_for, timeout=timeout_ms)
        return page, report

    def screenshot(
        self,
        path: pathlib.Path,
        out: pathlib.Path,
        full_page: bool = True,
        fragment: str = "",
        wait_for: str | None = None,
        timeout_ms: int = 15000,
    ) -> PageReport:
        """Open path, save a PNG screenshot to out, close the page and return its report."""
        page, report = self.open(path, fragment=fragment, wait_for=wait_for, timeout_ms=timeout_ms)
        try:
            out = pathlib.Path(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=full_page, animations="disabled")
        finally:
            ctx = page.context
            ctx.close()
            if ctx in self._contexts:
                self._contexts.remove(ctx)
        return report


def open_sentence_page(browser: Browser, path: pathlib.Path, fragment: str = ""):
    """Open a sentence page and wait until its head view and model view have drawn."""
    page, report = browser.open(path, fragment=fragment)
    page.wait_for_selector("#head-view[data-lines]")
    page.wait_for_selector("#model-view[data-painted-ms]")
    return page, report


def dataset(page: Page, selector: str) -> dict:
    """The data-* attributes of the first element matching selector."""
    return page.evaluate(f"() => ({{...document.querySelector({selector!r}).dataset}})")


AXE = pathlib.Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")


def require_axe() -> None:
    """Module-level guard: skip without axe-core (``npm ci``), but fail loudly when $CI is set."""
    require_chromium()
    if AXE.is_file():
        return
    msg = f"axe-core is not installed ({AXE} missing; run `npm ci`)"
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; accessibility checks must not be skipped in CI", pytrace=False)
    pytest.skip(msg, allow_module_level=True)


def axe_violations(page: Page, impacts: tuple[str, ...] = SERIOUS) -> list[str]:
    """Runs axe-core (from node_modules, injected into the page) over the whole page and returns
    one line per violation of the given impacts: rule id, impact, help and the first targets."""
    page.add_script_tag(path=str(AXE))
    # preload: false: axe would fetch the stylesheets (XMLHttpRequest), which file:// refuses.
    results = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations'], preload: false})"
        ".then((r) => r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,"
        " targets: v.nodes.slice(0, 4).map((n) => n.target.join(' '))})))"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(v['targets'])}"
        for v in results
        if v["impact"] in impacts
    ]
