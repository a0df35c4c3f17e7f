"""Benchmark the rollout drawn on sentence pages against the model's float rollout.

    .venv/bin/python bench/rollout.py [--sentences 1000] [--longest] [--join K] [--conllu PATH]

Runs the default model over the first ``--sentences`` sentences of a treebank (default: UD
English EWT's dev set, as /work/shared/data holds it; ``--longest``: its longest sentences, where
the error of rolling out rounded attention compounds most; ``--join K``: each text K consecutive
sentences joined, for pages of a few hundred tokens), makes each sentence's page data as the
build does (``viewdata.make_view``, written with ``data_script`` and read back: the stored
uint16 rollout decoded as the page decodes it), and compares every entry of every row with the
rollout of the model's own float attention, computed here apart from the atlas: transformers'
``output_attentions`` on the record's token ids, rolled out in float64 with torch. Also gives
what the page drew before (rollout of the uint8 attention) and what the stored rollout costs in
bytes. Prints a Markdown summary for docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CONLLU = Path("/work/shared/data/ud-english-ewt/en_ewt-ud-dev.conllu")
PROMISE = 1e-3  # docs/metrics.md: the page's rollout is within this of the model's


def float_rollout(model, record) -> np.ndarray:
    """The last layer's rollout [n, n] of the model's float attention of the record's tokens:
    mean over heads, rows renormalised, R = Π (0.5·Ā + 0.5·I), float64 throughout."""
    ids = torch.tensor([model.tokenizer.convert_tokens_to_ids(record.tokens)])
    extra = {"token_type_ids": torch.from_numpy(record.segments.clip(0).astype(np.int64))[None]}
    with torch.no_grad():
        out = model.model(input_ids=ids, output_attentions=True, **extra)
    n = ids.shape[1]
    current = torch.eye(n, dtype=torch.float64)
    for layer in out.attentions:
        mean = layer[0].double().mean(0)
        mean = mean / mean.sum(-1, keepdim=True)
        current = (0.5 * mean + 0.5 * torch.eye(n, dtype=torch.float64)) @ current
    return current.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--conllu", type=Path, default=CONLLU)
    parser.add_argument("--longest", action="store_true", help="the longest, not the first")
    parser.add_argument("--join", type=int, default=1, help="sentences joined into one text")
    args = parser.parse_args()

    from atlas.corpus import Example, read_corpus
    from atlas.model import Runner
    from atlas.viewdata import data_script, make_view, read_view, rollout

    examples = read_corpus(args.conllu, limit=None if args.longest else args.sentences * args.join)
    if args.join > 1:
        examples = [
            Example(id=str(k), text=" ".join(e.text for e in examples[at : at + args.join]))
            for k, at in enumerate(range(0, len(examples), args.join))
        ]
    if args.longest:
        examples = sorted(examples, key=lambda e: -len(e.text))[: args.sentences]
    runner = Runner(device="cpu")
    layers, heads = runner.info.layers, runner.info.heads
    worst, worst_cls, worst_old, worst_old_cls = 0.0, 0.0, 0.0, 0.0
    over, over_old, tokens, longest = 0, 0, 0, (0, 0.0)
    rollout_bytes = attention_bytes = script_bytes = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "0001.js"
        for record in runner.run(examples):
            view = make_view(record, vectors=False, causal=runner.info.causal)
            script = data_script(view, key="0001", sentence_id=str(record.index),
                                 layers=layers, heads=heads, causal=False, neuron={})  # fmt: skip
            path.write_text(script, encoding="utf-8")
            page = read_view(path).rollout_matrix()  # as the page decodes it
            exact = float_rollout(runner, record)
            error = np.abs(page - exact)
            worst, worst_cls = max(worst, error.max()), max(worst_cls, error[0].max())
            old = np.abs(rollout(view.matrix(layers, heads))[-1] - exact)
            worst_old, worst_old_cls = max(worst_old, old.max()), max(worst_old_cls, old[0].max())
            over += bool(error.max() > PROMISE)
            over_old += bool(old[0].max() > PROMISE)
            tokens += record.n
            if record.n > longest[0]:
                longest = (record.n, float(error.max()))
            rollout_bytes += len(view.rollout)
            attention_bytes += len(view.attention)
            script_bytes += len(script.encode("utf-8"))
    count = len(examples)
    which = "longest" if args.longest else "first"
    joined = f", each {args.join} sentences joined" if args.join > 1 else ""
    seconds = time.monotonic() - started
    print(f"the {which} {count} texts of {args.conllu.name}{joined} ({tokens:,} tokens, the "
          f"longest {longest[0]}), {runner.info.name}, {seconds:.0f} s\n")  # fmt: skip
    print("| rollout drawn on the page | max abs error, any row | [CLS] row | pages > 1e-3 "
          "(any row; before: [CLS] row) |")  # fmt: skip
    print("|---|---|---|---|")
    print(f"| stored (uint16, from the float attention) | {worst:.2e} | {worst_cls:.2e} | "
          f"{over} of {count} |")  # fmt: skip
    print(f"| before: rolled out in the page from the uint8 attention | {worst_old:.3f} | "
          f"{worst_old_cls:.3f} | {over_old} of {count} |")  # fmt: skip
    share = 100 * rollout_bytes / script_bytes
    print(f"\nsize: the stored rollout adds {rollout_bytes / 1000:,.0f} kB to "
          f"{script_bytes / 1000:,.0f} kB of data scripts ({share:.1f}%; "
          f"the attention is {attention_bytes / 1000:,.0f} kB), "
          f"{rollout_bytes / count:,.0f} bytes a sentence")  # fmt: skip
    assert worst <= PROMISE, f"the page's rollout is {worst:.2e} off, more than {PROMISE}"


if __name__ == "__main__":
    main()
