"""End to end: `atlas build` on tiny models of every family and on the real default model."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from conftest import build
from tiny_models import FAMILIES, MAX_LENGTH, SHAPES

from atlas.analyses.measures import COMPOUND_LABELS, LABELS
from atlas.cli import main
from atlas.model import Runner
from atlas.result import load

PAIRS = "Where is the cat?\tThe cat sat on the mat.\n"
SENTENCES = (
    "# a comment\n"
    "The dog chased the cat , and the bird watched .\n"
    "\n"
    "Many people think that the old house is very large .\n"
    + PAIRS
    + "What did she say about the new school ?\n"
)


def build_tiny(tiny_model, tmp_path: Path, out: Path, *options: str) -> None:
    """Build SENTENCES with the tiny BERT into ``out``."""
    source = write(tmp_path, SENTENCES)
    assert build([str(source), "-o", str(out), "--model", str(tiny_model("bert")), *options]) == 0


def write(tmp_path: Path, text: str, name: str = "in.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_builds(family, tiny_model, tmp_path):
    """Each model family runs end to end; shapes, roles of tokens and causality come out right."""
    out = tmp_path / "site"
    assert (
        build([str(write(tmp_path, SENTENCES)), "-o", str(out), "--model", str(tiny_model(family))])
        == 0
    )
    atlas = load(out / "atlas.json")
    layers, heads = SHAPES[family]
    assert (atlas.model.layers, atlas.model.heads) == (layers, heads)
    assert len(atlas.heads) == layers * heads
    assert atlas.model.causal == (family == "gpt2")
    assert atlas.corpus.sentences == 4 and atlas.corpus.pairs == 1
    pair = atlas.view(2)
    assert pair is not None
    assert set(pair.segments) >= {0, 1}, "the pair's second sentence is marked as segment B"
    if family != "gpt2":
        assert pair.special[0] == 1 and pair.special[-1] == 1
    for head in atlas.heads:
        assert head.label in LABELS or head.label in COMPOUND_LABELS
        assert 0.0 <= head.metrics["to_cls"] <= 1.0 + 1e-6
        assert len(head.parts["offsets"]) == 17
        assert (out / "heads" / f"{head.slug}.html").is_file()
    for number in ("0001", "0002", "0003", "0004"):
        assert (out / "sentences" / f"{number}.html").is_file()
        assert (out / "data" / f"{number}.js").is_file()


def test_metrics_match_an_independent_computation(tiny_model, tmp_path):
    """atlas.json's numbers equal DESIGN's formulas applied to attention taken straight from
    transformers, for a one-sentence corpus (so corpus mean = example value)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    sentence = "The old man , who saw the cat , said that it was his ."
    out = tmp_path / "site"
    model_dir = tiny_model("bert")
    assert (
        build([str(write(tmp_path, sentence + "\n")), "-o", str(out), "--model", str(model_dir)])
        == 0
    )
    atlas = load(out / "atlas.json")

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    enc = tokenizer(sentence, return_tensors="pt")
    with torch.no_grad():
        attn = torch.stack(model(**enc, output_attentions=True).attentions)[:, 0].double().numpy()
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    n = len(tokens)
    cls = [t == "[CLS]" for t in tokens]
    sep = [t == "[SEP]" for t in tokens]
    punct = [t in {",", "."} for t in tokens]
    for head in atlas.heads:
        a = attn[head.layer - 1, head.head - 1]
        smoothed = 0.9999 * a + 0.0001 / n
        expected = {
            "to_cls": np.mean([sum(a[i, j] for j in range(n) if cls[j]) for i in range(n)]),
            "to_sep": np.mean([sum(a[i, j] for j in range(n) if sep[j]) for i in range(n)]),
            "to_punct": np.mean([sum(a[i, j] for j in range(n) if punct[j]) for i in range(n)]),
            "self": np.mean([a[i, i] for i in range(n)]),
            "prev": sum(a[i, i - 1] for i in range(1, n)) / n,
            "next": sum(a[i, i + 1] for i in range(n - 1)) / n,
            "entropy": np.mean([-(r * np.log(r)).sum() for r in smoothed]),
            "cls_entropy": -(smoothed[0] * np.log(smoothed[0])).sum(),
        }
        for key, value in expected.items():
            assert head.metrics[key] == pytest.approx(value, abs=2e-6), (head.name, key)
    # Head distance: mean per-token JS between the two heads' smoothed rows.
    p = 0.999 * attn.reshape(-1, n, n) + 0.001 / n
    m = 0.5 * (p[0] + p[1])
    js = 0.5 * (p[0] * np.log(p[0] / m)).sum(-1) + 0.5 * (p[1] * np.log(p[1] / m)).sum(-1)
    assert atlas.distances[0][1] == pytest.approx(js.sum() / n, abs=2e-6)


@pytest.mark.slow  # two builds
def test_two_builds_are_byte_identical(tiny_model, tmp_path):
    """Same input, same options: the same bytes in every file."""
    source = write(tmp_path, SENTENCES)
    sites = []
    for name in ("one", "two"):
        out = tmp_path / name
        assert build([str(source), "-o", str(out), "--model", str(tiny_model("bert"))]) == 0
        sites.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()})
    assert sites[0].keys() == sites[1].keys()
    different = [str(p) for p in sites[0] if sites[0][p] != sites[1][p]]
    assert different == []


@pytest.mark.slow  # a build, then renders
def test_render_reproduces_the_site(tiny_model, tmp_path):
    """`atlas render atlas.json` writes the same site without running the model."""
    out = tmp_path / "site"
    build_tiny(tiny_model, tmp_path, out)
    again = tmp_path / "again"
    assert main(["render", str(out / "atlas.json"), "-o", str(again), "-q"]) == 0
    for path in out.rglob("*"):
        if path.is_file():
            assert (again / path.relative_to(out)).read_bytes() == path.read_bytes(), path


@pytest.mark.slow  # a build, then renders
def test_user_templates_override_builtin(tiny_model, tmp_path):
    """--templates DIR: a user's template and asset replace the built-in ones of the same name."""
    out = tmp_path / "site"
    build_tiny(tiny_model, tmp_path, out)
    custom = tmp_path / "theme"
    (custom / "assets").mkdir(parents=True)
    (custom / "sentences.html").write_text(
        '{% extends "base.html" %}{% block title %}Custom{% endblock %}'
        "{% block main %}<p id=custom>{{ atlas.sentences|length }} custom</p>{% endblock %}"
    )
    (custom / "assets" / "atlas.css").write_text("body { background: #fffbe6; }\n")
    themed = tmp_path / "themed"
    args = ["render", str(out), "-o", str(themed), "--templates", str(custom), "-q"]
    assert main(args) == 0
    assert "<p id=custom>4 custom</p>" in (themed / "sentences" / "index.html").read_text()
    assert (themed / "assets" / "atlas.css").read_text() == "body { background: #fffbe6; }\n"
    assert (themed / "index.html").read_bytes() == (out / "index.html").read_bytes()


def test_truncation_is_reported(tiny_model, tmp_path, capsys):
    """A sentence over the model's limit is truncated, named in a warning and flagged."""
    long = " ".join(["the cat sat on the mat"] * 40)
    source = write(tmp_path, f"A short one .\n{long}\n")
    out = tmp_path / "site"
    assert main(["build", str(source), "-o", str(out), "--model", str(tiny_model("bert"))]) == 0
    assert "sentence 2 (id 2, line 2) truncated to 64 tokens" in capsys.readouterr().err
    atlas = load(out)
    assert atlas.corpus.truncated == 1
    assert atlas.sentences[1].truncated and not atlas.sentences[0].truncated
    assert atlas.sentences[1].tokens == MAX_LENGTH


def test_views_cap_keeps_statistics_for_all(tiny_model, tmp_path):
    """--views 1 keeps one sentence page; the head pages' other examples keep only the
    attention of the heads that show them, and no page; stats still cover all sentences."""
    out = tmp_path / "site"
    build_tiny(tiny_model, tmp_path, out, "--views", "1")
    atlas = load(out)
    assert atlas.corpus.sentences == 4
    examples: dict[int, set[int]] = {}
    for flat, head in enumerate(atlas.heads):
        for i in head.parts["examples"]:
            examples.setdefault(i, set()).add(flat)
    assert {v.index for v in atlas.views} == {0} | set(examples)
    assert set(examples) - {0}, "the tiny corpus should have examples beyond the first sentence"
    size = atlas.model.layers * atlas.model.heads
    for view in atlas.views:
        if view.index == 0:
            assert view.heads_kept is None
            continue
        assert view.heads_kept == sorted(examples[view.index])
        stored = view.matrix(atlas.model.layers, atlas.model.heads).reshape(size, -1)
        assert not np.isnan(stored[view.heads_kept]).any()
        others = [h for h in range(size) if h not in view.heads_kept]
        assert np.isnan(stored[others]).all()
    assert [s.has_view for s in atlas.sentences] == [True, False, False, False]
    assert [s.has_data for s in atlas.sentences] == [i in ({0} | set(examples)) for i in range(4)]
    pages = {p.stem for p in (out / "sentences").glob("0*.html")}
    assert pages == {"0001"}


class Links(HTMLParser):
    """Collects every src and href of a page."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.urls.append(value)
            if name == "id" and value:
                self.ids.add(value)


def assert_links_resolve(site: Path) -> None:
    """Every relative link and src of every page resolves to a file inside the site."""
    for page in sorted(site.rglob("*.html")):
        parser = Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for url in parser.urls:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc, f"{page.name}: {url} leaves the site"
            if not parts.path:
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), f"{page.relative_to(site)}: {url} does not resolve"
            assert site.resolve() in target.parents


def site_bytes(site: Path) -> dict[str, int]:
    """The size of every file of a site, but the manifest (which the budget does not count)."""
    return {
        p.relative_to(site).as_posix(): p.stat().st_size
        for p in site.rglob("*")
        if p.is_file() and p.name != ".atlas-manifest.json"
    }


@pytest.mark.slow  # three builds
def test_neuron_modes_choose_which_pages_keep_vectors(tiny_model, tmp_path):
    """--neuron views (default): the first --views sentences keep queries and keys; none:
    no sentence does, and the pages say why; all: every page does."""
    for mode, expected in (("views", {"0001", "0002"}), ("none", set()), ("all", {"0001", "0002"})):
        out = tmp_path / mode
        build_tiny(tiny_model, tmp_path, out, "--views", "2", "--neuron", mode)
        assert {p.name.split(".")[0] for p in (out / "data").glob("*.qk.js")} == expected, mode
        atlas = load(out)
        assert atlas.options.neuron == mode
        assert atlas.model.neuron_view == (mode != "none")
        if mode == "none":
            assert "--neuron none" in atlas.model.neuron_note
            text = (out / "data" / "0001.js").read_text(encoding="utf-8")
            assert "--neuron none" in text


@pytest.mark.slow  # four builds
def test_size_budget_leaves_out_vectors_then_pages(tiny_model, tmp_path, capsys):
    """--max-site-mb: the site on disk fits; queries and keys go first, from the last sentence
    back, then pages; example sentences keep their heads' attention; every link resolves."""
    full = tmp_path / "full"
    build_tiny(tiny_model, tmp_path, full, "--max-site-mb", "0")
    capsys.readouterr()
    sizes = site_bytes(full)
    total = sum(sizes.values())
    last_vectors = sizes["data/0004.qk.js"]
    budget = total - last_vectors // 2  # enough to leave out one sentence's vectors
    out = tmp_path / "fits"
    source = write(tmp_path, SENTENCES)
    model = str(tiny_model("bert"))

    def run(out: Path, megabytes: str) -> str:
        """Build with a budget, not quietly; what it printed."""
        options = ["--model", model, "--max-site-mb", megabytes]
        assert main(["build", str(source), "-o", str(out), *options]) == 0
        return capsys.readouterr().err

    said = run(out, f"{budget / 1e6}")
    assert sum(site_bytes(out).values()) <= budget
    assert sorted(p.name for p in (out / "data").glob("*.qk.js")) == [
        "0001.qk.js", "0002.qk.js", "0003.qk.js"
    ]  # fmt: skip
    assert "left out the neuron view's queries and keys of 1 of 4 sentences (kept for 3)" in said
    note = (out / "data" / "0004.js").read_text(encoding="utf-8")
    assert "to keep the site under --max-site-mb" in note
    assert load(out).options.max_site_mb == pytest.approx(budget / 1e6)

    tiny = tmp_path / "tiny"
    said = run(tiny, "0.001")
    atlas = load(tiny)
    assert not any(s.has_view for s in atlas.sentences)
    assert not list((tiny / "data").glob("*.qk.js"))
    assert not list((tiny / "sentences").glob("0*.html"))
    examples = {i for h in atlas.heads for i in h.parts["examples"]}
    assert {v.index for v in atlas.views} == examples
    assert all(v.heads_kept for v in atlas.views)
    assert "left out the pages of 4 of 4 sentences (0 kept)" in said
    assert "the site is still" in said
    index = (tiny / "assets" / "search-index.js").stat().st_size
    assert f"search index ({index / 1000:,.0f} kB) are never left out" in said
    assert_links_resolve(tiny)


def test_default_model_site_is_complete_and_self_contained(default_site):
    """The real default model on examples/: every page exists, every relative link and src
    resolves inside the site, and nothing points outside it."""
    atlas = load(default_site)
    assert (atlas.model.layers, atlas.model.heads) == (6, 12)
    assert atlas.model.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert (default_site / ".nojekyll").is_file()
    assert (default_site / "assets" / "vega-bundle.js").stat().st_size > 100_000
    for head in atlas.heads:
        assert (default_site / "heads" / f"{head.slug}.html").is_file()
    for view in atlas.views:
        assert (default_site / "sentences" / f"{view.index + 1:04d}.html").is_file()
    pages = sorted(default_site.rglob("*.html"))
    # the overview, the heads table, the sentence list and the Definitions page, then the rest
    assert len(pages) == 4 + len(atlas.pages) + len(atlas.heads) + len(atlas.views)
    assert "layers.html" in atlas.pages
    assert_links_resolve(default_site)
    # The data and chart specs hold no URL either (vega would fetch them).
    for script in (default_site / "data").glob("*.js"):
        assert not re.search(r"https?://", script.read_text(encoding="utf-8"))
    for page in pages:
        specs = re.findall(r'type="application/json"[^>]*>(.*?)</script>', page.read_text())
        for spec in specs:
            assert "http" not in spec


def test_default_model_numbers_are_plausible(default_site):
    """On real BERT attention the corpus shows what Clark et al. report for BERT-like models:
    heads that put most attention on [CLS]/[SEP] and a clear previous-token head."""
    atlas = load(default_site)
    labels = {h.label for h in atlas.heads}
    assert "previous-token" in labels
    best_prev = max(atlas.heads, key=lambda h: h.metrics["prev"])
    assert best_prev.metrics["prev"] > 0.8
    n_mean = atlas.corpus.mean_tokens
    for h in atlas.heads:
        assert 0 < h.metrics["entropy"] <= math.log(atlas.corpus.max_tokens) + 1e-6
        assert sum(h.parts["offsets"]) <= 1.0 + 1e-6
    assert 0 <= atlas.map_stress < 0.4
    assert n_mean > 10
    distances = np.array(atlas.distances)
    assert np.allclose(distances, distances.T) and np.all(np.diag(distances) == 0)
    assert distances.max() <= math.log(2)


def test_user_text_is_escaped(default_site):
    """The sentence with </script><script>alert(1)</script> shows as text in every page."""
    atlas = load(default_site)
    evil = next(s for s in atlas.sentences if "</script>" in s.text)
    page = (default_site / "sentences" / f"{evil.index + 1:04d}.html").read_text()
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    index = (default_site / "sentences" / "index.html").read_text()
    assert "<script>alert(1)" not in index
    data = (default_site / "data" / f"{evil.index + 1:04d}.js").read_text()
    assert "</script>" not in data and "<" not in data


def test_pair_input_is_encoded_as_a_pair(default_site):
    """A TAB line becomes [CLS] A [SEP] B [SEP] with segments 0 and 1."""
    atlas = load(default_site)
    pair = next(s for s in atlas.sentences if s.text_b is not None and s.has_view)
    view = atlas.view(pair.index)
    assert view.tokens[0] == "[CLS]" and view.tokens[-1] == "[SEP]"
    assert view.tokens.count("[SEP]") == 2
    first_sep = view.tokens.index("[SEP]")
    assert set(view.segments[1:first_sep]) == {0}
    assert set(view.segments[first_sep + 1 : -1]) == {1}


def test_jsonl_input(tiny_model, tmp_path):
    """.jsonl input with ids and pairs builds, and keeps the ids."""
    lines = [
        {"id": "q1", "text": "Where is the cat?", "text_b": "The cat sat on the mat."},
        {"id": 7, "text": "The dog ran home."},
    ]
    source = write(tmp_path, "\n".join(json.dumps(x) for x in lines) + "\n", "in.jsonl")
    out = tmp_path / "site"
    assert build([str(source), "-o", str(out), "--model", str(tiny_model("roberta"))]) == 0
    atlas = load(out)
    assert [s.id for s in atlas.sentences] == ["q1", "7"]
    assert atlas.sentences[0].text_b == "The cat sat on the mat."


def test_runner_batches_give_the_same_attention(tiny_model):
    """Padding is stripped: an example's attention does not depend on what it is batched with."""
    from atlas.corpus import Example

    runner = Runner(str(tiny_model("bert")), device="cpu")
    examples = [Example(str(i), t) for i, t in enumerate(SENTENCES.splitlines()[1:]) if t]
    alone = {r.index: r.attention for r in runner.run(examples, batch_size=1)}
    together = {r.index: r.attention for r in runner.run(examples, batch_size=8)}
    for index, attention in alone.items():
        np.testing.assert_allclose(together[index], attention, atol=1e-5)
        np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)


@pytest.mark.slow  # two builds
def test_rendered_pages_name_build_options_as_options_of_build(tiny_model, tmp_path):
    """`atlas render` has no --views, --batch-size or --max-length: a rendered site names them
    as the options `atlas build` was given, never as bare options of the command that wrote it."""
    out = tmp_path / "site"
    build_tiny(tiny_model, tmp_path, out)
    again = tmp_path / "again"
    assert main(["render", str(out / "atlas.json"), "-o", str(again), "-q"]) == 0
    for page in ("index.html", "sentences/index.html"):
        text = (again / page).read_text()
        assert "<code>atlas build --views 200" in text, page
        assert "<code>--views" not in text and "<code>--batch-size" not in text, page
