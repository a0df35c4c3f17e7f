"""Hostile data cannot become markup or script: no script of the site parses a string as HTML,
every template escapes, and JSON inside a <script> cannot end it. (The browser side, a site
built from hostile words, ids, labels and relations: tests/test_hostile_browser.py.)"""

from __future__ import annotations

import pathlib
import re

import pytest

from atlas import contract, site

TEMPLATES = pathlib.Path(__file__).resolve().parent.parent / "templates"
SCRIPTS = sorted(TEMPLATES.rglob("*.js"))
PAGES = sorted(TEMPLATES.rglob("*.html"))

# Every way a script can hand a string to the HTML parser (or to the JavaScript compiler).
UNSAFE_SINK = re.compile(
    r"\.(innerHTML|outerHTML)\s*\+?=(?!=)|\binsertAdjacentHTML\s*\(|\bdocument\.write(ln)?\s*\("
    r"|\bcreateContextualFragment\s*\(|\bparseFromString\s*\(|\.srcdoc\s*=|\bsetHTMLUnsafe\s*\("
    r"|\beval\s*\(|\bnew\s+Function\s*\(|\bset(Timeout|Interval)\s*\(\s*[`'\"]"
)
# Sinks allowed, as (file name, line text) with the reason; none today, and a new one needs one.
ALLOWED: dict[tuple[str, str], str] = {}


def sinks(text: str) -> list[tuple[int, str]]:
    """(line number, line) of each unsafe sink, comments left out."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        code = line.split("//", 1)[0] if not line.lstrip().startswith("*") else ""
        if UNSAFE_SINK.search(code):
            found.append((number, line.strip()))
    return found


def test_the_lint_finds_each_kind_of_sink():
    """The pattern itself: each sink is caught, reading and textContent are not."""
    caught = [
        "el.innerHTML = `<b>${word}</b>`;",
        "el.outerHTML += x;",
        'el.insertAdjacentHTML("beforeend", x);',
        "document.write(x);",
        "range.createContextualFragment(x);",
        'new DOMParser().parseFromString(x, "text/html");',
        "frame.srcdoc = x;",
        "eval(x);",
        "new Function(x)();",
        'setTimeout("go()", 1);',
    ]
    for line in caught:
        assert sinks(line), line
    for line in ["el.textContent = x;", "if (el.innerHTML === x) go();", "// el.innerHTML = x"]:
        assert not sinks(line), line


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(TEMPLATES).as_posix())
def test_no_script_parses_a_string_as_html(script: pathlib.Path):
    """Page data goes into the DOM as text (textContent, DOM building), never as markup."""
    found = [
        f"{script.name}:{number}: {line}"
        for number, line in sinks(script.read_text(encoding="utf-8"))
        if (script.name, line) not in ALLOWED
    ]
    assert not found, "unsafe sink (use textContent and DOM building): " + "; ".join(found)


def test_the_page_templates_hold_no_inline_script_with_a_sink():
    """Inline scripts in templates follow the same rule as the assets."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for body in re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", text, re.DOTALL):
            assert not sinks(body), page.name


def test_every_template_escapes():
    """Autoescape on for every template, and no template turns it off or marks data safe."""
    env = site.environment()
    assert env.autoescape is True  # True: every template, whatever its name
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"\|\s*safe\b|autoescape\s+false|Markup", text), page.name
    rendered = env.from_string("<p title='{{ x }}'>{{ x }}</p>").render(x="\"'><b>&")
    assert rendered == "<p title='&#34;&#39;&gt;&lt;b&gt;&amp;'>&#34;&#39;&gt;&lt;b&gt;&amp;</p>"


HOSTILE_JSON = ["</script><script>alert(1)</script>", "<!--<script>", "</SCRIPT>", "\u2028"]


def test_json_inside_a_script_cannot_end_it_or_open_a_comment():
    """Data scripts and config (contract.script_json) and JSON in pages (Jinja's tojson) escape
    every "<", so no string holds "</script" or "<!--"."""
    env = site.environment()
    for text in (
        contract.script_json(HOSTILE_JSON),
        env.from_string("<script type='application/json'>{{ x|tojson }}</script>").render(
            x=HOSTILE_JSON
        )[len("<script type='application/json'>") : -len("</script>")],
    ):
        assert "<" not in text and "\u2028" not in text
        assert "</script" not in text.lower() and "<!--" not in text
