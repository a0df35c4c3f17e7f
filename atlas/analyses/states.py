"""Analysis states on disk: one JSON file and one .npz beside it (docs/design.md, "Mergeable
analyses").

``states.json`` holds ``{"format": FORMAT, "version": VERSION, "analyses": {name: {"version":
the analysis's state_version, "state": ...}}, "extra": ...}``, where every numpy array of a
state is replaced by ``{"npz": KEY}``, its key in ``states.npz``; arrays keep their dtype and
shape. Nothing is pickled, so a state folder can be read by any version that knows the format.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

FORMAT = "attention-atlas analysis states"
VERSION = 1
JSON_NAME, ARRAYS_NAME = "states.json", "states.npz"


class StateError(ValueError):
    """A state folder of another format or version."""


def save_states(
    folder: str | pathlib.Path,
    states: Mapping[str, Mapping[str, Any]],
    versions: Mapping[str, int],
    extra: Any = None,
) -> None:
    """Write the analyses' states (name -> state) and their versions into ``folder``."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}

    def encode(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            key = f"a{len(arrays)}"
            arrays[key] = value
            return {"npz": key}
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError("a state's dict keys must be strings")
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [encode(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    document = {
        "format": FORMAT,
        "version": VERSION,
        "analyses": {
            name: {"version": versions[name], "state": encode(dict(state))}
            for name, state in states.items()
        },
        "extra": encode(extra),
    }
    (folder / JSON_NAME).write_text(json.dumps(document), encoding="utf-8")
    np.savez(folder / ARRAYS_NAME, **arrays)


def load_states(
    folder: str | pathlib.Path, versions: Mapping[str, int]
) -> tuple[dict[str, dict[str, Any]], Any]:
    """(name -> state, extra) from ``folder``; refuses another format, or an analysis state of
    another version than ``versions`` gives."""
    folder = pathlib.Path(folder)
    document = json.loads((folder / JSON_NAME).read_text(encoding="utf-8"))
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise StateError(f"{folder}: not analysis states of format version {VERSION}")
    with np.load(folder / ARRAYS_NAME, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}

    def decode(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"npz"}:
                return arrays[value["npz"]]
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    states = {}
    for name, entry in document["analyses"].items():
        if name in versions and entry["version"] != versions[name]:
            raise StateError(
                f"{folder}: the {name} state is version {entry['version']}, "
                f"this atlas reads {versions[name]}"
            )
        states[name] = decode(entry["state"])
    return states, decode(document["extra"])
