"""Makes every screenshot in docs/images/ that README.md shows, from fresh builds.

The images show what a new user gets, so the atlases are built with README's own commands
and the inputs in examples/:

    atlas build examples/sentences.txt -o site/
    atlas build examples/ud-ewt-sample.conllu -o site-ud/
    atlas build examples/induction.txt --model examples/induction-model -o induction-site/
    atlas build examples/ud-ewt-sample.conllu -o site-ft/ --model finetuned-upos/ \
        --model-name all-MiniLM-L6-v2-upos --compare sentence-transformers/all-MiniLM-L6-v2

The fourth needs the checkpoint that `examples/finetune.py -o finetuned-upos/` writes (12 to 55
minutes on CPU; not in the repository); without it the three fine-tuning shots are skipped, with
a message. Each shot is cropped to the card or section its README sentence is about, in a 1280 px
wide window at device scale 1, so the PNGs stay small.

    .venv/bin/python docs/screenshots.py                     # all shots, builds in a temp folder
    .venv/bin/python docs/screenshots.py --sites /tmp/shots  # keep the builds, reuse them next time
    .venv/bin/python docs/screenshots.py head sentence       # only these shots

Browser: Debian's /usr/bin/chromium through Python playwright (as the browser tests use).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from atlas import contract
from atlas.corpus import read_corpus

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
WIDTH = 1280
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu"]
UD = "examples/ud-ewt-sample.conllu"
SETTLE_MS = 1500  # after load: vega charts and canvases draw asynchronously

BUILDS: dict[str, list[str]] = {
    "site": ["examples/sentences.txt"],
    "site-ud": ["examples/ud-ewt-sample.conllu"],
    "induction-site": ["examples/induction.txt", "--model", "examples/induction-model"],
    "site-ft": [
        "examples/ud-ewt-sample.conllu",
        "--model", "{finetuned}",
        "--model-name", "all-MiniLM-L6-v2-upos",
        "--compare", "sentence-transformers/all-MiniLM-L6-v2",
    ],
}  # fmt: skip


def build(sites: Path, name: str, finetuned: Path) -> Path:
    """Builds one atlas with the CLI (or reuses one a previous run left in --sites)."""
    out = sites / name
    if (out / "atlas.json").exists():
        print(f"reusing {out}")
        return out
    args = [a.replace("{finetuned}", str(finetuned)) for a in BUILDS[name]]
    print(f"building {out}: atlas build {' '.join(args)}", flush=True)
    subprocess.run(
        [sys.executable, "-m", "atlas.cli", "build", *args, "-o", str(out), "-q"],
        cwd=ROOT,
        check=True,
    )
    return out


def atlas_json(site: Path) -> dict:
    return json.loads((site / "atlas.json").read_text(encoding="utf-8"))


def head_file(site: Path, metric: str) -> Path:
    """The page of the head highest on a metric, for a head whose pattern is clear."""
    top = max(atlas_json(site)["heads"], key=lambda h: h["metrics"][metric])
    return site / contract.head_page(top["layer"], top["head"])


def sentence_file(site: Path, index: int) -> Path:
    return site / contract.sentence_page(index, len(atlas_json(site)["sentences"]))


def word_sentence(site: Path, corpus: str, lo: int = 12, hi: int = 20) -> int:
    """The sentence with a page, of lo..hi words, with the most tokens beyond one per word
    (pieces of split words), so that the word level visibly differs from the token level."""
    words = {e.id: e.words for e in read_corpus(ROOT / corpus)}
    best, best_extra = None, -1
    for s in atlas_json(site)["sentences"]:
        n = len(words.get(s["id"]) or ())
        if s["has_view"] and lo <= n <= hi and s["tokens"] - n > best_extra:
            best, best_extra = s["index"], s["tokens"] - n
    if best is None:
        raise SystemExit(f"no sentence page of {lo}-{hi} words in {site}")
    return best


def open_page(page: Page, path: Path, settle_ms: int = SETTLE_MS) -> None:
    page.goto(path.as_uri())
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(settle_ms)


def clip(
    page: Page, out: Path, top: str | None, bottom: str | None = None, height: int = 900
) -> None:
    """Screenshots the page from the top of element `top` (None: the top of the page, header
    included) to the bottom of element `bottom` (or `height` px down), the window's width."""
    scroll = page.evaluate("window.scrollY")
    y0 = max(0, page.locator(top).first.bounding_box()["y"] + scroll - 12) if top else 0
    if bottom:
        b = page.locator(bottom).first.bounding_box()
        y1 = b["y"] + scroll + b["height"] + 12
    else:
        y1 = y0 + height
    box = {"x": 0, "y": y0, "width": WIDTH, "height": y1 - y0}
    page.screenshot(path=out, full_page=True, clip=box)


# The box around some elements, in page coordinates; a text block counts as wide as its text.
UNION_JS = """(selectors) => {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const selector of selectors) {
    const el = document.querySelector(selector);
    const box = el.getBoundingClientRect();
    let right = box.right;
    if (el.tagName !== "CANVAS") {
      const range = document.createRange();
      range.selectNodeContents(el);
      right = range.getBoundingClientRect().right || right;
    }
    x0 = Math.min(x0, box.left); x1 = Math.max(x1, right);
    y0 = Math.min(y0, box.top); y1 = Math.max(y1, box.bottom);
  }
  return { x: x0 + scrollX, y: y0 + scrollY, width: x1 - x0, height: y1 - y0 };
}"""


def region(page: Page, out: Path, selectors: list[str], margin: int = 10) -> None:
    """Screenshots the smallest box around some elements (their text, for text blocks)."""
    box = page.evaluate(UNION_JS, selectors)
    clip = {
        "x": max(0, box["x"] - margin),
        "y": max(0, box["y"] - margin),
        "width": box["width"] + 2 * margin,
        "height": box["height"] + 2 * margin,
    }
    page.screenshot(path=out, full_page=True, clip=clip)


def element(page: Page, out: Path, selector: str, hover: str | None = None) -> None:
    """Screenshots one element; the pointer rests on `hover` (None: off the page's content),
    since scrolling under a resting pointer would hover whatever comes under it."""
    target = page.locator(selector).first
    target.scroll_into_view_if_needed()
    if hover:
        page.locator(hover).first.hover()
    else:
        page.mouse.move(WIDTH - 1, page.viewport_size["height"] - 1)
    page.wait_for_timeout(400)
    target.screenshot(path=out)


# ---- the shots: name -> (site, function(page, site, out)) -------------------------------------


def shot_overview(page: Page, site: Path, out: Path) -> None:
    open_page(page, site / "index.html", 3000)
    clip(page, out, None, height=1100)


def shot_importance(page: Page, site: Path, out: Path) -> None:
    open_page(page, site / "index.html", 3000)
    clip(page, out, "#head-importance", "#head-importance")


def shot_head(page: Page, site: Path, out: Path) -> None:
    path = head_file(site, "prev")
    print(f"  head: {path.stem}'s page (README's caption names it)")
    open_page(page, path, 3000)
    clip(page, out, "main", height=1100)


def shot_heads(page: Page, site: Path, out: Path) -> None:
    """The heads table of the UD atlas (its widest: syntax and importance columns too), every
    column in view at the window's width."""
    open_page(page, site / "heads" / "index.html")
    clip(page, out, "main h1", height=620)


def shot_syntax(page: Page, site: Path, out: Path) -> None:
    open_page(page, site / "syntax.html", 3000)
    clip(page, out, "main h1", height=1250)


def shot_layers(page: Page, site: Path, out: Path) -> None:
    open_page(page, site / "layers.html", 3000)
    clip(page, out, "main h1", height=1100)


def koerner(site: Path) -> int:
    """The example sentence with "Koerner", whose pieces README's head-view text names."""
    for i, s in enumerate(atlas_json(site)["sentences"]):
        if "Koerner" in s["text"]:
            return i
    raise SystemExit("no sentence with 'Koerner' in examples/sentences.txt")


VIEWS_HEAD = "#L2-H9"  # a next-token head of the default model: its lines and heatmap are clear


def open_views(page: Page, site: Path) -> None:
    """The Koerner sentence's page with VIEWS_HEAD selected."""
    page.goto(sentence_file(site, koerner(site)).as_uri() + VIEWS_HEAD)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(2500)


def shot_head_view(page: Page, site: Path, out: Path) -> None:
    open_views(page, site)
    page.locator("#head-view button.hv-swatch[data-head='1']").click()  # and L2-H1, a [CLS] head
    page.wait_for_timeout(500)
    element(page, out, ".head-view-panel")


def shot_model_view(page: Page, site: Path, out: Path) -> None:
    """The model view with L1-H3 (previous-token) hovered: its enlarged preview floats (fixed)
    left of the grid, over the head view, so the shot is the union of both, in a window tall
    enough that nothing scrolls (scrolling hides the preview)."""
    page.set_viewport_size({"width": WIDTH, "height": 1300})
    open_views(page, site)
    page.evaluate(
        "window.scrollTo(0, document.querySelector('.view-side').getBoundingClientRect().top"
        " + window.scrollY - 12)"
    )
    page.locator("#model-view .thumb").nth(2).hover()
    page.wait_for_timeout(600)
    boxes = [page.locator(s).bounding_box() for s in (".view-side", ".mv-preview")]
    x0 = min(b["x"] for b in boxes) - 8
    y0 = min(b["y"] for b in boxes) - 8
    x1 = max(b["x"] + b["width"] for b in boxes) + 8
    y1 = max(b["y"] + b["height"] for b in boxes) + 8
    page.screenshot(path=out, clip={"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0})


def shot_neuron_view(page: Page, site: Path, out: Path) -> None:
    open_views(page, site)
    element(page, out, ".neuron-panel")


def shot_sentence(page: Page, site: Path, out: Path) -> None:
    """At word level (the page's default when the words are known), with the best single
    head of the Syntax page selected, so the dependency arcs show the arcs it gets right."""
    best = atlas_json(site)["results"]["syntax"]["probe"]["best_head"]
    print(f"  sentence: {best} selected (README's caption names it)")
    page.goto(f"{sentence_file(site, word_sentence(site, UD)).as_uri()}#{best}")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(3000)
    page.mouse.move(WIDTH - 1, 1)
    clip(page, out, "main", height=1240)  # the arcs, then both views side by side


def shot_search(page: Page, site: Path, out: Path) -> None:
    open_page(page, site / "index.html", 2000)
    box = page.locator("#site-search")
    box.click()
    box.type("price", delay=30)
    page.wait_for_timeout(1000)
    clip(page, out, None, ".site-search-panel")


def shot_head_types(page: Page, site: Path, out: Path) -> None:
    """The induction model's Head types card: README's induction section names its heads."""
    open_page(page, site / "index.html", 2000)
    element(page, out, "#head-types")


def shot_compare(page: Page, site: Path, out: Path) -> None:
    open_page(page, site / "compare.html", 3000)
    clip(page, out, "main h1", height=1000)


def shot_finetune_sentence(page: Page, site: Path, out: Path) -> None:
    open_page(page, sentence_file(site, word_sentence(site, UD)), 3000)
    clip(page, out, "main", height=800)


def shot_compare_sentence(page: Page, site: Path, out: Path) -> None:
    path = sentence_file(site, word_sentence(site, UD))
    page.goto(path.as_uri() + "#L6-H10")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(3000)
    page.locator("#model-switch button[data-value='B']").click()
    page.wait_for_timeout(1000)
    page.mouse.move(WIDTH - 1, 1)
    region(
        page,
        out,
        [
            "#selected-title",
            "#selected-label",
            "#selected-heatmap",
            "#diff-heatmap",
            "#diff-caption",
        ],
    )


SHOTS: dict[str, tuple[str, Callable[[Page, Path, Path], None]]] = {
    "overview": ("site", shot_overview),
    "importance": ("site", shot_importance),
    "search": ("site", shot_search),
    "head": ("site", shot_head),
    "heads": ("site-ud", shot_heads),
    "syntax": ("site-ud", shot_syntax),
    "layers": ("site-ud", shot_layers),
    "head-view": ("site", shot_head_view),
    "model-view": ("site", shot_model_view),
    "neuron-view": ("site", shot_neuron_view),
    "sentence": ("site-ud", shot_sentence),
    "head-types": ("induction-site", shot_head_types),
    "compare": ("site-ft", shot_compare),
    "finetune-sentence": ("site-ft", shot_finetune_sentence),
    "compare-sentence": ("site-ft", shot_compare_sentence),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "shots", nargs="*", help=f"shots to take (default: all): {', '.join(SHOTS)}"
    )
    parser.add_argument(
        "--sites",
        type=Path,
        help="build the atlases here, or reuse those there (default: a temp folder)",
    )
    parser.add_argument(
        "--finetuned",
        type=Path,
        default=ROOT / "finetuned-upos",
        help="the checkpoint examples/finetune.py wrote (default: finetuned-upos/)",
    )
    parser.add_argument(
        "--out", type=Path, default=IMAGES, help="where the PNGs go (default: docs/images/)"
    )
    args = parser.parse_args(argv)
    unknown = [s for s in args.shots if s not in SHOTS]
    if unknown:
        parser.error(f"unknown shot {', '.join(unknown)}; there are: {', '.join(SHOTS)}")
    wanted = args.shots or list(SHOTS)
    if not (args.finetuned / "config.json").exists():
        skipped = [s for s in wanted if SHOTS[s][0] == "site-ft"]
        if skipped:
            print(
                f"no fine-tuned checkpoint at {args.finetuned} (make one with "
                f"examples/finetune.py or pass --finetuned DIR): skipping {', '.join(skipped)}"
            )
        wanted = [s for s in wanted if s not in skipped]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="atlas-shots-") as tmp:
        sites = args.sites or Path(tmp)
        sites.mkdir(parents=True, exist_ok=True)
        built = {
            name: build(sites, name, args.finetuned.resolve())
            for name in dict.fromkeys(SHOTS[s][0] for s in wanted)
        }
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            for name in wanted:
                site_name, take = SHOTS[name]
                page = browser.new_page(
                    viewport={"width": WIDTH, "height": 900}, device_scale_factor=1
                )
                errors: list[str] = []
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                out = args.out / f"{name}.png"
                take(page, built[site_name], out)
                page.close()
                shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
                print(f"{shown}: {out.stat().st_size / 1000:.0f} kB")
                for e in errors:
                    print(f"  page error: {e}")
                failed += bool(errors)
            browser.close()
    if failed:
        print(f"{failed} page(s) had script errors: look at their shots")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
