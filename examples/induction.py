"""Train a model whose heads are known: a 2-layer attention-only Llama that forms an induction
head, on CPU in a few minutes (3,000 steps: 3.5 minutes on a busy 2-core machine).

    python examples/induction.py                      # writes examples/induction-model/
    atlas build examples/induction.txt --model examples/induction-model -o induction-site/

The model sees sequences of 40 random words from a 48-word vocabulary (after ``<s>``) in which
a run x1 … xT of T = 8 to 16 words, starting anywhere, is said twice, and learns to predict the
next word. Only the repeated run can be predicted, by copying, which a 2-layer attention-only
transformer does with an induction circuit (Olsson et al. 2022, "In-context Learning and
Induction Heads"; Elhage et al. 2021): a head of layer 1
attends to the previous token and writes it into each position, and a head of layer 2 attends
to the position whose previous token is the current one (K-composition) and copies it. The
atlas then finds both: layer 1's previous-token head by the previous-token share of the
corpus, layer 2's induction head on its probe of repeated random sequences.

"Attention-only": Llama has no switch to drop its MLPs, so each is 4 units wide (about 2% of
the weights); the circuit does not need them. Training is seeded and single-threaded, so the
same run gives the same weights; ``tests/test_induction.py`` checks the shipped ones.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

WORDS = [
    *["red", "blue", "green", "gold", "grey", "pink", "cyan", "teal"],
    *["cat", "dog", "cow", "pig", "owl", "bee", "ant", "eel"],
    *["sun", "moon", "star", "rain", "snow", "wind", "fog", "hail"],
    *["one", "two", "six", "ten", "four", "five", "nine", "zero"],
    *["run", "sit", "hop", "dig", "fly", "swim", "nap", "eat"],
    *["big", "old", "new", "hot", "cold", "soft", "wet", "dry"],
]
SPECIALS = ("<unk>", "<s>", "</s>", "<pad>")
LENGTH = 40  # tokens per training sequence, <s> included
SHORTEST, LONGEST = 8, 16  # the repeated run's length T
GOOD = 0.99  # copy accuracy at which training stops
OUT = Path(__file__).with_name("induction-model")
CORPUS = Path(__file__).with_name("induction.txt")


def write_corpus(path: Path, lines: int = 24, seed: int = 0) -> None:
    """The corpus the README builds: lines of random words, every other one a run of words said
    twice (where the induction head's pattern shows on the sentence pages)."""
    import random

    rng = random.Random(seed)
    text = ["# examples/induction.py's corpus: random words; every other line repeats a run."]
    for number in range(lines):
        words = rng.choices(WORDS, k=rng.randint(6, 10))
        text.append(" ".join(words + words if number % 2 else words + rng.choices(WORDS, k=6)))
    path.write_text("\n".join(text) + "\n", encoding="utf-8")


def make_tokenizer(folder: Path):
    """A word-level tokenizer over WORDS that puts <s> in front, as Llama's does."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate((*SPECIALS, *WORDS))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=128,
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def make_model(vocabulary: int, heads: int = 4):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocabulary,
        hidden_size=64,
        intermediate_size=4,  # Llama always has an MLP; this one is too small to matter
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=128,
        bos_token_id=SPECIALS.index("<s>"),
        eos_token_id=SPECIALS.index("</s>"),
        pad_token_id=SPECIALS.index("<pad>"),
        tie_word_embeddings=True,
        attn_implementation="eager",
    )
    return LlamaForCausalLM(config)


def batch(generator, size: int):
    """``size`` sequences of LENGTH tokens: <s>, random words, a run x1…xT of random words and
    the same run again, then random words to the end (ids past the special tokens). T and
    where the run starts vary from sequence to sequence, so that no head can find the copy by
    position (with the run always at the start and one T per batch, the model learns to copy
    by position alone, and no induction head forms)."""
    import torch

    first = len(SPECIALS)
    ids = torch.randint(first, first + len(WORDS), (size, LENGTH), generator=generator)
    runs = torch.randint(SHORTEST, LONGEST + 1, (size,), generator=generator).tolist()
    for row, run in enumerate(runs):
        start = int(torch.randint(1, LENGTH - 2 * run + 1, (1,), generator=generator))
        ids[row, start + run : start + 2 * run] = ids[row, start : start + run]
    ids[:, 0] = SPECIALS.index("<s>")
    return ids


def copy_accuracy(model, generator, run: int = 16) -> float:
    """Share of the repeated words the model predicts, on <s> x1…xT x1…xT of T = ``run``
    random words (all but the second x1, which nothing before it gives away)."""
    import torch

    first = len(SPECIALS)
    words = torch.randint(first, first + len(WORDS), (256, run), generator=generator)
    ids = torch.cat([torch.full((256, 1), SPECIALS.index("<s>")), words, words], 1)
    with torch.no_grad():
        guess = model(ids).logits.argmax(-1)
    return float((guess[:, run + 1 : -1] == ids[:, run + 2 :]).float().mean())


def train(out: Path, steps: int, seed: int = 0, lr: float = 1e-3, heads: int = 4) -> float:
    """Train, save model and tokenizer into ``out``, return the copy accuracy reached."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # the same weights on every machine of one torch version
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(out)
    model = make_model(len(tokenizer), heads)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for step in range(1, steps + 1):
        ids = batch(generator, 32)
        loss = model(ids, labels=ids).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 250 == 0 or step == steps:
            accuracy = copy_accuracy(model, torch.Generator().manual_seed(seed + 1))
            took = time.perf_counter() - started
            print(
                f"step {step}: loss {loss.item():.3f}, copy accuracy {accuracy:.3f} ({took:.0f} s)",
                flush=True,
            )
            if accuracy >= GOOD:
                break
    model.eval()
    accuracy = copy_accuracy(model, torch.Generator().manual_seed(seed + 1))
    model.save_pretrained(out)
    facts = {"steps": step, "seed": seed, "runs": [SHORTEST, LONGEST], "copy_accuracy": accuracy}
    (out / "training.json").write_text(json.dumps(facts) + "\n")
    print(f"copy accuracy on the second half: {accuracy:.3f}; saved to {out}")
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=OUT, help="where to save the model")
    parser.add_argument(
        "--steps", type=int, default=3000, help="most training steps (default 3000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    parser.add_argument("--heads", type=int, default=4, help="heads per layer (default 4)")
    parser.add_argument(
        "--corpus",
        type=Path,
        nargs="?",
        const=CORPUS,
        help=f"write the README's corpus (default {CORPUS.name}), and stop",
    )
    args = parser.parse_args()
    if args.corpus:
        write_corpus(args.corpus)
        return
    train(args.out, args.steps, args.seed, args.lr, args.heads)


if __name__ == "__main__":
    main()
