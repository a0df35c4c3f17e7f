"""Benchmark the sentence-page views in headless Chromium, and their data size beside BertViz's.

    .venv/bin/python bench/views.py [--runs 7] [--bertviz-python PATH]
    .venv/bin/python bench/views.py --long [--tokens 4096] [--layers 12 --heads 12] [--runs 5]

Builds one site with the default model from three sentences of exactly 16, 64 and 256 tokens,
then opens each sentence page ``--runs`` times in a fresh browser context and reads the
``performance.measure`` entries the views record ("atlas:head-view", "atlas:model-view",
"atlas:neuron-view": from the start of a view's mount to its first full render) and the time
from navigation start to the end of each. Prints a Markdown table (medians, min-max) for
docs/performance.md.

--long: one sentence of ``--tokens`` tokens through a BERT of ``--layers`` × ``--heads`` heads
(tiny otherwise, 8,192 positions: tests/tiny_models.py ``make_long_bert``), whose page keeps
sparse rows (atlas/contract.py, SPARSE_FROM): prints the page's bytes (HTML and data script) and
the time from navigation start to the head view's and the model view's first draw.

Data size: bytes of our data/NNNN.js per attention value, beside the HTML that BertViz 1.4
(``head_view``/``model_view`` with ``html_action="return"``) produces for the same tokens and
attention, when ``--bertviz-python`` names a Python that has bertviz and torch installed (e.g. a
separate venv: ``python3 -m venv /tmp/bv && /tmp/bv/bin/pip install torch==2.13.0 bertviz``).
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
LENGTHS = (16, 64, 256)
VIEWS = ("head-view", "model-view", "neuron-view")
SOURCE = ROOT / "examples" / "sentences.txt"

BERTVIZ_SIZE = r"""
import base64, json, sys
import numpy as np, torch
from bertviz import head_view, model_view
data = json.load(sys.stdin)
n, layers, heads = len(data["tokens"]), data["layers"], data["heads"]
raw = np.frombuffer(base64.b64decode(data["attention"]), np.uint8)
att = torch.tensor(raw.reshape(layers, heads, n, n) / 255.0, dtype=torch.float32)
attention = tuple(att[i].unsqueeze(0) for i in range(layers))
out = {}
for name, view in (("head_view", head_view), ("model_view", model_view)):
    out[name] = len(view(attention, data["tokens"], html_action="return").data.encode("utf-8"))
print(json.dumps(out))
"""


def sentences_of_lengths(lengths: tuple[int, ...]) -> list[str]:
    """Sentences that the default tokenizer turns into exactly these token counts ([CLS]/[SEP]
    included), cut from the example corpus so they are real text."""
    from transformers import AutoTokenizer

    from atlas.model import default_model_path

    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    words: list[str] = []
    for line in SOURCE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#") and "<" not in line:
            words.extend(line.replace("\t", " ").split())
    text = " ".join(words)
    pieces = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ends = [end for _start, end in pieces["offset_mapping"]]
    out = []
    for length in lengths:
        # Cut the real text after some piece so that it re-tokenises to exactly `length`.
        cut = next(
            text[: ends[k]]
            for k in range(length - 3, len(ends))
            if len(tokenizer(text[: ends[k]])["input_ids"]) == length
        )
        out.append(cut)
    return out


def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def time_views(
    site: Path, keys: list[str], runs: int, views: tuple[str, ...] = VIEWS
) -> dict[str, dict[str, list[float]]]:
    from browser import Browser

    results: dict[str, dict[str, list[float]]] = {}
    with Browser() as browser:
        for key in keys:
            timings: dict[str, list[float]] = {}
            for _ in range(runs):
                page, report = browser.open(site / "sentences" / f"{key}.html")
                page.wait_for_function(
                    "() => ['" + "','".join(views) + "'].every("
                    "v => performance.getEntriesByName('atlas:' + v, 'measure').length)",
                    timeout=60_000,
                )
                entries = page.evaluate(
                    "() => performance.getEntriesByType('measure')"
                    ".filter(e => e.name.startsWith('atlas:'))"
                    ".map(e => [e.name, e.duration, e.startTime + e.duration])"
                )
                assert report.clean, report
                for name, duration, end in entries:
                    timings.setdefault(f"{name} render", []).append(duration)
                    timings.setdefault(f"{name} since navigation", []).append(end)
                page.close()
            results[key] = timings
    return results


def long_page(tokens: int, layers: int, heads: int, runs: int) -> None:
    """Build one long sentence's site and time its page (module docstring, --long)."""
    import time

    from tiny_models import make_long_bert

    import atlas
    from atlas import contract

    work = Path(tempfile.mkdtemp(prefix="atlas-bench-long-"))
    model = make_long_bert(work / "bert", layers=layers, heads=heads)
    corpus = work / "long.txt"
    corpus.write_text("the cat sat on the mat and the bird watched the fish " * tokens + "\n")
    site = work / "site"
    started = time.perf_counter()
    atlas.build(corpus, site, model=str(model), device="cpu", importance=0, max_length=tokens)
    built = time.perf_counter() - started
    data = site / contract.data_script(0, 1)
    page = site / contract.sentence_page(0, 1)
    payload = json.loads(data.read_text().split("] = ", 1)[1].rstrip().removesuffix(";"))
    timings = time_views(site, ["0001"], runs, views=("head-view", "model-view"))["0001"]
    print(f"{tokens} tokens, {layers} x {heads} heads, {payload['top']} value(s) kept a row; "
          f"built in {built:.0f} s\n")  # fmt: skip
    print("| page HTML bytes | data script bytes | together (MB) | head view drawn (ms) "
          "| model view drawn (ms) |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: |")
    html, script = page.stat().st_size, data.stat().st_size
    head = median_range(timings["atlas:head-view since navigation"])
    model_view = median_range(timings["atlas:model-view since navigation"])
    print(f"| {html} | {script} | {(html + script) / 1e6:.2f} | {head} | {model_view} |")
    print(f"\n(site built in {work})")


def bertviz_bytes(python: str, data_script: Path) -> dict[str, int]:
    text = data_script.read_text(encoding="utf-8")
    payload = json.loads(text.split("] = ", 1)[1].rstrip().removesuffix(";"))
    done = subprocess.run(
        [python, "-c", BERTVIZ_SIZE],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--bertviz-python", help="a Python with bertviz and torch installed")
    parser.add_argument("--long", action="store_true", help="time one long sentence's page")
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    args = parser.parse_args()
    if args.long:
        long_page(args.tokens, args.layers, args.heads, args.runs)
        return

    import atlas

    work = Path(tempfile.mkdtemp(prefix="atlas-bench-"))
    corpus = work / "lengths.txt"
    corpus.write_text("\n".join(sentences_of_lengths(LENGTHS)) + "\n", encoding="utf-8")
    site = work / "site"
    atlas.build(corpus, site)
    keys = [f"{i + 1:04d}" for i in range(len(LENGTHS))]

    timings = time_views(site, keys, args.runs)
    print(f"Chromium, headless, file://; {args.runs} loads each; ms, median (min-max)\n")
    print("| tokens | view | first render | since navigation start |")
    print("| ---: | --- | ---: | ---: |")
    for length, key in zip(LENGTHS, keys, strict=True):
        for view in VIEWS:
            render = timings[key].get(f"atlas:{view} render")
            since = timings[key].get(f"atlas:{view} since navigation")
            if render:
                print(f"| {length} | {view} | {median_range(render)} | {median_range(since)} |")

    print("\nData per sentence (6 layers x 12 heads)\n")
    print(
        "| tokens | attention values | data/NNNN.js bytes | of which attention | bytes per value "
        "(attention only) | BertViz head_view bytes | BertViz model_view bytes "
        "| BertViz bytes per value |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for length, key in zip(LENGTHS, keys, strict=True):
        script = site / "data" / f"{key}.js"
        payload = json.loads(script.read_text().split("] = ", 1)[1].rstrip().removesuffix(";"))
        values = 6 * 12 * length * length
        attention_bytes = len(payload["attention"])
        assert len(base64.b64decode(payload["attention"])) == values
        row = [length, values, script.stat().st_size, attention_bytes, attention_bytes / values]
        if args.bertviz_python:
            sizes = bertviz_bytes(args.bertviz_python, script)
            row += [sizes["head_view"], sizes["model_view"], sizes["head_view"] / values]
        else:
            row += ["-", "-", "-"]
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row) + " |")
    np.set_printoptions(precision=1)
    print(f"\n(site built in {work})")


if __name__ == "__main__":
    main()
