"""Memory that does not grow with the corpus: the site streams from the renderer to the disk,
the runner copies each record's own rows rather than the batch, and queries and keys are copied
only for the sentences that keep them. Peak RSS itself is measured by bench/scale.py, not here."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from test_snapshot import STORED
from transformers import AutoModel

import atlas
from atlas import budget, hooks, site
from atlas.analyses.views import ViewData
from atlas.corpus import Example
from atlas.model import QUERIES_KEYS, Runner
from atlas.output import MANIFEST, write
from atlas.result import load

TEXTS = [
    "The dog chased the cat , and the bird watched .",
    "Where is the cat ?",
    "A short one .",
    "Colourless green ideas sleep furiously in the old house by the sea .",
    "It rained .",
]


@pytest.mark.slow  # a build
def test_render_yields_files_one_at_a_time(monkeypatch):
    """render() is lazy: the first page comes out before any data file is made, and a second
    render of the same Atlas gives the same files in the same order."""
    stored = load(STORED)
    files = site.render(stored)
    assert not isinstance(files, dict)
    first_path, first = next(files)
    assert first_path == "index.html" and first.startswith(b"<!doctype html>")

    def no_data(*_args):
        raise AssertionError("data files made before they were asked for")

    monkeypatch.setattr(site, "_data_files", no_data)
    lazy = site.render(stored)
    assert next(lazy)[0] == "index.html"  # made without touching the data files
    monkeypatch.undo()
    assert list(site.render(stored)) == list(site.render(stored))


def test_write_puts_each_file_on_disk_before_taking_the_next(tmp_path):
    """write() consumes an iterable: when it asks for file k+1, file k is already in the
    staging folder, so it never holds more than the one file it is writing."""
    out = tmp_path / "site"
    names = [f"data/{i:04d}.js" for i in range(5)] + ["index.html"]

    def files():
        for position, name in enumerate(names):
            if position:
                (staged,) = tmp_path.glob(".site.tmp-*")
                previous = staged / names[position - 1]
                assert previous.read_bytes() == names[position - 1].encode()
            yield name, name.encode()

    sizes = write(files(), out)
    assert sizes == {name: len(name) for name in names}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == sorted(
        [*names, MANIFEST]
    )


def test_a_stream_that_fails_leaves_the_old_site(tmp_path):
    """A renderer that fails half way (a template error) leaves the output folder as it was,
    and no staging folder beside it."""
    out = tmp_path / "site"
    write({"index.html": b"old", "notes/a.html": b"a"}, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def files():
        yield "index.html", b"new"
        raise site.SiteError("template error: boom")

    with pytest.raises(site.SiteError):
        write(files(), out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_a_stream_that_names_a_file_twice_is_refused(tmp_path):
    with pytest.raises(ValueError, match="twice"):
        write(iter([("index.html", b"a"), ("index.html", b"b")]), tmp_path / "site")
    assert not (tmp_path / "site").exists()


@pytest.mark.slow  # renders a site many times
def test_the_budget_measures_sizes_from_the_stream():
    stored = load(STORED)
    sizes = site.sizes(stored)
    assert sizes == {path: len(content) for path, content in site.render(stored)}


@pytest.mark.slow  # builds under budgets
def test_the_budget_measures_what_the_build_writes(tmp_path, monkeypatch):
    """Each round of the size budget is rendered once, into the staging folder: a site that
    fits is rendered once (not measured first, then rendered again), and a site over budget
    once per round of leaving out; what is written is the site ``budget.fit`` settles on."""
    import importlib

    build = importlib.import_module("atlas.build")
    stored = load(STORED)
    total = sum(site.sizes(stored).values())
    renders: list[int] = []
    real = build.render
    monkeypatch.setattr(build, "render", lambda *a, **k: renders.append(1) or real(*a, **k))
    atlas.render_site(stored, tmp_path / "fits", max_site_mb=(total + 1) / budget.MB)
    assert len(renders) == 1

    rounds: list[int] = []
    sizes = budget.site_sizes
    monkeypatch.setattr(budget, "site_sizes", lambda *a: rounds.append(1) or sizes(*a))
    fitted, lines = budget.fit(stored, total - 1)
    assert len(rounds) >= 2 and lines
    renders.clear()
    out = tmp_path / "over"
    written = atlas.render_site(stored, out, max_site_mb=(total - 1) / budget.MB)
    assert len(renders) == len(rounds)
    assert written.options == fitted.options and written.sentences == fitted.sentences
    on_disk = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert dict(site.render(fitted)) == {k: v for k, v in on_disk.items() if k != MANIFEST}


def _examples() -> list[Example]:
    return [Example(id=str(i + 1), text=text) for i, text in enumerate(TEXTS)]


def test_runner_copies_queries_and_keys_only_for_the_examples_asked(tiny_model):
    """Records not asked for have no queries and keys; those asked for have the model's own
    (checked against the projections of a fresh HF model), whatever batch they are in."""
    directory = tiny_model("bert")
    runner = Runner(str(directory), device="cpu")
    asked = {1, 3}
    records = {
        r.index: r
        for r in runner.run(
            _examples(), batch_size=2, capture={QUERIES_KEYS}, queries_keys_for=asked.__contains__
        )
    }
    assert sorted(records) == list(range(len(TEXTS)))
    for index, record in records.items():
        if index in asked:
            assert record.query is not None and record.key is not None
            for array in (record.query, record.key, record.attention):
                assert array.flags.c_contiguous and array.dtype == np.float32
        else:
            assert record.query is None and record.key is None, index
    hf = AutoModel.from_pretrained(directory, attn_implementation="eager").eval()
    heads = hf.config.num_attention_heads
    for index in asked:
        ids = torch.tensor([runner.tokenizer(TEXTS[index])["input_ids"]])
        captured: dict[int, torch.Tensor] = {}
        hooks = [
            layer.attention.self.query.register_forward_hook(
                lambda _m, _i, out, n=number, into=captured: into.__setitem__(n, out)
            )
            for number, layer in enumerate(hf.encoder.layer)
        ]
        with torch.no_grad():
            out = hf(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)
        for hook in hooks:
            hook.remove()
        n = ids.shape[1]
        query = np.stack(
            [captured[layer][0].reshape(n, heads, -1).transpose(0, 1).numpy() for layer in captured]
        )
        np.testing.assert_allclose(records[index].query, query, rtol=0, atol=1e-5)
        expected = torch.stack(out.attentions, dim=1)[0].numpy()
        np.testing.assert_allclose(records[index].attention, expected, rtol=0, atol=1e-6)


def test_a_batch_without_queries_and_keys_runs_without_the_hooks(tiny_model, monkeypatch):
    """When no example of a batch is asked for, no hooks are registered and nothing is taken;
    after the run, none is left on the model."""
    runner = Runner(str(tiny_model("bert")), device="cpu")

    def registered() -> list[int]:
        return [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in runner.model.modules()]

    before = registered()  # transformers' own hooks, if any
    taken = []
    real_pair = hooks.QueriesKeys.pair
    spy = lambda qk, layer: taken.append(layer) or real_pair(qk, layer)  # noqa: E731
    monkeypatch.setattr(hooks.QueriesKeys, "pair", spy)
    records = list(
        runner.run(
            _examples(), batch_size=2, capture={QUERIES_KEYS}, queries_keys_for={0}.__contains__
        )
    )
    assert taken == list(range(runner.info.layers))  # only the batch holding example 0
    assert [r.index for r in records if r.query is not None] == [0]
    assert registered() == before


def test_views_ask_for_queries_and_keys_of_the_sentences_they_keep(
    tiny_model, tmp_path, monkeypatch
):
    """A whole build asks the runner for the queries and keys of the --views sentences only
    (--neuron views), and of none with --neuron none."""
    source = tmp_path / "in.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    asked: list[set[int]] = []
    real_run = Runner.run

    def spying_run(self, examples, *args, queries_keys_for=None, **kwargs):
        for record in real_run(self, examples, *args, queries_keys_for=queries_keys_for, **kwargs):
            if record.query is not None:
                asked[-1].add(record.index)
            yield record

    monkeypatch.setattr(Runner, "run", spying_run)
    for neuron, expected in (("views", {0, 1}), ("none", set())):
        asked.append(set())
        result = atlas.build(
            source, None, model=str(tiny_model("bert")), views=2, neuron=neuron, batch_size=2
        )
        assert asked[-1] == expected, neuron
        assert {v.index for v in result.views if v.vectors} == expected


def test_views_analysis_rule():
    """The rule the runner is given: first --views sentences, every page with --neuron all,
    sentences wanted at the end, none with --neuron none."""
    from atlas.analyses.base import RunInfo

    run = RunInfo(layers=1, heads=1, causal=False, sentences=10)
    for neuron, first, wanted in (
        ("views", True, False),
        ("all", True, True),
        ("none", False, False),
    ):
        views = ViewData(limit=2, neuron=neuron)
        views.start(run)
        views.wanted = frozenset({7})
        assert views.queries_keys_for(1) is first, neuron
        assert views.queries_keys_for(7) is wanted, neuron
        assert views.queries_keys_for(5) is False, neuron


def test_the_build_warns_near_github_pages_limits(tiny_model, tmp_path, monkeypatch, caplog):
    """The warning comes from the real build path, with the limits made small."""
    source = tmp_path / "in.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    monkeypatch.setattr(budget, "PAGES_SITE_BYTES", 100_000)
    monkeypatch.setattr(budget, "PAGES_FILE_BYTES", 10_000)
    with caplog.at_level(logging.INFO, logger="atlas"):
        atlas.build(source, tmp_path / "site", model=str(tiny_model("bert")), max_site_mb=None)
    total = sum(p.stat().st_size for p in (tmp_path / "site").rglob("*") if p.is_file())
    total -= (tmp_path / "site" / MANIFEST).stat().st_size
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        f"the site is {total / 1e6:.1f} MB, more than GitHub Pages' limit of 0.1 MB"
        in (warnings[0])
    )
    assert "more than GitHub's limit of 0.01 MB per file: assets/vega-bundle.js" in warnings[1]
    report = [r.getMessage() for r in caplog.records if r.getMessage().startswith("wrote ")]
    assert report and report[0].endswith(f"{total / 1e6:.1f} MB")


def test_pages_warnings_thresholds():
    mb = budget.MB
    assert budget.pages_warnings({f"{i}": 70 * mb for i in range(10)}) == []
    (close,) = budget.pages_warnings({f"{i}": 78 * mb for i in range(11)})
    assert close.startswith("the site is 858.0 MB, close to GitHub Pages' limit of 1000 MB")
    (site_line, file_line) = budget.pages_warnings(
        {"a": 101 * mb, **{f"b{i}": 60 * mb for i in range(16)}}
    )
    assert "more than" in site_line
    assert file_line.startswith("1 file(s) more than GitHub's limit of 100 MB per file: a (101.0")
    assert budget.pages_warnings({"x": 85 * mb})[0].startswith("1 file(s) close to")


def test_bench_scale_cycles_the_corpus(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "scale", Path(__file__).resolve().parent.parent / "bench" / "scale.py"
    )
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    assert scale.take(["a", "b", "c"], 7) == ["a", "b", "c", "a", "b", "c", "a"]
    assert scale.take(["a", "b", "c"], 2) == ["a", "b"]
