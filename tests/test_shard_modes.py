"""Sharded compare and generate builds (issue 21): ``--compare B`` and ``--generate N`` (with
``--chat`` too) run as ``--shards N`` on Ray and as ``--shard K/N --state-out`` then ``atlas
merge`` write the one-process site, every file byte for byte, with 2 and 3 shards, uneven, and
one empty; a compare state folder records both models, and ``atlas merge`` refuses states of
another model pair in one line.

Compare runs the tiny BERT against a copy whose layer 2 queries are perturbed
(tests/test_compare.py); generate runs the tiny chat LM (tests/tiny_lm.py). The corpora are a
few sentences, so each build takes seconds; Ray's tests are marked slow, as in
tests/test_shards.py, whose local Ray of 2 CPUs and helpers these use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_compare import copy_model, perturb_queries
from test_output import files_of
from test_shards import UD, OneAtATime, local_ray, merged, on_ray, refused  # noqa: F401 (a fixture)
from tiny_lm import make_tiny_chat_lm

from atlas import shards
from atlas.cli import main
from atlas.options import BuildOptions

SMALL = ["--limit", "12", "--views", "4", "--importance", "5", "--importance-ablation", "2"]
PROMPTS = [
    "the cat sat on the mat",
    "hello there, how are you?",
    "a dog",
    "the cat ran home",
    "where is the station",
    "I like green tea",
    "she reads a book",
    "we walk to school",
    "it rains today",
]


def one_process(args: list[str], folder: Path) -> dict[str, bytes]:
    assert main(["build", *args, "-o", str(folder / "site"), "-q"]) == 0
    return files_of(folder / "site")


# --- compare ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair(tiny_model, tmp_path_factory):
    """The tiny BERT (A), a copy with layer 2's queries perturbed (B), the compare build's
    arguments (12 UD sentences; importance samples 5, across the cuts) and its one-process
    site."""
    a = tiny_model("bert")
    b = copy_model(a, tmp_path_factory.mktemp("b") / "bert-b", perturb_queries(1))
    args = [str(UD), "--model", str(a), "--compare", str(b), *SMALL]
    return args, one_process(args, tmp_path_factory.mktemp("one"))


@pytest.fixture(scope="module")
def compare_states(pair, tmp_path_factory):
    """The compare build's three shard states, 1/3 to 3/3."""
    args, _ = pair
    folder = tmp_path_factory.mktemp("compare-states")
    for k in (1, 2, 3):
        out = folder / f"{k}-of-3"
        assert main(["build", *args, "--shard", f"{k}/3", "--state-out", str(out), "-q"]) == 0
    return folder


def test_the_one_process_compare_site_compares(pair):
    """What the sharded builds must give: a comparison, with the change of layer 2's heads and
    B's attention of A's sentence pages."""
    atlas = json.loads(pair[1]["atlas.json"])
    compare = atlas["results"]["compare"]
    assert compare["change"] and {0, 1, 2, 3} <= set(compare["sentences"])
    change = [h["metrics"]["change"] for h in atlas["heads"]]
    assert max(change[:4]) < 1e-6 < min(change[4:])
    assert atlas["results"]["importance"]["ablated"] == [0, 1]


def test_compare_shard_states_merged_give_the_one_process_site(pair, compare_states, tmp_path):
    _, one = pair
    parts = [str(compare_states / f"{k}-of-3") for k in (3, 1, 2)]
    assert main(["merge", *parts, "-o", str(tmp_path / "site"), "-q"]) == 0
    assert files_of(tmp_path / "site") == one
    assert merged(pair[0], 2, tmp_path / "two") == one


def test_a_compare_merge_takes_one_state_folder_at_a_time(pair, compare_states, monkeypatch,
                                                          tmp_path):  # fmt: skip
    """Both models' states and the compare analysis's merge as each folder is read, and the
    folder's states are let go before the next is read."""
    drawn = OneAtATime()
    load = shards.load_compare_part
    monkeypatch.setattr(shards, "load_compare_part",
                        lambda folder, made: drawn.check(load(folder, made)))  # fmt: skip
    parts = [str(compare_states / f"{k}-of-3") for k in (2, 3, 1)]
    assert main(["merge", *parts, "-o", str(tmp_path / "site"), "-q"]) == 0
    assert drawn.starts == [0, 4, 8]
    assert drawn.held == [[], [], []]
    assert files_of(tmp_path / "site") == pair[1]


def test_a_compare_state_folder_records_both_models(pair, compare_states):
    args, _ = pair
    manifest = json.loads((compare_states / "2-of-3" / "shard.json").read_text())
    assert (manifest["model"], manifest["compare"]) == (args[2], args[4])
    assert manifest["compare_checksum"] == shards.model_checksum(args[4])
    assert manifest["compare_checksum"] != manifest["model_checksum"]
    assert "compare" not in manifest["options"]  # recorded as a model: moved, it still merges
    assert set(manifest["files"]) == {
        "states.json",
        "states.npz",
        "model-b/states.json",
        "model-b/states.npz",
    }


def test_merge_refuses_states_of_another_model_pair(pair, compare_states, tiny_model, capsys,
                                                    tmp_path):  # fmt: skip
    """A shard of another B, and a build of A alone, are refused in one line; so is a
    ``--compare`` at merge time that is not the B the shards ran. B moved elsewhere merges."""
    args, one = pair
    a, b = args[2], args[4]
    other = copy_model(Path(a), tmp_path / "bert-c", perturb_queries(0))
    first, second = str(compare_states / "1-of-3"), str(compare_states / "2-of-3")
    out = str(tmp_path / "site")
    another_b = tmp_path / "another-b"
    argv = [*args[:4], str(other), *args[5:]]
    assert main(["build", *argv, "--shard", "3/3", "--state-out", str(another_b), "-q"]) == 0
    assert refused(capsys, "merge", first, second, str(another_b), "-o", out) == (
        f"atlas: error: cannot merge {another_b} with {first}: another model pair "
        f"({a} vs {other}, not {a} vs {b})"
    )
    alone = tmp_path / "alone"
    argv = [*args[:3], *args[5:]]
    assert main(["build", *argv, "--shard", "1/1", "--state-out", str(alone), "-q"]) == 0
    assert refused(capsys, "merge", first, second, str(alone), "-o", out) == (
        f"atlas: error: cannot merge {alone} with {first}: another model pair ({a}, not {a} vs {b})"
    )
    third = str(compare_states / "3-of-3")
    assert refused(capsys, "merge", first, second, third, "--compare", str(other), "-o", out) == (
        f"atlas: error: --compare {other}: not the model B the shards ran (checksum differs)"
    )
    assert refused(capsys, "merge", str(alone), "--compare", b, "-o", out) == (
        f"atlas: error: --compare {b}: the shards compared no second model"
    )
    assert not Path(out).exists()
    moved = tmp_path / "elsewhere" / Path(b).name  # what the pages call B: its folder's name
    shutil.copytree(b, moved)
    assert main(["merge", first, second, third, "--compare", str(moved), "-o", out, "-q"]) == 0
    assert files_of(Path(out)) == one


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
@pytest.mark.parametrize("n", [2, 3])
def test_ray_compare_shards_give_the_one_process_site(pair, n, tmp_path):
    args, one = pair
    assert on_ray(args, n, tmp_path) == one


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_a_compare_build_with_an_empty_shard(pair, tmp_path):
    """Two sentences in three shards: the first holds none."""
    args = [*pair[0], "--limit", "2"]
    one = one_process(args, tmp_path / "one")
    assert on_ray(args, 3, tmp_path / "ray") == one
    assert merged(args, 3, tmp_path / "merged") == one


# --- generate --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> Path:
    return make_tiny_chat_lm(tmp_path_factory.mktemp("tiny-lm") / "lm")


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=["plain", "chat"])
def generating(request, lm, prompts, tmp_path_factory):
    """The arguments of a --generate build of the prompts (with --chat, or not) and its
    one-process site: 9 prompts, importance samples 4 (across the cuts)."""
    chat = ["--chat"] if request.param == "chat" else []
    args = [str(prompts), "--model", str(lm), "--generate", "4", *chat, "--views", "3",
            "--importance", "4", "--importance-ablation", "2"]  # fmt: skip
    return args, one_process(args, tmp_path_factory.mktemp("one"))


def test_the_one_process_generate_site_holds_the_generations(generating):
    atlas = json.loads(generating[1]["atlas.json"])
    sentences = atlas["sentences"]
    assert [s["text"] for s in sentences] == PROMPTS
    assert {s["generated"] for s in sentences} == {4} and all(s["generation"] for s in sentences)
    assert atlas["results"]["generation"]["examples"] == len(PROMPTS)


@pytest.mark.parametrize("n", [2, 3])
def test_generate_shard_states_merged_give_the_one_process_site(generating, n, monkeypatch,
                                                                tmp_path):  # fmt: skip
    """And the merge takes each folder's generations as it reads it, holding no folder's
    states past its turn."""
    args, one = generating
    drawn = OneAtATime()
    load = shards.load_part
    monkeypatch.setattr(shards, "load_part", lambda folder, made: drawn.check(load(folder, made)))
    assert merged(args, n, tmp_path) == one
    assert drawn.starts == [r.start for r in shards.ranges(len(PROMPTS), n)]
    assert drawn.held == [[]] * n


def test_a_generate_state_folder_holds_its_own_generations(generating, tmp_path):
    """Shard 2/3 sends back the ids generated after its own prompts (3 to 5), no others."""
    args, _ = generating
    assert main(["build", *args, "--shard", "2/3", "--state-out", str(tmp_path), "-q"]) == 0
    extra = json.loads((tmp_path / "states.json").read_text())["extra"]
    assert [i for i, _ in extra["generated"]] == [3, 4, 5]
    assert all(len(ids) == 4 for _, ids in extra["generated"])


def test_a_compare_build_that_generates_shards_too(lm, prompts, tmp_path):
    """--compare with --generate: A generates, both models read A's tokens."""
    b = shutil.copytree(lm, tmp_path / "lm-b")
    args = [str(prompts), "--model", str(lm), "--compare", str(b), "--generate", "3", "--views",
            "2", "--importance", "0"]  # fmt: skip
    one = one_process(args, tmp_path / "one")
    assert json.loads(one["atlas.json"])["sentences"][0]["generated"] == 3
    assert merged(args, 2, tmp_path / "merged") == one


def test_a_shard_continues_the_prompts_of_the_batches_it_runs():
    """Those of each sorting window (256 sentences here) that holds one of its sentences, and
    the importance sample's where it holds one of them."""
    options = BuildOptions(generate=4, batch_size=4, importance=0)
    assert shards.generating(range(300, 600), options, 600) == list(range(256, 600))
    assert shards.generating(range(0, 300), options, 600) == list(range(0, 512))
    assert shards.generating(range(520, 530), options, 600) == list(range(512, 600))
    assert shards.generating(range(5, 5), options, 600) == []
    assert shards.generating(range(260, 270), options, 600) == list(range(256, 512))
    sampled = options.replace(importance=300, views=20)  # its passes batch sentences 0–299
    assert shards.generating(range(260, 270), sampled, 600) == list(range(0, 512))
    assert shards.generating(range(300, 310), sampled, 600) == list(range(256, 512))


def test_cuts_fall_on_the_sorting_windows_where_each_shard_gets_one():
    """Then no batch holds two shards' sentences, and a --generate shard continues its own
    prompts only; a smaller corpus is cut evenly (its shards share windows)."""
    assert shards.ranges(600, 2, batch_size=4) == [range(0, 256), range(256, 600)]
    assert shards.ranges(520, 3, batch_size=4) == [range(0, 173), range(173, 346),
                                                   range(346, 520)]  # fmt: skip
    spans = shards.ranges(100_000, 8, batch_size=16)  # windows of 512
    assert [s.start % 512 for s in spans] == [0] * 8 and spans[-1].stop == 100_000
    assert max(len(s) for s in spans) - min(len(s) for s in spans) <= 512
    options = BuildOptions(generate=4, batch_size=16)  # importance's sample: 50, views 200
    assert [shards.generating(s, options, 100_000) for s in spans] == [list(s) for s in spans]
    assert shards.ranges(20, 3, batch_size=16) == shards.ranges(20, 3)


@pytest.mark.slow
def test_shards_across_a_sorting_window_continue_only_their_batches(lm, tmp_path, monkeypatch):
    """520 prompts in 3 shards, sorted in windows of 256 (the cuts, at 173 and 346, are inside
    windows): shard 1 continues the window 0–255, shard 2 the windows 0–511, shard 3 the
    windows 256–519, not the prompts before; the merged site is the one-process one."""
    corpus = tmp_path / "prompts.txt"
    corpus.write_text("\n".join(f"{PROMPTS[i % 9]} {i}" for i in range(520)) + "\n")
    args = [str(corpus), "--model", str(lm), "--generate", "2", "--views", "2", "--importance",
            "0", "--batch-size", "8"]  # fmt: skip
    continued = []
    generate = shards.generated_ids

    def spied(examples, runner, tokens, batch_size, indices):
        continued.append(indices)
        return generate(examples, runner, tokens, batch_size, indices=indices)

    monkeypatch.setattr(shards, "generated_ids", spied)
    one = one_process(args, tmp_path / "one")
    assert merged(args, 3, tmp_path / "merged") == one
    assert continued == [list(range(0, 256)), list(range(0, 512)), list(range(256, 520))]


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
@pytest.mark.parametrize("n", [2, 3])
def test_ray_generate_shards_give_the_one_process_site(generating, n, tmp_path):
    args, one = generating
    assert on_ray(args, n, tmp_path) == one


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_a_generate_build_with_an_empty_shard(generating, tmp_path):
    args = [*generating[0], "--limit", "2"]
    one = one_process(args, tmp_path / "one")
    assert on_ray(args, 3, tmp_path / "ray") == one
    assert merged(args, 3, tmp_path / "merged") == one
