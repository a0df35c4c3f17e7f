"""Head types (issue 20, item 3): the first-token share, the duplicate-token and induction
scores, and the types they give, as exact values on hand-made attention against
docs/metrics.md ("Head types") and TransformerLens's head detector."""

from __future__ import annotations

import numpy as np
import pytest

from atlas.analyses.base import RunInfo, feed
from atlas.analyses.headtypes import (
    PROBE_LENGTH,
    TYPE_THRESHOLD,
    HeadTypes,
    duplicate_targets,
    first_token_share,
    induction_targets,
    pattern_score,
    probe_bodies,
)
from atlas.model import Record


def rows(*matrix) -> np.ndarray:
    """One head's [1, n, n] attention from its rows."""
    return np.array(matrix, dtype=np.float64)[None]


def uniform_causal(n: int) -> np.ndarray:
    return np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]


def test_first_token_share_of_a_decoder_leaves_out_the_row_that_sees_only_itself():
    a = rows([1, 0, 0], [0.5, 0.5, 0], [0.25, 0.25, 0.5])
    assert first_token_share(a).tolist() == [(0.5 + 0.25) / 2]
    # a one-token example defines no share
    assert np.isnan(first_token_share(rows([1.0]))).all()


def test_the_patterns_are_transformer_lens_s():
    """TransformerLens: duplicate[i, j] = [t_j = t_i] below the diagonal; induction is it
    rolled one column right, its first column zeroed, lower-triangular."""
    ids = [1, 7, 8, 9, 7, 8, 9, 7]
    dup = duplicate_targets(ids)
    expected = np.zeros((8, 8), bool)
    for i, j in [(4, 1), (5, 2), (6, 3), (7, 1), (7, 4)]:
        expected[i, j] = True
    assert (dup == expected).all()
    ind = induction_targets(ids)
    expected = np.zeros((8, 8), bool)
    for i, j in [(4, 2), (5, 3), (6, 4), (7, 2), (7, 5)]:
        expected[i, j] = True
    assert (ind == expected).all()
    # TransformerLens's construction, step by step, gives the same
    rolled = np.roll(dup.astype(int), 1, axis=1)
    rolled[:, 0] = 0
    assert (np.tril(rolled).astype(bool) == ind).all()
    # a token right after its own copy: the induction target is the row itself (j = i)
    assert induction_targets([5, 5])[1, 1]


def repeated(period: int, offset: int, n: int) -> np.ndarray:
    """A decoder head over <s> x1…xT x1…xT: rows 0..T attend to <s>; row i of the second half
    puts all its attention on i − offset."""
    a = np.zeros((n, n))
    a[:, 0] = 1.0
    for i in range(period + 1, n):
        a[i] = 0
        a[i, i - offset] = 1.0
    return a


def test_induction_duplicate_and_previous_heads_score_one_on_their_own_pattern():
    t = 4
    ids = [0, 11, 12, 13, 14, 11, 12, 13, 14]
    n = len(ids)
    heads = np.stack([repeated(t, t - 1, n), repeated(t, t, n), repeated(t, 1, n)])
    dup, ind = duplicate_targets(ids), induction_targets(ids)
    assert pattern_score(heads, ind).tolist() == [1.0, 0.0, 0.0]
    assert pattern_score(heads, dup).tolist() == [0.0, 1.0, 0.0]
    # half on the target, half on <s>: 0.5; uniform attention: mean over rows 5..8 of 1/(i+1)
    half = repeated(t, t - 1, n) * 0.5
    half[:, 0] += 0.5
    half[: t + 1, 0] = 1.0
    assert pattern_score(half[None], ind).tolist() == [0.5]
    uniform = pattern_score(uniform_causal(n)[None], ind)[0]
    assert uniform == pytest.approx(np.mean([1 / 6, 1 / 7, 1 / 8, 1 / 9]), abs=1e-15)
    # TransformerLens's 'mul' score is ours × |rows with a target| / n
    rows_with = ind.any(1).sum()
    tl = (uniform_causal(n) * ind).sum() / uniform_causal(n).sum()
    assert tl == pytest.approx(uniform * rows_with / n, abs=1e-15)
    # no repeated token: undefined
    assert np.isnan(pattern_score(heads, duplicate_targets(list(range(n))))).all()


def test_probe_sequences_are_seeded_and_repeat_their_first_half():
    vocabulary = np.arange(10, 60)
    bodies = probe_bodies(vocabulary, 5, PROBE_LENGTH)
    assert bodies.shape == (5, 2 * PROBE_LENGTH)
    assert (bodies[:, :PROBE_LENGTH] == bodies[:, PROBE_LENGTH:]).all()
    assert np.isin(bodies, vocabulary).all()
    assert (probe_bodies(vocabulary, 5, PROBE_LENGTH) == bodies).all()
    # the first sequences do not depend on how many are asked for
    assert (probe_bodies(vocabulary, 3, PROBE_LENGTH) == bodies[:3]).all()


class FakePasses:
    """TokenPasses with hand-made attention: layer 1 head 1 previous-token, layer 2 head 1
    induction, layer 2 head 2 duplicate-token; every other head on <s>."""

    def __init__(self, room: int = 2 * PROBE_LENGTH):
        # wide enough that the seeded draws repeat no token within a half (checked below): the
        # hand-made heads are then exactly on their patterns
        self.vocabulary = np.arange(3, 100_000)
        self.prefix = [0]
        self.room = room
        self.runs = 0

    def attention(self, bodies):
        self.runs += 1
        for body in bodies:
            ids = [0, *body]
            n, t = len(ids), len(body) // 2
            assert len(set(body)) == t
            sink = np.zeros((n, n))
            sink[:, 0] = 1.0
            prev = np.eye(n, k=-1)
            prev[0, 0] = 1.0
            a = np.stack([[prev, sink], [repeated(t, t - 1, n), repeated(t, t, n)]])
            yield ids, a


def run_info(passes, causal=True) -> RunInfo:
    return RunInfo(layers=2, heads=2, causal=causal, sentences=3, sequences=passes)


def record(index: int, attention: np.ndarray) -> Record:
    n = attention.shape[-1]
    none = np.zeros(n, bool)
    return Record(index, ["t"] * n, none, none, none, none, np.zeros(n, np.int8),
                  attention.astype(np.float32))  # fmt: skip


def corpus_attention(n: int) -> np.ndarray:
    """[2, 2, n, n]: L1-H1 previous-token, L1-H2 on position 0, layer 2 uniform."""
    prev = np.eye(n, k=-1)
    prev[0, 0] = 1.0
    sink = np.zeros((n, n))
    sink[:, 0] = 1.0
    return np.stack([[prev, sink], [uniform_causal(n), uniform_causal(n)]])


def test_the_analysis_gives_each_head_its_columns_and_types():
    passes = FakePasses()
    analysis = HeadTypes(sequences=4)
    analysis.start(run_info(passes))
    for index, n in enumerate((3, 5)):
        feed(analysis, record(index, corpus_attention(n)))
    analysis.settle()
    result = analysis.finish({})
    first = result.columns["first"]
    # L1-H1: of rows 1.., only row 1 attends to position 0: (1/2 + 1/4) / 2
    assert first[0] == pytest.approx((1 / 2 + 1 / 4) / 2, abs=1e-15)
    assert first[1] == 1.0
    # uniform: mean over rows i ≥ 1 of 1/(i+1), per example, then over the two examples
    uniform = (np.mean([1 / 2, 1 / 3]) + np.mean([1 / 2, 1 / 3, 1 / 4, 1 / 5])) / 2
    assert first[2] == pytest.approx(uniform, abs=1e-7)  # the records are float32
    assert result.columns["induction"] == [0.0, 0.0, 1.0, 0.0]
    assert result.columns["duplicate"] == [0.0, 0.0, 0.0, 1.0]
    assert result.parts["types"] == [[], ["sink"], ["induction"], ["duplicate-token"]]
    assert result.data["heads"] == {"sink": [1], "duplicate-token": [3], "induction": [2]}
    assert result.data["probe"] == {"sequences": 4, "asked": 4, "length": PROBE_LENGTH,
                                    "seed": 0}  # fmt: skip
    assert result.data["threshold"] == TYPE_THRESHOLD
    assert [c.key for c in result.catalogue] == ["first", "duplicate", "induction"]


def test_an_encoder_has_no_first_token_column_its_cls_column_says_it():
    """Position 0 of an encoder is always [CLS], and every row sees it: the first-token share
    would repeat the [CLS] column to the last bit, so an encoder's atlas has neither it nor the
    sink type (its [CLS] heads have their pattern label); the probe's columns stay."""
    analysis = HeadTypes(sequences=2)
    analysis.start(run_info(FakePasses(), causal=False))
    feed(analysis, record(0, corpus_attention(4)))  # L1-H2 all on position 0
    analysis.settle()
    result = analysis.finish({})
    assert [c.key for c in result.catalogue] == ["duplicate", "induction"]
    assert "first" not in result.columns
    assert result.data["types"] == ["duplicate-token", "induction"]
    assert "sink" not in result.data["heads"] and result.parts["types"][1] == []
    off = HeadTypes(sequences=0)
    off.start(run_info(FakePasses(), causal=False))
    feed(off, record(0, corpus_attention(4)))
    off.settle()
    assert off.finish({}).catalogue == [] and off.finish({}).data["types"] == []


def test_a_short_model_probes_shorter_sequences_and_probe_off_drops_its_columns():
    passes = FakePasses(room=11)
    analysis = HeadTypes(sequences=2)
    analysis.start(run_info(passes))
    feed(analysis, record(0, corpus_attention(4)))
    analysis.settle()
    assert analysis.finish({}).data["probe"]["length"] == 5
    off = HeadTypes(sequences=0)
    off.start(run_info(FakePasses()))
    feed(off, record(0, corpus_attention(4)))
    off.settle()
    result = off.finish({})
    assert [c.key for c in result.catalogue] == ["first"]
    assert result.data["types"] == ["sink"]


def test_only_the_part_with_the_first_example_runs_the_probe_and_parts_merge():
    passes = FakePasses()
    parts = []
    for indices in ((1,), (0, 2)):
        part = HeadTypes(sequences=3)
        part.start(run_info(passes))
        for index in indices:
            feed(part, record(index, corpus_attention(3 + index)))
        part.settle()
        parts.append(part)
    assert passes.runs == 1
    assert parts[0].probed == 0 and parts[1].probed == 3
    whole = HeadTypes(sequences=3)
    whole.start(run_info(FakePasses()))
    for index in range(3):
        feed(whole, record(index, corpus_attention(3 + index)))
    whole.settle()
    merged = HeadTypes(sequences=3)
    merged.start(run_info(None))
    merged.load_state(parts[0].state())
    merged.merge(parts[1])
    assert merged.finish({}) == whole.finish({})


def test_a_decoder_s_columns_and_labels_say_bos_and_eos():
    """No [CLS]/[SEP] wording on a decoder's pages; its labels still rank example sentences by
    the same rules (``pattern`` and ``label_strength`` read them as the canonical labels)."""
    from atlas.analyses.heads import HeadMetrics
    from atlas.analyses.measures import label_strength, pattern

    n = 4
    cls = np.zeros(n, bool)
    cls[0] = True
    sink = np.zeros((n, n))
    sink[:, 0] = 1.0
    prev = np.eye(n, k=-1)
    prev[0, 0] = 1.0
    attention = np.stack([[sink, prev]])  # [1, 2, n, n]
    labels = {}
    for causal in (True, False):
        analysis = HeadMetrics()
        analysis.start(RunInfo(layers=1, heads=2, causal=causal, sentences=1))
        none = np.zeros(n, bool)
        feed(analysis, Record(0, ["<s>", "a", "b", "c"], cls, none, cls, none,
                            np.zeros(n, np.int8), attention.astype(np.float32)))  # fmt: skip
        result = analysis.finish({})
        titles = {c.key: c.title for c in result.catalogue}
        labels[causal] = result.parts["label"]
        if causal:
            assert (titles["to_cls"], titles["to_sep"]) == ("BOS", "EOS")
            assert titles["cls_entropy"] == "first-row entropy"
            assert "[CLS]" not in result.data["labels"] and "BOS" in result.data["labels"]
            assert result.data["label_metrics"]["BOS"] == "to_cls"
        else:
            assert (titles["to_cls"], titles["to_sep"]) == ("[CLS]", "[SEP]")
    assert labels == {True: ["BOS", "previous-token"], False: ["[CLS]", "previous-token"]}
    assert pattern("BOS") == "[CLS]" and pattern("next + BOS") == "next + [CLS]"
    metrics = {"to_cls": np.array(0.7), "next": np.array(0.2)}
    assert label_strength("BOS", metrics) == 0.7
    assert label_strength("BOS + next", metrics) == pytest.approx(0.9)


def test_probe_sequences_0_turns_the_probe_off_and_the_overview_says_so(tiny_model, tmp_path):
    """A real tiny decoder (GPT-2: no BOS, so position 0 is the text's first token)."""
    import json

    from conftest import EXAMPLES, build

    from atlas.options import BuildOptions

    out = tmp_path / "site"
    assert build([str(EXAMPLES), "-o", str(out), "--model", str(tiny_model("gpt2")),
                  "--limit", "5", "--views", "1", "--importance", "0",
                  "--probe-sequences", "0"]) == 0  # fmt: skip
    atlas = json.loads((out / "atlas.json").read_text(encoding="utf-8"))
    keys = {c["key"] for c in atlas["catalogue"]}
    assert "first" in keys and not {"duplicate", "induction"} & keys
    assert atlas["results"]["types"]["probe"] == {"sequences": 0, "asked": 0, "length": 0,
                                                  "seed": 0}  # fmt: skip
    assert "--probe-sequences 0" in (out / "index.html").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="probe_sequences: must be 0 or more"):
        BuildOptions(probe_sequences=-1)


def test_token_passes_wrap_sequences_in_the_tokenizer_s_special_tokens(tiny_model):
    """BERT: [CLS] … [SEP]; the induction model's Llama tokenizer: <s> in front; GPT-2: none.
    The vocabulary leaves the special tokens out, and each pass is the runner's attention."""
    from test_induction import MODEL

    from atlas.model import Runner
    from atlas.sequences import TokenPasses

    for model, front, back in ((tiny_model("bert"), ["[CLS]"], ["[SEP]"]),
                               (MODEL, ["<s>"], []), (tiny_model("gpt2"), [], [])):  # fmt: skip
        runner = Runner(str(model))
        passes = TokenPasses(runner, batch_size=2)
        tokens = runner.tokenizer.convert_ids_to_tokens
        assert (tokens(passes.prefix), tokens(passes.suffix)) == (front, back)
        assert not set(passes.vocabulary) & set(runner.tokenizer.all_special_ids)
        assert passes.room == runner.max_length - len(front) - len(back)
        bodies = probe_bodies(passes.vocabulary, 3, 4)
        out = list(passes.attention(bodies.tolist()))
        assert [ids for ids, _ in out] == [[*passes.prefix, *b, *passes.suffix]
                                           for b in bodies.tolist()]  # fmt: skip
        n = 8 + len(front) + len(back)
        assert all(a.shape == (runner.info.layers, runner.info.heads, n, n) for _, a in out)
        assert np.allclose(out[0][1].sum(-1), 1.0, atol=1e-5)
