"""Analyses of the user's, named on the command line: ``--analysis MODULE:CLASS``.

``MODULE`` is an importable module (``mylab.analyses``) or a Python file (``analyses/peak.py``);
``CLASS`` a subclass of ``atlas.analyses.Analysis`` whose constructor takes no argument. The
build runs it beside the built-in analyses (``default_analyses``); ``atlas render`` needs it
again to show its sections and pages, since atlas.json names analyses, not code (a file that
could name code to import would run whatever a shared atlas.json said).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

from .analyses.base import Analysis
from .contract import ANALYSIS_NAME


class PluginError(ValueError):
    """An --analysis that cannot be loaded; the message is one line."""


def analysis_class(spec: str) -> type[Analysis]:
    """The Analysis subclass ``spec`` names ("MODULE:CLASS" or "FILE.py:CLASS")."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise PluginError(f"--analysis {spec}: expected MODULE:CLASS or FILE.py:CLASS")
    try:
        module = _module(where)
    except PluginError as err:
        raise PluginError(f"--analysis {spec}: {err}") from None
    except Exception as err:  # the user's module failed as it was imported
        raise PluginError(
            f"--analysis {spec}: cannot import {where} ({type(err).__name__}: {err})"
        ) from None
    found = getattr(module, name, None)
    if not (isinstance(found, type) and issubclass(found, Analysis)):
        what = "not found" if found is None else "not a subclass of atlas.analyses.Analysis"
        raise PluginError(f"--analysis {spec}: {name} is {what} in {where}")
    if not ANALYSIS_NAME.fullmatch(found.name or ""):
        raise PluginError(
            f"--analysis {spec}: its name {found.name!r} must be lower case letters, digits "
            "and _ (it names its data files and its results in atlas.json)"
        )
    return found


def load_analysis(spec: str) -> Analysis:
    """A fresh instance of the analysis ``spec`` names."""
    cls = analysis_class(spec)
    try:
        return cls()
    except Exception as err:
        raise PluginError(
            f"--analysis {spec}: {cls.__name__}() failed ({type(err).__name__}: {err}); an "
            "analysis named on the command line takes no arguments"
        ) from None


def presentation_classes(
    analyses: Iterable[Analysis | type[Analysis] | str],
) -> list[type[Analysis]]:
    """The classes of ``analyses`` (instances, classes, or specs to load), for the site."""
    return [
        analysis_class(a) if isinstance(a, str) else a if isinstance(a, type) else type(a)
        for a in analyses
    ]


def _module(where: str):
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where)
        if not path.is_file():
            raise PluginError(f"no such file: {where}")
        name = f"atlas_user_analysis_{path.stem}"
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"not a Python file: {where}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look a class's module up here
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as err:
        if err.name is not None and where.startswith(err.name):
            raise PluginError(
                f"no module named {err.name} (is its folder on PYTHONPATH?)"
            ) from None
        raise
