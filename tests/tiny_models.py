"""Tiny, randomly initialised HF models with locally built tokenizers, for offline tests.

``make_tiny_model(family, directory)`` writes a model and a matching fast tokenizer that load
with ``AutoTokenizer.from_pretrained`` and ``AutoModel.from_pretrained``; nothing is downloaded.
Weights are seeded, so the same family always yields the same model.
"""

from __future__ import annotations

import pathlib
import string

import torch
import transformers
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, WordPiece
from tokenizers.trainers import BpeTrainer

FAMILIES: tuple[str, ...] = ("bert", "roberta", "distilbert", "electra", "gpt2")
# Decoder families with rotary position encoding (``make_tiny_model`` makes these too): each with
# what sets it apart in the attention (``DECODER_TRAITS``), so the neuron view is tested on it.
DECODERS: tuple[str, ...] = (
    "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "gpt_neox", "olmo", "olmo2",
)  # fmt: skip
DECODER_TRAITS = {
    "llama": "grouped-query attention (4 query heads, 2 key heads)",
    "mistral": "a sliding window of 4 tokens in every layer; SentencePiece tokenizer",
    "qwen2": "a sliding window of 3 tokens in layer 2 only; q/k biases",
    "qwen3": "q/k norms over each head's vector",
    "gemma2": "logit soft-capping at 5, scale 1/√16 (query_pre_attn_scalar), local and global "
    "layers; SentencePiece tokenizer",
    "gemma3": "q/k norms, scale 1/√16, a sliding window of 3 tokens in layer 1 with its own rotary "
    "base; SentencePiece tokenizer",
    "phi3": "one fused q/k/v projection with grouped keys, half the dimensions rotated",
    "gpt_neox": "one fused q/k/v projection laid out head by head, a quarter of the dimensions "
    "rotated (Pythia)",
    "olmo": "queries and keys clamped to ±1 (clip_qkv)",
    "olmo2": "q/k norms over all heads' vectors at once",
}

# (layers, heads) of each family's tiny model; the two counts always differ, so tests can tell
# the layer axis from the head axis.
SHAPES: dict[str, tuple[int, int]] = {
    "bert": (2, 4),
    "roberta": (2, 4),
    "distilbert": (2, 4),
    "electra": (2, 4),
    "gpt2": (3, 2),
    **{family: (2, 4) for family in DECODERS},
}

HIDDEN_SIZE = 32
MAX_LENGTH = 64  # the longest input (special tokens included) every tiny model accepts

_WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # roberta-base's ids 0-4
_GPT2_SPECIAL = "<|endoftext|>"
_SENTENCEPIECE_SPECIALS = ["<unk>", "<s>", "</s>"]  # Llama's and Mistral's ids 0-2

# Common English words for the WordPiece vocabulary. Some frequent words ("sat", "mat", "dog",
# "run", ...) are left out on purpose so that ordinary sentences also produce ## pieces.
_WORDS = """
the of and a to in is you that it he was for on are as with his they i at be this have from
or one had by word but not what all were we when your can said there use an each which she do
how their if will up other about out many then them these so some her would make like him into
time has look two more write go see number no way could people my than first water been call who
oil its now find long down day did get come made may part over new sound take only little work
know place year live me back give most very after thing our just name good sentence man think
say great where help through much before line right too mean old any same tell boy follow came
want show also around form three small set put end does another well large must big even such
because turn here why ask went men read need land different home us move try kind hand picture
again change off play spell air away animal house point page letter mother answer found study
still learn should world high every near add food between own below country plant last school
father keep tree never start city earth eye light thought head under story saw left few while
along might close something seem next hard open example begin life always those both paper
together got group often cat house bird fish model head attention
"""

_SUFFIXES = ["s", "es", "ed", "ing", "er", "ly", "at", "an", "en", "on", "in", "re", "th", "st"]

# Training text for the byte-level BPE tokenizers (roberta, gpt2).
_BPE_CORPUS = [
    "The cat sat on the mat.",
    "Where is the cat?",
    "The dog sat on the rug and looked at the cat.",
    "A bird sang in the tree near the house.",
    "She walked to the market to buy fresh bread.",
    "They played football in the park after school.",
    "He reads a book every night before he sleeps.",
    "The weather was cold, so we stayed inside.",
    "My brother works in a large city far from home.",
    "Where did you put the keys to the car?",
    "The children laughed at the funny story.",
    "We will meet at the station at noon.",
    "The river runs through the middle of the town.",
    "Please close the door when you leave the room.",
    "Our teacher asked us to write a short letter.",
    "The old man sat by the fire and told stories.",
    "It rained all day, and the streets were wet.",
    "Is this the right way to the museum?",
    "The cat chased the mouse under the table.",
    "I think the answer is in the next chapter.",
    "Birds fly south when the winter comes.",
    "The students learned about plants and animals.",
    "Can you help me carry these boxes upstairs?",
    "The sun was shining and the sky was blue.",
    "He forgot his umbrella at the office again.",
    "The small boat drifted slowly across the lake.",
    "Every morning she drinks a cup of hot tea.",
    "The museum opens at nine and closes at five.",
    "They built a new bridge over the river last year.",
    "The model pays attention to every word in the sentence.",
    "Which head of the model looks at the previous word?",
    "The mother read a story to her children.",
    "We saw many animals at the zoo on Sunday.",
    "The train to the city leaves in ten minutes.",
    "Why is the sky blue and the grass green?",
    "The cat and the dog are sleeping on the sofa.",
]


def _wordpiece_vocab() -> list[str]:
    """Special tokens, punctuation, digits, letters and their ## forms, suffixes, whole words."""
    entries = list(_WORDPIECE_SPECIALS)
    entries += list(string.punctuation)
    entries += list(string.digits) + [f"##{d}" for d in string.digits]
    entries += list(string.ascii_lowercase) + [f"##{c}" for c in string.ascii_lowercase]
    entries += [f"##{s}" for s in _SUFFIXES]
    entries += _WORDS.split()
    return list(dict.fromkeys(entries))  # dedupe, keep order


def _wordpiece_tokenizer(
    tokenizer_class: type[transformers.PreTrainedTokenizerBase],
) -> transformers.PreTrainedTokenizerBase:
    vocab = {token: i for i, token in enumerate(_wordpiece_vocab())}
    backend = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tokenizer_class(
        tokenizer_object=backend,
        do_lower_case=True,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=MAX_LENGTH,
    )


def _byte_level_bpe(special_tokens: list[str], vocab_size: int = 450) -> Tokenizer:
    """A byte-level BPE (as in GPT-2 / RoBERTa) trained on the in-memory corpus."""
    backend = Tokenizer(BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_BPE_CORPUS, trainer=trainer)
    return backend


def _roberta_tokenizer() -> transformers.PreTrainedTokenizerBase:
    backend = _byte_level_bpe(_ROBERTA_SPECIALS)
    backend.post_processor = processors.RobertaProcessing(
        ("</s>", backend.token_to_id("</s>")),  # sep
        ("<s>", backend.token_to_id("<s>")),  # cls
        trim_offsets=True,
        add_prefix_space=False,
    )
    return transformers.RobertaTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        add_prefix_space=False,
        model_max_length=MAX_LENGTH,
    )


def _gpt2_tokenizer() -> transformers.PreTrainedTokenizerBase:
    backend = _byte_level_bpe([_GPT2_SPECIAL])
    backend.post_processor = processors.ByteLevel(trim_offsets=False)  # as in gpt2's tokenizer.json
    return transformers.GPT2TokenizerFast(
        tokenizer_object=backend,
        bos_token=_GPT2_SPECIAL,
        eos_token=_GPT2_SPECIAL,
        unk_token=_GPT2_SPECIAL,
        add_prefix_space=False,
        model_max_length=MAX_LENGTH,
    )


def _sentencepiece_tokenizer() -> transformers.PreTrainedTokenizerBase:
    """A SentencePiece-style BPE, as Llama's, Mistral's and Gemma's tokenizer.json have it:
    "▁" marks a space, no pre-split into words but at spaces, and <s> before every text."""
    backend = Tokenizer(BPE(unk_token="<unk>", fuse_unk=True))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = BpeTrainer(
        vocab_size=400, min_frequency=2, special_tokens=_SENTENCEPIECE_SPECIALS, show_progress=False
    )
    backend.train_from_iterator(_BPE_CORPUS, trainer=trainer)
    bos = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=MAX_LENGTH,
    )


# Tokenizer of each decoder family: the byte-level BPE of GPT-2 or a SentencePiece-style one.
_SENTENCEPIECE_FAMILIES = ("mistral", "gemma2", "gemma3")


def _decoder(family: str, tokenizer) -> transformers.PretrainedConfig:
    """The tiny config of a decoder family: 2 layers, 4 query heads of size 8, 2 key heads
    (but GPT-NeoX, which has no grouped-query attention), weights large enough (initializer
    range 0.2) that attention is far from uniform, so a wrong scale, cap or window shows."""
    layers, heads = SHAPES[family]
    special = tokenizer.eos_token_id
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN_SIZE,
        intermediate_size=2 * HIDDEN_SIZE,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=MAX_LENGTH,
        initializer_range=0.2,
        pad_token_id=special,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=special,
    )
    grouped = dict(num_key_value_heads=heads // 2)
    gemma = dict(head_dim=HIDDEN_SIZE // heads, query_pre_attn_scalar=16, **grouped)
    configs = {
        "llama": lambda: transformers.LlamaConfig(**common, **grouped),
        "mistral": lambda: transformers.MistralConfig(**common, **grouped, sliding_window=4),
        "qwen2": lambda: transformers.Qwen2Config(
            **common, **grouped, use_sliding_window=True, sliding_window=3, max_window_layers=1
        ),
        "qwen3": lambda: transformers.Qwen3Config(**common, **grouped, head_dim=8),
        "gemma2": lambda: transformers.Gemma2Config(
            **common, **gemma, attn_logit_softcapping=5.0, sliding_window=3
        ),
        "gemma3": lambda: transformers.Gemma3TextConfig(
            **common,
            **gemma,
            sliding_window=3,
            layer_types=["sliding_attention", "full_attention"],
        ),
        "phi3": lambda: transformers.Phi3Config(**common, **grouped, partial_rotary_factor=0.5),
        "gpt_neox": lambda: transformers.GPTNeoXConfig(**common, rotary_pct=0.25),
        "olmo": lambda: transformers.OlmoConfig(**common, **grouped, clip_qkv=1.0),
        "olmo2": lambda: transformers.Olmo2Config(**common, **grouped),
    }
    return configs[family]()


def _build(
    family: str,
) -> tuple[transformers.PreTrainedTokenizerBase, transformers.PreTrainedModel]:
    if family in DECODERS:
        sentencepiece = family in _SENTENCEPIECE_FAMILIES
        tokenizer = _sentencepiece_tokenizer() if sentencepiece else _gpt2_tokenizer()
        torch.manual_seed(0)
        config = _decoder(family, tokenizer)
        model = transformers.AutoModel.from_config(config, attn_implementation="eager")
        return tokenizer, model.eval()
    if family not in SHAPES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES + DECODERS}")
    layers, heads = SHAPES[family]
    common = {"attention_probs_dropout_prob": 0.0, "hidden_dropout_prob": 0.0}
    if family in ("bert", "electra"):
        fast_class = {
            "bert": transformers.BertTokenizerFast,
            "electra": transformers.ElectraTokenizerFast,
        }[family]
        tokenizer = _wordpiece_tokenizer(fast_class)
        config_class = transformers.BertConfig if family == "bert" else transformers.ElectraConfig
        extra = {"embedding_size": HIDDEN_SIZE // 2} if family == "electra" else {}
        config = config_class(
            vocab_size=len(tokenizer),
            hidden_size=HIDDEN_SIZE,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=2 * HIDDEN_SIZE,
            max_position_embeddings=MAX_LENGTH,
            type_vocab_size=2,
            pad_token_id=tokenizer.pad_token_id,
            **common,
            **extra,
        )
    elif family == "distilbert":
        tokenizer = _wordpiece_tokenizer(transformers.DistilBertTokenizerFast)
        config = transformers.DistilBertConfig(
            vocab_size=len(tokenizer),
            dim=HIDDEN_SIZE,
            n_layers=layers,
            n_heads=heads,
            hidden_dim=2 * HIDDEN_SIZE,
            max_position_embeddings=MAX_LENGTH,
            pad_token_id=tokenizer.pad_token_id,
            dropout=0.0,
            attention_dropout=0.0,
        )
    elif family == "roberta":
        tokenizer = _roberta_tokenizer()
        config = transformers.RobertaConfig(
            vocab_size=len(tokenizer),
            hidden_size=HIDDEN_SIZE,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=2 * HIDDEN_SIZE,
            # RoBERTa position ids start at pad_token_id + 1, as in roberta-base (514 for 512).
            max_position_embeddings=MAX_LENGTH + tokenizer.pad_token_id + 1,
            type_vocab_size=1,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **common,
        )
    elif family == "gpt2":
        tokenizer = _gpt2_tokenizer()
        config = transformers.GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=MAX_LENGTH,
            n_embd=HIDDEN_SIZE,
            n_layer=layers,
            n_head=heads,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    else:  # pragma: no cover - guarded above
        raise AssertionError(family)

    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(config)
    model.eval()
    return tokenizer, model


def make_tiny_gemma3_multimodal(directory: pathlib.Path) -> pathlib.Path:
    """Save a tiny random Gemma 3 with a vision tower (model type "gemma3", as the 4B and larger
    checkpoints are), whose text model is the tiny "gemma3" one, and its tokenizer."""
    tokenizer = _sentencepiece_tokenizer()
    vision = transformers.SiglipVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    config = transformers.Gemma3Config(
        text_config=_decoder("gemma3", tokenizer).to_dict(),
        vision_config=vision.to_dict(),
        mm_tokens_per_image=4,
        boi_token_index=tokenizer.bos_token_id,
        eoi_token_index=tokenizer.eos_token_id,
        image_token_index=tokenizer.unk_token_id,
    )
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_tiny_model(family: str, directory: pathlib.Path) -> pathlib.Path:
    """Save a tiny random model and its matching fast tokenizer to `directory`; return it.

    `family` is one of `FAMILIES` or `DECODERS`; `SHAPES[family]` gives the model's (layers,
    heads).
    """
    tokenizer, model = _build(family)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_tiny_masked_lm(directory: pathlib.Path) -> pathlib.Path:
    """Save the tiny BERT with a (random, seeded) masked-LM head, as a checkpoint saved from
    BertForMaskedLM is: its config's ``architectures`` says so. Return the directory."""
    tokenizer, base = _build("bert")
    torch.manual_seed(1)
    model = transformers.BertForMaskedLM(base.config)
    model.bert.load_state_dict(base.state_dict(), strict=False)
    model.eval()
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def tiny_llama(key_heads: int = 2) -> transformers.PreTrainedModel:
    """A tiny random Llama (3 layers, 4 query heads sharing ``key_heads`` key heads: grouped-query
    attention, rotary positions) with the GPT-2 tokenizer's vocabulary size, eager attention."""
    config = transformers.LlamaConfig(
        vocab_size=len(_gpt2_tokenizer()),
        hidden_size=HIDDEN_SIZE,
        intermediate_size=2 * HIDDEN_SIZE,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=key_heads,
        max_position_embeddings=MAX_LENGTH,
        attention_dropout=0.0,
    )
    torch.manual_seed(0)
    return transformers.AutoModel.from_config(config, attn_implementation="eager").eval()


def make_tiny_llama(directory: pathlib.Path, key_heads: int = 2) -> pathlib.Path:
    """Save ``tiny_llama(key_heads)`` with the tiny GPT-2 tokenizer (byte-level BPE, no pad
    token, as a Llama checkpoint often has none). Return the directory."""
    model = tiny_llama(key_heads)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    _gpt2_tokenizer().save_pretrained(directory)
    return directory


# Task heads the runner loads (atlas.model.TASKS): the class of each, and the classes of the
# tiny classifiers.
TASK_CLASSES = {
    "sequence-classification": transformers.BertForSequenceClassification,
    "token-classification": transformers.BertForTokenClassification,
    "question-answering": transformers.BertForQuestionAnswering,
}
TINY_LABELS = {
    "sequence-classification": ("negative", "neutral", "positive"),
    "token-classification": ("DET", "NOUN", "VERB", "PUNCT"),
    "question-answering": (),
}


def _spread(model, tokenizer) -> None:
    """Centre and scale a random sequence classifier on the pooled vectors of _BPE_CORPUS, so
    its predictions differ between ordinary sentences (a random tiny BERT pools nearly the same
    vector for every sentence, and would give every sentence one class)."""
    with torch.no_grad():
        pooled = model.bert(**tokenizer(_BPE_CORPUS, padding=True, return_tensors="pt"))
        pooled = pooled.pooler_output
        weight = model.classifier.weight / pooled.std(0).clamp_min(1e-6)
        model.classifier.weight.copy_(weight)
        model.classifier.bias.copy_(-(pooled.mean(0) @ weight.T))


def make_tiny_task_model(task: str, directory: pathlib.Path) -> pathlib.Path:
    """Save a tiny random BERT with a task head (its config's ``architectures`` name it, its
    ``id2label`` the classes of TINY_LABELS) and the tiny BERT's tokenizer; return the folder.

    The encoder has the weights of the tiny BERT of ``make_tiny_model("bert", ...)`` (same seed,
    same config), so its attention is that model's; the head is seeded too."""
    tokenizer, base = _build("bert")
    labels = TINY_LABELS[task]
    config = transformers.BertConfig(**base.config.to_dict())
    if labels:
        config.num_labels = len(labels)
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    torch.manual_seed(1)
    model = TASK_CLASSES[task](config)
    model.bert.load_state_dict(base.state_dict(), strict=False)  # the tiny BERT's encoder
    head = model.qa_outputs if task == "question-answering" else model.classifier
    torch.nn.init.normal_(head.weight, std=3.0)  # large enough that predictions differ
    if task == "sequence-classification":
        _spread(model, tokenizer)
    model.eval()
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_long_bert(
    directory: pathlib.Path, layers: int = 12, heads: int = 12, positions: int = 8192
) -> pathlib.Path:
    """Save a random BERT of a real model's layers and heads (12 × 12 by default), tiny
    otherwise (2 dimensions a head), that takes ``positions`` tokens: long inputs cost what
    attention costs, n² per head, and little else."""
    tokenizer = _wordpiece_tokenizer(transformers.BertTokenizerFast)
    tokenizer.model_max_length = positions
    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=2 * heads,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * heads,
        max_position_embeddings=positions,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
        attention_probs_dropout_prob=0.0,
        hidden_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(config).eval()
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
