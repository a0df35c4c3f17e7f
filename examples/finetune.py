"""Fine-tune the default model (all-MiniLM-L6-v2) to tag words with their UPOS part of speech.

A real fine-tuned model with real labels, made here, for the atlas's task-head features:

    python examples/finetune.py --conllu en_ewt-ud-dev.conllu -o finetuned-upos/
    atlas build examples/ud-ewt-sample.conllu -o upos-site/ --model finetuned-upos/

Data: UD English EWT, dev split: en_ewt-ud-dev.conllu from UD_EWT, given as --conllu PATH
(default: ../shared/data/ud-english-ewt/en_ewt-ud-dev.conllu beside the repository). Its first
300 sentences are held out (they are examples/ud-ewt-sample.conllu, so the atlas of the command
above is built on sentences the model never trained on); the rest are the training part. Each
word's UPOS tag is the label of its first subword; the other subwords and the special tokens are
left out of the loss (-100) and of the accuracy, which is per word.

Saves a checkpoint folder (config with ``architectures`` ["BertForTokenClassification"] and
``id2label``, tokenizer, weights) and prints the held-out accuracy, with the accuracy of always
guessing the most frequent tag for comparison. The 3 epochs of the default took 12 minutes with
--threads 1 on 2 CPU cores shared with other jobs (55 minutes in an earlier run with 2 threads,
which gave the same held-out accuracy: the run is seeded).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
UD_EWT = "https://github.com/UniversalDependencies/UD_English-EWT"
HELD_OUT = 300  # the first sentences: the same ones as examples/ud-ewt-sample.conllu
IGNORE = -100  # label of subwords and special tokens: no loss, no accuracy

Tagged = tuple[list[str], list[str]]  # a sentence's words and their UPOS tags


def read_tagged(path: str | Path) -> list[Tagged]:
    """Words and UPOS tags of every sentence of a CoNLL-U file, in file order (multi-word
    token lines and empty nodes skipped: their words are listed on their own lines)."""
    import conllu

    sentences = []
    with open(path, encoding="utf-8") as file:
        for sentence in conllu.parse_incr(file):
            words = [t for t in sentence if isinstance(t["id"], int)]
            sentences.append(([t["form"] for t in words], [t["upos"] for t in words]))
    return sentences


def split(sentences: Sequence[Tagged], held_out: int = HELD_OUT) -> tuple[list, list]:
    """(training part, held-out part): the first ``held_out`` sentences are held out."""
    return list(sentences[held_out:]), list(sentences[:held_out])


def align_labels(word_ids: Sequence[int | None], tags: Sequence[str], label2id: dict) -> list:
    """One label per token: the word's tag id on its first subword, IGNORE elsewhere (later
    subwords, special tokens, and words that truncation cut)."""
    labels, previous = [], None
    for word in word_ids:
        labels.append(IGNORE if word is None or word == previous else label2id[tags[word]])
        previous = word
    return labels


def encode(tokenizer, sentences: Sequence[Tagged], label2id: dict, max_length: int = 128):
    """Tokenise pre-split words and align their tags: a list of {input_ids, labels, ...}."""
    encoded = []
    for words, tags in sentences:
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        item = dict(enc)
        item["labels"] = align_labels(enc.word_ids(), tags, label2id)
        encoded.append(item)
    return encoded


def batches(items: list[dict], size: int, pad_id: int, shuffle: random.Random | None = None):
    """Padded tensors of ``size`` items at a time (shuffled when ``shuffle`` is given)."""
    import torch

    order = list(range(len(items)))
    if shuffle is not None:
        shuffle.shuffle(order)
    for start in range(0, len(order), size):
        chunk = [items[i] for i in order[start : start + size]]
        width = max(len(i["input_ids"]) for i in chunk)
        out = {}
        for key, fill in (("input_ids", pad_id), ("token_type_ids", 0), ("labels", IGNORE)):
            out[key] = torch.tensor([i[key] + [fill] * (width - len(i[key])) for i in chunk])
        out["attention_mask"] = torch.tensor(
            [[1] * len(i["input_ids"]) + [0] * (width - len(i["input_ids"])) for i in chunk]
        )
        yield out


def accuracy(model, items: list[dict], pad_id: int, batch_size: int = 64) -> float:
    """Share of words (first subwords) whose predicted tag is the gold one."""
    import torch

    right = total = 0
    model.eval()
    with torch.no_grad():
        for batch in batches(items, batch_size, pad_id):
            labels = batch.pop("labels")
            predicted = model(**batch).logits.argmax(-1)
            counted = labels != IGNORE
            right += int((predicted[counted] == labels[counted]).sum())
            total += int(counted.sum())
    return right / max(total, 1)


def main(argv: Sequence[str] | None = None) -> int:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from atlas.model import default_model_path

    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("-o", "--output", type=Path, default=Path("finetuned-upos"))
    args.add_argument("--conllu", type=Path, default=DATA)
    args.add_argument("--epochs", type=int, default=3)
    args.add_argument("--batch-size", type=int, default=16)
    args.add_argument("--lr", type=float, default=1e-4)
    args.add_argument("--threads", type=int, default=2)
    args = args.parse_args(argv)
    if not args.conllu.is_file():
        raise SystemExit(
            f"finetune.py: no CoNLL-U file at {args.conllu}: download en_ewt-ud-dev.conllu from "
            f"{UD_EWT} and give it as --conllu PATH"
        )

    started = time.monotonic()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    train, held_out = split(read_tagged(args.conllu))
    tags = sorted({tag for _, sentence_tags in train + held_out for tag in sentence_tags})
    label2id = {tag: i for i, tag in enumerate(tags)}
    base = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForTokenClassification.from_pretrained(
        base,
        num_labels=len(tags),
        id2label=dict(enumerate(tags)),
        label2id=label2id,
        attn_implementation="eager",
    )
    train_items = encode(tokenizer, train, label2id)
    held_items = encode(tokenizer, held_out, label2id)
    pad = tokenizer.pad_token_id
    print(f"{len(train)} training sentences, {len(held_out)} held out, {len(tags)} tags")

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * -(-len(train_items) // args.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / max(steps, 1))
    shuffle = random.Random(0)
    for epoch in range(1, args.epochs + 1):
        model.train()
        losses = []
        for batch in batches(train_items, args.batch_size, pad, shuffle):
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
        print(f"epoch {epoch}: mean loss {sum(losses) / len(losses):.3f}")

    held_tags = [tag for _, sentence_tags in held_out for tag in sentence_tags]
    common = Counter(t for _, sentence_tags in train for t in sentence_tags).most_common(1)[0][0]
    baseline = sum(t == common for t in held_tags) / len(held_tags)
    score = accuracy(model, held_items, pad)
    args.output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.output)
    tokenizer.save_pretrained(args.output)
    print(
        f"held-out accuracy {score:.4f} over {len(held_tags)} words "
        f"(always {common}: {baseline:.4f}); saved to {args.output} "
        f"in {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
