"""A model whose heads are known (issue 20, item 4): examples/induction.py trained a 2-layer
attention-only Llama until it copies repeated runs of random words; its weights and tokenizer
are shipped in examples/induction-model/ (a few hundred KB). The atlas must find the circuit:
a previous-token head in layer 1, labelled so from the corpus, and an induction head in layer
2, typed so from the probe of repeated random tokens."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import build

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "induction-model"
CORPUS = ROOT / "examples" / "induction.txt"


def script():
    spec = importlib.util.spec_from_file_location("induction", ROOT / "examples" / "induction.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("induction") / "site"
    assert build([str(CORPUS), "-o", str(out), "--model", str(MODEL), "--views", "4",
                  "--importance", "0"]) == 0  # fmt: skip
    return json.loads((out / "atlas.json").read_text(encoding="utf-8"))


def test_the_shipped_model_is_small_and_its_tokenizer_adds_a_bos():
    from transformers import AutoTokenizer

    size = sum(f.stat().st_size for f in MODEL.iterdir())
    assert size < 400_000
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    assert tokenizer("red cat").input_ids[0] == tokenizer.bos_token_id
    facts = json.loads((MODEL / "training.json").read_text())
    assert facts["copy_accuracy"] > 0.98  # of the words of a repeated run it can predict


def test_the_atlas_finds_the_previous_token_head_in_layer_1_and_the_induction_head_in_2(atlas):
    heads = {h["name"]: h for h in atlas["heads"]}
    assert atlas["model"]["causal"]
    previous = [n for n, h in heads.items() if h["label"] == "previous-token"]
    induction = [n for n, h in heads.items() if "induction" in h["parts"]["types"]]
    assert previous and {heads[n]["layer"] for n in previous} == {1}
    assert induction and {heads[n]["layer"] for n in induction} == {2}
    # and they are the heads highest on their columns
    best = {key: max(heads.values(), key=lambda h: h["metrics"][key]) for key in
            ("prev", "induction")}  # fmt: skip
    assert best["prev"]["name"] in previous and best["induction"]["name"] in induction
    assert best["induction"]["metrics"]["induction"] > 0.6
    assert best["prev"]["metrics"]["prev"] > 0.75
    assert atlas["results"]["types"]["probe"]["sequences"] == 32
    # a decoder's wording: BOS, not [CLS]
    titles = {c["key"]: c["title"] for c in atlas["catalogue"]}
    assert titles["to_cls"] == "BOS" and "[CLS]" not in atlas["labels"]


def test_the_script_trains_and_saves_a_model_the_atlas_loads(tmp_path):
    """A few steps only (the shipped model took the script's default run)."""
    from transformers import AutoModelForCausalLM

    accuracy = script().train(tmp_path / "model", steps=3)
    assert 0.0 <= accuracy <= 1.0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert model.config.num_hidden_layers == 2
