"""Hostile data cannot become markup or script: no script of the site parses a string as HTML,
every template escapes, and JSON inside a <script> cannot end it. (The browser side, a site
built from hostile words, ids, labels and relations: tests/test_hostile_browser.py.)"""

from __future__ import annotations

import pathlib
import re

import pytest

from atlas import contract, result, site

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


# Where the site writes: only the names of its own layout (contract.is_site_path).

STORED = pathlib.Path(__file__).resolve().parent / "snapshots" / "stored-atlas"
OUTSIDE_THE_LAYOUT = [
    ".git/hooks/pre-commit",
    ".github/workflows/x.yml",
    "../x.html",
    "/etc/x.html",
    "heads/../../x.html",
    "x/y.html",
    "Index.html",
    "layers.html/",
    "heads/L1-H1.html",
    "data/0001.b.qk.js",
    "assets/",
    "assets/a/b.js",
    "assets/a\nb.js",
    ".atlas-manifest.json",
    "",
]


def test_the_layout_holds_every_name_the_contract_makes_and_nothing_else():
    total = 12345
    made = [
        *contract.FIXED_FILES,
        *(contract.head_page(layer, head) for layer in (1, 9, 48) for head in (1, 12, 100)),
        *(f(i, total) for i in (0, 9999, 12344) for f in (contract.sentence_page,
          contract.data_script, contract.vectors_script, contract.compare_data_script)),
        "layers.html", "syntax.html", contract.COMPARE_PAGE, "assets/atlas.css",
        "assets/.DS_Store",
    ]  # fmt: skip
    assert [p for p in made if not contract.is_site_path(p)] == []
    assert [p for p in OUTSIDE_THE_LAYOUT if contract.is_site_path(p)] == []


@pytest.mark.parametrize("name", [".git/hooks/pre-commit", "../x.html", "sentences/x.html"])
def test_render_writes_no_page_outside_the_layout(name: str):
    """An Atlas made in Python (not checked as atlas.json is on load) still cannot choose where
    the site writes: render stops, in one line, before the file is written."""
    atlas = result.load(STORED)
    atlas.pages[name] = {"template": "layers.html", "title": "x"}
    with pytest.raises(site.SiteError, match=f"^{re.escape(repr(name))} is not a file of the"):
        list(site.render(atlas))


def test_render_writes_no_file_twice():
    atlas = result.load(STORED)
    atlas.pages["index.html"] = {"template": "layers.html", "title": "x"}
    with pytest.raises(site.SiteError, match=r"^the site would write 'index\.html' twice$"):
        list(site.render(atlas))


def test_a_theme_asset_of_an_odd_name_is_refused(tmp_path: pathlib.Path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "a\nb.js").write_text("")
    with pytest.raises(site.SiteError, match="is not a file of the site's layout"):
        list(site.render(result.load(STORED), templates=tmp_path))
