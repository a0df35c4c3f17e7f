"""The head view and the model view of sentence pages in headless Chromium (file://): lines are
drawn and follow hover, pins, head toggles and the segment filter; the address, the model view
and the arrow keys select heads in every view; importance bars match column sums; nothing errs
or leaves the site."""

from __future__ import annotations

import pytest
from browser import dataset, open_sentence_page, require_chromium

from atlas.result import load

require_chromium()

HEAD_VIEW = "AtlasHeadView.of(document.getElementById('head-view'))"
LINES = f"() => {HEAD_VIEW}.lines()"
KEY = "document.querySelector('.sentence-views').dataset.key"
SENTENCE = f"AtlasData.get({KEY})"


@pytest.fixture(scope="module")
def pair_page(default_site) -> str:
    """The page of a question/passage pair of the examples."""
    atlas = load(default_site)
    pair = next(s for s in atlas.sentences if s.text_b is not None and s.has_view)
    return f"{pair.index + 1:04d}.html"


def open_sentence(browser, site, name, fragment=""):
    return open_sentence_page(browser, site / "sentences" / name, fragment)


def test_head_view_opens_on_one_head(browser, default_site):
    """A fresh page shows L1-H1 alone (every head of a layer is thousands of lines); the "all
    heads" button shows them all, and "none" none."""
    page, rep = open_sentence(browser, default_site, "0005.html")
    data = dataset(page, "#head-view")
    assert (data["layer"], data["focus"], data["heads"]) == ("1", "1", "1")
    lines = page.evaluate(LINES)
    assert lines and {h for h, *_ in lines} == {1}
    assert int(data["lines"]) == len(lines)
    assert page.locator(".hv-swatch[aria-pressed='true']").count() == 1
    assert "all heads" not in page.locator(".hv-status").inner_text()
    page.locator(".hv-swatch-action[data-action='all']").click()
    data = dataset(page, "#head-view")
    assert data["heads"] == ",".join(str(h) for h in range(1, 13)) and data["focus"] == "1"
    assert {h for h, *_ in page.evaluate(LINES)} == set(range(1, 13))
    assert page.locator(".hv-swatch[aria-pressed='true']").count() == 12
    assert "all heads" in page.locator(".hv-status").inner_text()
    page.locator(".hv-swatch-action[data-action='none']").click()
    assert page.evaluate(LINES) == [] and dataset(page, "#head-view")["lines"] == "0"
    assert rep.clean, rep
    page.close()


def test_head_view_draws_every_head_of_a_layer(browser, default_site):
    page, rep = open_sentence(browser, default_site, "0005.html")
    page.locator(".hv-swatch-action[data-action='all']").click()
    data = dataset(page, "#head-view")
    # "all heads": every head of layer 1 is shown, head 1 focused.
    assert data["layer"] == "1" and data["focus"] == "1"
    assert data["heads"] == ",".join(str(h) for h in range(1, 13))
    lines = page.evaluate(LINES)
    assert int(data["lines"]) == len(lines) > 100
    assert {h for h, *_ in lines} == set(range(1, 13))
    assert all(w >= 0.02 for *_, w in lines)  # the default threshold
    # The lines really are on the canvas.
    inked = page.evaluate(
        """() => {
          const c = document.querySelector('#head-view canvas');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
          return n / (c.width * c.height);
        }"""
    )
    assert inked > 0.05
    # Token labels are the sentence's own tokens as they read, in both columns.
    tokens = page.evaluate(f"(s => s.tokens.map((_, i) => AtlasData.tokenLabel(s, i)))({SENTENCE})")
    assert page.locator(".hv-from .hv-token").all_text_contents() == tokens
    assert page.locator(".hv-to .hv-token").all_text_contents() == tokens
    # Every head has its own colour.
    colours = page.evaluate("[...Array(40).keys()].map((h) => AtlasViews.headColour(h + 1))")
    assert len(set(colours)) == 40
    assert float(data["mountMs"]) > 0  # render times are measured by bench/views.py
    assert rep.clean, rep
    page.close()


def test_hover_isolates_a_token_and_click_pins_it(browser, default_site):
    page, rep = open_sentence(browser, default_site, "0005.html", "L3-H4")
    everything = page.evaluate(LINES)
    page.locator(".hv-from .hv-token[data-index='5']").hover()
    outgoing = page.evaluate(LINES)
    assert outgoing and len(outgoing) < len(everything)
    assert {i for _, i, _, _ in outgoing} == {5}
    assert dataset(page, "#head-view")["lines"] == str(len(outgoing))
    page.locator(".hv-to .hv-token[data-index='0']").hover()
    incoming = page.evaluate(LINES)
    assert incoming and {j for _, _, j, _ in incoming} == {0}
    page.mouse.move(2, 2)  # off the view: everything again
    assert len(page.evaluate(LINES)) == len(everything)
    # A click pins the token: it stays isolated after the pointer leaves; Escape releases it.
    page.locator(".hv-from .hv-token[data-index='5']").click()
    page.mouse.move(2, 2)
    assert page.evaluate(LINES) == outgoing
    assert dataset(page, "#head-view")["pinned"] == "from:5"
    page.keyboard.press("Escape")
    assert len(page.evaluate(LINES)) == len(everything)
    # Clicking a pinned token again releases it too.
    page.locator(".hv-to .hv-token[data-index='0']").click()
    page.mouse.move(2, 2)
    assert page.evaluate(LINES) == incoming
    page.locator(".hv-to .hv-token[data-index='0']").click()
    page.mouse.move(2, 2)
    assert len(page.evaluate(LINES)) == len(everything)
    assert rep.clean, rep
    page.close()


def test_head_swatches_toggle_and_isolate_heads(browser, default_site):
    page, rep = open_sentence(browser, default_site, "0005.html")
    page.locator(".hv-swatch-action[data-action='all']").click()
    heads = {h for h, *_ in page.evaluate(LINES)}
    assert 7 in heads
    page.locator(".hv-swatch[data-head='7']").click()  # toggle off
    assert page.locator(".hv-swatch[data-head='7']").get_attribute("aria-pressed") == "false"
    assert {h for h, *_ in page.evaluate(LINES)} == heads - {7}
    page.locator(".hv-swatch[data-head='7']").click()  # and on again: it becomes the focus
    assert {h for h, *_ in page.evaluate(LINES)} == heads
    assert page.evaluate("location.hash") == "#L1-H7"
    page.locator(".hv-swatch[data-head='3']").dblclick()  # alone
    assert {h for h, *_ in page.evaluate(LINES)} == {3}
    assert dataset(page, "#head-view")["heads"] == "3"
    assert page.locator(".hv-swatch[aria-pressed='true']").count() == 1
    assert page.locator("#selected-title").inner_text() == "L1-H3"
    assert page.locator("#head-grid canvas.active").get_attribute("data-head") == "3"
    # The layer menu keeps the heads shown and moves the selection.
    page.locator(".hv-layer select").select_option("4")
    assert page.evaluate("location.hash") == "#L4-H3"
    assert page.locator("#head-grid canvas.active").get_attribute("data-layer") == "4"
    assert rep.clean, rep
    page.close()


def test_pair_filter_keeps_one_segment_pair(browser, default_site, pair_page):
    page, rep = open_sentence(browser, default_site, pair_page)
    page.locator(".hv-swatch-action[data-action='all']").click()
    segments = page.evaluate(f"{HEAD_VIEW} && AtlasData.get('{pair_page[:4]}').segments")
    assert set(segments) == {-1, 0, 1}
    everything = page.evaluate(LINES)
    assert {(segments[i], segments[j]) for _, i, j, _ in everything} >= {(0, 1), (1, 0), (-1, 0)}
    for name, pair in {"A→A": (0, 0), "A→B": (0, 1), "B→A": (1, 0), "B→B": (1, 1)}.items():
        page.locator(".hv-filter button", has_text=name).click()
        lines = page.evaluate(LINES)
        assert lines, name
        assert {(segments[i], segments[j]) for _, i, j, _ in lines} == {pair}, name
        assert len(lines) < len(everything)
    page.locator(".hv-filter button", has_text="all").click()
    assert len(page.evaluate(LINES)) == len(everything)
    assert rep.clean, rep
    page.close()
    # A single sentence has no filter.
    page, rep = open_sentence(browser, default_site, "0005.html")
    assert page.locator(".hv-filter").count() == 0
    page.close()


def test_address_and_keys_select_a_head_in_both_views(browser, default_site):
    page, rep = open_sentence(browser, default_site, "0007.html", "L2-H5")
    data = dataset(page, "#head-view")
    assert (data["layer"], data["focus"], data["heads"]) == ("2", "5", "5")
    assert page.locator(".hv-layer select").input_value() == "2"
    assert {h for h, *_ in page.evaluate(LINES)} == {5}
    assert page.locator(".hv-swatch.focus").get_attribute("data-head") == "5"
    active = page.locator("#head-grid canvas.active")
    assert (active.get_attribute("data-layer"), active.get_attribute("data-head")) == ("2", "5")
    assert page.locator("#selected-title").inner_text() == "L2-H5"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    data = dataset(page, "#head-view")
    assert (data["layer"], data["heads"]) == ("3", "6")
    assert page.evaluate("location.hash") == "#L3-H6"
    page.evaluate("location.hash = '#L6-H1'")
    page.wait_for_function("document.getElementById('head-view').dataset.layer === '6'")
    assert dataset(page, "#head-view")["heads"] == "1"
    assert rep.clean, rep
    page.close()


def test_model_view_hover_enlarges_and_click_opens_the_head(browser, default_site):
    page, rep = open_sentence(browser, default_site, "0005.html")
    thumbs = page.locator("#head-grid canvas.thumb")
    assert thumbs.count() == 72
    rows = page.locator("#head-grid .row-label").all_text_contents()
    columns = page.locator("#head-grid .col-label").all_text_contents()
    assert rows == [f"L{i}" for i in range(1, 7)] and columns == [f"H{i}" for i in range(1, 13)]
    # Each thumbnail holds its head's matrix, one pixel per value.
    drawn = page.evaluate(
        """() => {
          const c = document.querySelector("#head-grid canvas[data-layer='1'][data-head='3']");
          const s = AtlasData.get(document.querySelector('.sentence-views').dataset.key);
          const px = c.getContext('2d').getImageData(0, 0, s.n, s.n).data;
          const m = s.matrix(1, 3);
          let worst = 0;
          for (let i = 0; i < s.n * s.n; i++) {
            const [r] = AtlasHeatmap.colour(m[i]);
            worst = Math.max(worst, Math.abs(px[i * 4] - r));
          }
          return [c.width, s.n, worst];
        }"""
    )
    assert drawn[0] == drawn[1] and drawn[2] <= 1
    preview = page.locator(".mv-preview")
    assert preview.is_hidden()
    thumb = page.locator("#head-grid canvas[data-layer='4'][data-head='7']")
    thumb.hover()
    preview.wait_for(state="visible")
    assert preview.locator(".mv-preview-title").inner_text().startswith("L4-H7")
    box = preview.locator("canvas").bounding_box()
    assert box and box["width"] > 3 * thumb.bounding_box()["width"]
    assert "→" in preview.locator(".mv-readout").inner_text()
    thumb.click()
    data = dataset(page, "#head-view")
    assert (data["layer"], data["focus"], data["heads"]) == ("4", "7", "7")
    assert page.locator(".hv-layer select").input_value() == "4"
    assert page.evaluate("location.hash") == "#L4-H7"
    assert page.locator("#selected-link").get_attribute("href") == "../heads/L04-H07.html"
    page.mouse.move(2, 2)
    preview.wait_for(state="hidden")
    assert float(dataset(page, "#model-view")["paintedMs"]) > 0  # every thumbnail painted
    assert rep.clean, rep
    page.close()


def test_importance_bars_follow_column_sums(browser, default_site, pair_page):
    """With no line hidden (threshold "none"), the bars are the column sums."""
    page, rep = open_sentence(browser, default_site, pair_page, "L3-H2")
    page.locator(".hv-threshold select").select_option("0")

    def bars_and_sums(heads):
        return page.evaluate(
            """(heads) => {
              const s = AtlasData.get(document.querySelector('.sentence-views').dataset.key);
              const sums = new Array(s.n).fill(0);
              for (const h of heads) {
                for (let i = 0; i < s.n; i++) {
                  for (let j = 0; j < s.n; j++) sums[j] += s.value(3, h, i, j);
                }
              }
              const bars = [...document.querySelectorAll('#head-view .hv-bar')].map((b) =>
                b.hidden ? null : b.getBoundingClientRect().width);
              return {sums, bars, special: s.special};
            }""",
            heads,
        )

    got = bars_and_sums([2])
    assert len(got["bars"]) == len(got["sums"])
    for bar, special in zip(got["bars"], got["special"], strict=True):
        assert (bar is None) == bool(special)  # special tokens get no bar
    top = max(s for s, sp in zip(got["sums"], got["special"], strict=True) if not sp)
    widest = max(b for b in got["bars"] if b is not None)
    for bar, total, special in zip(got["bars"], got["sums"], got["special"], strict=True):
        if not special:
            assert bar == pytest.approx(widest * total / top, abs=0.6)
    # With two heads shown the bars sum over both.
    page.locator(".hv-swatch[data-head='9']").click()
    got = bars_and_sums([2, 9])
    top = max(s for s, sp in zip(got["sums"], got["special"], strict=True) if not sp)
    widest = max(b for b in got["bars"] if b is not None)
    for bar, total, special in zip(got["bars"], got["sums"], got["special"], strict=True):
        if not special:
            assert bar == pytest.approx(widest * total / top, abs=0.6)
    shares = page.evaluate(
        "[...document.querySelectorAll('#head-view .hv-bar:not([hidden])')]"
        ".map((b) => Number(b.dataset.share))"
    )
    assert sum(shares) == pytest.approx(1, abs=1e-4)
    assert rep.clean, rep
    page.close()


def test_hostile_tokens_show_as_text(browser, default_site):
    atlas = load(default_site)
    evil = next(s for s in atlas.sentences if "</script>" in s.text)
    page, rep = open_sentence(browser, default_site, f"{evil.index + 1:04d}.html")
    tokens = page.locator(".hv-from .hv-token").all_text_contents()
    assert "<" in tokens and "script" in tokens
    page.locator(".hv-from .hv-token", has_text="alert").first.hover()
    page.locator("#head-grid canvas[data-layer='1'][data-head='1']").hover()
    page.wait_for_timeout(100)
    assert page.locator("#head-view img, #model-view img, #head-view script").count() == 0
    assert rep.dialogs == [] and rep.clean, rep
    page.close()


# Mounts a view on its container twice with a state of the test's own, whose subscribe counts
# the subscriptions still live, clicking `between` (a selector, or null) in the first mount;
# returns the live count. Sets window.testState, window.first and window.second (the handles).
MOUNT_TWICE = """async ([id, name, between]) => {
  const container = document.getElementById(id);
  const sentence = AtlasData.get(document.querySelector('.sentence-views').dataset.key);
  const state = AtlasState.create(sentence.layers, sentence.heads);
  window.live = 0;
  const subscribe = state.subscribe;
  state.subscribe = (fn) => {
    window.live++;
    const off = subscribe(fn);
    return () => { window.live--; off(); };
  };
  window.testState = state;
  window.first = window[name].mount(container, sentence, state);
  await new Promise(requestAnimationFrame);
  if (between) container.querySelector(between).click();
  window.second = window[name].mount(container, sentence, state);
  await new Promise(requestAnimationFrame); // the neuron view subscribes once vectors load
  return window.live;
}"""


def test_mounting_a_view_again_replaces_the_previous_mount(browser, default_site):
    """Escape releases the pin once, the old mount's subscription no longer fires, and every
    view keeps one subscription however often it is mounted."""
    page, rep = open_sentence(browser, default_site, "0005.html")
    for container, view in [("model-view", "AtlasModelView"), ("neuron-view", "AtlasNeuronView")]:
        assert page.evaluate(MOUNT_TWICE, [container, view, None]) == 1, view
        page.evaluate("testState.select(3, 4, 'test')")
        assert page.locator(f"#{container}").get_attribute("data-head") == "4", view
    # The head view: the first mount pins a token before the second mount replaces it.
    pin = ".hv-from .hv-token[data-index='3']"
    assert page.evaluate(MOUNT_TWICE, ["head-view", "AtlasHeadView", pin]) == 1
    assert page.evaluate("first.view().pin") == {"side": "from", "index": 3}
    page.locator(".hv-from .hv-token[data-index='5']").click()
    assert dataset(page, "#head-view")["pinned"] == "from:5"
    page.evaluate(
        """() => {
          window.pinWrites = 0;
          new MutationObserver((records) => { window.pinWrites += records.length; })
            .observe(document.getElementById('head-view'),
                     {attributes: true, attributeFilter: ['data-pinned']});
        }"""
    )
    page.keyboard.press("Escape")
    page.wait_for_timeout(50)
    assert page.evaluate("pinWrites") == 1  # one redraw: the old mount's listener is gone
    assert dataset(page, "#head-view")["pinned"] == ""
    assert page.evaluate("second.view().pin") is None
    assert page.evaluate("first.view().pin") == {"side": "from", "index": 3}
    page.evaluate("testState.select(4, 2, 'test')")
    assert page.evaluate("[second.view().layer, second.view().shown]") == [4, [2]]
    assert page.evaluate("[first.view().layer, first.view().shown]") == [1, [1]]
    assert rep.clean, rep
    page.close()


def test_running_the_page_again_moves_one_head_per_key(browser, default_site):
    """The sentence page's controller may run again: its arrow keys and address listeners
    replace the old ones instead of adding to them."""
    page, rep = open_sentence(browser, default_site, "0005.html", "L2-H5")
    page.evaluate("AtlasSentencePage.init(); AtlasSentencePage.init()")
    page.locator("h1").click()
    page.keyboard.press("ArrowRight")
    assert page.evaluate("location.hash") == "#L2-H6"
    page.keyboard.press("ArrowDown")
    assert page.evaluate("location.hash") == "#L3-H6"
    data = dataset(page, "#head-view")
    assert (data["layer"], data["heads"]) == ("3", "6")
    assert page.locator("#selected-title").inner_text() == "L3-H6"
    assert page.locator("#head-grid canvas.active").count() == 1
    page.evaluate("location.hash = '#L6-H1'")
    page.wait_for_function("document.getElementById('head-view').dataset.layer === '6'")
    assert page.evaluate("document.getElementById('neuron-view').dataset.head") == "1"
    assert rep.clean, rep
    page.close()
