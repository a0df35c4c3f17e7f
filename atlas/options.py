"""One options object for a build: the CLI makes it once, and everything downstream reads it.

    options = BuildOptions(views=50, importance=0)
    atlas.build("sentences.txt", "site/", options)        # or atlas.build(..., views=50)
    default_analyses(options)                               # each analysis takes what it needs

Before, every option passed through four signatures (cli → build → measure →
``default_analyses``) and a new one meant editing all four. As pdoc's ``configure``, the options
are set in one place, frozen, and handed down whole; an analysis reads the fields it needs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .analyses.headtypes import DEFAULT_SEQUENCES
from .analyses.importance import DEFAULT_ABLATION, DEFAULT_SAMPLE
from .analyses.syntax import MIN_RELATION
from .analyses.views import NEURON_MODES
from .budget import DEFAULT_MAX_SITE_MB
from .loading import DEVICE_MAPS, DTYPES
from .running import DEFAULT_MEMORY_GB


@dataclass(frozen=True)
class BuildOptions:
    """How to build an atlas: the ``atlas build`` options, with the CLI's defaults.

    model: hub id or folder (None: the offline default model); model_name: what the pages call it.
    compare, compare_name: a second model B, compared head by head in the same pass. device: auto,
    cpu or cuda. max_length: tokens per input (None: the model's limit). batch_size: sentences per
    forward pass. memory_gb: what one layer's attention of a forward pass may take (batches of long
    inputs are made smaller to fit it). limit: the first N sentences only (None: all). words: split
    .txt lines into words. views: sentences whose attention the pages keep. neuron: which of them
    keep queries and keys ("views", "all", "none"). max_site_mb: the site's size budget (None:
    none). min_relation: dependents a relation needs on the Syntax page. importance: sentences for
    head importance (0: off); ablation: how many of them are ablated. probe_sequences: repeated
    random sequences for the duplicate-token and induction scores (0: off). title: the site's title
    (None: from the model and input). templates: a folder of templates overriding the built-in ones.
    progress: a progress bar on stderr. clean, force: as ``atlas.output.write``'s. generate:
    continue every input by this many tokens, greedily, before the analysis pass (0: off; a decoder
    with a language-model head only). chat: wrap each input in the tokenizer's chat template. dtype:
    the weights' type (attention is analysed in float32 whatever it is). device_map: "auto" spreads
    a model too large for one device over several with accelerate (None: the whole model on
    ``device``). analysis: the user's analyses to run too, "MODULE:CLASS" each."""

    model: str | None = None
    model_name: str | None = None
    compare: str | None = None
    compare_name: str | None = None
    device: str = "auto"
    max_length: int | None = None
    batch_size: int = 16
    memory_gb: float = DEFAULT_MEMORY_GB
    limit: int | None = None
    words: bool = False
    views: int = 200
    neuron: str = "views"
    max_site_mb: float | None = DEFAULT_MAX_SITE_MB
    min_relation: int = MIN_RELATION
    importance: int = DEFAULT_SAMPLE
    ablation: int = DEFAULT_ABLATION
    probe_sequences: int = DEFAULT_SEQUENCES
    title: str | None = None
    templates: str | Path | None = None
    progress: bool = False
    # Analyses of the user's run beside the built-in ones: "MODULE:CLASS" or "FILE.py:CLASS"
    # each (``--analysis``, atlas/plugins.py).
    analysis: tuple[str, ...] = ()
    clean: bool = False
    force: bool = False
    generate: int = 0
    chat: bool = False
    dtype: str = "float32"
    device_map: str | None = None

    def __post_init__(self) -> None:
        """Refuse what no build could use, in one line, before a model is loaded."""
        if self.neuron not in NEURON_MODES:
            raise ValueError(f"neuron: one of {', '.join(NEURON_MODES)}, not {self.neuron!r}")
        for name in ("batch_size", "max_length", "limit", "min_relation"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}: must be at least 1, got {value}")
        if not 0 < self.memory_gb < float("inf"):
            raise ValueError(f"memory_gb: must be more than 0, got {self.memory_gb}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.device_map not in DEVICE_MAPS:
            raise ValueError(f"device_map: 'auto' or None, not {self.device_map!r}")
        for name in ("views", "importance", "ablation", "generate", "probe_sequences"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be 0 or more, got {getattr(self, name)}")

    def replace(self, **changes: Any) -> BuildOptions:
        """These options with ``changes`` (a TypeError names an unknown one)."""
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def write_options(self) -> dict[str, bool]:
        """What ``atlas.output.claim`` and ``write`` take."""
        return {"clean": self.clean, "force": self.force}
