"""Prompts and generations (``--generate``, ``--chat``) and big-model loading (``--dtype``,
``--device-map``), on a tiny causal LM with a chat template made offline (tests/tiny_lm.py).

Generation is checked against a greedy loop written out here (the argmax of the model's logits,
one token at a time), for every batch size; the analysis pass is checked to cover prompt and
generation as one input; the split of the per-head statistics into prompt rows and generated
rows is checked to the digit on hand-made attention.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest
import torch
from conftest import build
from tiny_lm import make_tiny_chat_lm

from atlas.analyses.base import feed
from atlas.analyses.generation import KEYS, layer_split
from atlas.analyses.measures import row_entropy
from atlas.cli import main
from atlas.corpus import Example, read_corpus
from atlas.generation import continue_examples
from atlas.options import BuildOptions
from atlas.records import ATTENTION
from atlas.running import Runner

PROMPTS = "the cat sat on the mat\nhello there, how are you?\na dog\nthe cat ran home\n"
TOKENS = 5


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return make_tiny_chat_lm(tmp_path_factory.mktemp("tiny-lm") / "lm")


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> list[Example]:
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text(PROMPTS, encoding="utf-8")
    return read_corpus(path)


@pytest.fixture(scope="module")
def runner(lm) -> Runner:
    return Runner(str(lm), device="cpu", generate=TOKENS)


def greedy(model, ids: list[int], tokens: int, ends: set[int]) -> list[int]:
    """Greedy decoding written out: the most likely next token, ``tokens`` times, stopping
    after an end-of-text token."""
    made: list[int] = []
    with torch.no_grad():
        for _ in range(tokens):
            logits = model(torch.tensor([ids + made])).logits[0, -1]
            made.append(int(logits.argmax()))
            if made[-1] in ends:
                break
    return made


def test_generation_is_greedy_whatever_the_batch(runner, examples):
    one = continue_examples(examples, runner, TOKENS, batch_size=1)
    many = continue_examples(examples, runner, TOKENS, batch_size=16)
    assert [e.generated for e in one] == [e.generated for e in many]
    ends = {runner.tokenizer.eos_token_id}
    for example in one:
        prompt = runner.encode(dataclasses.replace(example, generated=()))["ids"]
        assert list(example.generated) == greedy(runner.generator, prompt, TOKENS, ends)
        assert len(example.generated) == TOKENS  # the random tiny model never ends its text
        assert example.generation == runner.tokenizer.decode(
            list(example.generated), skip_special_tokens=True
        )
        assert example.text in PROMPTS  # the prompt stays as it was


def test_generation_is_the_same_on_a_fresh_load(lm, runner, examples):
    again = Runner(str(lm), device="cpu", generate=TOKENS)
    first = continue_examples(examples, runner, TOKENS)
    assert [e.generated for e in continue_examples(examples, again, TOKENS)] == [
        e.generated for e in first
    ]


def test_the_analysis_pass_covers_prompt_and_generation(runner, examples):
    continued = continue_examples(examples, runner, TOKENS)
    records = {r.index: r for r in runner.run(continued, capture=(ATTENTION,))}
    for index, example in enumerate(continued):
        record = records[index]
        prompt = runner.encode(dataclasses.replace(example, generated=()))["ids"]
        full = [*prompt, *example.generated]
        assert record.n == len(full)
        assert record.generated.tolist() == [False] * (record.n - TOKENS) + [True] * TOKENS
        assert record.tokens[-TOKENS:] == runner.tokenizer.convert_ids_to_tokens(
            list(example.generated)
        )
        # the attention is the model's own over prompt + generation, in one pass
        with torch.no_grad():
            out = runner.model(torch.tensor([full]), output_attentions=True)
        expected = np.stack([a[0].numpy() for a in out.attentions])
        np.testing.assert_allclose(record.attention, expected, atol=1e-6)
        assert record.attention.dtype == np.float32


def test_chat_wraps_each_input_in_the_template(lm, examples):
    runner = Runner(str(lm), device="cpu", chat=True)
    tokenizer = runner.tokenizer
    for example in examples:
        encoded = runner.encode(example)
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": example.text}], tokenize=False, add_generation_prompt=True
        )
        assert text.startswith("<|endoftext|>user\n" + example.text)
        assert text.endswith("<|endoftext|>assistant\n")
        assert encoded["ids"] == tokenizer(text, add_special_tokens=False)["input_ids"]
        # the template's special tokens are marked special: the two turns' starts
        assert encoded["special"].sum() == 2 and encoded["special"][0]
        assert "generated" not in encoded


def test_a_long_message_is_cut_inside_the_template(lm):
    """A message past the room left (64 tokens less the generation's 8) is cut at the end of
    its last token that fits; the template's tokens stay whole around it."""
    runner = Runner(str(lm), device="cpu", chat=True, generate=8)
    text = " ".join(["the cat sat on the mat"] * 12)
    encoded = runner.encode(Example(id="long", text=text))
    kept = encoded["kept_chars"][0]
    assert encoded["truncated"] and encoded["kept_chars"] == (kept, None)
    ends = [end for _, end in runner.tokenizer(text, return_offsets_mapping=True)["offset_mapping"]]
    assert 0 < kept < len(text) and kept in ends  # at the end of one of the message's tokens
    following = ends[ends.index(kept) + 1]
    assert encoded["ids"] == runner.encoder._wrap(text[:kept])
    assert len(encoded["ids"]) <= 64 - 8 < len(runner.encoder._wrap(text[:following]))
    # the template's close of the message and opening of the answer, whole
    opening = runner.encoder._wrap("")
    eos = runner.tokenizer.eos_token_id
    tail = opening[len(opening) - opening[::-1].index(eos) - 1 :]
    assert encoded["ids"][-len(tail) :] == tail and len(tail) > 1


def test_split_statistics_on_hand_made_attention():
    """One head, four tokens of a decoder, the last two generated (docs/metrics.md)."""
    a = np.array(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.5, 0.5, 0.0, 0.0],
            [0.25, 0.25, 0.5, 0.0],
            [0.1, 0.2, 0.3, 0.4],
        ]
    )[None]
    cls = np.array([True, False, False, False])
    generated = np.array([False, False, True, True])
    got = dict(zip(KEYS, layer_split(a, row_entropy(a), cls, generated, True)[:, 0], strict=True))

    def h(row):  # entropy of A' = 0.9999·A + 0.0001/n, in nats
        p = 0.9999 * np.array(row) + 0.0001 / 4
        return -(p * np.log(p)).sum()

    expected = {
        "prompt_to_cls": (1.0 + 0.5) / 2,
        "prompt_prev": (0.0 + 0.5) / 2,
        "prompt_self": (1.0 + 0.5) / 2,
        "prompt_entropy_norm": min(1.0, h(a[0, 1]) / math.log(2)),  # row 0 sees one key
        "gen_to_cls": (0.25 + 0.1) / 2,
        "gen_prev": (0.25 + 0.3) / 2,
        "gen_self": (0.5 + 0.4) / 2,
        "gen_entropy_norm": (h(a[0, 2]) / math.log(3) + h(a[0, 3]) / math.log(4)) / 2,
        "gen_to_prompt": ((0.25 + 0.25) + (0.1 + 0.2)) / 2,
    }
    assert got == pytest.approx(expected, abs=1e-12)
    none = layer_split(a, row_entropy(a), cls, np.zeros(4, bool), causal=True)[:, 0]
    assert all(np.isnan(v) for k, v in zip(KEYS, none, strict=True) if k.startswith("gen_"))


def test_a_build_with_generate_and_chat(lm, tmp_path):
    corpus = tmp_path / "prompts.txt"
    corpus.write_text(PROMPTS, encoding="utf-8")
    sites = [tmp_path / "a", tmp_path / "b"]
    for site, batch in zip(sites, ("1", "16"), strict=True):
        args = [str(corpus), "-o", str(site), "--model", str(lm), "--importance", "0"]
        assert build([*args, "--generate", str(TOKENS), "--chat", "--batch-size", batch]) == 0
    atlas, other = (json.loads((site / "atlas.json").read_text()) for site in sites)
    assert atlas["options"].pop("batch_size") == 1
    other["options"].pop("batch_size")
    assert atlas == other  # deterministic, whatever the batch
    assert {k: atlas["options"][k] for k in ("generate", "chat", "dtype")} == {
        "generate": TOKENS,
        "chat": True,
        "dtype": "float32",
    }
    first = atlas["sentences"][0]
    assert first["text"] == "the cat sat on the mat" and first["generated"] == TOKENS
    assert first["generation"]
    assert all(k in atlas["heads"][0]["metrics"] for k in KEYS)
    data = (sites[0] / "data" / "0001.js").read_text()
    payload = json.loads(data[data.index("] = ") + 4 :].rstrip().removesuffix(";"))
    assert payload["generated"] == [0] * (first["tokens"] - TOKENS) + [1] * TOKENS
    page = (sites[0] / "sentences" / "0001.html").read_text()
    assert re.search(r'<dd class="prompt"><span class="text-a">the cat sat on the mat</span>', page)
    assert page.count("token gen") == TOKENS and page.count("(generated)</span>") == TOKENS
    index = (sites[0] / "sentences" / "index.html").read_text()
    assert index.count('class="gen-text"') == len(PROMPTS.splitlines())
    # the site is atlas.json's: rendered again from it, every file is the same
    again = tmp_path / "again"
    assert main(["render", str(sites[0] / "atlas.json"), "-o", str(again), "-q"]) == 0
    files = sorted(p.relative_to(sites[0]) for p in sites[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((sites[0] / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_bfloat16_weights_give_float32_attention(lm, examples):
    """--dtype bfloat16 on the CPU: the weights are bfloat16, the attention the analyses get is
    float32 and close to the float32 model's."""
    runners = {d: Runner(str(lm), device="cpu", dtype=d) for d in ("float32", "bfloat16")}
    assert runners["bfloat16"].model.dtype == torch.bfloat16
    assert runners["float32"].model.dtype == torch.float32
    records = {d: list(r.run(examples, capture=(ATTENTION,))) for d, r in runners.items()}
    for full, half in zip(records["float32"], records["bfloat16"], strict=True):
        assert half.attention.dtype == np.float32
        np.testing.assert_allclose(half.attention.sum(-1), 1.0, atol=2e-2)
        np.testing.assert_allclose(half.attention, full.attention, atol=2e-2)


def test_a_bfloat16_build(lm, tmp_path):
    """The whole build in bfloat16, head importance's gated passes and gradients included."""
    corpus = tmp_path / "prompts.txt"
    corpus.write_text(PROMPTS, encoding="utf-8")
    args = [str(corpus), "-o", str(tmp_path / "site"), "--model", str(lm)]
    assert build([*args, "--dtype", "bfloat16", "--generate", "3"]) == 0
    atlas = json.loads((tmp_path / "site" / "atlas.json").read_text())
    assert atlas["options"]["dtype"] == "bfloat16"
    assert all(s["generated"] == 3 for s in atlas["sentences"])
    importance = [h["metrics"]["importance"] for h in atlas["heads"]]
    assert len(importance) == 12 and any(v > 0 for v in importance)


def test_device_map_auto_places_the_model_with_accelerate(lm, examples, monkeypatch):
    """On the CPU, accelerate plans the placement over the CPU alone; the run is the same."""
    from transformers.integrations import accelerate

    plans = []
    infer = accelerate.infer_auto_device_map
    monkeypatch.setattr(
        accelerate,
        "infer_auto_device_map",
        lambda *args, **kwargs: plans.append(kwargs["max_memory"]) or infer(*args, **kwargs),
    )
    plain = Runner(str(lm), device="cpu", generate=2)
    assert plans == []
    mapped = Runner(str(lm), device="cpu", device_map="auto", generate=2)
    assert len(plans) == 1 and set(plans[0]) == {"cpu"}
    assert mapped.device == "cpu" and mapped.generator.device.type == "cpu"
    a, b = (continue_examples(examples, r, 2) for r in (plain, mapped))
    assert [e.generated for e in a] == [e.generated for e in b]
    for x, y in zip(
        plain.run(a, capture=(ATTENTION,)), mapped.run(b, capture=(ATTENTION,)), strict=True
    ):
        np.testing.assert_array_equal(x.attention, y.attention)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dtype", "int8", "dtype: one of float32, bfloat16, float16, not 'int8'"),
        ("device_map", "balanced", "device_map: 'auto' or None, not 'balanced'"),
        ("generate", -1, "generate: must be 0 or more, got -1"),
    ],
)
def test_options_refuse_what_no_build_can_use(field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        BuildOptions(**{field: value})


def test_the_generation_analysis_runs_only_when_generating():
    from atlas.analyses import default_analyses

    assert "generation" not in {a.name for a in default_analyses(BuildOptions())}
    assert "generation" in {a.name for a in default_analyses(BuildOptions(generate=3))}


def test_the_generation_analysis_merges_to_the_one_pass_result(runner, examples):
    """Parts of the corpus, merged (and one part through its saved state), give to the last bit
    the columns one pass gives."""
    from atlas.analyses.base import RunInfo
    from atlas.analyses.generation import PromptGeneration

    continued = continue_examples(examples, runner, TOKENS)
    records = sorted(runner.run(continued, capture=(ATTENTION,)), key=lambda r: r.index)
    run = RunInfo(layers=3, heads=4, causal=True, sentences=len(records))
    whole, first, second, restored = (PromptGeneration() for _ in range(4))
    for analysis in (whole, first, second, restored):
        analysis.start(run)
    for record in records:
        feed(whole, record)
        feed((first if record.index < 2 else second), record)
    restored.load_state(second.state())
    first.merge(restored)
    assert first.finish({}).columns == whole.finish({}).columns
    columns = whole.finish({}).columns
    assert set(columns) == set(KEYS) and all(len(v) == 12 for v in columns.values())
    assert all(0 < v < 1 for v in columns["gen_to_prompt"])


def test_generated_tokens_belong_to_no_word(runner):
    """Words input (--words, CoNLL-U): the generation follows the words' tokens, in no word."""
    example = Example(id="w", text="the cat sat", words=("the", "cat", "sat"))
    (continued,) = continue_examples([example], runner, TOKENS)
    (record,) = runner.run([continued], capture=(ATTENTION,))
    assert record.word_of[-TOKENS:].tolist() == [-1] * TOKENS
    assert sorted(set(record.word_of[:-TOKENS].tolist()) - {-1}) == [0, 1, 2]
    assert record.generated[-TOKENS:].all() and not record.generated[:-TOKENS].any()


def test_a_bfloat16_checkpoint_loads_in_float32_by_default(lm, tmp_path):
    """transformers 5 alone keeps a checkpoint's type; the atlas loads float32 unless asked."""
    import transformers

    saved = tmp_path / "bf16"
    transformers.AutoModelForCausalLM.from_pretrained(lm, dtype=torch.bfloat16).save_pretrained(
        saved
    )
    transformers.AutoTokenizer.from_pretrained(lm).save_pretrained(saved)
    assert transformers.AutoModel.from_pretrained(saved).dtype == torch.bfloat16
    assert Runner(str(saved), device="cpu").model.dtype == torch.float32
    assert Runner(str(saved), device="cpu", dtype="bfloat16").model.dtype == torch.bfloat16
