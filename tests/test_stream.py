"""Attention streamed by layer: what ``Analysis.add_layer`` receives, that no array of every
layer exists when no analysis reads one, batches cut to the memory budget, and a 4,000-token
input through a 12 × 12 model within 3 GB (issue 19)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from tiny_models import make_long_bert

from atlas.analyses import default_analyses
from atlas.analyses.base import Analysis, Result, RunInfo, feed, wants_whole
from atlas.corpus import Example
from atlas.model import Record, Runner
from atlas.options import BuildOptions
from atlas.pipeline import measure

TEXTS = [
    "The cat sat on the mat.",
    "Where is the dog?",
    "The bird watched the fish in the water for a long time.",
    "A man read the paper.",
    "They went home.",
]


class Layers(Analysis):
    """Records every call: (index, layer, a copy of the layer) and (index, "add")."""

    name = "record_layers"

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.calls: list[tuple] = []
        self.whole: list[np.ndarray | None] = []

    def add_layer(self, record: Record, layer: int, attention: np.ndarray) -> None:
        self.calls.append((record.index, layer, attention.copy()))

    def add(self, record: Record) -> None:
        self.calls.append((record.index, "add"))
        self.whole.append(record.attention)

    def finish(self, results) -> Result:
        return Result()


class Whole(Analysis):
    """Reads every layer at once, as a user's simple analysis does."""

    name = "read_whole"

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.shapes: list[tuple] = []

    def add(self, record: Record) -> None:
        self.shapes.append(record.attention.shape)

    def finish(self, results) -> Result:
        return Result()


def run_info(layers: int, heads: int) -> RunInfo:
    return RunInfo(layers=layers, heads=heads, causal=False, sentences=1)


def test_feed_hands_each_hand_made_layer_in_order_then_the_record():
    """A record of hand-made attention: add_layer gets layer 0, 1, 2 exactly, then add."""
    n = 4
    attention = np.stack([np.full((2, n, n), 1.0 / n) for _ in range(3)]).astype(np.float32)
    attention[1, :, :, 0] += 1.0  # layer 1 leans on the first token, layer 2 on the last
    attention[2, :, :, -1] += 2.0
    attention /= attention.sum(-1, keepdims=True)
    record = Record(0, list("abcd"), *(np.zeros(n, bool) for _ in range(4)),
                    np.zeros(n, np.int8), attention)  # fmt: skip
    analysis = Layers()
    analysis.start(run_info(3, 2))
    feed(analysis, record)
    assert [call[:2] for call in analysis.calls] == [(0, 0), (0, 1), (0, 2), (0, "add")]
    for layer in range(3):
        np.testing.assert_array_equal(analysis.calls[layer][2], attention[layer])


def test_the_runner_hands_each_layer_in_order_during_the_pass(tiny_model):
    """Through the pipeline: each example's layers come in order, each the model's attention
    of that layer (as the runner's whole records hold it), then its add; the layers of a
    batch's examples come in turn (layer 0 of each, then layer 1 of each); no record carries
    an array of every layer, since no analysis reads one."""
    runner = Runner(str(tiny_model("bert")), device="cpu")
    layers = runner.info.layers
    examples = [Example(id=str(i), text=t) for i, t in enumerate(TEXTS)]
    reference = {r.index: r.attention for r in runner.run(examples, batch_size=2)}
    analysis = Layers()
    options = BuildOptions(batch_size=2)
    measure(examples, runner, [analysis], options, title="t", input_name="in.txt")

    for index, expected in reference.items():
        mine = [call for call in analysis.calls if call[0] == index]
        assert [call[1] for call in mine] == [*range(layers), "add"]
        for layer in range(layers):
            np.testing.assert_array_equal(mine[layer][2], expected[layer])
    assert analysis.whole == [None] * len(TEXTS)
    batch = [c[:2] for c in analysis.calls[: 2 * layers + 2]]  # the first batch: two examples
    first, second = batch[0][0], batch[1][0]
    assert batch == [(i, layer) for layer in range(layers) for i in (first, second)] + [
        (first, "add"),
        (second, "add"),
    ]


def test_every_layer_at_once_only_for_an_analysis_that_reads_it(tiny_model):
    """The built-in analyses all stream; an analysis that does not override add_layer still
    gets ``record.attention`` [layers, heads, n, n], and then only it makes the runner keep it."""
    assert not wants_whole(default_analyses())
    runner = Runner(str(tiny_model("bert")), device="cpu")
    examples = [Example(id=str(i), text=t) for i, t in enumerate(TEXTS[:2])]
    streaming, whole = Layers(), Whole()
    measure(examples, runner, [streaming, whole], title="t", input_name="in.txt")
    shape = (runner.info.layers, runner.info.heads)
    assert sorted(s[:2] for s in whole.shapes) == [shape] * 2
    assert all(s[2] == s[3] for s in whole.shapes)


def test_batches_are_cut_to_the_memory_budget(tiny_model):
    """One layer's attention of a batch, B · H · W² float32 values with W its longest input,
    stays within --memory-gb: long inputs go in smaller batches, one alone if it must."""
    runner = Runner(str(tiny_model("bert")), device="cpu", memory_gb=1.0)
    heads = runner.info.heads
    runner.memory = 3 * heads * 10 * 10 * 4  # three inputs of 10 tokens
    chunk = [(i, {"ids": [0] * width}) for i, width in enumerate([4, 5, 10, 10, 10, 10, 20, 40])]
    sizes = [[len(enc["ids"]) for _, enc in batch] for batch in runner.cut(chunk, 16)]
    assert sizes == [[4, 5, 10], [10, 10, 10], [20], [40]]
    assert [len(b) for b in runner.cut(chunk, 2)] == [2, 2, 2, 1, 1]


LONG_TOKENS = 4000
PEAK_GB = 3.0
# The child's own peak is VmHWM (reset by exec). Not ru_maxrss: Linux carries the parent's
# high-water mark into the child over the vfork and exec that subprocess uses, so a pytest
# process that once held 3.9 GB made every child it ran "peak" at 3.9 GB.
PEAK_SCRIPT = """\
import sys
from atlas.cli import main
try:
    code = main(sys.argv[1:])
finally:
    status = open("/proc/self/status", encoding="ascii").read()
    print("PEAK_KB", status.split("VmHWM:")[1].split()[0], file=sys.stderr)
sys.exit(code)
"""


def atlas_peak(args: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, int]:
    """``atlas ARGS`` in a child process: the finished process and its own peak RSS in KiB."""
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, *args], capture_output=True,
                          text=True, env=env, timeout=timeout)  # fmt: skip
    return done, int(done.stderr.split("PEAK_KB ")[1].split()[0])


def test_the_peak_is_the_childs_own_not_its_parents():
    """A parent that once held 1 GiB more than it holds now does not lend the child its peak."""
    ballast = np.ones(2**27)  # 1 GiB, touched
    del ballast
    parent_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    done, peak_kb = atlas_peak(["--version"], timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert peak_kb < parent_kb - 2**19, (peak_kb, parent_kb)  # half a GiB below, at least


@pytest.mark.slow
def test_a_4000_token_input_through_12_by_12_heads_builds_within_3_gb(tmp_path):
    """A 4,000-token input through a 12-layer × 12-head model (tiny otherwise, 8,192 positions)
    builds with the default analyses within 3 GB peak RSS, measured in a child process. One
    layer's attention is 768 MB; all twelve would be 9.2 GB. Head importance is off
    (--importance 0): its gradient passes hold every layer by their nature. The sentence gets
    its page: sparse rows (one value and the remainder a row at 144 heads, contract.SPARSE_FROM),
    not 2.3 GB."""
    model = make_long_bert(tmp_path / "long-bert")
    words = ("the cat and the bird of the house . " * 500).split()  # one token each
    source = tmp_path / "long.txt"
    source.write_text(" ".join(words[: LONG_TOKENS - 2]) + "\n", encoding="utf-8")
    site = tmp_path / "site"
    args = ["build", str(source), "-o", str(site), "--model", str(model), "--device", "cpu",
            "--importance", "0"]  # fmt: skip
    done, peak_kb = atlas_peak(args, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    print(f"peak RSS of the 4,000-token build: {peak_kb / 2**20:.2f} GiB")
    assert peak_kb < PEAK_GB * 2**20, f"peak RSS {peak_kb / 2**20:.2f} GB"
    atlas = json.loads((site / "atlas.json").read_text(encoding="utf-8"))
    assert atlas["corpus"]["max_tokens"] == LONG_TOKENS
    assert "too_long" not in atlas["results"]["views"]
    assert atlas["sentences"][0]["has_view"]
