"""Head and token importance: rollout on hand-made attention, ablation against zeroed output
projections and against a pass without the layer cut, gate gradients against finite
differences (float64), Clark's split against the total, and the analysis in a real build."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers
from conftest import EXAMPLES
from tiny_models import make_tiny_masked_lm

from atlas.analyses.importance import rollout
from atlas.cli import main
from atlas.corpus import read_corpus
from atlas.model import Runner
from atlas.probe import (
    CLASSIFIER,
    ENCODER,
    MASKED_LM,
    Probe,
    ProbeError,
    clark_split,
    masked_positions,
)

SENTENCES = 6


@pytest.fixture(scope="module")
def examples():
    return read_corpus(EXAMPLES)[:SENTENCES]


@pytest.fixture(scope="module")
def masked_lm_dir(tmp_path_factory):
    return make_tiny_masked_lm(tmp_path_factory.mktemp("tiny-mlm"))


def test_rollout_exact_on_two_layers():
    """One head a layer (two in layer 2, whose mean is the first's): R = M2 · M1 by hand."""
    a1 = np.array([[[1.0, 0.0], [0.5, 0.5]]])
    a2 = np.array([[[0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])
    attention = np.stack([np.concatenate([a1, a1]), a2])  # [2 layers, 2 heads, 2, 2]
    r = rollout(attention)
    np.testing.assert_allclose(r[0], [[1.0, 0.0], [0.25, 0.75]])
    # M2 = [[.5, .5], [0, 1]]; M2 · M1 = [[.5 + .125, .375], [.25, .75]]
    np.testing.assert_allclose(r[1], [[0.625, 0.375], [0.25, 0.75]])


def test_rollout_rows_sum_to_one_after_renormalising():
    rng = np.random.default_rng(0)
    raw = rng.random((4, 3, 7, 7))
    attention = raw / raw.sum(-1, keepdims=True) * 0.9  # rows sum to 0.9: renormalised
    r = rollout(attention)
    np.testing.assert_allclose(r.sum(-1), 1.0, atol=1e-12)
    assert (r >= 0).all()


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
