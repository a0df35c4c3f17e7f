"""Comparing two models head by head (issue 9): the change formula on hand-made attention, real
tiny models (a perturbed layer, identical models, other tokenizers, other shapes), ``atlas
compare`` of two atlas.json files, and the compare atlas's schema round trip."""

from __future__ import annotations

import json
import logging
import math
import pathlib
import shutil
import warnings

import numpy as np
import pytest
import torch
import transformers
from conftest import EXAMPLES
from test_distances import make_record

from atlas import contract
from atlas.analyses.base import Analysis, Column, Result, RunInfo
from atlas.analyses.compare import B_NEURON_NOTE, Compare, compare_heads
from atlas.analyses.heads import HeadMetrics
from atlas.analyses.importance import HeadImportance
from atlas.analyses.measures import COLUMNS
from atlas.build import build
from atlas.cli import main
from atlas.comparison import measure_compare
from atlas.corpus import read_corpus
from atlas.model import PairedRunner, Record, Runner
from atlas.pipeline import AnalysisError
from atlas.probe import ProbeError
from atlas.result import SCHEMA_VERSION, load
from atlas.site import render

SMOOTHING = 1e-3


def js(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in nats, straight from its definition."""
    m = (p + q) / 2
    return float(0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m)))


def smoothed(row: np.ndarray) -> np.ndarray:
    return (1 - SMOOTHING) * row + SMOOTHING / len(row)


def record(index: int, attention: np.ndarray, b: np.ndarray) -> tuple[Record, Record]:
    """Hand-made records [L, H, n, n] of one example in model A and model B."""
    return tuple(make_record(index, x.astype(np.float32)) for x in (attention, b))


def run_compare(pairs: list[tuple[Record, Record]], layers: int, heads: int):
    analysis = Compare()
    analysis.start(RunInfo(layers=layers, heads=heads, causal=False, sentences=len(pairs)))
    for a, b in pairs:
        analysis.add_pair(a, b)
    return analysis.finish({})


def test_change_is_the_mean_js_per_token_on_hand_made_attention():
    """Two examples, one layer of two heads: head 1 identical in A and B, head 2 swapped from
    one-hot on the first token to one-hot on the last. The change is Σ JS / Σ n, by hand."""
    one_hot = np.array([[1.0, 0.0], [1.0, 0.0]])
    other = np.array([[0.0, 1.0], [0.0, 1.0]])
    first_a = np.stack([one_hot, one_hot])[None]
    first_b = np.stack([one_hot, other])[None]
    three_a = np.stack([np.eye(3), np.full((3, 3), 1 / 3)])[None]
    three_b = np.stack([np.eye(3), np.eye(3)[[1, 2, 0]]])[None]
    result = run_compare(
        [record(0, first_a, first_b), record(1, three_a, three_b)], layers=1, heads=2
    )
    flip = js(smoothed(np.array([1.0, 0.0])), smoothed(np.array([0.0, 1.0])))
    spread = js(smoothed(np.full(3, 1 / 3)), smoothed(np.eye(3)[1]))
    expected = [0.0, (2 * flip + 3 * spread) / 5]
    assert result.columns["change"] == pytest.approx(expected, abs=1e-7)
    # the closed form of the flip: p = (1 - e, e), q = (e, 1 - e), e = 0.0005
    e = SMOOTHING / 2
    closed = (1 - e) * math.log(2 * (1 - e)) + e * math.log(2 * e)
    assert flip == pytest.approx(closed, abs=1e-12)
    parts = result.parts["compare"]
    assert [p["rank"] for p in parts] == [2, 1]
    # B's head 2 against A's head 1, row by row: the flip on the first example, and on the
    # second B's shifted one-hot rows against A's identity: a flip between one-hot rows of 3.
    shift = js(smoothed(np.eye(3)[0]), smoothed(np.eye(3)[1]))
    cross_12 = (2 * flip + 3 * shift) / 5
    assert cross_12 > expected[1]  # so B's head 2 is still nearest to A's head 2
    assert (parts[1]["nearest"], parts[1]["kept_role"]) == (1, True)
    assert parts[1]["nearest_distance"] == pytest.approx(expected[1], abs=1e-7)
    assert (parts[0]["nearest"], parts[0]["kept_role"]) == (0, True)
    assert parts[0]["change"] == pytest.approx(0.0, abs=1e-7)  # float32 logarithms: ~2e-8


def test_deltas_are_b_minus_a_of_every_shared_column():
    a = {"to_cls": [0.5, 0.25], "self": [0.0, 1.0], "only_a": [1.0, 1.0]}
    b = {"to_cls": [0.75, 0.0], "self": [0.5, 1.0]}
    columns = [c for c in COLUMNS if c.key in ("to_cls", "self")]
    parts, data = compare_heads(columns, a, b, ["x", "y"])
    assert data["columns"] == ["to_cls", "self"]
    assert [p["delta"] for p in parts] == [
        {"to_cls": 0.25, "self": 0.5},
        {"to_cls": -0.25, "self": 0.0},
    ]
    assert [p["b"]["to_cls"] for p in parts] == [0.75, 0.0]
    assert "change" not in parts[0]


# --- real tiny models ------------------------------------------------------------------------


def copy_model(source: pathlib.Path, target: pathlib.Path, change=None) -> pathlib.Path:
    """A copy of a saved model (tokenizer included), its weights changed by ``change``."""
    shutil.copytree(source, target)
    if change is not None:
        model = transformers.AutoModel.from_pretrained(target)
        with torch.no_grad():
            change(model)
        model.save_pretrained(target)
    return target


def perturb_queries(layer: int):
    def change(model) -> None:
        generator = torch.Generator().manual_seed(1)
        weight = model.encoder.layer[layer].attention.self.query.weight
        weight.add_(torch.randn(weight.shape, generator=generator) * 0.5)

    return change


@pytest.fixture(scope="module")
def perturbed(tiny_model, tmp_path_factory) -> pathlib.Path:
    """The tiny BERT (2 layers × 4 heads) with layer 2's query weights perturbed."""
    return copy_model(
        tiny_model("bert"), tmp_path_factory.mktemp("perturbed") / "bert-b", perturb_queries(1)
    )


@pytest.fixture(scope="module")
def compare_site(tiny_model, perturbed, tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("compare") / "site"
    assert main([*compare_build(tiny_model("bert"), perturbed, out), "--views", "5"]) == 0
    return out


def test_a_perturbed_layer_changes_and_the_layers_below_do_not(compare_site):
    atlas = load(compare_site)
    change = np.array([h.metrics["change"] for h in atlas.heads]).reshape(2, 4)
    assert np.abs(change[0]).max() < 1e-6  # layer 1 runs before the perturbed layer 2
    assert change[1].min() > 1e-3
    assert int(np.argmax(change)) // 4 == 1
    ranking = atlas.results["compare"]["ranking"]
    assert [h // 4 for h in ranking[:4]] == [1, 1, 1, 1]
    for h in atlas.heads[:4]:  # unchanged heads: B's nearest head in A is their own
        assert h.parts["compare"]["nearest"] == atlas.heads.index(h)
        assert all(abs(d) < 1e-5 for d in h.parts["compare"]["delta"].values())


def test_b_metrics_and_deltas_are_those_of_a_single_build_of_b(compare_site, perturbed):
    """B's numbers in the compare atlas equal an atlas of B built alone, and the deltas are
    B − A; B's attention of each page equals the single build's."""
    atlas = load(compare_site)
    alone = build(EXAMPLES, model=str(perturbed), views=5)
    for mine, theirs in zip(atlas.heads, alone.heads, strict=True):
        for key, value in mine.parts["compare"]["b"].items():
            assert value == pytest.approx(theirs.metrics[key], abs=2e-6)
            delta = mine.parts["compare"]["delta"][key]
            assert delta == pytest.approx(value - mine.metrics[key], abs=2e-6)
        assert mine.parts["compare"]["label_b"] == theirs.label
    assert [v.index for v in atlas.views_b] == [0, 1, 2, 3, 4]
    for view in atlas.views_b:
        assert view.attention == alone.view(view.index).attention
        assert view.tokens == atlas.view(view.index).tokens


def test_identical_models_change_nothing(tiny_model, tmp_path):
    same = copy_model(tiny_model("bert"), tmp_path / "same")
    atlas = build(EXAMPLES, model=str(tiny_model("bert")), compare=str(same), views=2, limit=12)
    assert all(h.metrics["change"] == 0.0 for h in atlas.heads)
    for flat, h in enumerate(atlas.heads):
        assert h.parts["compare"]["nearest"] == flat and h.parts["compare"]["kept_role"]
        assert all(d == 0.0 for d in h.parts["compare"]["delta"].values())
    assert [v.attention for v in atlas.views_b] == [v.attention for v in atlas.views[:2]]


def compare_build(model: pathlib.Path, compare: pathlib.Path, out: pathlib.Path) -> list[str]:
    return ["build", str(EXAMPLES), "-o", str(out), "-q", "--model", str(model),
            "--compare", str(compare)]  # fmt: skip


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_other_tokenizers_are_refused_with_one_line(tiny_model, tmp_path, capsys):
    argv = compare_build(tiny_model("bert"), tiny_model("roberta"), tmp_path / "s")
    err = one_line_error(capsys, argv)
    assert err.startswith("atlas: error: cannot compare 'tiny-bert0' with 'tiny-roberta0': ")
    assert "vocabularies differ" in err and "same tokenizer" in err
    assert not (tmp_path / "s").exists()


def test_a_tokenizer_that_splits_differently_is_refused(tiny_model, tmp_path, capsys):
    """Same vocabulary and special tokens, but no lower-casing: the probes split differently."""
    cased = copy_model(tiny_model("bert"), tmp_path / "cased")
    config = json.loads((cased / "tokenizer.json").read_text())
    config["normalizer"]["lowercase"] = False
    (cased / "tokenizer.json").write_text(json.dumps(config))
    settings = json.loads((cased / "tokenizer_config.json").read_text())
    settings["do_lower_case"] = False
    (cased / "tokenizer_config.json").write_text(json.dumps(settings))
    err = one_line_error(capsys, compare_build(tiny_model("bert"), cased, tmp_path / "s"))
    assert "split" in err and "differently" in err


def test_other_shapes_are_refused_with_one_line(tiny_model, tmp_path, capsys):
    deeper = copy_model(tiny_model("bert"), tmp_path / "deeper")
    config = transformers.AutoConfig.from_pretrained(deeper)
    config.num_hidden_layers = 3
    transformers.AutoModel.from_config(config).save_pretrained(deeper)
    err = one_line_error(capsys, compare_build(tiny_model("bert"), deeper, tmp_path / "s"))
    assert "(2 layers × 4 heads)" in err and "'deeper' (3 × 4)" in err
    assert "same number of layers and heads" in err


# --- atlas compare, and the compare atlas on disk --------------------------------------------


@pytest.fixture(scope="module")
def single_sites(tiny_model, perturbed, tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    root = tmp_path_factory.mktemp("singles")
    for name, model in (("a", tiny_model("bert")), ("b", perturbed)):
        assert main(["build", str(EXAMPLES), "-o", str(root / name), "-q",
                     "--model", str(model), "--views", "3"]) == 0  # fmt: skip
    return root / "a", root / "b"


def test_atlas_compare_gives_the_deltas_of_two_atlases(single_sites, compare_site, tmp_path):
    a, b = single_sites
    out = tmp_path / "out"
    assert main(["compare", str(a / "atlas.json"), str(b / "atlas.json"), "-o", str(out),
                 "-q"]) == 0  # fmt: skip
    atlas, atlas_a, atlas_b = load(out), load(a), load(b)
    compare = atlas.results["compare"]
    assert compare["change"] is False and "ranking" not in compare
    assert compare["model"]["name"] == "bert-b"
    for mine, x, y in zip(atlas.heads, atlas_a.heads, atlas_b.heads, strict=True):
        assert mine.metrics == x.metrics
        for key in compare["columns"]:
            assert mine.parts["compare"]["delta"][key] == pytest.approx(
                y.metrics[key] - x.metrics[key], abs=1e-6
            )
    # the same columns and deltas as the build that ran both models (to atlas.json's rounding):
    # head metrics, syntax and importance, measured on B in that build
    built = load(compare_site)
    assert set(built.results["compare"]["columns"]) == set(compare["columns"])
    assert "importance" in compare["columns"]
    for mine, theirs in zip(atlas.heads, built.heads, strict=True):
        for key in built.results["compare"]["columns"]:
            assert mine.parts["compare"]["delta"][key] == pytest.approx(
                theirs.parts["compare"]["delta"][key], abs=3e-6
            )
    assert [v.index for v in atlas.views_b] == [0, 1, 2]
    assert (out / "data" / "0001.b.js").is_file() and (out / "compare.html").is_file()
    page = (out / "compare.html").read_text()
    assert "metric differences only" in page and "heatmap" not in page.split("<h2>")[0]
    head = (out / "heads" / "L02-H01.html").read_text()
    assert "Model A and model B" in head and "kept its role" not in head


def test_atlas_compare_says_b_has_no_neuron_view(single_sites, tmp_path):
    """B's own atlas has the neuron view, but a comparison's data/NNNN.b.js never carries
    queries and keys: B's card and each B data file say so, as in a compare build (they said
    "neuron_view": true with an empty note, so a page switched to B had no neuron view and no
    reason)."""
    a, b = single_sites
    assert load(b).model.neuron_view
    out = tmp_path / "out"
    assert main(["compare", str(a / "atlas.json"), str(b / "atlas.json"), "-o", str(out),
                 "-q"]) == 0  # fmt: skip
    model = load(out).results["compare"]["model"]
    assert (model["neuron_view"], model["neuron_note"]) == (False, B_NEURON_NOTE)
    script = (out / "data" / "0001.b.js").read_text()
    assert f'"note":"{B_NEURON_NOTE}"' in script and '"available":false' in script


def test_atlas_compare_refuses_other_sentences(single_sites, tiny_model, tmp_path, capsys):
    a, _ = single_sites
    other = tmp_path / "other"
    assert main(["build", str(EXAMPLES), "-o", str(other), "-q", "--limit", "5",
                 "--model", str(tiny_model("bert"))]) == 0  # fmt: skip
    err = one_line_error(capsys, ["compare", str(a / "atlas.json"), str(other / "atlas.json"),
                                  "-o", str(tmp_path / "out"), "-q"])  # fmt: skip
    assert "different inputs (59 and 5 sentences)" in err
    assert not (tmp_path / "out").exists()


STORED = pathlib.Path(__file__).parent / "snapshots" / "stored-atlas"


def stored_copy(folder: pathlib.Path, entropy: float) -> pathlib.Path:
    """A copy of the stored snapshot atlas with every head's entropy set to ``entropy``."""
    shutil.copytree(STORED, folder)
    data = json.loads((folder / "atlas.json").read_text())
    for head in data["heads"]:
        head["metrics"]["entropy"] = entropy
    (folder / "atlas.json").write_text(json.dumps(data))
    return folder / "atlas.json"


def test_atlas_compare_refuses_numbers_past_float64_without_warnings(tmp_path, capsys):
    """Each atlas finite, B − A not: one line and exit 2, no numpy overflow warning (-q), and
    no atlas.json with Infinity in it (which atlas render then refused)."""
    a, b = stored_copy(tmp_path / "a", 1e308), stored_copy(tmp_path / "b", -1e308)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would end the run as a bug
        err = one_line_error(capsys, ["compare", str(a), str(b), "-o", str(tmp_path / "out"),
                                      "-q"])  # fmt: skip
    assert err == (
        f"atlas: error: cannot compare {a} with {b}: B − A of 'entropy' at head L1-H1 is too "
        "large a number (-1e+308 − 1e+308)\n"
    )
    assert not (tmp_path / "out").exists()


def test_atlas_compare_of_large_finite_numbers_renders_again(tmp_path, capsys):
    """Numbers near float64's limit whose differences and means stay finite compare, and the
    compare atlas is read back and rendered (every number in it is finite)."""
    a, b = stored_copy(tmp_path / "a", 1e307), stored_copy(tmp_path / "b", -1e307)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["compare", str(a), str(b), "-o", str(out), "-q"]) == 0
    compare = load(out).head(1, 1).parts["compare"]
    assert compare["delta"]["entropy"] == -2e307 and compare["b"]["entropy"] == -1e307
    assert main(["render", str(out), "-o", str(tmp_path / "again"), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_atlas_json_is_never_written_with_a_number_that_is_not_finite():
    """JSON has no NaN or Infinity: to_json names where one is instead of writing it."""
    atlas = load(STORED)
    atlas.heads[2].metrics["entropy"] = math.inf
    with pytest.raises(ValueError, match=r"not finite, at \$\.heads\[2\]\.metrics\.entropy"):
        atlas.to_json()


def test_a_compare_atlas_renders_again_from_its_atlas_json(compare_site, tmp_path):
    """Schema bump and round trip: atlas.json (schema 5) and data/NNNN.b.js render the same
    site byte for byte, without the models."""
    data = json.loads((compare_site / "atlas.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION == 9
    assert data["results"]["compare"]["sentences"] == [0, 1, 2, 3, 4]
    assert "views_b" not in data
    files = dict(render(load(compare_site)))
    on_disk = {
        p.relative_to(compare_site).as_posix(): p.read_bytes()
        for p in compare_site.rglob("*")
        if p.is_file() and p.name != ".atlas-manifest.json"
    }
    assert files.keys() == on_disk.keys()
    assert all(files[path] == on_disk[path] for path in files)
    assert contract.compare_data_script(0, 59) == "data/0001.b.js"
    assert main(["render", str(compare_site / "atlas.json"), "-o", str(tmp_path / "r"),
                 "-q"]) == 0  # fmt: skip
    assert (tmp_path / "r" / "data" / "0001.b.js").read_bytes() == on_disk["data/0001.b.js"]
    assert (tmp_path / "r" / "compare.html").read_bytes() == on_disk["compare.html"]


def test_the_compare_pages(compare_site):
    index = (compare_site / "index.html").read_text()
    assert "<h2>Model A</h2>" in index and "<h2>Model B</h2>" in index
    assert index.count("<code>bert-b</code>") == 1
    page = (compare_site / "compare.html").read_text()
    assert 'id="spec-change"' in page and 'id="spec-delta-to_cls"' in page
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("<tr data-head=")[1:]
    assert [r.split('"')[1][:2] for r in rows[:4]] == ["L2"] * 4  # ranked by change
    head = (compare_site / "heads" / "L01-H01.html").read_text()
    assert "it kept its role" in head
    sentence = (compare_site / "sentences" / "0001.html").read_text()
    assert 'data-key-b="0001.b"' in sentence and "data/0001.b.js" in sentence
    assert 'id="diff-heatmap"' in sentence


def test_a_compare_build_measures_model_a_in_the_layers_and_importance_analyses(compare_site):
    """The analyses that read hidden states or run their own passes measure model A in a
    compare build too: the Layers page and head importance are there."""
    atlas = load(compare_site)
    assert "layers.html" in atlas.pages
    assert atlas.results["layers"]["curves"]["drift"][0] == pytest.approx(1.0, abs=1e-6)
    assert "importance" in atlas.heads[0].metrics


class FirstTokenShare(Analysis):
    """A user's column: each head's mean attention to the first token (outside atlas)."""

    name = "first_token"

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.total, self.rows = np.zeros(run.size), 0

    def add(self, record: Record) -> None:
        attention = np.asarray(record.attention, float).reshape(-1, record.n, record.n)
        self.total += attention[:, :, 0].sum(-1)
        self.rows += record.n

    def finish(self, results) -> Result:
        column = Column("first_token", "first token", "share", "", "attention to token 1", "")
        return Result(
            catalogue=[column], columns={"first_token": (self.total / self.rows).tolist()}
        )


def test_a_compare_build_gives_b_minus_a_of_every_column_a_user_analysis_too(tiny_model, perturbed):
    """The deltas cover every per-head column: head metrics, importance (B's own ablation) and
    a column of an analysis the user adds, each equal to the single builds' difference."""
    analyses = [HeadMetrics(), HeadImportance(6, 3, 0), FirstTokenShare()]
    built = build(
        EXAMPLES, model=str(tiny_model("bert")), compare=str(perturbed), limit=6, views=0,
        analyses=analyses,
    )  # fmt: skip
    alone = {
        side: build(EXAMPLES, model=model, limit=6, views=0,
                    analyses=[HeadMetrics(), HeadImportance(6, 3, 0), FirstTokenShare()])
        for side, model in (("a", str(tiny_model("bert"))), ("b", str(perturbed)))
    }  # fmt: skip
    keys = {c.key for c in built.catalogue} - {"change"}
    assert {"importance", "first_token", "to_cls"} <= keys
    assert set(built.results["compare"]["columns"]) == keys
    for mine, a, b in zip(built.heads, alone["a"].heads, alone["b"].heads, strict=True):
        for key in keys:
            assert mine.parts["compare"]["delta"][key] == pytest.approx(
                b.metrics[key] - a.metrics[key], abs=3e-6
            ), key
    assert any(
        h.parts["compare"]["b"]["importance"] != h.metrics["importance"] for h in built.heads
    )


def test_a_model_b_the_probe_cannot_open_leaves_its_importance_out(tiny_model, perturbed, caplog):
    """As for model A alone: B is measured without importance, with a warning that names it,
    and the comparison leaves importance out; A keeps its own."""
    paired = PairedRunner(Runner(str(tiny_model("bert"))), Runner(str(perturbed)))

    def no_probe(examples, batch_size):
        raise ProbeError("head importance: no attention output projection found")

    paired.b.probe = no_probe
    # the cli sets "atlas"'s level and stops it propagating: listen to the module's logger
    logger = logging.getLogger("atlas.pipeline")
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.WARNING)
    try:
        atlas = measure_compare(
            read_corpus(EXAMPLES, limit=4), paired, [HeadMetrics(), HeadImportance(4, 2, 0)],
            title="t", input_name="in",
        )  # fmt: skip
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(logging.NOTSET)
    assert "importance" in atlas.heads[0].metrics
    assert atlas.results["compare"]["columns"] == [c.key for c in COLUMNS]
    assert (
        "model bert-b: head importance: no attention output projection found; left out: importance"
        in caplog.text
    )


def test_a_compare_run_cuts_its_batches_to_both_models_every_layer(tiny_model):
    """A compare batch holds both models' every layer of attention until the compare analysis
    reads it: the batches fit that to --memory-gb, not one layer of one model (with a budget
    for 2 examples' 2 × L layers, the old cut made batches of 16); an example that alone needs
    more stops the run, before its pass, with one line naming the options."""
    from atlas.loading import ModelError

    model = str(tiny_model("bert"))
    corpus = read_corpus(EXAMPLES, limit=12)
    probe = Runner(model)
    widest = max(len(probe.encode(e, i)["ids"]) for i, e in enumerate(corpus))
    layers = 2 * probe.info.layers  # both models' every layer
    both = probe.attention_bytes(2, widest, layers)
    paired = PairedRunner(Runner(model, memory_gb=both / 2**30), Runner(model))
    batches = []
    forward = paired.b._forward
    paired.b._forward = lambda batch, *args, **kw: (
        batches.append(batch) or forward(batch, *args, **kw)
    )
    pairs = list(paired.run(corpus, batch_size=16))
    assert sorted(a.index for a, _ in pairs) == list(range(12))
    held = [
        probe.attention_bytes(len(batch), max(len(e["ids"]) for _, e in batch), layers)
        for batch in batches
    ]
    assert max(held) <= both and len(batches) > 2  # one layer of 12 fits: one batch before
    one = probe.attention_bytes(1, 9, layers) - 1  # one byte short of a 9-token sentence's
    tight = PairedRunner(Runner(model, memory_gb=one / 2**30), Runner(model))
    with pytest.raises(ModelError) as stopped:
        list(tight.run(read_corpus(EXAMPLES, limit=2)))
    assert str(stopped.value).startswith("--compare: sentence ")
    assert "raise --memory-gb or cut the inputs with --max-length" in str(stopped.value)


def test_an_analysis_named_as_the_compare_analysis_is_refused(tiny_model, perturbed):
    class Named(FirstTokenShare):
        name = "compare"

    paired = PairedRunner(Runner(str(tiny_model("bert"))), Runner(str(perturbed)))
    with pytest.raises(AnalysisError) as refused:
        measure_compare(read_corpus(EXAMPLES, limit=2), paired, [HeadMetrics(), Named()],
                        title="t", input_name="in")  # fmt: skip
    assert str(refused.value) == (
        "an analysis of the build is named 'compare', as the analysis that compares the two "
        "models is"
    )
