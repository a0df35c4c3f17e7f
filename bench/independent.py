"""Check every number of an atlas against an independent implementation, on held-out sentences.

    .venv/bin/python bench/independent.py [--sentences 150] [--seed 0] [--views 20]
    .venv/bin/python bench/independent.py --smoke

Held-out: sentences of UD English EWT's dev set (``--conllu``, as /work/shared/data holds it)
that are not in examples/ud-ewt-sample.conllu (neither its ``sent_id`` nor its text),
``--sentences`` of them drawn by ``numpy.random.default_rng(--seed)``. The atlas is built twice
through the library entry (``atlas.build``), once from a CoNLL-U file of those sentences (gold
words and trees) and once from a .txt file of their texts (words joined from the tokenizer's
pieces). Then a compare build (``compare=``) of the first ``--compare`` texts against a copy of
the model with its last two layers' query weights perturbed.

Everything is then recomputed here from scratch, written from the papers and docs/metrics.md,
importing nothing of the atlas but the path of its default model: transformers directly
(``AutoModel``, eager attention, ``output_attentions`` and ``output_hidden_states``), word
alignment from the fast tokenizer's ``word_ids``, numpy and scipy, and a Chu-Liu/Edmonds of its
own (it gave networkx's trees on 300 random graphs of 2 to 29 nodes; networkx's own is 40 times
slower). Compared:

- per head: to_cls, to_sep, to_punct, self, prev, next, entropy, entropy_norm, cls_entropy,
  their layer and model means, and the offset profile (Clark et al. 2019);
- head distances (mean Jensen-Shannon per token); frequent word pairs (exact counts);
- syntax (CoNLL-U): dependent → head and head → dependent per relation and head, Clark et al.'s
  offset baseline with off-sentence guesses wrong, each relation's best head and baseline, MST
  UUAS (Htut et al.'s directed arborescence rooted at the gold root, and the undirected variant),
  the right-branching tree's UUAS;
- layers (Ethayarajh 2019): drift, anisotropy (all cross-sentence pairs, by brute force),
  self-similarity (pairs of occurrences in different sentences, types with 5 or more),
  intra-sentence similarity, the adjusted curves, the per-token drift of sentence pages, the
  word explorer's counts, self-similarity and nearest occurrences' cosines;
- rollout (Abnar and Zuidema 2020): the uint16 rollout stored in each sentence's data file,
  decoded as the page decodes it, against the rollout of the float attention;
- head importance: ablation by zeroing each head's context vector with a forward pre-hook on the
  attention output projection, 1 − cos of the mean-pooled last layer; its percentile bootstrap
  (intervals of score and rank) and ranks;
- head types: the duplicate-token and induction scores of the probe (Olsson et al. 2022), each
  sequence drawn from docs/metrics.md's definition and scored with TransformerLens's head
  detector (transformer_lens/head_detector.py: its detection patterns and "mul" score, rescaled
  to the rows with a target as docs/metrics.md says ours is); and, for a decoder (the
  held-out texts through examples/induction-model, a 2-layer Llama, each continued by 8 tokens
  with ``generate=8``), the first-token share of Xiao et al. 2023 with those two (an encoder has
  no first-token column: its position 0 is [CLS]), and the prompt/generation split: each text
  continued greedily here, token by token, and its prompt's rows and generated rows measured
  apart;
- compare: each head's change (JS across the two models), B's nearest head in A and its
  distance, and B − A of the head metrics.

The probe's UAS (a trained model) is reported, not checked. Prints the largest absolute difference
per quantity as a Markdown table and exits 1 when any exceeds ``--tolerance`` (1e-4).

``--smoke``: 10 sentences, 3 pages, 2 ablated, 5 compared, for CI (about 20 s of CPU).
The measured figures are in docs/verification.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.stats import rankdata

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_DEV = Path("shared", "data", "ud-english-ewt", "en_ewt-ud-dev.conllu")
# beside the repository (CI), else where this project's machines keep it
TREEBANK = next(
    (p for p in (ROOT.parent / _DEV, Path("/work") / _DEV) if p.is_file()), ROOT.parent / _DEV
)
SEEN = ROOT / "examples" / "ud-ewt-sample.conllu"
DECODER = ROOT / "examples" / "induction-model"  # a real decoder, for its head types
GENERATE = 8  # tokens the decoder continues each text by
OFFSETS = range(-8, 9)
BASELINE_OFFSETS = [o for o in range(-3, 4) if o != 0]
ROLLOUT_SCALE = 65535  # the page's decoding: uint16 / 65535 (docs/metrics.md)
MIN_OCCURRENCES = 5


# ---------------------------------------------------------------------------- held-out input


@dataclass
class Sentence:
    block: str  # the CoNLL-U lines, as in the treebank
    sent_id: str
    text: str
    words: list[str] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)  # 1-based, 0 = root
    deprels: list[str] = field(default_factory=list)


def read_treebank(path: Path) -> list[Sentence]:
    """Sentences of a CoNLL-U file: word lines only (no multiword ranges, no empty nodes)."""
    sentences = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        if not block.strip():
            continue
        meta, words, heads, rels = {}, [], [], []
        for line in block.strip("\n").splitlines():
            if line.startswith("#"):
                key, _, value = line[1:].partition("=")
                meta[key.strip()] = value.strip()
                continue
            cols = line.split("\t")
            if "-" in cols[0] or "." in cols[0]:
                continue
            words.append(cols[1])
            heads.append(int(cols[6]))
            rels.append(cols[7])
        text = meta.get("text") or " ".join(words)
        sentences.append(
            Sentence(block.strip("\n"), meta.get("sent_id", ""), text, words, heads, rels)
        )
    return sentences


def held_out(treebank: Path, count: int, seed: int) -> list[Sentence]:
    """``count`` sentences of the treebank that the sample the project uses does not hold."""
    seen = read_treebank(SEEN)
    seen_ids = {s.sent_id for s in seen}
    seen_texts = {s.text for s in seen}
    pool = [
        s
        for s in read_treebank(treebank)
        if s.sent_id not in seen_ids
        and s.text not in seen_texts
        and not s.text.startswith("#")  # a .txt line starting with # is a comment
        and "\t" not in s.text
        and len(s.words) >= 2
    ]
    chosen = np.random.default_rng(seed).choice(
        len(pool), size=min(count, len(pool)), replace=False
    )
    return [pool[i] for i in sorted(chosen)]


# ---------------------------------------------------------------------------- the model, directly


@dataclass
class Run:
    tokens: list[str]
    special: np.ndarray  # [n] bool
    word_of: np.ndarray  # [n] word index, -1 for special tokens
    words: list[str]  # the words (gold, or joined from pieces)
    attention: np.ndarray  # [L, H, n, n] float64
    hidden: np.ndarray  # [L + 1, n, d] float64
    ids: list[int]
    types: list[int]


def forward(tokenizer, model, sentence: Sentence, gold_words: bool) -> Run:
    """One sentence through the model: gold words as pre-split words, or the plain text."""
    if gold_words:
        enc = tokenizer(sentence.words, is_split_into_words=True, return_special_tokens_mask=True)
    else:
        enc = tokenizer(sentence.text, return_special_tokens_mask=True)
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor([enc["input_ids"]]),
            token_type_ids=torch.tensor([enc["token_type_ids"]]),
            output_attentions=True,
            output_hidden_states=True,
        )
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    word_of = np.array([-1 if w is None else w for w in enc.word_ids()])
    if gold_words:
        words = list(sentence.words)
    else:  # words of the pre-tokenizer, spelled as their pieces read (## removed)
        words = [""] * (word_of.max() + 1)
        for token, w in zip(tokens, word_of, strict=True):
            if w >= 0:
                words[w] += token[2:] if token.startswith("##") else token
    return Run(
        tokens=tokens,
        special=np.array(enc["special_tokens_mask"], dtype=bool),
        word_of=word_of,
        words=words,
        attention=torch.stack(out.attentions)[:, 0].double().numpy(),
        hidden=torch.stack(out.hidden_states)[:, 0].double().numpy(),
        ids=list(enc["input_ids"]),
        types=list(enc["token_type_ids"]),
    )


def is_punct(token: str) -> bool:
    text = token[2:] if token.startswith("##") else token
    return bool(text) and all(unicodedata.category(c).startswith("P") for c in text)


# ---------------------------------------------------------------------------- per-head metrics


def entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(p)).sum(-1)


def head_metrics(run: Run, cls_id: np.ndarray, sep_id: np.ndarray) -> dict[str, np.ndarray]:
    """Clark et al.'s per-head numbers of one example, each [L, H]."""
    a = run.attention
    n = a.shape[-1]
    punct = np.array([not s and is_punct(t) for t, s in zip(run.tokens, run.special, strict=True)])
    smooth = 0.9999 * a + 0.0001 / n
    h = entropy(smooth)  # [L, H, n]
    return {
        "to_cls": a[..., cls_id].sum(-1).mean(-1),
        "to_sep": a[..., sep_id].sum(-1).mean(-1),
        "to_punct": a[..., punct].sum(-1).mean(-1),
        "self": np.einsum("lhii->lh", a) / n,
        "prev": sum(a[..., i, i - 1] for i in range(1, n)) / n,
        "next": sum(a[..., i, i + 1] for i in range(n - 1)) / n,
        "entropy": h.mean(-1),
        "entropy_norm": np.minimum(1, h / np.log(n)).mean(-1),
        "cls_entropy": h[..., 0],
    }


def offset_profile(a: np.ndarray) -> np.ndarray:
    """[L, H, 17]: (1/n) Σ_i A[i, i+d] for d in −8..8."""
    n = a.shape[-1]
    return np.stack([np.trace(a, offset=d, axis1=-2, axis2=-1) / n for d in OFFSETS], -1)


def js_sums(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """[K, K]: Σ_i JS(P_h[i], Q_g[i]) for every head h of ``a`` and g of ``b`` (default: ``a``),
    K = L·H heads, P = 0.999·A + 0.001/n."""
    n = a.shape[-1]
    p = (0.999 * a + 0.001 / n).reshape(-1, n, n)
    q = p if b is None else (0.999 * b + 0.001 / n).reshape(-1, n, n)
    logp, logq = np.log(p), np.log(q)
    out = np.zeros((len(p), len(q)))
    for k in range(len(p)):
        m = (p[k] + q) / 2
        logm = np.log(m)
        kl_p = (p[k] * (logp[k] - logm)).sum(-1)
        kl_q = (q * (logq - logm)).sum(-1)
        out[k] = (0.5 * kl_p + 0.5 * kl_q).sum(-1)
    return out


# ---------------------------------------------------------------------------- syntax


def word_attention(run: Run) -> np.ndarray:
    """[L, H, w, w]: attention between words: FROM = mean of the pieces' rows, TO = sum of the
    pieces' columns (Clark et al. §4.1); special tokens dropped after the sums."""
    w = len(run.words)
    member = np.zeros((len(run.tokens), w))
    for t, word in enumerate(run.word_of):
        if word >= 0:
            member[t, word] = 1
    rows = member.T / member.sum(0)[:, None]
    return rows @ run.attention @ member


def first_argmax_excluding(row: np.ndarray, skip: int) -> int:
    masked = row.copy()
    masked[skip] = -np.inf
    return int(np.argmax(masked))


def find_cycle(heads: np.ndarray) -> np.ndarray | None:
    """The nodes of a cycle in a head assignment (``heads[root] = -1``), or None."""
    state = np.zeros(len(heads), dtype=int)  # 0 unseen, 1 on the current path, 2 done
    for start in range(len(heads)):
        path = []
        node = start
        while node >= 0 and state[node] == 0:
            state[node] = 1
            path.append(node)
            node = heads[node]
        if node >= 0 and state[node] == 1:
            return np.array(path[path.index(node) :])
        state[path] = 2
    return None


def chu_liu_edmonds(scores: np.ndarray, root: int) -> np.ndarray:
    """Maximum spanning arborescence (Chu and Liu 1965; Edmonds 1967), written here from the
    textbook recursion: ``scores[d, h]`` is the weight of the edge h → d; returns each node's
    head (-1 for ``root``). Pick every node's best head; if that makes a cycle, contract the
    cycle into one node (an edge into it scored by what it gains over the cycle edge it
    replaces), solve the smaller graph and expand."""
    n = len(scores)
    s = scores.astype(np.float64).copy()
    np.fill_diagonal(s, -np.inf)
    s[root] = -np.inf
    heads = s.argmax(1)
    heads[root] = -1
    cycle = find_cycle(heads)
    if cycle is None:
        return heads
    inside = np.zeros(n, dtype=bool)
    inside[cycle] = True
    rest = np.flatnonzero(~inside)
    m = len(rest)
    kept = s[cycle, heads[cycle]]  # the cycle's own edges
    contracted = np.full((m + 1, m + 1), -np.inf)
    contracted[:m, :m] = s[np.ix_(rest, rest)]
    leaving = s[np.ix_(rest, cycle)]  # [m, |C|]: a cycle node as head of an outside node
    source = cycle[leaving.argmax(1)]
    contracted[:m, m] = leaving.max(1)
    gain = s[np.ix_(cycle, rest)] - kept[:, None]  # [|C|, m]: an outside head entering
    entered = cycle[gain.argmax(0)]
    contracted[m, :m] = gain.max(0) + kept.sum()
    sub = chu_liu_edmonds(contracted, int(np.flatnonzero(rest == root)[0]))
    result = heads.copy()
    for i, node in enumerate(rest):
        result[node] = -1 if sub[i] < 0 else source[i] if sub[i] == m else rest[sub[i]]
    result[entered[sub[m]]] = rest[sub[m]]
    return result


def directed_tree(w: np.ndarray, root: int) -> set[frozenset]:
    """Htut et al.: the maximum spanning arborescence rooted at ``root``, edge head → dependent
    weighing W[dependent, head]; returned as undirected edges."""
    heads = chu_liu_edmonds(w, root)
    return {frozenset((d, int(h))) for d, h in enumerate(heads) if h >= 0}


def undirected_tree(w: np.ndarray) -> set[frozenset]:
    """The maximum spanning tree of W + Wᵀ (scipy's minimum spanning tree of its negation:
    attention is positive, so every off-diagonal entry is an edge)."""
    negated = -(w + w.T)
    np.fill_diagonal(negated, 0)
    tree = minimum_spanning_tree(negated).tocoo()
    return {frozenset((int(i), int(j))) for i, j in zip(tree.row, tree.col, strict=True)}


# ---------------------------------------------------------------------------- layers


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def mean_cross_pair_cos(vectors: list[np.ndarray]) -> float:
    """Mean cos over all pairs of vectors from different groups (ordered pairs), by brute force."""
    x = unit(np.concatenate(vectors))
    group = np.concatenate([np.full(len(v), i) for i, v in enumerate(vectors)])
    gram = x @ x.T
    other = group[:, None] != group[None, :]
    return float(gram[other].mean())


# ---------------------------------------------------------------------------- one atlas, checked


class Report:
    """The largest absolute difference per quantity."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[float, int]] = {}
        self.notes: list[str] = []  # what is reported and not checked

    def add(self, name: str, atlas, mine) -> None:
        a = np.asarray(atlas, dtype=np.float64)
        b = np.asarray(mine, dtype=np.float64)
        if a.shape != b.shape:
            raise SystemExit(f"{name}: atlas has shape {a.shape}, the check {b.shape}")
        both_nan = np.isnan(a) & np.isnan(b)
        diff = np.where(both_nan, 0.0, np.abs(a - b))
        diff = np.where(np.isnan(diff), np.inf, diff)
        old, count = self.rows.get(name, (0.0, 0))
        self.rows[name] = (max(old, float(diff.max(initial=0.0))), count + a.size)

    def show(self, title: str, tokens: int, tolerance: float) -> bool:
        """Print the table; True when a quantity is off by more than ``tolerance``."""
        print(f"\n### {title}, {tokens} tokens\n")
        print("| quantity | values | max abs difference |\n| --- | ---: | ---: |")
        for quantity, (diff, size) in self.rows.items():
            flag = "" if diff <= tolerance else "  **FAIL**"
            print(f"| {quantity} | {size} | {diff:.1e}{flag} |")
        for note in self.notes:
            print(f"\n{note}")
        return any(diff > tolerance for diff, _ in self.rows.values())


def check(
    atlas: dict,
    site: Path,
    runs: list[Run],
    sentences: list[Sentence],
    model,
    tokenizer,
    report: Report,
    gold: bool,
) -> None:
    """Every number of one atlas (``gold``: built from the CoNLL-U file, so with syntax)."""
    L, H = atlas["model"]["layers"], atlas["model"]["heads"]
    heads = atlas["heads"]
    order = [(h["layer"] - 1, h["head"] - 1) for h in heads]

    def flat(x: np.ndarray) -> np.ndarray:
        """[L, H] to the atlas's order of heads."""
        return np.array([x[lay, hd] for lay, hd in order])

    # per-head metrics, offsets, distances
    cls_token, sep_token = tokenizer.cls_token, tokenizer.sep_token
    per_example = {
        k: []
        for k in (
            "to_cls",
            "to_sep",
            "to_punct",
            "self",
            "prev",
            "next",
            "entropy",
            "entropy_norm",
            "cls_entropy",
        )
    }
    offsets = np.zeros((L, H, len(OFFSETS)))
    js = np.zeros((L * H, L * H))
    tokens_total = 0
    for run in runs:
        cls_id = np.array(
            [s and t == cls_token for t, s in zip(run.tokens, run.special, strict=True)]
        )
        sep_id = np.array(
            [s and t == sep_token for t, s in zip(run.tokens, run.special, strict=True)]
        )
        for key, value in head_metrics(run, cls_id, sep_id).items():
            per_example[key].append(value)
        offsets += offset_profile(run.attention)
        js += js_sums(run.attention)
        tokens_total += len(run.tokens)
    for key, values in per_example.items():
        corpus = np.mean(values, 0)
        report.add(f"head metric {key}", [h["metrics"][key] for h in heads], flat(corpus))
        report.add("layer and model means", atlas["layer_means"][key], corpus.mean(1))
        report.add("layer and model means", atlas["model_means"][key], corpus.mean())
    offsets /= len(runs)
    report.add("offset profile", [h["parts"]["offsets"] for h in heads], flat(offsets))
    index = [lay * H + hd for lay, hd in order]
    distance = (js / tokens_total)[np.ix_(index, index)]
    report.add("head distance (JS)", atlas["results"]["distances"]["matrix"], distance)

    check_pairs(atlas, runs, report)
    if gold:
        check_syntax(atlas, runs, sentences, report, flat)
    check_layers(atlas, runs, report)
    check_rollout(site, runs, report)
    check_importance(atlas, runs, model, report, flat)
    check_types(atlas, tokenizer, model, report, flat)


def check_pairs(atlas, runs, report) -> None:
    """Frequent word pairs (Clark §4.1): per head, for every word of a sentence of two words or
    more, (its lower-cased form, that of the other word it attends to most); the listed pairs'
    counts and their from-word's occurrences, and that no unlisted pair outcounts the last."""
    L, H = atlas["model"]["layers"], atlas["model"]["heads"]
    counts = [[{} for _ in range(H)] for _ in range(L)]
    occurs: dict[str, int] = {}
    for run in runs:
        if len(run.words) < 2:
            continue
        w = word_attention(run)
        forms = [word.lower() for word in run.words]
        for u, form in enumerate(forms):
            occurs[form] = occurs.get(form, 0) + 1
            for lay in range(L):
                for hd in range(H):
                    pair = (form, forms[first_argmax_excluding(w[lay, hd, u], u)])
                    counts[lay][hd][pair] = counts[lay][hd].get(pair, 0) + 1
    for head in atlas["heads"]:
        mine = counts[head["layer"] - 1][head["head"] - 1]
        listed = head["parts"]["pairs"]
        report.add(
            "word pairs: counts (exact)",
            [p["count"] for p in listed],
            [mine.get((p["source"], p["target"]), 0) for p in listed],
        )
        report.add(
            "word pairs: counts (exact)",
            [p["source_count"] for p in listed],
            [occurs[p["source"]] for p in listed],
        )
        rest = [
            c
            for pair, c in mine.items()
            if pair not in {(p["source"], p["target"]) for p in listed}
        ]
        if listed and rest and max(rest) > listed[-1]["count"]:
            raise SystemExit(f"pairs: {head['name']} leaves out a pair counted {max(rest)}")


def check_syntax(atlas, runs, sentences, report, flat) -> None:
    syntax = atlas["results"]["syntax"]
    L, H = atlas["model"]["layers"], atlas["model"]["heads"]
    right = {}  # relation -> [2 directions, L, H] counts
    count: dict[str, int] = {}
    base: dict[str, np.ndarray] = {}
    found = np.zeros((2, L, H))  # directed, undirected
    edges = 0
    branching = 0
    for run, sentence in zip(runs, sentences, strict=True):
        w = word_attention(run)
        n = len(sentence.words)
        gold_edges = {frozenset((d, h - 1)) for d, h in enumerate(sentence.heads) if h > 0}
        for d, (h, rel) in enumerate(zip(sentence.heads, sentence.deprels, strict=True)):
            if h == 0:
                continue
            rel = rel.split(":")[0]
            got = right.setdefault(rel, np.zeros((2, L, H)))
            count[rel] = count.get(rel, 0) + 1
            for lay in range(L):
                for hd in range(H):
                    got[0, lay, hd] += first_argmax_excluding(w[lay, hd, d], d) == h - 1
                    got[1, lay, hd] += first_argmax_excluding(w[lay, hd, :, d], d) == h - 1
            guesses = base.setdefault(rel, np.zeros(len(BASELINE_OFFSETS)))
            for k, o in enumerate(BASELINE_OFFSETS):
                guess = d + o
                if guess >= 0:  # Clark's code: before the first word is ROOT (wrong)
                    guesses[k] += min(guess, n - 1) == h - 1
        root = sentence.heads.index(0)
        edges += len(gold_edges)
        branching += len(gold_edges & {frozenset((i, i + 1)) for i in range(n - 1)})
        for lay in range(L):
            for hd in range(H):
                found[0, lay, hd] += len(gold_edges & directed_tree(w[lay, hd], root))
                found[1, lay, hd] += len(gold_edges & undirected_tree(w[lay, hd]))
    total = sum(count.values())
    every = sum(right.values())
    heads = atlas["heads"]
    report.add(
        "syntax dep→head, head→dep (all)",
        [h["metrics"]["dep_to_head"] for h in heads],
        flat(every[0] / total),
    )
    report.add(
        "syntax dep→head, head→dep (all)",
        [h["metrics"]["head_to_dep"] for h in heads],
        flat(every[1] / total),
    )
    report.add(
        "MST UUAS (Htut et al., directed)",
        [h["metrics"]["uuas"] for h in heads],
        flat(found[0] / edges),
    )
    report.add(
        "MST UUAS (undirected variant)",
        [h["metrics"]["uuas_undirected"] for h in heads],
        flat(found[1] / edges),
    )
    report.add("right-branching UUAS", syntax["right_branching_uuas"], branching / edges)
    if syntax["dependents"] != total:
        raise SystemExit(
            f"syntax: the atlas counts {syntax['dependents']} dependents, the check {total}"
        )
    for rel, matrix in syntax["matrix"].items():
        report.add("syntax per relation and head", matrix, flat(right[rel].max(0) / count[rel]))
    for row in syntax["relations"]:
        rel = row["relation"]
        if rel == "all":
            got, n_rel, guesses = every, total, sum(base.values())
        else:
            got, n_rel, guesses = right[rel], count[rel], base[rel]
        report.add("relation's best head and baseline", row["accuracy"], got.max() / n_rel)
        report.add(
            "relation's best head and baseline", row["baseline_accuracy"], guesses.max() / n_rel
        )
        if row["count"] != n_rel:
            raise SystemExit(
                f"syntax: {rel} has {row['count']} dependents in the atlas, {n_rel} here"
            )
    for head in heads:
        for part in head["parts"]["syntax"]:
            rel = part["relation"]
            guesses = sum(base.values()) if rel == "all" else base[rel]
            n_rel = total if rel == "all" else count[rel]
            report.add("relation's best head and baseline", part["baseline"], guesses.max() / n_rel)


def check_layers(atlas, runs, report) -> None:
    layers = atlas["results"]["layers"]
    curves = layers["curves"]
    depth = runs[0].hidden.shape[0]
    ordinary = [run.hidden[:, ~run.special] for run in runs]  # [L+1, m, d] each
    drift = np.zeros(depth)
    anisotropy = np.zeros(depth)
    intra = np.zeros(depth)
    self_sim = np.zeros(depth)
    per_type: dict[str, np.ndarray] = {}
    occurrences: dict[str, list[tuple[int, np.ndarray]]] = {}
    for s, run in enumerate(runs):
        for w, word in enumerate(run.words):
            pieces = run.word_of == w
            if pieces.any():
                occurrences.setdefault(word.casefold(), []).append(
                    (s, run.hidden[:, pieces].mean(1))
                )
    scored = {
        word: occ
        for word, occ in occurrences.items()
        if len(occ) >= MIN_OCCURRENCES and len({s for s, _ in occ}) >= 2
    }
    for lay in range(depth):
        cos0 = [(unit(h[lay]) * unit(h[0])).sum(-1) for h in ordinary]
        drift[lay] = np.concatenate(cos0).mean()
        anisotropy[lay] = mean_cross_pair_cos([h[lay] for h in ordinary])
        intra[lay] = np.mean(
            [
                (unit(h[lay]) * unit(h[lay].mean(0))).sum(-1).mean()
                for h in ordinary
                if h.shape[1] >= 2
            ]
        )
        for word, occ in scored.items():
            by_sentence: dict[int, list[np.ndarray]] = {}
            for s, v in occ:
                by_sentence.setdefault(s, []).append(v[lay])
            groups = [np.array(v) for v in by_sentence.values()]
            per_type.setdefault(word, np.zeros(depth))[lay] = mean_cross_pair_cos(groups)
        self_sim[lay] = np.mean([v[lay] for v in per_type.values()]) if per_type else np.nan
    report.add("layers: drift", curves["drift"], drift)
    report.add("layers: anisotropy", curves["anisotropy"], anisotropy)
    report.add("layers: intra-sentence similarity", curves["intra_similarity"], intra)
    report.add(
        "layers: intra-sentence similarity", curves["intra_similarity_adjusted"], intra - anisotropy
    )
    report.add("layers: self-similarity", curves["self_similarity"], self_sim)
    report.add("layers: self-similarity", curves["self_similarity_adjusted"], self_sim - anisotropy)
    if layers["types_scored"] != len(scored):
        raise SystemExit(
            f"layers: the atlas scores {layers['types_scored']} word types, the check {len(scored)}"
        )
    for key, table in layers["per_token"].items():
        h = runs[int(key)].hidden
        mine = 1 - (unit(h) * unit(h[0:1])).sum(-1)  # [L+1, n]
        report.add("layers: per-token drift (pages, 4 decimals)", table, mine.T)
    check_explorer(layers["explorer"], runs, occurrences, per_type, report)


def check_explorer(explorer, runs, occurrences, per_type, report) -> None:
    """The word explorer: each word's count and self-similarity, and per layer and occurrence
    the cosines of its 3 nearest occurrences in other sentences (4 decimals on the page)."""
    for entry in explorer:
        word = entry["word"]
        if entry["count"] != len(occurrences[word]):
            raise SystemExit(
                f"explorer: {word!r} occurs {entry['count']} times, here {len(occurrences[word])}"
            )
        if entry["self_similarity"] is not None:
            report.add("layers: explorer self-similarity", entry["self_similarity"], per_type[word])
        places = entry["occurrences"]
        vectors = np.stack(
            [runs[i].hidden[:, runs[i].word_of == p].mean(1) for i, p in places], 1
        )  # [L + 1, k, d]
        u = unit(vectors)
        cos = u @ u.transpose(0, 2, 1)
        sentence = np.array([i for i, _ in places])
        other = sentence[:, None] != sentence[None, :]
        for lay, rows in enumerate(entry["nearest"]):
            for k, row in enumerate(rows):
                best = np.sort(cos[lay, k][other[k]])[::-1][: len(row)]
                report.add(
                    "layers: explorer nearest cosines (4 decimals)", [c for _, c in row], best
                )
                report.add(
                    "layers: explorer nearest cosines (4 decimals)",
                    [c for _, c in row],
                    cos[lay, k, [j for j, _ in row]],
                )


def check_rollout(site: Path, runs, report) -> None:
    pages = 0
    for path in sorted((site / "data").glob("[0-9]*.js")):
        if path.name.endswith(".qk.js"):
            continue
        text = path.read_text(encoding="utf-8")
        payload = json.loads(text[text.index("] = ") + 4 :].rstrip().rstrip(";"))
        if not payload.get("rollout"):
            continue
        run = runs[payload["index"]]
        n = len(run.tokens)
        stored = np.frombuffer(zlib.decompress(base64.b64decode(payload["rollout"])), dtype="<u2")
        page = stored.reshape(n, n) / ROLLOUT_SCALE
        current = np.eye(n)
        for layer in run.attention:
            mean = layer.mean(0)
            mean = mean / mean.sum(-1, keepdims=True)
            current = (0.5 * mean + 0.5 * np.eye(n)) @ current
        report.add("rollout (page, uint16) vs float rollout", page, current)
        pages += 1
    report.notes.append(f"rollout: {pages} sentence pages with a stored rollout")


def check_importance(atlas, runs, model, report, flat) -> None:
    results = atlas["results"].get("importance") or {}
    ablated = results.get("ablated") or []
    if not ablated:
        return
    L, H = atlas["model"]["layers"], atlas["model"]["heads"]
    size = model.config.hidden_size // H
    gate = {"layer": -1, "head": -1}

    def zero_head(layer: int):
        def hook(_module, args):
            if gate["layer"] != layer:
                return None
            x = args[0].clone()
            x[..., gate["head"] * size : (gate["head"] + 1) * size] = 0
            return (x, *args[1:])

        return hook

    handles = [
        model.encoder.layer[lay].attention.output.dense.register_forward_pre_hook(zero_head(lay))
        for lay in range(L)
    ]
    change = np.zeros((len(ablated), L, H))  # per ablated sentence
    try:
        for row, index in enumerate(ablated):
            ids = torch.tensor([runs[index].ids])
            types = torch.tensor([runs[index].types])
            with torch.no_grad():
                gate.update(layer=-1, head=-1)
                clean = model(input_ids=ids, token_type_ids=types).last_hidden_state[0].mean(0)
                for lay in range(L):
                    for hd in range(H):
                        gate.update(layer=lay, head=hd)
                        out = (
                            model(input_ids=ids, token_type_ids=types).last_hidden_state[0].mean(0)
                        )
                        change[row, lay, hd] = (
                            1 - torch.nn.functional.cosine_similarity(clean, out, dim=0).item()
                        )
    finally:
        for handle in handles:
            handle.remove()
    report.add(
        "importance (ablation)",
        [h["metrics"]["importance"] for h in atlas["heads"]],
        flat(change.mean(0)),
    )
    check_bootstrap(atlas, np.stack([flat(c) for c in change]), report)


def check_bootstrap(atlas, per_sentence: np.ndarray, report) -> None:
    """The percentile bootstrap over the ablated sentences, as docs/metrics.md states it:
    1,000 resamples (``default_rng(0)``, multinomial counts), each head's mean and competition
    rank (1 = largest) per resample, the 2.5th and 97.5th percentiles
    (``inverted_cdf``). ``per_sentence``: [M, heads]."""
    setup = atlas["results"]["importance"]["bootstrap"]
    m = len(per_sentence)
    counts = np.random.default_rng(setup["seed"]).multinomial(
        m, np.full(m, 1 / m), size=setup["resamples"]
    )
    means = counts @ per_sentence / m  # [resamples, heads]
    ranks = rankdata(-means, method="min", axis=1)
    tail = (1 - setup["level"]) / 2
    low, high = np.quantile(means, [tail, 1 - tail], axis=0, method="inverted_cdf")
    rank_low, rank_high = np.quantile(ranks, [tail, 1 - tail], axis=0, method="inverted_cdf")
    parts = [h["parts"]["importance"] for h in atlas["heads"]]
    report.add("importance bootstrap: interval", [p["low"] for p in parts], low)
    report.add("importance bootstrap: interval", [p["high"] for p in parts], high)
    # a head's rank as the pages give it: on atlas.json's own (6-decimal) importances
    stored = [h["metrics"]["importance"] for h in atlas["heads"]]
    report.add(
        "importance rank (of atlas.json's values)",
        [p["rank"] for p in parts],
        rankdata(-np.array(stored), method="min"),
    )
    # ranks in each resample, of the unrounded means (they are stored nowhere); two heads closer
    # than the implementations agree (about 1e-7) could swap here, none did on the held-out runs
    report.add("importance bootstrap: rank interval", [p["rank_low"] for p in parts], rank_low)
    report.add("importance bootstrap: rank interval", [p["rank_high"] for p in parts], rank_high)


# ---------------------------------------------------------------------------- head types


def wrapping(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a text's ordinary tokens."""
    enc = tokenizer("a", return_special_tokens_mask=True)
    ids, special = enc["input_ids"], enc["special_tokens_mask"]
    ordinary = [i for i, s in enumerate(special) if not s]
    return ids[: ordinary[0]], ids[ordinary[-1] + 1 :]


def probe_ids(tokenizer, model, count: int, length: int, seed: int = 0) -> list[list[int]]:
    """docs/metrics.md, "Head types": ``count`` sequences of ``length`` ids drawn uniformly with
    replacement (``default_rng(seed).integers``) from the vocabulary without its special tokens,
    each repeated once and wrapped in the special tokens the tokenizer adds."""
    size = min(len(tokenizer), model.get_input_embeddings().num_embeddings)
    vocabulary = np.setdiff1d(np.arange(size), tokenizer.all_special_ids)
    half = vocabulary[np.random.default_rng(seed).integers(0, len(vocabulary), (count, length))]
    before, after = wrapping(tokenizer)
    return [[*before, *h, *h, *after] for h in half.tolist()]


def detection_patterns(ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """TransformerLens's head detector (transformer_lens/head_detector.py), from its
    definitions: duplicate[i, j] = 1 where token j is token i and j < i (the token's own
    position left out); induction = the duplicate pattern moved one column right, its first
    column 0, lower-triangular."""
    t = np.asarray(ids)
    duplicate = (t[:, None] == t[None, :]).astype(float)
    np.fill_diagonal(duplicate, 0)
    duplicate = np.tril(duplicate)
    induction = np.zeros_like(duplicate)
    induction[:, 1:] = duplicate[:, :-1]
    return duplicate, np.tril(induction)


def head_detector_scores(attention: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """[L, H]: TransformerLens's "mul" score, Σ A·P / Σ A over the whole matrix, rescaled as
    docs/metrics.md says ours is (× Σ A / |R|, R the rows the pattern gives a target): the
    attention on the pattern averaged over R, not over every row."""
    mul = (attention * pattern).sum((-2, -1)) / attention.sum((-2, -1))
    rows = pattern.any(-1).sum()
    return mul * attention.sum((-2, -1)) / rows


def probe_scores(tokenizer, model, count: int, length: int) -> dict[str, np.ndarray]:
    """Duplicate-token and induction scores per head, [L, H] each: the mean over the probe's
    sequences, each run alone through the model (eager attention)."""
    scores: dict[str, list] = {"duplicate": [], "induction": []}
    for ids in probe_ids(tokenizer, model, count, length):
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_attentions=True)
        attention = torch.stack(out.attentions)[:, 0].double().numpy()
        for key, pattern in zip(scores, detection_patterns(ids), strict=True):
            scores[key].append(head_detector_scores(attention, pattern))
    return {key: np.mean(values, 0) for key, values in scores.items()}


def check_types(atlas, tokenizer, model, report, flat) -> None:
    """The probe's duplicate-token and induction columns, from the probe's size as atlas.json
    records it (``results.types.probe``)."""
    probe = atlas["results"]["types"]["probe"]
    if not probe["sequences"]:
        return
    mine = probe_scores(tokenizer, model, probe["sequences"], probe["length"])
    for key, value in mine.items():
        report.add(f"head type {key} (probe)", [h["metrics"][key] for h in atlas["heads"]],
                   flat(value))  # fmt: skip


def first_token_share(attention: np.ndarray) -> np.ndarray:
    """[L, H]: Xiao et al.'s sink, a decoder's mean attention to position 0 over rows 1..n−1
    (row 0 sees only itself)."""
    return attention[..., 1:, 0].mean(-1)


def greedy(lm, ids: list[int], steps: int, eos: int | None) -> list[int]:
    """docs/metrics.md, "Prompt and generation": ``steps`` tokens, the most likely each step,
    fewer after an end-of-text token (kept)."""
    out = list(ids)
    for _ in range(steps):
        with torch.no_grad():
            logits = lm(input_ids=torch.tensor([out])).logits[0, -1]
        out.append(int(logits.argmax()))
        if out[-1] == eos:
            break
    return out


def split_columns(a: np.ndarray, cls: np.ndarray, generated: np.ndarray) -> dict[str, np.ndarray]:
    """The prompt/generation columns of one example, [L, H] each (NaN where it defines none):
    shares and normalised entropy over the prompt's rows P and the generated rows G, and G's
    share on P (docs/metrics.md, "Prompt and generation"; a decoder: v_i = i + 1)."""
    n = a.shape[-1]
    h = entropy(0.9999 * a + 0.0001 / n)  # [L, H, n]
    visible = np.arange(1, n + 1)
    nan = np.full(a.shape[:2], np.nan)
    out = {}
    for side, rows in (("prompt", ~generated), ("gen", generated)):
        index = np.flatnonzero(rows)
        if not len(index):
            out.update({f"{side}_{k}": nan for k in ("to_cls", "prev", "self", "entropy_norm")})
            continue
        out[f"{side}_to_cls"] = a[..., index, :][..., cls].sum(-1).mean(-1)
        out[f"{side}_prev"] = np.mean(
            [a[..., i, i - 1] if i else np.zeros(a.shape[:2]) for i in index], 0
        )
        out[f"{side}_self"] = np.mean([a[..., i, i] for i in index], 0)
        keep = rows & (visible >= 2)
        ratio = np.minimum(1, h[..., keep] / np.log(visible[keep])).mean(-1)
        out[f"{side}_entropy_norm"] = ratio if keep.any() else nan
    out["gen_to_prompt"] = (
        a[..., generated, :][..., ~generated].sum(-1).mean(-1) if generated.any() else nan
    )
    return out


def check_decoder(atlas, texts: list[str], tokenizer, model, lm, report) -> None:
    """A decoder's head types and prompt/generation split: each text, cut to the model's limit
    less the generation as the atlas cuts it, continued greedily by ``lm`` (the model with its
    language-model head), then through ``model``: the first-token share over every sequence of
    two tokens or more, the split columns, and the probe's columns."""
    heads = atlas["heads"]
    order = [(h["layer"] - 1, h["head"] - 1) for h in heads]

    def flat(x: np.ndarray) -> np.ndarray:
        return np.array([x[lay, hd] for lay, hd in order])

    steps = atlas["options"]["generate"]
    limit = atlas["model"]["max_length"]
    bos = {tokenizer.bos_token_id, tokenizer.cls_token_id} - {None}
    shares, split = [], []
    for text in texts:
        prompt = tokenizer(text, truncation=True, max_length=limit - steps)["input_ids"]
        ids = greedy(lm, prompt, steps, tokenizer.eos_token_id)
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_attentions=True)
        attention = torch.stack(out.attentions)[:, 0].double().numpy()
        if len(ids) >= 2:
            shares.append(first_token_share(attention))
        cls = np.isin(ids, list(bos)) & (np.arange(len(ids)) < len(prompt))
        split.append(split_columns(attention, cls, np.arange(len(ids)) >= len(prompt)))
    report.add("first-token share (sink)", [h["metrics"]["first"] for h in heads],
               flat(np.mean(shares, 0)))  # fmt: skip
    for key in split[0]:
        values = np.stack([s[key] for s in split])
        defined = ~np.isnan(values)
        corpus = np.where(defined, values, 0).sum(0) / np.maximum(defined.sum(0), 1)
        report.add(f"prompt/generation {key}", [h["metrics"][key] for h in heads], flat(corpus))
    check_types(atlas, tokenizer, model, report, flat)


def perturbed_copy(source: str, target: Path) -> Path:
    """Model B: the model with the query weights of its last two layers perturbed (seed 0),
    saved with its tokenizer (a stand-in for a fine-tuned checkpoint)."""
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(source)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in model.encoder.layer[-2:]:
            weight = layer.attention.self.query.weight
            weight.add_(torch.randn(weight.shape, generator=generator) * 0.05)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


def check_compare(atlas, runs_a: list[Run], runs_b: list[Run], tokenizer, report) -> None:
    """Compare's change (cross-model JS per token), B's nearest head in A, and B − A of the
    head metrics (B's recomputed on B's attention)."""
    L, H = atlas["model"]["layers"], atlas["model"]["heads"]
    order = [(h["layer"] - 1) * H + h["head"] - 1 for h in atlas["heads"]]
    cross = np.zeros((L * H, L * H))
    tokens = 0
    per_example_a: dict[str, list] = {}
    per_example_b: dict[str, list] = {}
    for a, b in zip(runs_a, runs_b, strict=True):
        cross += js_sums(a.attention, b.attention)
        tokens += len(a.tokens)
        for run, into in ((a, per_example_a), (b, per_example_b)):
            cls_id = run.special & (np.array(run.tokens) == tokenizer.cls_token)
            sep_id = run.special & (np.array(run.tokens) == tokenizer.sep_token)
            for key, value in head_metrics(run, cls_id, sep_id).items():
                into.setdefault(key, []).append(value.reshape(-1))
    cross = (cross / tokens)[np.ix_(order, order)]
    parts = [h["parts"]["compare"] for h in atlas["heads"]]
    report.add("compare: change", [h["metrics"]["change"] for h in atlas["heads"]], np.diag(cross))
    nearest = cross.argmin(0)
    report.add(
        "compare: nearest head's distance",
        [p["nearest_distance"] for p in parts],
        cross[nearest, range(len(order))],
    )
    if [p["nearest"] for p in parts] != nearest.tolist():
        raise SystemExit("compare: B's nearest head in A differs")
    for key in per_example_a:
        delta = np.mean(per_example_b[key], 0) - np.mean(per_example_a[key], 0)
        report.add(
            "compare: delta B − A (head metrics)", [p["delta"][key] for p in parts], delta[order]
        )


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conllu", type=Path, default=TREEBANK)
    parser.add_argument("--sentences", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--ablation", type=int, default=8, help="sentences ablated")
    parser.add_argument("--compare", type=int, default=30, help="sentences compared (0: off)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--smoke", action="store_true", help="10 sentences, 3 pages")
    args = parser.parse_args()
    if args.smoke:
        args.sentences, args.views, args.ablation, args.compare = 10, 3, 2, 5
    if not args.conllu.is_file():
        print(f"no treebank at {args.conllu}", file=sys.stderr)
        return 2

    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    import atlas as library
    from atlas.model import default_model_path

    torch.manual_seed(0)
    sentences = held_out(args.conllu, args.sentences, args.seed)
    path = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "heldout.conllu").write_text(
            "\n\n".join(s.block for s in sentences) + "\n\n", encoding="utf-8"
        )
        (work / "heldout.txt").write_text(
            "".join(s.text + "\n" for s in sentences), encoding="utf-8"
        )
        for name, gold in (("heldout.conllu", True), ("heldout.txt", False)):
            site = work / f"site-{name}"
            library.build(
                work / name,
                site,
                views=args.views,
                importance=args.ablation,
                ablation=args.ablation,
                min_relation=2 if args.smoke else 20,
                max_site_mb=None,
                device="cpu",
            )
            atlas = json.loads((site / "atlas.json").read_text(encoding="utf-8"))
            runs = [forward(tokenizer, model, sentence, gold) for sentence in sentences]
            report = Report()
            check(atlas, site, runs, sentences, model, tokenizer, report, gold)
            title = f"{name}: {len(sentences)} held-out sentences (seed {args.seed})"
            failed |= report.show(title, sum(len(r.tokens) for r in runs), args.tolerance)
            probe = (atlas["results"].get("syntax") or {}).get("probe") or {}
            if probe.get("available"):
                print(
                    f"\nprobe (trained, reported only): attention-only UAS {probe['uas']}, "
                    f"attention + offsets {probe['uas_offsets']}, best head {probe['best_head']} "
                    f"{probe['best_head_uas']}, best offset {probe['best_offset_uas']}"
                )
        # a decoder: the texts through examples/induction-model (a 2-layer Llama that copies)
        site = work / "site-decoder"
        library.build(work / "heldout.txt", site, model=str(DECODER), generate=GENERATE,
                      views=0, importance=0, max_site_mb=None, device="cpu")  # fmt: skip
        atlas = json.loads((site / "atlas.json").read_text(encoding="utf-8"))
        decoder_tokenizer = AutoTokenizer.from_pretrained(DECODER)
        decoder = AutoModel.from_pretrained(DECODER, attn_implementation="eager").eval()
        lm = AutoModelForCausalLM.from_pretrained(DECODER, attn_implementation="eager").eval()
        report = Report()
        texts = [s.text for s in sentences]
        check_decoder(atlas, texts, decoder_tokenizer, decoder, lm, report)
        tokens = atlas["corpus"]["tokens"]
        title = (f"heldout.txt through {DECODER.name} (a decoder), --generate {GENERATE}: "
                 "head types and prompt/generation")  # fmt: skip
        failed |= report.show(title, tokens, args.tolerance)
        # compare: model B, the first --compare sentences of the .txt
        if args.compare:
            model_b = perturbed_copy(path, work / "model-b")
            (work / "compare.txt").write_text(
                "".join(s.text + "\n" for s in sentences[: args.compare]), encoding="utf-8"
            )
            site = work / "site-compare"
            library.build(
                work / "compare.txt",
                site,
                compare=str(model_b),
                views=0,
                importance=0,
                max_site_mb=None,
                device="cpu",
            )
            atlas = json.loads((site / "atlas.json").read_text(encoding="utf-8"))
            b = AutoModel.from_pretrained(model_b, attn_implementation="eager").eval()
            chosen = sentences[: args.compare]
            runs_a = [forward(tokenizer, model, sentence, False) for sentence in chosen]
            runs_b = [forward(tokenizer, b, sentence, False) for sentence in chosen]
            report = Report()
            check_compare(atlas, runs_a, runs_b, tokenizer, report)
            title = f"compare.txt: the first {len(chosen)} of them, against a perturbed copy"
            failed |= report.show(title, sum(len(r.tokens) for r in runs_a), args.tolerance)
    if failed:
        print(f"\nFAIL: some quantity differs by more than {args.tolerance}", file=sys.stderr)
        return 1
    print(f"\nall quantities within {args.tolerance}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
