"""The names ``atlas.model`` has always offered, for code that imports them from here.

The model side of the atlas is split by job: atlas/loading.py (load by hub id or folder, the
model card), atlas/encoding.py (tokenise, align words, bound long pairs), atlas/running.py
(the ``Runner``: batches, forward passes, records), atlas/records.py (``Record`` and values
derived from it) and atlas/hooks.py (where each model family keeps its attention, and the
hooks that capture it). New code imports from those.
"""

from .encoding import (
    TOKENIZER_PROBES,
    Encoder,
    bounded_pair,
    kept_chars,
    needs_prefix_space,
    tokenizer_difference,
)
from .loading import (
    CAUSAL_PROBE,
    DEFAULT_MODEL,
    DEFAULT_MODEL_PACKAGE,
    HUB_TIMEOUT_S,
    OFFSET_POSITION_TYPES,
    SEQUENCE,
    SPANS,
    TASKS,
    TOKENS,
    ModelError,
    ModelInfo,
    classes_of,
    default_model_path,
    hub_reachable,
    is_causal,
    is_hub_id,
    offline_mode,
    resolve_device,
    task_of,
)
from .records import (
    ATTENTION,
    CAPTURES,
    HIDDEN_STATES,
    QUERIES_KEYS,
    SUBWORD_PREFIXES,
    SUBWORD_SUFFIXES,
    Record,
    is_punctuation,
    reproduction_error,
)
from .running import (
    PairedRunner,
    Runner,
    example_logits,
    stream_key,
    stream_window,
    task_logits,
)

__all__ = [
    "ATTENTION",
    "CAPTURES",
    "CAUSAL_PROBE",
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_PACKAGE",
    "HIDDEN_STATES",
    "HUB_TIMEOUT_S",
    "OFFSET_POSITION_TYPES",
    "QUERIES_KEYS",
    "SEQUENCE",
    "SPANS",
    "SUBWORD_PREFIXES",
    "SUBWORD_SUFFIXES",
    "TASKS",
    "TOKENIZER_PROBES",
    "TOKENS",
    "Encoder",
    "ModelError",
    "ModelInfo",
    "PairedRunner",
    "Record",
    "Runner",
    "bounded_pair",
    "classes_of",
    "default_model_path",
    "example_logits",
    "hub_reachable",
    "is_causal",
    "is_hub_id",
    "is_punctuation",
    "kept_chars",
    "needs_prefix_space",
    "offline_mode",
    "reproduction_error",
    "resolve_device",
    "stream_key",
    "stream_window",
    "task_logits",
    "task_of",
    "tokenizer_difference",
]
