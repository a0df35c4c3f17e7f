"""The runner's contract with the model: inputs it passes, what it decides at load time, how it
fails without network, and that no local path of the build machine reaches the site."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import build
from transformers import AutoModel

from atlas import loading
from atlas import model as atlas_model
from atlas.corpus import Example
from atlas.model import ModelError, Runner
from atlas.options import BuildOptions
from atlas.pipeline import measure
from atlas.result import load

SENTENCES = "The dog chased the cat , and the bird watched .\nWhere is the cat ?\n"


def test_gpt2_attention_is_the_models_own(tiny_model):
    """GPT-2 gets no token_type_ids: the runner's attention is what the HF model gives for
    input_ids and attention_mask alone (token type 0 would add an embedding at every position)."""
    directory = tiny_model("gpt2")
    runner = Runner(str(directory), device="cpu")
    example = Example(id="1", text="The dog chased the cat, and the bird watched.")
    (record,) = list(runner.run([example]))
    hf = AutoModel.from_pretrained(directory, attn_implementation="eager").eval()
    ids = torch.tensor([runner.tokenizer(example.text)["input_ids"]])
    with torch.no_grad():
        out = hf(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)
    expected = torch.stack(out.attentions, dim=1)[0].numpy()
    assert record.attention.shape == expected.shape
    np.testing.assert_allclose(record.attention, expected, rtol=0, atol=1e-6)


def test_bert_still_gets_token_types(tiny_model):
    """BERT's tokenizer makes token types, so a sentence pair's second half is typed 1."""
    runner = Runner(str(tiny_model("bert")), device="cpu")
    assert runner._token_types


@pytest.mark.parametrize(("family", "causal"), [("gpt2", True), ("bert", False)])
def test_causal_is_decided_from_the_model(tiny_model, family, causal):
    """A corpus whose first and shortest sentence is one token does not decide causality."""
    runner = Runner(str(tiny_model(family)), device="cpu")
    assert runner.info.causal is causal
    examples = [Example(id="1", text="."), Example(id="2", text="Where is the cat ?")]
    if family == "gpt2":
        assert len(runner.encode(examples[0])["ids"]) == 1, "the first sentence is one token"
    first = next(iter(runner.run(examples)))
    assert first.index == 0, "the one-token sentence is the first record"
    atlas = measure(examples, runner, options=BuildOptions(views=0), title="t", input_name="in.txt")
    assert atlas.model.causal is causal


def unknown_hub_error() -> str:
    """The one-line message of loading a hub id that exists nowhere."""
    with pytest.raises(ModelError) as err:
        Runner("no-such-org/no-such-model", device="cpu")
    message = str(err.value)
    assert message.startswith("cannot load model 'no-such-org/no-such-model': ")
    assert "\n" not in message
    return message


def test_unknown_hub_id_offline_fails_at_once(monkeypatch):
    """HF_HUB_OFFLINE set (after huggingface_hub read it at import): one clear line, no retries."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE" in unknown_hub_error()


def test_unknown_hub_id_unreachable_hub_fails_at_once(monkeypatch):
    """Without the env var, an unreachable hub is found by a quick check, not by retries."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(loading, "hub_reachable", lambda: False)
    assert "cannot be reached" in unknown_hub_error()


@pytest.mark.parametrize(
    "value",
    [
        "./missing-dir/",
        "./missing-dir",
        "../missing",
        "/no/such/model",
        "~/models/m",
        "missing/",
        "models/bert/v1",
        "missing\\model",
    ],
)
@pytest.mark.parametrize("option", ["--model", "--compare"])
def test_a_missing_folder_is_not_looked_up_on_the_hub(monkeypatch, tmp_path, value, option):
    """A value that cannot be a hub id (NAME or ORG/NAME) is a path: when nothing is there, the
    one line says the folder is missing, with no look-up in the cache or on the hub."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(loading, "hub_reachable", lambda: pytest.fail("asked the hub"))
    with pytest.raises(ModelError) as err:
        Runner(value, device="cpu", option=option)
    assert str(err.value) == (
        f"{option} {value}: no such model folder (and not a hub id, which is NAME or ORG/NAME)"
    )


@pytest.mark.parametrize("value", ["gpt2", "no-such-org/no-such-model", "org/model.v2"])
def test_a_hub_id_is_still_looked_up(value):
    assert atlas_model.is_hub_id(value)


def test_hub_reachable_is_false_for_a_closed_port(monkeypatch):
    """The quick check answers False when nothing listens, without waiting for a timeout."""
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    assert atlas_model.hub_reachable(timeout=1.0) is False


def site_files(site: Path) -> list[Path]:
    return [p for p in site.rglob("*") if p.is_file()]


def test_no_local_path_reaches_the_site(tiny_model, tmp_path):
    """A local model is named by its folder: no page and no atlas.json holds the model's path,
    the input's path, the build folder or the user's home."""
    model_dir = tmp_path / "models" / "my-checkpoint"
    shutil.copytree(tiny_model("bert"), model_dir)
    source = tmp_path / "inputs" / "in.txt"
    source.parent.mkdir()
    source.write_text(SENTENCES, encoding="utf-8")
    out = tmp_path / "site"
    assert build([str(source), "-o", str(out), "--model", str(model_dir) + "/"]) == 0
    atlas = load(out / "atlas.json")
    assert atlas.model.name == "my-checkpoint"
    assert atlas.model.source == "local directory"
    assert atlas.title == "my-checkpoint on in.txt"
    assert atlas.options.input == "in.txt"
    secrets = {str(tmp_path), str(model_dir.resolve()), str(source.parent.resolve())}
    secrets.add(str(tiny_model("bert")))
    secrets |= {d for d in (os.environ.get("HOME", ""), str(Path.cwd())) if len(d) > 1}
    files = site_files(out)
    assert any(p.name == "atlas.json" for p in files)
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        for secret in secrets:
            assert secret not in text, f"{path.relative_to(out)} holds {secret}"


def test_model_name_option(tiny_model, tmp_path):
    """--model-name names the model on the pages; the source still says local directory."""
    source = tmp_path / "in.txt"
    source.write_text(SENTENCES, encoding="utf-8")
    out = tmp_path / "site"
    model = str(tiny_model("bert"))
    assert build([str(source), "-o", str(out), "--model", model, "--model-name", "tiny BERT"]) == 0
    atlas = load(out / "atlas.json")
    assert atlas.model.name == "tiny BERT"
    assert atlas.model.source == "local directory"
    assert atlas.title == "tiny BERT on in.txt"


def test_the_default_models_hub_id_is_the_packaged_copy(monkeypatch):
    """`--model` (or `--compare`) sentence-transformers/all-MiniLM-L6-v2 loads the copy the pip
    package ships, offline, as the default does; the pages call it by its hub id."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    named = Runner(atlas_model.DEFAULT_MODEL, device="cpu")
    default = Runner(device="cpu")
    assert named.info == default.info
    assert named.info.name == atlas_model.DEFAULT_MODEL
    assert named.info.source == atlas_model.DEFAULT_MODEL_PACKAGE
