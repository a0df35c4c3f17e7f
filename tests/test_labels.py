"""Task heads and labels (issue 9): predictions on sentence pages, labels in the input, and
the per-label breakdown of the head metrics.

Predictions are checked against logits computed here, independently, with transformers; the
breakdown against hand-made records whose attention is built to differ between labels, and its
streaming Welch test against scipy's test on the raw values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import transformers
from conftest import build
from markupsafe import escape
from scipy import stats
from tiny_models import TINY_LABELS, make_tiny_model, make_tiny_task_model

from atlas import pieces
from atlas.analyses.base import RunInfo, feed
from atlas.analyses.labels import LabelBreakdown, welch
from atlas.analyses.measures import METRICS, example_metrics
from atlas.corpus import read_corpus
from atlas.model import SEQUENCE, Record
from atlas.result import load
from atlas.site import render

LABELLED = (
    "The cat sat on the mat .\t\tanimal\n"
    "Where is the dog ?\tThe dog is in the house .\tanimal\n"
    "The old man sat by the fire and told stories .\t\tpeople\n"
    "Birds fly south when the winter comes .\t\tanimal\n"
    "The children laughed at the funny story .\t\tpeople\n"
    "We will meet at the station at noon .\t\tpeople\n"
)


@pytest.fixture(scope="module")
def task_model(tmp_path_factory):
    """A function: task -> folder of a tiny BERT with that task head (made once per module)."""
    made: dict[str, Path] = {}

    def get(task: str) -> Path:
        if task not in made:
            made[task] = make_tiny_task_model(task, tmp_path_factory.mktemp(task))
        return made[task]

    return get


def build_with(model: Path, tmp_path: Path, text: str = LABELLED, name: str = "in.txt") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / name
    source.write_text(text, encoding="utf-8")
    out = tmp_path / "site"
    assert build([str(source), "-o", str(out), "--model", str(model)]) == 0
    return out


def independent_logits(model_dir: Path, task: str, examples) -> list[np.ndarray]:
    """Each example's task-head output, from transformers alone (one example at a time, no
    padding): [C], [n, C] or [n, 2]."""
    auto = {
        "sequence-classification": transformers.AutoModelForSequenceClassification,
        "token-classification": transformers.AutoModelForTokenClassification,
        "question-answering": transformers.AutoModelForQuestionAnswering,
    }[task]
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = auto.from_pretrained(model_dir).eval()
    out = []
    for example in examples:
        inputs = tokenizer(example.text, example.text_b, return_tensors="pt")
        with __import__("torch").no_grad():
            result = model(**inputs)
        if task == "question-answering":
            out.append(np.stack([result.start_logits[0].numpy(), result.end_logits[0].numpy()], -1))
        else:
            out.append(result.logits[0].numpy())
    return out


def page(site: Path, index: int) -> str:
    return (site / "sentences" / f"{index + 1:04d}.html").read_text(encoding="utf-8")


@pytest.mark.slow  # makes the task models
def test_sequence_classifier_predictions_are_the_logits_argmax(task_model, tmp_path):
    """Each sentence page shows the label of the argmax of the logits that transformers gives
    for that sentence, with its softmax probability; the index lists the same labels."""
    model = task_model("sequence-classification")
    site = build_with(model, tmp_path)
    examples = read_corpus(tmp_path / "in.txt")
    classes = TINY_LABELS["sequence-classification"]
    logits = independent_logits(model, "sequence-classification", examples)
    expected = [classes[int(np.argmax(row))] for row in logits]
    assert len(set(expected)) > 1, "the tiny classifier should not predict one class for all"
    atlas = load(site)
    assert atlas.model.task == SEQUENCE and list(atlas.model.classes) == list(classes)
    for i, row in enumerate(logits):
        html = page(site, i)
        shown = re.search(r'class="class-label predicted" data-label="([^"]+)"', html).group(1)
        assert shown == expected[i]
        probability = float(re.search(r'<span class="probability">([0-9.]+)</span>', html)[1])
        assert probability == pytest.approx(float(stats_softmax(row).max()), abs=5e-4)
        gold = examples[i].label
        assert f'class-label gold">{gold}<' in html
        assert ("model is <strong>right" in html) == (gold == expected[i])
    index = (site / "sentences" / "index.html").read_text(encoding="utf-8")
    assert re.findall(r'data-predicted="([^"]*)"', index) == expected
    assert re.findall(r'data-gold="([^"]*)"', index) == [e.label for e in examples]
    rendered = dict(render(atlas))  # `atlas render`: the same pages from atlas.json alone
    for path in ("sentences/index.html", "sentences/0001.html", "index.html"):
        assert rendered[path] == (site / path).read_bytes(), path


def stats_softmax(row: np.ndarray) -> np.ndarray:
    z = np.exp(row - row.max())
    return z / z.sum()


def test_token_classifier_tags_are_the_logits_argmax(task_model, tmp_path):
    """The tag under each token on a sentence page is the argmax of that token's logits;
    special tokens have none."""
    model = task_model("token-classification")
    site = build_with(model, tmp_path)
    examples = read_corpus(tmp_path / "in.txt")
    classes = TINY_LABELS["token-classification"]
    logits = independent_logits(model, "token-classification", examples)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model)
    for i, (example, row) in enumerate(zip(examples, logits, strict=True)):
        enc = tokenizer(example.text, example.text_b, return_special_tokens_mask=True)
        special = enc["special_tokens_mask"]
        want = ["" if s else classes[int(c)] for c, s in zip(row.argmax(-1), special, strict=True)]
        shown = re.findall(r'<span class="tag(?: piece)?"[^>]*>([^<]*)</span>', page(site, i))
        assert shown == want
    assert load(site).model.task == "token-classification"


def test_question_answering_span_is_the_best_span_of_the_logits(task_model, tmp_path):
    """The answer marked on a pair's page is the span of the passage (segment B) with the
    highest p_start·p_end among spans of at most 30 tokens, from transformers' logits."""
    model = task_model("question-answering")
    site = build_with(model, tmp_path)
    examples = read_corpus(tmp_path / "in.txt")
    logits = independent_logits(model, "question-answering", examples)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model)
    example, row = examples[1], logits[1]  # the pair
    enc = tokenizer(example.text, example.text_b)
    passage = [i for i, s in enumerate(enc.sequence_ids()) if s == 1]
    start = stats_softmax(row[passage, 0])
    end = stats_softmax(row[passage, 1])
    best = max(
        ((a, b) for a in range(len(passage)) for b in range(a, min(a + 30, len(passage)))),
        key=lambda ab: start[ab[0]] * end[ab[1]],
    )
    first, last = passage[best[0]], passage[best[1]]
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    html = page(site, 1)
    # The answer's tokens are marked, each shown as it reads with the raw token on hover.
    chip = r'<span class="token in-answer(?: cont)?" title="([^"]*)">([^<]*)</span>'
    marked = re.findall(chip, html)
    assert [raw for raw, _ in marked] == tokens[first : last + 1]
    special = [int(t in tokenizer.all_special_tokens) for t in tokens]
    shown = pieces.shown_tokens(tokens, special)[first : last + 1]
    assert [text for _, text in marked] == [str(escape(s.text)) for s in shown]
    assert f'<mark class="answer">{escape(pieces.join(shown))}</mark>' in html


@pytest.mark.slow  # two builds
def test_a_task_head_leaves_the_attention_as_the_bare_encoder_has_it(task_model, tmp_path):
    """Loaded with its task class, the model's attention and every head metric are those of
    its encoder loaded alone (AutoModel)."""
    model = task_model("sequence-classification")
    bare = tmp_path / "bare"
    with_head = transformers.AutoModelForSequenceClassification.from_pretrained(model)
    with_head.bert.save_pretrained(bare)
    transformers.AutoTokenizer.from_pretrained(model).save_pretrained(bare)
    headed = load(build_with(model, tmp_path / "a"))
    plain = load(build_with(bare, tmp_path / "b"))
    assert plain.model.task == "" and plain.results["predictions"]["sentences"] == []

    # every attention metric is the same; head importance is not: with its head the model is
    # scored on its predicted class's probability, without on its pooled output
    def attention_metrics(atlas):
        return [
            {k: v for k, v in h.metrics.items() if not k.startswith("importance")}
            for h in atlas.heads
        ]

    assert attention_metrics(headed) == attention_metrics(plain)
    assert "importance_grad" in headed.heads[0].metrics
    assert "importance_grad" not in plain.heads[0].metrics
    for a, b in zip(headed.views, plain.views, strict=True):
        assert a.attention == b.attention


def test_labels_in_jsonl_reach_the_atlas_and_the_breakdown(tmp_path, tiny_model):
    """JSONL "label"s are the gold labels of the sentences and of the breakdown (a model with
    no task head: no predictions)."""
    records = [
        {"text": line.split("\t")[0], "label": line.split("\t")[-1]}
        for line in LABELLED.splitlines()
    ]
    text = "".join(json.dumps(r) + "\n" for r in records)
    site = build_with(tiny_model("bert"), tmp_path, text, "in.jsonl")
    atlas = load(site)
    assert [s.label for s in atlas.sentences] == [r["label"] for r in records]
    by = atlas.results["by_label"]
    assert by["source"] == "gold" and by["available"]
    assert by["labels"] == [{"label": "animal", "examples": 3}, {"label": "people", "examples": 3}]
    assert by["comparisons"] == [{"label": "people", "versus": "animal"}]
    overview = (site / "index.html").read_text(encoding="utf-8")
    finding = by["findings"][0]
    head = atlas.heads[finding["head"]]
    assert f'href="heads/{head.slug}.html">{head.name}</a>' in overview.split('id="by-label"')[1]
    head_page = (site / "heads" / f"{head.slug}.html").read_text(encoding="utf-8")
    assert "By gold label" in head_page


def test_predicted_labels_group_the_breakdown_without_gold_labels(task_model, tmp_path):
    """With no label in the input, a sequence classifier's predicted labels group the heads."""
    unlabelled = "".join(line.split("\t")[0] + "\n" for line in LABELLED.splitlines())
    atlas = load(build_with(task_model("sequence-classification"), tmp_path, unlabelled))
    by = atlas.results["by_label"]
    predicted = [p["label"] for p in atlas.results["predictions"]["sentences"]]
    assert by["source"] == "predicted"
    assert {item["label"]: item["examples"] for item in by["labels"]} == {
        label: predicted.count(label) for label in set(predicted)
    }


# ---------------------------------------------------------------------------------------------
# The breakdown on hand-made records


def record(index: int, label: str, attention: np.ndarray) -> Record:
    """A record of [CLS] w1 .. w(n-2) [SEP] with the given attention [L, H, n, n]."""
    n = attention.shape[-1]
    cls = np.zeros(n, bool)
    cls[0] = True
    sep = np.zeros(n, bool)
    sep[-1] = True
    return Record(
        index=index,
        tokens=["[CLS]", *[f"w{i}" for i in range(1, n - 1)], "[SEP]"],
        cls=cls,
        sep=sep,
        special=cls | sep,
        punct=np.zeros(n, bool),
        segments=np.where(cls | sep, -1, 0).astype(np.int8),
        attention=attention,
        label=label,
    )


def synthetic(labels: list[str], sep_head: tuple[int, int], sep_label: str, seed: int = 0):
    """Records of 2 layers × 3 heads with random attention (rows Dirichlet), except that the
    head ``sep_head`` puts 90% of every row on [SEP] in the sentences labelled ``sep_label``."""
    rng = np.random.default_rng(seed)
    records = []
    for index, label in enumerate(labels):
        n = int(rng.integers(6, 12))
        attention = rng.dirichlet(np.ones(n), size=(2, 3, n))
        if label == sep_label:
            layer, head = sep_head
            attention[layer, head] *= 0.1
            attention[layer, head, :, -1] += 0.9
        records.append(record(index, label, attention))
    return records


def run_breakdown(records: list[Record], **run) -> dict:
    analysis = LabelBreakdown()
    analysis.start(RunInfo(layers=2, heads=3, causal=False, sentences=len(records), **run))
    for r in records:
        feed(analysis, r)
    return analysis.finish({})


def test_a_head_on_sep_in_one_label_only_ranks_first():
    """Two labels: the head built to attend to [SEP] only in label "b" is the first finding,
    by its [SEP] share, "b" against "a", with a difference near 0.9 · (1 − random share)."""
    labels = ["a", "b"] * 20
    result = run_breakdown(synthetic(labels, (1, 2), "b"), gold_labels=True)
    assert result.data["findings"][0]["head"] == 1 * 3 + 2
    first = result.data["by_metric"]["to_sep"][0]
    assert first["head"] == 1 * 3 + 2
    assert (first["label"], first["versus"]) == ("b", "a")
    assert first["difference"] > 0.7 and first["p"] < 1e-10
    assert first["examples"] == first["versus_examples"] == 20
    assert result.parts["by_label"][5]["b"]["to_sep"] > 0.9


def test_with_three_labels_each_is_tested_against_the_rest():
    """Three labels: one comparison per label against all other sentences; the [SEP] head is
    first, as its label against the rest."""
    labels = ["x", "y", "z"] * 12
    result = run_breakdown(synthetic(labels, (0, 1), "z", seed=3), gold_labels=True)
    assert result.data["comparisons"] == [
        {"label": "x", "versus": "rest"},
        {"label": "y", "versus": "rest"},
        {"label": "z", "versus": "rest"},
    ]
    assert result.data["findings"][0]["head"] == 1
    first = result.data["by_metric"]["to_sep"][0]
    assert (first["head"], first["label"]) == (1, "z")
    assert (first["examples"], first["versus_examples"]) == (12, 24)
    # Every (comparison, metric, head) is a test but the [punct.] share: no token is
    # punctuation, so it is 0 everywhere, and untested.
    assert result.data["tests"] == 3 * (len(METRICS) - 1) * 6


def test_the_streaming_welch_test_equals_scipy_on_the_raw_values():
    """t and p from the streamed sums equal scipy's Welch test on every example's value, and
    the per-label means equal the plain means."""
    labels = ["a", "b", "b", "a", "b"] * 6
    records = synthetic(labels, (0, 0), "a", seed=7)
    result = run_breakdown(records, gold_labels=True)
    values = {
        label: np.array(
            [
                example_metrics(r.attention, r.cls, r.sep, r.punct)["entropy"].reshape(-1)
                for r in records
                if r.label == label
            ]
        )
        for label in ("a", "b")
    }
    for k in range(6):
        want = stats.ttest_ind(values["b"][:, k], values["a"][:, k], equal_var=False)
        sums = [
            np.array([[len(v)], [v[:, k].sum()], [(v[:, k] ** 2).sum()]])
            for v in (values["b"], values["a"])
        ]
        n, difference, t, p, mean_b, mean_a = welch(*sums)[:, 0]
        assert n == len(values["b"])
        assert difference == pytest.approx(mean_b - mean_a, abs=1e-15)
        assert mean_a == pytest.approx(values["a"][:, k].mean(), rel=1e-12)
        assert t == pytest.approx(want.statistic, rel=1e-9)
        assert p == pytest.approx(want.pvalue, rel=1e-7)
        assert mean_b == pytest.approx(values["b"][:, k].mean(), rel=1e-12)
        for label in ("a", "b"):
            shown = result.parts["by_label"][k][label]["entropy"]
            assert shown == pytest.approx(values[label][:, k].mean(), rel=1e-12)


def test_no_variance_and_different_means_is_infinite_t():
    """Constant values in both groups with different means: t = ±inf, p = 0; equal: NaN."""
    a = np.array([[4.0, 4.0], [4.0, 2.0], [4.0, 1.0]])  # four values of 1.0, and of 0.5
    b = np.array([[3.0, 3.0], [0.0, 1.5], [0.0, 0.75]])  # three of 0.0, and of 0.5
    _, difference, t, p, _, _ = welch(a, b)
    assert difference.tolist() == [1.0, 0.0]
    assert t[0] == np.inf and p[0] == 0.0
    assert np.isnan(t[1]) and np.isnan(p[1])


def test_unlabelled_records_give_no_breakdown():
    """No gold labels and no classifier: the breakdown says so and lists no finding."""
    records = synthetic(["a", "b"] * 3, (0, 0), "a")
    result = run_breakdown(records)
    assert result.data["available"] is False and "no labels" in result.data["note"]
    assert result.data["labels"] == [] and result.parts == {}


def test_predicted_labels_are_used_without_gold():
    """Without gold labels, a sequence classifier's argmax names each record's label."""
    records = synthetic(["a", "b"] * 10, (1, 0), "a")
    for r in records:  # the classifier predicts class 1 ("yes") exactly for label "a"
        r.logits = np.array([0.0, 1.0]) if r.label == "a" else np.array([1.0, 0.0])
        r.label = None
    result = run_breakdown(records, task=SEQUENCE, classes=("no", "yes"))
    first = result.data["by_metric"]["to_sep"][0]
    assert result.data["source"] == "predicted"
    assert result.data["findings"][0]["head"] == 3
    assert (first["head"], first["label"]) == (3, "yes")


def test_tiny_task_models_share_the_tiny_bert_encoder(tmp_path):
    """The tiny task models' encoder is the tiny BERT (so tests may compare their attention)."""
    base = transformers.AutoModel.from_pretrained(make_tiny_model("bert", tmp_path / "b"))
    task = transformers.AutoModelForTokenClassification.from_pretrained(
        make_tiny_task_model("token-classification", tmp_path / "t")
    )
    for name, value in base.state_dict().items():
        if name.startswith("pooler."):  # a token classifier has no pooler
            continue
        assert np.array_equal(value.numpy(), task.bert.state_dict()[name].numpy()), name


def test_tiny_values_keep_their_variance():
    """Values of order 1e-8 (a head that almost never looks at the next token) keep their
    spread through the shifted sums: t equals scipy's, not ±inf from a variance lost to
    rounding."""
    rng = np.random.default_rng(11)
    a = 1e-8 * (1 + 0.1 * rng.standard_normal(40))
    b = 1.2e-8 * (1 + 0.1 * rng.standard_normal(30))
    shift = a[0]

    def sums(x):
        return np.array([[len(x)], [(x - shift).sum()], [((x - shift) ** 2).sum()]])

    _, difference, t, p, mean_a, mean_b = welch(sums(a), sums(b), shift)[:, 0]
    want = stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(want.statistic, rel=1e-6)
    assert p == pytest.approx(want.pvalue, rel=1e-5)
    assert (mean_a, mean_b) == (
        pytest.approx(a.mean(), rel=1e-9),
        pytest.approx(b.mean(), rel=1e-9),
    )
    assert difference == pytest.approx(a.mean() - b.mean(), rel=1e-6)
