"""atlas.show in a notebook: the output's HTML, placed in a page as Jupyter places it (a div of
the output area), drawn by headless Chromium: the head view (lines, tokens, a click on a head),
the model view and the neuron view, for a sentence and a pair, a tiny model and the default
one; a page of a built atlas; nothing loaded from outside; the model loaded once; and the
one-line errors."""

from __future__ import annotations

import html
import pathlib
import re

import pytest
from browser import Browser, require_chromium
from conftest import EXAMPLES, build

import atlas
from atlas import notebook

require_chromium()

TEXT = "The cat sat on the mat."
PAIR = ("The cat sat on the mat.", "It was tired.")
# How JupyterLab holds an HTML output (the notebook's own page around it).
OUTPUT = '<div class="jp-OutputArea-output" data-mime-type="text/html">{}</div>'
LINES = "() => AtlasHeadView.of(document.getElementById('head-view')).lines()"
HEAD_VIEW = "() => ({...document.getElementById('head-view').dataset})"


@pytest.fixture(scope="module")
def bert(tiny_model) -> str:
    return str(tiny_model("bert"))


@pytest.fixture(scope="module")
def tiny_site(bert, tmp_path_factory) -> pathlib.Path:
    """The first 30 example sentences, with a page for the first 25 (and, on those pages, the
    sections of other analyses, e.g. the rollout's own script)."""
    out = tmp_path_factory.mktemp("show") / "site"
    args = [str(EXAMPLES), "-o", str(out), "--model", bert, "--limit", "30", "--views", "25"]
    assert build(args) == 0
    return out


def notebook_page(folder: pathlib.Path, *shown: notebook.Shown) -> pathlib.Path:
    """A page holding each output as a notebook would: its _repr_html_() in an output div."""
    cells = "\n".join(OUTPUT.format(s._repr_html_()) for s in shown)
    path = folder / "notebook.html"
    path.write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><title>nb</title></head>'
        f"<body><main>{cells}</main></body></html>",
        encoding="utf-8",
    )
    return path


def open_outputs(browser: Browser, path: pathlib.Path, count: int):
    """The page and the frames of its outputs, once every output's views have drawn."""
    page, report = browser.open(path)
    frames = [f for f in page.frames if f != page.main_frame]
    assert len(frames) == count
    for frame in frames:
        frame.wait_for_selector("#head-view[data-lines]")
        frame.wait_for_selector("#model-view[data-painted-ms]")
        frame.wait_for_selector("#neuron-view tr.nv-row")
    return page, report, frames


def assert_views_draw(frame, words: list[str], layers: int, heads: int, head: int = 1) -> None:
    """The head view draws lines between the sentence's tokens on its canvas and a click on a
    head's swatch changes what it draws; the model view has a painted thumbnail per head; the
    neuron view has a row per token. ``head``: the head of layer 1 shown first."""
    lines = frame.evaluate(LINES)
    assert lines and {h for h, *_ in lines} == {head}
    inked = frame.evaluate(
        """() => {
          const c = document.querySelector('#head-view canvas');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
          return n;
        }"""
    )
    assert inked > 500
    shown = {line.strip() for line in frame.locator("#head-view").inner_text().splitlines()}
    assert set(words) <= shown, shown
    other = 2 if head != 2 else 1
    frame.locator(f".hv-swatch[data-head='{other}']").dblclick()
    assert frame.evaluate(HEAD_VIEW)["heads"] == str(other)
    assert {h for h, *_ in frame.evaluate(LINES)} == {other}
    assert frame.locator("#selected-title").inner_text() == f"L1-H{other}"
    assert frame.locator("#head-grid canvas.thumb").count() == layers * heads
    n = frame.evaluate("AtlasData.get(document.querySelector('.sentence-views').dataset.key).n")
    assert frame.locator("#neuron-view tr.nv-row").count() == n


def assert_self_contained(shown: notebook.Shown) -> None:
    """Every script and stylesheet is inline, and no URL leaves the document."""
    for text in (shown.page, html.unescape(shown.html)):
        assert not re.search(r"<script[^>]*\bsrc=", text)
        assert not re.search(r"<link[^>]*\bhref=", text)
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text)
        assert not re.search(r"url\(\s*[\"']?(https?:)?//", text)


def test_a_sentence_and_a_pair_in_notebook_outputs(browser, bert, tmp_path):
    """Two outputs on one page, each in its own frame (ids and globals apart); a head given
    to show() is selected."""
    single = atlas.show(TEXT, model=bert)
    pair = atlas.show(PAIR, model=bert, head="L2-H3")
    for shown in (single, pair):
        assert shown._repr_html_() == shown.html
        assert shown.html.startswith("<iframe") and "srcdoc=" in shown.html
        assert_self_contained(shown)
    page, report, (one, two) = open_outputs(browser, notebook_page(tmp_path, single, pair), 2)
    assert page.evaluate("typeof window.AtlasData") == "undefined"  # the notebook's page
    assert two.evaluate(HEAD_VIEW)["layer"] == "2" and two.evaluate(HEAD_VIEW)["heads"] == "3"
    assert two.locator("#selected-title").inner_text() == "L2-H3"
    assert two.locator(".hv-filter").count() == 1  # a pair: the A→B filter
    assert one.locator(".hv-filter").count() == 0
    two.locator(".hv-layer select").select_option("1")
    assert_views_draw(one, ["the", "cat"], 2, 4)
    assert_views_draw(two, ["cat", "it", "was"], 2, 4, head=3)
    assert one.evaluate("location.hash") == "#L1-H2"  # the frame's own address follows
    # The site's menus and search box are not shown (there is no site around the output), and
    # each frame has grown to its page's height.
    assert not one.locator("header.top nav").is_visible()
    assert not one.locator("#site-search").is_visible()
    heights = page.evaluate("[...document.querySelectorAll('iframe')].map((f) => f.offsetHeight)")
    assert all(h > notebook.DEFAULT_HEIGHT for h in heights), heights
    page.wait_for_timeout(50)
    assert report.clean, report


def test_the_default_model_in_a_notebook_output(browser, tmp_path):
    shown = atlas.show(TEXT)
    assert_self_contained(shown)
    page, report, (frame,) = open_outputs(browser, notebook_page(tmp_path, shown), 1)
    assert_views_draw(frame, ["the", "cat", "sat", "mat"], 6, 12)
    page.wait_for_timeout(50)
    assert report.clean, report


def test_words_and_a_hostile_sentence(browser, bert, tmp_path):
    """words=True gives the word-level views; a sentence that tries to close the script and
    the frame shows as text."""
    hostile = 'The cat </script><script>alert(1)</script> "sat" & </iframe>.'
    shown = atlas.show(hostile, model=bert, words=True)
    assert_self_contained(shown)
    page, report, (frame,) = open_outputs(browser, notebook_page(tmp_path, shown), 1)
    assert frame.evaluate(HEAD_VIEW)["level"] == "words"
    assert "</script><script>alert(1)</script>" in frame.locator("p.sentence").inner_text()
    page.wait_for_timeout(50)
    assert report.clean and not report.dialogs, report


def test_a_page_of_a_built_atlas(browser, tiny_site, tmp_path):
    shown = atlas.show(tiny_site, sentence=23, head="L2-H4")
    assert_self_contained(shown)
    lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
    text = [line for line in lines if line.strip() and not line.startswith("#")][22]
    page, report, (frame,) = open_outputs(browser, notebook_page(tmp_path, shown), 1)
    assert frame.locator("h1").inner_text().startswith("Sentence 23")
    assert text.split("\t")[0][:20] in frame.locator("p.sentence").inner_text()
    assert frame.evaluate(HEAD_VIEW)["layer"] == "2" and frame.evaluate(HEAD_VIEW)["heads"] == "4"
    frame.locator(".hv-layer select").select_option("1")
    assert frame.locator("#rollout-bars > *").count() == frame.evaluate(
        "AtlasData.get(document.querySelector('.sentence-views').dataset.key).n"
    )  # the importance section's script, inlined too
    frame.locator(".hv-threshold select").select_option("0")  # a tiny model's long sentence
    assert_views_draw(frame, ["how", "to", "of"], 2, 4, head=4)
    # A path alone: the first sentence page; a str with sentence= too.
    first = atlas.show(pathlib.Path(tiny_site))
    assert "<h1>Sentence 1 " in first.page
    assert "<h1>Sentence 2 " in atlas.show(str(tiny_site), sentence=2).page
    page.wait_for_timeout(50)
    assert report.clean, report


def test_save_writes_a_page_that_opens_on_its_own(browser, bert, tmp_path):
    path = atlas.show(TEXT, model=bert, head="L1-H3").save(tmp_path / "cat.html")
    page, report = browser.open(path)
    page.wait_for_selector("#neuron-view tr.nv-row")
    assert page.evaluate(HEAD_VIEW)["heads"] == "3"
    assert page.evaluate("location.hash") == "#L1-H3"
    page.wait_for_timeout(50)
    assert report.clean, report


def test_the_model_is_loaded_once(bert, tiny_model, monkeypatch):
    """Showing sentence after sentence loads the model once; another model replaces it (one
    model is held at a time)."""
    made = []

    class Counting(notebook.Runner):
        def __init__(self, model, **options):
            made.append(model)
            super().__init__(model, **options)

    monkeypatch.setattr(notebook, "Runner", Counting)
    monkeypatch.setattr(notebook, "_loaded", {})
    atlas.show(TEXT, model=bert)
    atlas.show(PAIR, model=bert)
    assert made == [bert]
    gpt2 = str(tiny_model("gpt2"))
    assert "L3-H2" in atlas.show(TEXT, model=gpt2).page  # 3 layers x 2 heads
    assert made == [bert, gpt2] and len(notebook._loaded) == 1
    atlas.show(TEXT, model=bert)
    assert made == [bert, gpt2, bert]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda site: atlas.show(site / "nope", sentence=1),
            "atlas.show: {site}/nope: no such folder",
        ),
        (
            lambda site: atlas.show(site / "data", sentence=1),
            "atlas.show: {site}/data: not an atlas (no readable atlas.json)",
        ),
        (
            lambda site: atlas.show(site, sentence=31),
            "atlas.show: {site} has sentences 1 to 30, not sentence 31",
        ),
        (
            lambda site: atlas.show(site, sentence=0),
            "atlas.show: {site} has sentences 1 to 30, not sentence 0",
        ),
        (
            lambda site: atlas.show(site, sentence=27),
            "atlas.show: sentence 27 of {site} has no page (--views kept 25; the pages are of "
            "sentences 1-25)",
        ),
        (
            lambda site: atlas.show(site, sentence="3"),
            "atlas.show: sentence is a number, got '3'",
        ),
        (
            lambda site: atlas.show(site, sentence=2, head="L9-H9"),
            "atlas.show: no head 'L9-H9' in this model (L1-H1 to L2-H4)",
        ),
        (
            lambda site: atlas.show(site, sentence=2, model="bert-base-uncased"),
            "atlas.show(site, sentence=N) shows a page as it was built; text_b, model and "
            "words are for atlas.show(text)",
        ),
        (
            lambda site: atlas.show(("a", "b"), sentence=1),
            "atlas.show: a site is a folder, got tuple",
        ),
        (lambda site: atlas.show("  "), "atlas.show: empty text"),
        (lambda site: atlas.show(("a", "b", "c")), "atlas.show: a pair is two texts, got 3"),
        (
            lambda site: atlas.show(("a", "b"), "c"),
            "atlas.show: give a pair as a tuple or as two texts, not both",
        ),
        (lambda site: atlas.show(3), "atlas.show: the text must be a string, got int"),
        (
            lambda site: atlas.show("a", "b", words=True),
            "atlas.show: words=True is for single sentences, not pairs",
        ),
    ],
)
def test_errors_are_one_line(tiny_site, call, message):
    with pytest.raises(ValueError) as caught:
        call(tiny_site)
    assert str(caught.value) == message.format(site=tiny_site)


def test_a_head_the_model_lacks(bert):
    with pytest.raises(
        ValueError, match=r"^atlas.show: no head 'L3-H1' in this model \(L1-H1 to L2-H4\)$"
    ):
        atlas.show(TEXT, model=bert, head="L3-H1")


def test_a_page_whose_asset_is_gone(tiny_site, tmp_path):
    """A site missing a file its page loads is named, not half shown."""
    import shutil

    copy = tmp_path / "site"
    shutil.copytree(tiny_site, copy)
    (copy / "assets" / "headview.js").unlink()
    with pytest.raises(ValueError, match=r"^atlas.show: .*/site: assets/headview.js is missing"):
        atlas.show(copy, sentence=1)


def test_the_example_notebook_runs(default_site, monkeypatch):
    """examples/notebook.ipynb's cells, run in order beside a built site ("site/"): each
    output is an atlas.show result."""
    import json

    cells = json.loads((EXAMPLES.parent / "notebook.ipynb").read_text(encoding="utf-8"))["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert len(code) == 4
    monkeypatch.chdir(default_site.parent)
    assert default_site.name == "site"
    namespace: dict = {}
    exec(code[0], namespace)
    for source in code[1:]:
        shown = eval(source, namespace)
        assert isinstance(shown, notebook.Shown) and "<h1>Sentence " in shown.page


def test_the_repr_is_one_short_line(bert, tiny_site):
    """At a plain Python prompt a result prints as one line, not the page's HTML; a notebook
    still draws the frame."""
    shown = atlas.show(PAIR, model=bert)
    assert repr(shown) == (
        f"<atlas.show: sentence 'The cat sat on the mat. / It …' · model {pathlib.Path(bert).name}"
        " · 2×4 heads · .save(path) to keep>"
    )
    assert str(shown) == repr(shown)
    assert shown._repr_html_().startswith("<iframe")
    assert repr(atlas.show(tiny_site, sentence=2)).startswith("<atlas.show: sentence '")


# Each <a href> of a page, as Chromium resolves it, with its text.
LINKS = "() => [...document.querySelectorAll('a[href]')].map((a) => [a.href, a.textContent])"


def test_a_saved_page_has_no_links_out_of_it(browser, tiny_site, tmp_path):
    """A page written by .save() has no site around it: every link it had into the site (the
    title, the menu, the pager, head names, the layers page, the selected head's page, also
    once a script sets it again) is plain text; links within the page stay."""
    path = atlas.show(tiny_site, sentence=23, head="L2-H4").save(tmp_path / "s23.html")
    # The same page on the site links out: the title, the menu, the pager, head names...
    on_site = (tiny_site / "sentences" / "0023.html").read_text(encoding="utf-8")
    site_links = len(re.findall(r'<a\b[^>]*\bhref="(?!#)', on_site))
    assert site_links >= 10
    page, report = browser.open(path)
    page.wait_for_selector("#neuron-view tr.nv-row")
    page.evaluate("location.hash = '#L1-H3'")  # sentence.js sets the head page's link again
    page.wait_for_function("document.getElementById('selected-title').textContent === 'L1-H3'")
    links = page.evaluate(LINKS)
    here = path.resolve().as_uri()
    assert all(href.startswith(here + "#") for href, _ in links), links
    plain = page.evaluate("[...document.querySelectorAll('a:not([href])')].map((a) => a.text)")
    assert len(plain) >= site_links
    assert {"← sentence 22", "sentence 24 →", "Open L1-H3's page", "All layers"} <= set(plain)
    style = page.evaluate(
        """() => {
          const link = [...document.querySelectorAll('main a')].find(
            (a) => a.textContent === 'All layers');
          const css = getComputedStyle(link);
          return [css.color, css.textDecorationLine, getComputedStyle(link.parentNode).color];
        }"""
    )
    assert style[0] == style[2] and style[1] == "none"  # reads as the text around it
    page.wait_for_timeout(50)
    assert report.clean, report
