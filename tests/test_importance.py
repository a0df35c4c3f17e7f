"""Head and token importance: ablation against zeroed output
projections and against a pass without the layer cut, gate gradients against finite
differences (float64), Clark's split against the total, and the analysis in a real build."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers
from conftest import EXAMPLES
from tiny_models import DECODERS, FAMILIES, make_tiny_masked_lm

from atlas import ranking
from atlas.analyses.importance import bootstrap, by_layer_norm
from atlas.cli import main
from atlas.corpus import read_corpus
from atlas.model import Runner
from atlas.probe import (
    ABLATION_ROWS,
    CLASSIFIER,
    ENCODER,
    MASKED_LM,
    Probe,
    ProbeError,
    clark_split,
    masked_positions,
)
from atlas.result import load

SENTENCES = 6


@pytest.fixture(scope="module")
def examples():
    return read_corpus(EXAMPLES)[:SENTENCES]


@pytest.fixture(scope="module")
def masked_lm_dir(tmp_path_factory):
    return make_tiny_masked_lm(tmp_path_factory.mktemp("tiny-mlm"))


def test_masked_positions_fixed_and_never_special():
    special = np.array([True] + [False] * 20 + [True])
    first = masked_positions(special, 7)
    assert np.array_equal(first, masked_positions(special, 7))
    assert len(first) == 3 and not special[first].any()
    assert len(masked_positions(np.array([True, False, True]), 0)) == 1


def _zero_projection(probe: Probe, layer: int, head: int) -> None:
    """Zero the weights of the layer's attention output projection that read the head's
    context vector (columns of a Linear's [out, in] weight, rows of GPT-2's Conv1D [in, out])."""
    projection = probe.projections[layer]
    conv = type(projection).__name__ == "Conv1D"
    weight = projection.weight
    size = weight.shape[0 if conv else 1] // probe.heads
    part = slice(head * size, (head + 1) * size)
    with torch.no_grad():
        if conv:
            weight[part, :] = 0
        else:
            weight[:, part] = 0


@pytest.mark.parametrize("family", ["bert", "distilbert", "gpt2"])
def test_ablating_a_head_with_zero_output_projection_changes_nothing(tiny_model, examples, family):
    runner = Runner(str(tiny_model(family)), device="cpu")
    probe = runner.probe(examples)
    layer = probe.layers - 1
    _zero_projection(probe, layer, 1)
    values = probe.ablation(range(SENTENCES))
    assert abs(values[layer, 1]) < 1e-6
    others = np.delete(values.reshape(-1), layer * probe.heads + 1)
    assert (others > 1e-7).all()
    probe.close()


@pytest.mark.parametrize("kind", [MASKED_LM, CLASSIFIER])
def test_ablation_with_a_head_zero_projection_is_zero(tiny_model, examples, kind):
    """The same for a masked-LM loss and a classifier's probability, in float64."""
    runner = Runner(str(tiny_model("bert")), device="cpu")
    probe = Probe(runner, _head_model(kind, runner.model.config).double(), examples)
    _zero_projection(probe, 1, 2)
    values = probe.ablation(range(SENTENCES))
    assert abs(values[1, 2]) < 1e-12
    assert (np.abs(np.delete(values.reshape(-1), probe.heads + 2)) > 1e-9).all()
    probe.close()


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_layer_cut_equals_a_full_pass(tiny_model, examples, family):
    """The ablated passes run only layers l.. from the recorded input of layer l; a full pass
    with the head's gate at 0 gives the same change."""
    runner = Runner(str(tiny_model(family)), device="cpu")
    probe = runner.probe(examples)
    values = probe.ablation(range(SENTENCES))
    layer, head = probe.layers - 1, 0
    changes = []
    with torch.no_grad():
        for batch in probe.batches(range(SENTENCES)):
            clean = probe._output(probe._forward(batch.inputs), batch)
            gate = torch.ones((len(batch.indices), probe.layers, probe.heads))
            gate[:, layer, head] = 0
            probe.gate = gate
            ablated = probe._output(probe._forward(batch.inputs), batch)
            probe.gate = None
            changes += (1 - torch.nn.functional.cosine_similarity(clean, ablated)).tolist()
    assert values[layer, head] == pytest.approx(np.mean(changes), rel=1e-4, abs=1e-9)
    probe.close()


def _naive_ablation(probe: Probe, indices: list[int]) -> np.ndarray:
    """[N, L, H] as ``ablation_per_example`` defines it, the slow way: full passes of every
    layer, each row a copy of its sentence with one head's gate at 0 (no cut stack, no
    attention shared among a sentence's rows), on the same batches."""
    values = np.zeros((len(indices), probe.layers, probe.heads))
    where = {index: row for row, index in enumerate(indices)}
    with torch.no_grad():
        for batch in probe.batches(indices, max(1, ABLATION_ROWS // probe.heads)):
            rows = len(batch.indices)
            clean = probe._output(probe._forward(batch.inputs), batch)
            expanded = {k: v.repeat_interleave(probe.heads, 0) for k, v in batch.inputs.items()}
            for layer in range(probe.layers):
                gate = torch.ones((rows * probe.heads, probe.layers, probe.heads))
                gate[:, layer] = 1 - torch.eye(probe.heads).repeat(rows, 1)
                probe.gate = gate
                ablated = probe._output(probe._forward(expanded), batch, repeat=probe.heads)
                probe.gate = None
                predicted = clean.argmax(-1) if probe.kind == CLASSIFIER else None
                change = probe._change(clean, ablated, predicted).view(rows, probe.heads)
                for row, index in enumerate(batch.indices):
                    values[where[index], layer] = change[row].numpy()
    return values


@pytest.mark.parametrize("family", [*FAMILIES, *DECODERS])
def test_cut_and_shared_attention_equal_full_passes(tiny_model, examples, family):
    """Every head of every layer, every family: the cut stack, whose first layer runs its
    attention once a sentence instead of once a row, gives the change of full passes with each
    row's head gated (to float64 rounding); and that attention does run once a sentence.
    Qwen2 and Gemma 2/3 (a sliding window in some layers only) failed before the cut stack
    cut ``config.layer_types`` too: its layers took the masks of the layers they replaced."""
    runner = Runner(str(tiny_model(family)), device="cpu")
    probe = Probe(runner, runner.model.double(), examples)
    indices = list(range(SENTENCES))
    rows_seen: list[tuple[int, int]] = []
    attention = probe.layout.modules("attention")
    handles = [
        module.register_forward_pre_hook(
            lambda _m, args, kwargs, layer=layer: rows_seen.append(
                (layer, len(args[0] if args else kwargs["hidden_states"]))
            ),
            with_kwargs=True,
        )
        for layer, module in enumerate(attention)
    ]
    try:
        fast = probe.ablation_per_example(indices)
    finally:
        for handle in handles:
            handle.remove()
    slow = _naive_ablation(probe, indices)
    probe.close()
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-15)  # NaN where the other is
    # (float64 eager attention can give NaN at the padding of a shorter sentence under a sliding
    # window, and so to its pooled output, both ways; the unpadded sentences stay finite)
    finite = np.isfinite(slow)
    assert finite.sum() >= slow.size // 2 and (np.abs(slow[finite]) > 1e-6).all()
    # per batch: the clean pass (its sentences), then each cut stack's first layer (also its
    # sentences) and its later layers (a row per head)
    size = max(1, ABLATION_ROWS // probe.heads)
    batches = [len(b.indices) for b in probe.batches(indices, size)]
    expected = []
    for sentences in batches:
        expected += [(layer, sentences) for layer in range(probe.layers)]
        for first in range(probe.layers):
            expected.append((first, sentences))
            later = range(first + 1, probe.layers)
            expected += [(layer, sentences * probe.heads) for layer in later]
    assert rows_seen == expected


def _head_model(kind: str, config) -> torch.nn.Module:
    config._attn_implementation = "eager"
    torch.manual_seed(3)
    if kind == MASKED_LM:
        return transformers.BertForMaskedLM(config).eval()
    config.num_labels = 3
    return transformers.BertForSequenceClassification(config).eval()


@pytest.mark.parametrize("kind", [MASKED_LM, CLASSIFIER])
def test_gate_gradient_equals_finite_differences(tiny_model, examples, kind):
    runner = Runner(str(tiny_model("bert")), device="cpu")
    model = _head_model(kind, runner.model.config).double()
    probe = Probe(runner, model, examples)
    assert probe.kind == kind
    index = 1
    grads = probe.gradients([index])["gate"]
    (batch,) = probe.batches([index])
    eps = 1e-6

    def loss(layer: int, head: int, delta: float) -> float:
        gate = torch.ones((1, probe.layers, probe.heads), dtype=torch.float64)
        gate[0, layer, head] += delta
        probe.gate = gate
        try:
            with torch.no_grad():
                return float(probe.loss(probe._forward(batch.inputs), batch))
        finally:
            probe.gate = None

    differences = np.array(
        [
            [(loss(la, h, eps) - loss(la, h, -eps)) / (2 * eps) for h in range(probe.heads)]
            for la in range(probe.layers)
        ]
    )
    np.testing.assert_allclose(grads, np.abs(differences), rtol=1e-4, atol=1e-9)
    assert (grads > 0).all()
    probe.close()


def test_classifier_loss_uses_the_gold_label_where_given(tiny_model, examples):
    """An example with a gold label (as a labelled input gives it) is scored on it, one
    without on the predicted class."""
    import dataclasses

    runner = Runner(str(tiny_model("bert")), device="cpu")
    model = _head_model(CLASSIFIER, runner.model.config).double()
    model.config.label2id = {"neg": 0, "mid": 1, "pos": 2}

    @dataclasses.dataclass(frozen=True)
    class Labelled:
        text: str
        label: str | None
        id: str = "x"
        text_b: None = None
        words: None = None
        line: int = 0

    text = examples[0].text
    unlabelled = Probe(runner, model, [Labelled(text, None)])
    (batch,) = unlabelled.batches([0])
    with torch.no_grad():
        logp = torch.log_softmax(unlabelled._forward(batch.inputs).logits, -1)[0]
        assert float(unlabelled.loss(unlabelled._forward(batch.inputs), batch)) == pytest.approx(
            -float(logp.max()), rel=1e-12
        )
    unlabelled.close()
    other = (int(logp.argmax()) + 1) % 3  # a gold label that is not the predicted class
    probe = Probe(runner, model, [Labelled(text, ["neg", "mid", "pos"][other])])
    (batch,) = probe.batches([0])
    assert batch.labels.tolist() == [other]
    with torch.no_grad():
        loss = float(probe.loss(probe._forward(batch.inputs), batch))
    assert loss == pytest.approx(-float(logp[other]), rel=1e-12)
    assert loss > -float(logp.max())
    probe.close()


def test_clark_split_sums_to_the_total(tiny_model, examples):
    """The four parts of each layer sum to Σ |A·∂loss/∂A|, computed here on its own."""
    runner = Runner(str(tiny_model("bert")), device="cpu")
    probe = Probe(runner, _head_model(MASKED_LM, runner.model.config).double(), examples)
    indices = [0, 2, 3]
    split = probe.gradients(indices)["split"]
    totals = np.zeros(probe.layers)
    with torch.enable_grad():
        for batch in probe.batches(indices):
            out = probe.model(**batch.inputs, output_attentions=True, return_dict=True)
            grads = torch.autograd.grad(probe.loss(out, batch), list(out.attentions))
            for row, n in enumerate(batch.lengths):
                for layer, (a, g) in enumerate(zip(out.attentions, grads, strict=True)):
                    totals[layer] += float(
                        (a[row, :, :n, :n] * g[row, :, :n, :n]).abs().sum().detach()
                    )
    np.testing.assert_allclose(split.sum(1), totals / len(indices), rtol=1e-9)
    assert (split > 0).all()
    probe.close()


def test_clark_split_by_role():
    weighted = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3)
    roles = np.array([0, 3, 1])
    parts = clark_split(weighted, roles)
    to = weighted.sum(axis=(0, 1))
    assert parts.tolist() == [to[0], to[2], 0.0, to[1]]
    assert parts.sum() == weighted.sum()


def test_bare_encoder_has_no_gradient(tiny_model, examples):
    probe = Runner(str(tiny_model("bert")), device="cpu").probe(examples)
    assert probe.kind == ENCODER
    with pytest.raises(ProbeError, match="not defined"):
        probe.gradients([0])
    probe.close()


def test_masked_lm_checkpoint_is_loaded_with_its_head(masked_lm_dir, examples):
    runner = Runner(str(masked_lm_dir), device="cpu")
    assert type(runner.model).__name__ == "BertModel"  # the runner's own pass is unchanged
    probe = runner.probe(examples)
    assert probe.kind == MASKED_LM and probe.model is not runner.model
    probe.close()


@pytest.mark.slow  # a build with gradients
def test_build_with_masked_lm_head(masked_lm_dir, tmp_path):
    out = tmp_path / "site"
    argv = ["build", str(EXAMPLES), "-o", str(out), "--model", str(masked_lm_dir), "-q"]
    assert main([*argv, "--importance", "5", "--importance-ablation", "3", "--views", "4"]) == 0
    atlas = json.loads((out / "atlas.json").read_text())
    result = atlas["results"]["importance"]
    assert result["kind"] == MASKED_LM and result["gradient"]
    assert result["sample"] == [0, 1, 2, 3, 4] and result["ablated"] == [0, 1, 2]
    assert sorted(result["saliency"]) == ["0", "1", "2", "3"]
    assert sum(result["saliency"]["0"]) == pytest.approx(1, abs=1e-3)
    keys = {c["key"] for c in atlas["catalogue"]}
    assert {"importance", "importance_grad"} <= keys
    assert len(result["clark"]) == 2 and set(result["correlation"]) >= {"importance~to_sep"}
    overview = (out / "index.html").read_text()
    assert 'id="head-importance"' in overview and "Fig. 3" in overview
    assert "Gradient × input" in (out / "sentences" / "0001.html").read_text()
    assert "saliency-data" in (out / "sentences" / "0001.html").read_text()


@pytest.mark.slow  # two builds
def test_importance_off_and_bare_encoder(tiny_model, tmp_path):
    off, on = tmp_path / "off", tmp_path / "on"
    model = ["--model", str(tiny_model("bert")), "-q", "--views", "3"]
    assert main(["build", str(EXAMPLES), "-o", str(off), *model, "--importance", "0"]) == 0
    assert main(["build", str(EXAMPLES), "-o", str(on), *model, "--importance", "4"]) == 0
    atlas_off = json.loads((off / "atlas.json").read_text())
    assert "importance" not in atlas_off["results"]
    assert "token-importance" not in (off / "sentences" / "0001.html").read_text()
    atlas_on = json.loads((on / "atlas.json").read_text())
    result = atlas_on["results"]["importance"]
    assert result["kind"] == ENCODER and not result["gradient"] and "saliency" not in result
    assert "importance_grad" not in {c["key"] for c in atlas_on["catalogue"]}
    assert "not defined" in (on / "index.html").read_text()
    page = (on / "heads" / "L01-H01.html").read_text()
    assert "rank" in page and "importance" in page


def test_ablation_per_example_keeps_the_order_asked_and_averages_to_ablation(tiny_model, examples):
    probe = Runner(str(tiny_model("bert")), device="cpu").probe(examples)
    each = probe.ablation_per_example([3, 0, 5])  # batched by length: 3 and 5 are not in order
    assert each.shape == (3, probe.layers, probe.heads)
    for row, index in enumerate([3, 0, 5]):
        np.testing.assert_allclose(each[row], probe.ablation([index]), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(probe.ablation([3, 0, 5]), each.mean(0), rtol=1e-12)
    probe.close()


def test_bootstrap_on_hand_made_sentences():
    """Four heads over five sentences: head 0 leads in every sentence, so every resample ranks
    it first; heads 1 and 2 are equal in every sentence, so they tie in every resample and share
    the best rank of the two; head 3 is constant, so its interval is that constant."""
    each = np.array(
        [
            [0.9, 0.5, 0.5, 0.2],
            [0.8, 0.1, 0.1, 0.2],
            [0.7, 0.6, 0.6, 0.2],
            [0.95, 0.3, 0.3, 0.2],
            [0.85, 0.0, 0.0, 0.2],
        ]
    )
    out = bootstrap(each)
    assert [h["rank"] for h in out] == [1, 2, 2, 4]  # 0.3 = 0.3 > 0.2: competition ranks
    assert (out[0]["rank_low"], out[0]["rank_high"]) == (1, 1)
    assert out[1] == out[2]
    # below head 3's 0.2 when mostly 0.0 and 0.1 are drawn: both then rank 3, never 4
    assert out[1]["rank_low"] == 2 and out[1]["rank_high"] == 3
    assert out[3]["low"] == pytest.approx(0.2) and out[3]["high"] == pytest.approx(0.2)
    for h, values in enumerate(each.T):
        assert values.min() <= out[h]["low"] <= values.mean() <= out[h]["high"] <= values.max()
    assert bootstrap(each) == out  # fixed seed
    # the percentile interval of the resampled means, by an independent loop over index draws
    rng = np.random.default_rng(7)
    means = np.array([each[rng.integers(0, 5, 5)].mean(0) for _ in range(4000)])
    low, high = np.percentile(means[:, 0], [2.5, 97.5])
    assert out[0]["low"] == pytest.approx(low, abs=0.02)
    assert out[0]["high"] == pytest.approx(high, abs=0.02)
    assert bootstrap(np.zeros((0, 3))) == [dict.fromkeys(out[0]) for _ in range(3)]


def test_gradient_importance_is_normalised_per_layer_as_michel_et_al():
    raw = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(
        by_layer_norm(raw), [[0.6, 0.8], [0.0, 0.0], [2**-0.5, 2**-0.5]], rtol=1e-12
    )


def test_build_stores_both_gradient_importances(masked_lm_dir, tmp_path):
    out = tmp_path / "site"
    argv = ["build", str(EXAMPLES), "-o", str(out), "--model", str(masked_lm_dir), "-q"]
    assert main([*argv, "--importance", "4", "--importance-ablation", "3", "--views", "2"]) == 0
    atlas = load(out / "atlas.json")
    layers, heads = atlas.model.layers, atlas.model.heads
    grad = np.array([h.metrics["importance_grad"] for h in atlas.heads]).reshape(layers, heads)
    raw = np.array([h.metrics["importance_grad_raw"] for h in atlas.heads]).reshape(layers, heads)
    np.testing.assert_allclose(np.linalg.norm(grad, axis=1), 1, atol=1e-5)
    # raw = grad × the layer's norm, to atlas.json's rounding of raw (6 decimals)
    np.testing.assert_allclose(grad * np.linalg.norm(raw, axis=1, keepdims=True), raw, atol=1e-6)
    page = (out / "heads" / "L01-H01.html").read_text()
    assert "divided by its layer's L2 norm" in page and "raw |∂loss/∂ξ<sub>h</sub>|:" in page


def test_tied_heads_share_one_rank_on_every_page(tiny_model, tmp_path):
    """Two heads whose output projection is zero change nothing when removed: importance 0
    for both, a tie at the bottom: both rank 7th of the tiny model's 8 heads, the same in
    atlas.json, the head summary and the importance section (competition ranks; the section
    used to say 7 for one and 8 for the other)."""
    model_dir = tmp_path / "tied"
    model = transformers.AutoModel.from_pretrained(str(tiny_model("bert")))
    size = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():
        for layer, head in ((0, 0), (1, 1)):
            weight = model.encoder.layer[layer].attention.output.dense.weight
            weight[:, head * size : (head + 1) * size] = 0
    model.save_pretrained(model_dir)
    transformers.AutoTokenizer.from_pretrained(str(tiny_model("bert"))).save_pretrained(model_dir)
    out = tmp_path / "site"
    argv = ["build", str(EXAMPLES), "-o", str(out), "--model", str(model_dir), "-q"]
    assert main([*argv, "--importance", "4", "--importance-ablation", "4", "--views", "2"]) == 0
    atlas = load(out / "atlas.json")
    tied = [h for h in atlas.heads if h.metrics["importance"] == 0]
    assert [h.name for h in tied] == ["L1-H1", "L2-H2"]
    last = len(atlas.heads) - 1
    for head in atlas.heads:
        mine = head.parts["importance"]
        rank, of = ranking.ranked(atlas, "importance", head)
        assert (mine["rank"], of) == (rank, len(atlas.heads))
        assert mine["rank_low"] <= rank <= mine["rank_high"] or head in tied
        page = (out / "heads" / f"{head.slug}.html").read_text()
        assert f"rank {rank} of {of} (1 = the most important" in page
        assert f"{ranking.ordinal(rank)} of {of} heads" in page
    assert [h.parts["importance"]["rank"] for h in tied] == [last, last]
    assert all(h.parts["importance"]["low"] == 0 == h.parts["importance"]["high"] for h in tied)
