"""Benchmark the sentence-page views in headless Chromium, and their data size beside BertViz's.

    .venv/bin/python bench/views.py [--runs 7] [--bertviz-python PATH]

Builds one site with the default model from three sentences of exactly 16, 64 and 256 tokens,
then opens each sentence page ``--runs`` times in a fresh browser context and reads the
``performance.measure`` entries the views record ("atlas:head-view", "atlas:model-view",
"atlas:neuron-view": from the start of a view's mount to its first full render) and the time
from navigation start to the end of each. Prints a Markdown table (medians, min-max) for
docs/performance.md.

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


def time_views(site: Path, keys: list[str], runs: int) -> dict[str, dict[str, list[float]]]:
    from browser import Browser

    results: dict[str, dict[str, list[float]]] = {}
    with Browser() as browser:
        for key in keys:
            timings: dict[str, list[float]] = {}
            for _ in range(runs):
                page, report = browser.open(site / "sentences" / f"{key}.html")
                page.wait_for_function(
                    "() => ['" + "','".join(VIEWS) + "'].every("
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
    args = parser.parse_args()

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
