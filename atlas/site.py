"""Render the static site: pure functions from an Atlas to files, one small function per page.

``render(atlas)`` yields every file of the site as ``(relative path, bytes)``, one at a time, and
touches no disk; ``atlas.output.write(files, out)`` writes each one into the output folder as it
comes, so no more than one file of the site is held in memory at once.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import NoReturn

import jinja2
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from . import __version__, charts, contract, describe, pieces
from .analyses import Analysis, figures, presenters
from .analyses.base import PLACES
from .result import Atlas, Sentence
from .scores import Scores
from .viewdata import View, data_script

PACKAGE_DIR = Path(__file__).resolve().parent
# Inside a wheel the templates sit in atlas/templates; in a source checkout, beside atlas/.
BUILTIN_TEMPLATES = next(
    p for p in (PACKAGE_DIR / "templates", PACKAGE_DIR.parent / "templates") if p.is_dir()
)
ASSETS = "assets"
VEGA_BUNDLE = "vega-bundle.js"
# A theme's own stylesheet (assets/custom.css in the --templates folder): every page links it
# after the built-in ones, so a theme sets atlas.css's variables in a few lines.
CUSTOM_CSS = "custom.css"
log = logging.getLogger(__name__)


class SiteError(RuntimeError):
    """The site cannot be written; the message is one line."""


# What templates may call to draw charts: the functions, not the module (a module would hand a
# template everything it imports). These name no analysis; each analysis adds its own
# (``Analysis.charts``), so a site's ``charts`` is these and its analyses' (``chart_functions``).
CHART_FUNCTIONS = SimpleNamespace(
    metric_heatmap=charts.metric_heatmap,
    metric_range=charts.metric_range,
    top_heads=charts.top_heads,
    layer_curves=charts.layer_curves,
    delta_heatmap=charts.delta_heatmap,
)


# What a template may make, so a theme (``{{ 'a' * 10**9 }}``) cannot fill the disk or the
# memory: a value of at most MAX_VALUE characters and items from one operator, call, filter or
# join (``weight``), no number over MAX_VALUE handed to a call or filter (a width, a count),
# and a page of at most MAX_PAGE_BYTES, GitHub's limit per file (budget.PAGES_FILE_BYTES).
MAX_VALUE = 10_000_000
MAX_POWER_BITS = 100_000  # the largest integer ``**`` or ``*`` may make, in bits
MAX_PAGE_BYTES = 100 * 1_000_000


class TooLarge(SecurityError):
    """A template made, or was about to make, a value or page over the limits above."""


def weight(value: object, limit: int = MAX_VALUE) -> int:
    """The characters and items a value holds, counting a list's items each time they appear
    (as a string of it would): what ``[big] * 1000`` costs once joined. Stops past ``limit``,
    so it costs no more than MAX_VALUE steps."""
    if isinstance(value, str | bytes):
        return len(value)
    if not isinstance(value, list | tuple | dict | set | frozenset):
        return 0
    total = len(value)
    for item in value.items() if isinstance(value, dict) else value:
        total += weight(item, limit - total)
        if total > limit:
            break
    return total


def _refuse(what: str, size: int) -> NoReturn:
    raise TooLarge(f"{what} would make {size:,} characters or items, over {MAX_VALUE:,}")


def _bounded(value: object, what: str) -> object:
    """``value``, if its own length is within MAX_VALUE (what it holds was bounded as it was
    made; walking it again after every call would cost more than the page)."""
    if _length(value) > MAX_VALUE:
        _refuse(what, _length(value))
    return value


def _length(value: object) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict | set) else 0


# Calls and filters whose number arguments size what they make: widths (str methods, filters),
# batch sizes, lipsum's paragraphs.
WIDTH_METHODS = frozenset(
    {"ljust", "rjust", "center", "zfill", "expandtabs", "indent", "batch", "slice"}
)
SIZING_FUNCTIONS = frozenset({"generate_lorem_ipsum"})  # the global lipsum()
# A format whose width comes from its arguments: "%*s", "{:{}}".
_WIDTH_FROM_ARGUMENTS = re.compile(r"%[-+ #0]*\*|\{[^{}]*\{")


def _check_widths(what: str, values) -> None:
    """No width over MAX_VALUE."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE:
            raise TooLarge(f"{what} is given the width {value:,}, over {MAX_VALUE:,}")


def _check_format(what: str, form: object, arguments) -> None:
    """A %-format or str.format string cannot ask for a width over MAX_VALUE, written in it
    ("%999999999s", "{:999999999}") or taken from its arguments ("%*s", "{:{}}")."""
    if isinstance(form, str):
        written, from_arguments = _format_widths(form)
        _check_widths(what, written)
        if from_arguments:
            _check_widths(what, arguments)


@functools.lru_cache(maxsize=256)
def _format_widths(form: str) -> tuple[tuple[int, ...], bool]:
    """The long numbers written in a format string, and whether it takes a width from its
    arguments; cached, as pages format 10,000s of numbers with a handful of formats."""
    return tuple(int(d) for d in re.findall(r"\d{8,}", form)), bool(
        _WIDTH_FROM_ARGUMENTS.search(form)
    )


def _check_growth(what: str, name: str, values: list) -> None:
    """What a call of ``name`` on ``values`` would make, for the calls that grow a value past
    their arguments' sizes: repeat, concatenate, replace, join."""
    first, rest = (values[0], values[1:]) if values else (None, [])
    if name == "*" and len(values) == 2:
        sequence, count = values if isinstance(values[1], int) else values[::-1]
        if isinstance(count, int) and isinstance(sequence, int):  # a product of integers
            if sequence.bit_length() + count.bit_length() > MAX_POWER_BITS:
                raise TooLarge(f"{what} would make a number of over {MAX_POWER_BITS:,} bits")
        elif isinstance(count, int) and not isinstance(count, bool):
            each = weight(sequence, MAX_VALUE // max(count, 1))
            if each * count > MAX_VALUE:
                _refuse(what, each * count)
    elif name == "+" and len(values) == 2:
        size = weight(values[0]) + weight(values[1])
        if size > MAX_VALUE:
            _refuse(what, size)
    elif name == "**" and all(isinstance(v, int) for v in values) and len(values) == 2:
        base, power = values
        if power > 0 and abs(base) > 1 and base.bit_length() * power > MAX_POWER_BITS:
            raise TooLarge(f"{what} would make a number of over {MAX_POWER_BITS:,} bits")
    elif name == "replace" and isinstance(first, str) and len(rest) >= 2:
        old, new = str(rest[0]), str(rest[1])
        if len(new) > len(old):
            count = first.count(old) if old else len(first) + 1
            size = len(first) + count * (len(new) - len(old))
            if size > MAX_VALUE:
                _refuse(what, size)
    elif name == "wordwrap" and isinstance(first, str):
        width = next((v for v in rest if isinstance(v, int) and not isinstance(v, bool)), 79)
        wrap = max((len(v) for v in rest if isinstance(v, str)), default=1)
        size = len(first) + (len(first) // max(width, 1) + 1) * wrap
        if size > MAX_VALUE:
            _refuse(what, size)
    elif name == "join" and isinstance(first, list | tuple):
        size = weight(first) + len(first) * len(str(rest[0]) if rest else "")
        if size > MAX_VALUE:
            _refuse(what, size)


def _callee(obj: object) -> tuple[str, object]:
    """The name of what a template calls, and the object a method is bound to (str.format as
    the sandbox wraps it included)."""
    method = getattr(obj, "__wrapped__", obj)
    return getattr(method, "__name__", type(obj).__name__), getattr(method, "__self__", None)


# The methods that change a list, dict, set or deque (jinja2.sandbox's _mutable_spec;
# tests/test_themes.py checks that this is all of them).
MUTATING = frozenset(
    {"add", "append", "appendleft", "clear", "difference_update", "discard", "extend",
     "extendleft", "insert", "pop", "popitem", "popleft", "remove", "reverse", "rotate",
     "setdefault", "sort", "symmetric_difference_update", "update"}
)  # fmt: skip


class BoundedBuffer(list):
    """Where a block set or a macro gathers its output: bounded as it grows (each piece may be
    an escaped copy, so ``{% for i in range(10**5) %}{{ big }}{% endfor %}`` in a macro would
    otherwise hold 10**5 copies of ``big``)."""

    size = 0

    def append(self, piece: str) -> None:
        self._grow(len(piece))
        super().append(piece)

    def extend(self, pieces) -> None:
        pieces = list(pieces)
        self._grow(sum(map(len, pieces)))
        super().extend(pieces)

    def _grow(self, size: int) -> None:
        self.size += size
        if self.size > MAX_VALUE:
            _refuse("a block or macro", self.size)


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with every ``~`` join bounded (it is no operator a sandbox
    intercepts: ``{% set ns.x = ns.x ~ ns.x %}`` in a loop would double a string each time)
    and every output buffer a BoundedBuffer."""

    def visit_Concat(self, node: jinja2.nodes.Concat, frame) -> None:
        self.write("environment.bounded_join(")
        super().visit_Concat(node, frame)
        self.write(")")

    def buffer(self, frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.bounded_buffer()")


MAX_SAFE_NAMES = 100_000  # (type, name) pairs a site's Sandbox remembers as safe or not


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's sandbox for themes (no attribute starting with "_", no module, no changing the
    Atlas's lists and dicts), with every way to make a large value bounded: the operators
    ``*``, ``+``, ``%`` and ``**``, ``~``, every call and filter, and the output of a block set
    or macro (``MAX_VALUE``); a page's size is bounded as it is made (``render_page``). The
    intercepted operators are not folded into constants as a template compiles, so a theme's
    ``'a' * 10**9`` is never made at all."""

    intercepted_binops = frozenset({"*", "+", "%", "**"})
    code_generator_class = BoundedCodeGenerator

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._safe: dict[tuple[type, str], bool] = {}

    def is_safe_attribute(self, obj, attr: str, value) -> bool:
        """As Jinja's immutable sandbox decides (asked only of the names that can change a
        list, dict, set or deque), once per type and name: Jinja's checks look at the name
        and the object's type alone (``isinstance`` against function, method, type, frame,
        generator and mutable types), and pages look up 100,000s of attributes."""
        key = (type(obj), attr)
        safe = self._safe.get(key)
        if safe is None:
            if attr in MUTATING:
                safe = super().is_safe_attribute(obj, attr, value)
            else:
                safe = SandboxedEnvironment.is_safe_attribute(self, obj, attr, value)
            if len(self._safe) < MAX_SAFE_NAMES:
                self._safe[key] = safe
        return safe

    def call_binop(self, context, operator: str, left, right):
        what = f"{type(left).__name__} {operator} {type(right).__name__}"
        _check_growth(what, operator, [left, right])
        if operator == "%":
            _check_format(what, left, right if isinstance(right, tuple) else (right,))
        return _bounded(super().call_binop(context, operator, left, right), what)

    def call(__self, __context, __obj, *args, **kwargs):
        name, bound = _callee(__obj)
        what = f"{name}()"
        if (name in WIDTH_METHODS and isinstance(bound, str)) or name in SIZING_FUNCTIONS:
            _check_widths(what, (*args, *kwargs.values()))
        if name in ("format", "format_map"):
            _check_format(what, bound, (*args, *kwargs.values()))
        _check_growth(what, name, [bound, *args] if bound is not None else list(args))
        return _bounded(super().call(__context, __obj, *args, **kwargs), what)

    @staticmethod
    def bounded_join(value: str) -> str:
        return _bounded(value, "~")

    bounded_buffer = BoundedBuffer


# The filters whose output can outgrow their input by more than a constant factor, each by
# an argument: these are bounded (``_bounded_filter``); the others make at most a few times
# what they are given, which was bounded as it was made.
GROWING = WIDTH_METHODS | {"format", "replace", "join", "wordwrap"}


def _bounded_filter(name: str, function):
    """A filter whose arguments and result are bounded as ``Sandbox.call`` bounds a call's."""

    @functools.wraps(function)
    def bounded(*args, **kwargs):
        what = f"the filter {name}"
        values = [a for a in args if not isinstance(a, _PASSED)]
        if name in WIDTH_METHODS:
            _check_widths(what, (*values[1:], *kwargs.values()))
        if name == "format" and values:
            _check_format(what, values[0], (*values[1:], *kwargs.values()))
        _check_growth(what, name, [*values, *kwargs.values()])
        return _bounded(function(*args, **kwargs), what)

    return bounded


# What Jinja passes a filter before its value (pass_context, pass_environment, ...).
_PASSED = (jinja2.Environment, jinja2.runtime.Context, jinja2.nodes.EvalContext)


def theme_folder(templates: Path) -> Path:
    """The theme's folder, resolved, once no file in it is a symbolic link.

    A theme is shared like a style sheet (git keeps symbolic links), and its templates and
    assets are copied into a site that is published: a link to /etc/passwd or ~/.ssh/id_rsa
    would publish that file. So a theme holds only its own files; a link anywhere in it (file
    or folder, used or not) is refused, in one line."""
    root = Path(os.path.realpath(templates))
    for folder, names, files in os.walk(root, onerror=_unreadable(templates)):
        for name in sorted(names + files):
            path = Path(folder, name)
            what = (
                "is a symbolic link"
                if path.is_symlink()
                else "is not a plain file"  # a pipe or device would hang or leak the build
                if not (path.is_file() or path.is_dir())
                else ""
            )
            if what:
                raise SiteError(
                    f"theme {templates}: {path.relative_to(root).as_posix()} {what}; a theme "
                    "may hold only its own files (copy the file in)"
                )
    return root


def _unreadable(templates: Path):
    def fail(err: OSError) -> None:
        raise SiteError(f"theme {templates}: cannot read {err.filename} ({err.strerror})")

    return fail


def _own_file(theme: Path, path: Path) -> Path:
    """``path``, a file in the folder ``theme``: refused if it resolves anywhere but there (a
    link made after ``theme_folder`` looked)."""
    relative = path.relative_to(theme)
    if Path(os.path.realpath(path)) != Path(os.path.realpath(theme)) / relative:
        raise SiteError(
            f"theme {theme}: {relative.as_posix()} resolves outside the theme's folder; a theme "
            "may hold only its own files (copy the file in)"
        )
    return path


class ThemeLoader(jinja2.FileSystemLoader):
    """The theme's templates: a FileSystemLoader that serves only the theme's own files."""

    def __init__(self, templates: Path) -> None:
        theme_folder(templates)
        self.theme = templates
        super().__init__(str(templates))  # file names in errors as the user typed the folder

    def get_source(self, environment: jinja2.Environment, template: str):
        source, filename, uptodate = super().get_source(environment, template)
        _own_file(self.theme, Path(filename))
        return source, filename, uptodate


def environment(
    templates: Path | None = None, found: Iterable[type[Analysis]] = ()
) -> jinja2.Environment:
    """The one Jinja environment: the user's template folder, if any, wins over the analyses'
    own folders (``Analysis.templates``), which win over the built-in templates.

    Templates see the contract (head_page, sentence_page, data_script, label_class) and
    ``charts`` (the generic chart functions and those of the analyses ``found``); every page gets
    ``atlas``, ``root`` (the way back to the site's root), ``path`` and ``shared`` (what every
    page may need, computed once per site)."""
    found = list(found)
    loaders: list[jinja2.BaseLoader] = []
    if templates is not None:
        loaders.append(ThemeLoader(templates))
    loaders += [jinja2.FileSystemLoader(str(p.templates)) for p in found if p.templates is not None]
    loaders.append(jinja2.FileSystemLoader(str(BUILTIN_TEMPLATES)))
    # Sandboxed: themes are shared like stylesheets, so a template may read the Atlas and call
    # the chart functions below, and nothing else (no attribute starting with "_", no module).
    env = Sandbox(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = lambda v, digits=3: f"{v:.{digits}f}"
    env.filters.update(
        {name: _bounded_filter(name, f) for name, f in env.filters.items() if name in GROWING}
    )
    env.globals.update(
        atlas_version=__version__,
        charts=chart_functions(found),
        sections=sections_of(found),
        head_page=contract.head_page,
        sentence_page=contract.sentence_page,
        sentence_row_id=contract.sentence_row_id,
        data_script=contract.data_script,
        vectors_script=contract.vectors_script,
        compare_key=contract.compare_key,
        compare_data_script=contract.compare_data_script,
        page_data_script=contract.page_data_script,
        label_class=contract.label_class,
        joiner=contract.JOINER,
        shown_tokens=lambda view: pieces.shown_tokens(view.tokens, view.special),
        head_summary=functools.partial(describe.head_summary, analyses=found),
        later_pieces=pieces.later_pieces,
    )
    return env


def chart_functions(found: Iterable[type[Analysis]]) -> SimpleNamespace:
    """``charts`` as templates see it: CHART_FUNCTIONS and each analysis found's ``charts()``; a
    name two of them give is refused, in one line."""
    functions = dict(vars(CHART_FUNCTIONS))
    for presenter in found:
        for name, function in presenter.charts().items():
            if name in functions:
                raise SiteError(
                    f"the {presenter.name} analysis's chart {name!r} is already a chart of the "
                    "site; give it a name of its own"
                )
            functions[name] = function
    return SimpleNamespace(**functions)


def sections_of(found: Iterable[type[Analysis]]) -> dict[str, list[str]]:
    """Every place's section templates (``Analysis.sections``), in the analyses' order: what
    the pages include as ``sections.PLACE``."""
    found = list(found)
    return {place: [p.sections[place] for p in found if place in p.sections] for place in PLACES}


def unknown_analyses(atlas: Atlas, found: Iterable[type[Analysis]]) -> list[str]:
    """The names of the analyses whose results ``atlas`` holds but whose class is not known."""
    names = {p.name for p in found}
    return [name for name in atlas.results if name not in names]


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed from vl-convert, as one classic script.

    Wrapped in a function so its top-level names cannot clash with other scripts' globals; it
    sets window.vega, window.vegaLite and window.vegaEmbed. vl-convert takes about 1.7 s to
    make it, the same for every site, so it is kept in the user's cache folder, one file per
    vl-convert version (``bundle_cache``); a cache that cannot be read or written is made again
    or skipped, never an error."""
    import vl_convert

    path = bundle_cache(vl_convert.__version__)
    try:
        text = path.read_text(encoding="utf-8")
        if text.startswith(_BUNDLE_HEAD) and text.endswith(_BUNDLE_TAIL):  # not cut short
            return text
    except (OSError, UnicodeError):
        pass
    text = _BUNDLE_HEAD + vl_convert.javascript_bundle() + _BUNDLE_TAIL
    _store(path, text)
    return text


_BUNDLE_HEAD, _BUNDLE_TAIL = "(function () {\n", "\n})();\n"


def bundle_cache(version: str) -> Path:
    """The cache file of the vega bundle of one vl-convert version: in $XDG_CACHE_HOME (or
    ~/.cache) on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on Windows; under
    attention-atlas/, which holds nothing else."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", version)
    return Path(base) / "attention-atlas" / f"vega-bundle-{safe}.js"


def _store(path: Path, text: str) -> None:
    """Write the cache file whole or not at all: a temporary file beside it, renamed over it
    (so two builds at once cannot leave half a file); the atlas writes nothing else there."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=path.name + ".", delete=False
        ) as file:
            temporary = Path(file.name)
            file.write(text)
        os.replace(temporary, path)
    except OSError as err:
        log.debug("vega bundle not cached in %s: %s", path, err)
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)


def render(
    atlas: Atlas,
    templates: Path | None = None,
    analyses: Iterable[Analysis | type[Analysis]] = (),
) -> Iterator[tuple[str, bytes]]:
    """Every file of the site as (relative path, bytes), made one at a time as the caller asks
    for the next (a site of many sentences need not fit in memory twice). Pure: same Atlas, same
    files in the same order, same bytes. A template error is raised, as a SiteError, when the
    page that meets it is made; so is a file the site's layout does not have
    (``contract.is_site_path``: a page name from a crafted atlas.json, an odd asset name), or
    one made twice, before it is written. ``analyses``: the user's analyses whose results the
    Atlas holds, for their presentation (``presenters``); the built-in ones are always known."""
    made: set[str] = set()
    for path, content in _files(atlas, templates, presenters(atlas, analyses)):
        if not contract.is_site_path(path):
            raise SiteError(
                f"{path!r} is not a file of the site's layout; the atlas writes no other"
            )
        if path in made:
            raise SiteError(f"the site would write {path!r} twice")
        made.add(path)
        yield path, content


def _files(
    atlas: Atlas, templates: Path | None, found: list[type[Analysis]]
) -> Iterator[tuple[str, bytes]]:
    env = with_custom_css(environment(templates, found), templates)
    try:
        yield from _pages(atlas, env, found)
    except jinja2.TemplateSyntaxError as err:
        raise SiteError(
            f"template {err.filename or err.name}:{err.lineno}: {err.message}"
        ) from None
    except SecurityError as err:
        raise SiteError(f"template error: not allowed in a theme: {err}") from None
    except jinja2.TemplateNotFound as err:  # its message is the bare name
        unknown = unknown_analyses(atlas, found)
        hint = (
            f" (a template of the {', '.join(unknown)} analys{'es' if len(unknown) > 1 else 'is'}"
            "? pass it again: --analysis MODULE:CLASS, or analyses= in atlas.render_site)"
            if unknown
            else ""
        )
        raise SiteError(f"template error: no template named {err.name!r}{hint}") from None
    except jinja2.TemplateError as err:
        raise SiteError(f"template error: {err}") from None
    except RecursionError:
        raise SiteError("template error: a template includes or extends itself") from None
    except (ArithmeticError, TypeError, ValueError, LookupError) as err:
        if not raised_by_template(err):
            raise  # a bug in the atlas's chart or page code: shown as one, traceback under -v
        raise SiteError(f"template error: {type(err).__name__}: {err}") from None
    yield from _data_files(atlas, found)
    for source in sorted(_asset_files(templates)):
        yield f"{ASSETS}/{source.name}", source.read_bytes()
    yield f"{ASSETS}/{VEGA_BUNDLE}", vega_bundle().encode("utf-8")
    yield contract.CONFIG_SCRIPT, _config_script(atlas)
    # the two files that hold every sentence's text: written from the compact sentence list a
    # sentence at a time, never held but as the file's own bytes
    yield contract.SEARCH_SCRIPT, encoded(search_script_chunks(atlas))
    yield "atlas.json", encoded(atlas.json_chunks())
    yield ".nojekyll", b""


def raised_by_template(err: BaseException) -> bool:
    """Whether ``err`` came from a template (``{{ 1 // 0 }}``, ``{{ x[9] }}``, a theme's
    template that is not UTF-8) rather than from Python code a template called: the innermost
    frame outside the standard library is a template's own line, or jinja2's. A chart or page
    bug must not be reported as the theme's fault."""
    frames = []
    tb = err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_globals)
        tb = tb.tb_next
    for scope in reversed(frames):
        if "__jinja_template__" in scope or "__jinja_exception__" in scope:  # a template's line
            return True
        package = (scope.get("__name__") or "").partition(".")[0]
        if package not in sys.stdlib_module_names:
            return package == "jinja2"
    return False


def _config_script(atlas: Atlas) -> bytes:
    labels = {h.name: h.label for h in atlas.heads}
    labels_b = (
        {h.name: h.parts["compare"]["label_b"] for h in atlas.heads}
        if all("compare" in h.parts for h in atlas.heads) and atlas.heads
        else None
    )
    types = {h.name: h.parts["types"] for h in atlas.heads} if "types" in atlas.results else None
    config = contract.page_config(atlas.model.layers, atlas.model.heads, labels, labels_b, types)
    return contract.config_script(config).encode("utf-8")


def sentence_files(
    atlas: Atlas,
    index: int,
    templates: Path | None = None,
    analyses: Iterable[Analysis | type[Analysis]] = (),
) -> dict[str, bytes]:
    """One sentence's page and every file it may load, by path in the site (the page, its data
    scripts, assets/config.js, the assets), without rendering the rest of the site: what
    ``atlas.show`` inlines into a notebook. The sentence must have a page (``has_view``)."""
    found = presenters(atlas, analyses)
    env = with_custom_css(environment(templates, found), templates)
    shared = _shared(atlas, found)
    with_view = [s for s in atlas.sentences if s.has_view]
    position = [s.index for s in with_view].index(index)
    path = contract.sentence_page(index, len(atlas.sentences))
    context = sentence_context(atlas, shared, with_view, position)
    files = dict([_renderer(atlas, env, shared)(path, "sentence.html", **context)])
    files.update(_data_files(atlas, found, only=index))  # the page loads its own data only
    files.update(
        (f"{ASSETS}/{source.name}", source.read_bytes()) for source in _asset_files(templates)
    )
    if VEGA_BUNDLE.encode() in files[path]:
        files[f"{ASSETS}/{VEGA_BUNDLE}"] = vega_bundle().encode("utf-8")
    files[contract.CONFIG_SCRIPT] = _config_script(atlas)
    return files


SEARCH_TOP = 3  # heads listed per catalogue column when a search names the column


def search_index(atlas: Atlas) -> dict:
    """What the search box finds beyond the page config's heads (names and labels): every
    sentence, as [key, text, second text or None, 1 if it has a page else 0], its text stored
    once (words are matched in the page), and each catalogue column's top heads and its entry
    on the Definitions page, as [title, [[head name, value], ...], key, description]. About the
    corpus's text in size, plus ~12 bytes a sentence."""
    return _search_index(atlas, list(_search_sentences(atlas)))


def search_script_chunks(atlas: Atlas) -> Iterator[str]:
    """assets/search-index.js (``contract.search_script(search_index(atlas))``) in pieces, a
    sentence's row at a time: the sentences are the index's last field."""
    head, tail = contract.search_script(_search_index(atlas, [])).rsplit('"sentences":[]', 1)
    yield head + '"sentences":['
    for i, row in enumerate(_search_sentences(atlas)):
        yield ("," if i else "") + contract.script_json(row)
    yield "]" + tail


def _search_sentences(atlas: Atlas) -> Iterator[list]:
    total = len(atlas.sentences)
    for s in atlas.sentences:
        yield contract.search_row(
            contract.SEARCH_SENTENCE_ROW,
            contract.sentence_key(s.index, total),
            s.text,
            s.text_b,
            int(s.has_view),
        )


def _search_index(atlas: Atlas, sentences: list) -> dict:
    column = contract.SEARCH_COLUMN_ROW
    index = {
        "sentences": sentences,
        "columns": [
            contract.search_row(
                column,
                c.title,
                [[h.name, round(v, 3)] for h, v in charts.top_heads(atlas, c, SEARCH_TOP)],
                c.key,
                c.description,
            )
            for c in atlas.catalogue
        ],
    }
    return contract.data_payload(index, contract.SEARCH_FIELDS)


class Shared(SimpleNamespace):
    """What many pages need, computed once per site rather than once per page: ``views``
    (sentence index -> its kept attention), ``views_b`` (in a compare atlas: model B's),
    ``figures`` (``analyses.figures``), and what each analysis's ``shared`` gives, by name
    (``shared.head_map``)."""

    views: dict[int, View]
    views_b: dict[int, View]
    figures: dict[int, set[int]]  # sentence index -> the heads whose pages draw it


def _shared(atlas: Atlas, found: Iterable[type[Analysis]]) -> Shared:
    own: dict[str, object] = {}
    for presenter in found:
        for name, value in presenter.shared(atlas).items():
            if name in own or name in Shared.__annotations__:
                raise SiteError(f"the {presenter.name} analysis's shared {name!r} is taken")
            own[name] = value
    return Shared(
        views={v.index: v for v in atlas.views},
        views_b={v.index: v for v in atlas.views_b if atlas.sentences[v.index].has_view},
        figures=figures(atlas, found),
        **own,
    )


def _renderer(atlas: Atlas, env: jinja2.Environment, shared: Shared):
    """page(path, template, **context) -> (path, bytes): one page of the site."""

    def page(path: str, template: str, **context) -> tuple[str, bytes]:
        source = env.get_template(template)
        chunks = source.generate(
            atlas=atlas, root="../" * path.count("/"), path=path, shared=shared, **context
        )
        try:
            return path, render_page(chunks, _shown(source.filename or template), path)
        except TooLarge as err:
            raise SiteError(f"template {_where(err) or template}: {err}") from None

    return page


def _shown(filename: str) -> str:
    """A template's file as errors name it: a built-in one by its name, a theme's by its path
    as the user typed the folder."""
    path = Path(filename)
    return (
        path.relative_to(BUILTIN_TEMPLATES).as_posix()
        if path.is_absolute() and path.is_relative_to(BUILTIN_TEMPLATES)
        else filename
    )


def _where(err: BaseException) -> str | None:
    """file:line of the template line that raised ``err``: the last of the frames Jinja puts
    in a traceback for template code."""
    where, tb = None, err.__traceback__
    while tb is not None:
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            where = f"{_shown(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def render_page(chunks: Iterator[str], template: str, path: str) -> bytes:
    """A page's bytes from the template's output as it is made, stopped in one line once it
    passes MAX_PAGE_BYTES: a theme cannot make a page no host serves, nor fill the memory."""
    page = encoded(chunks, MAX_PAGE_BYTES)
    if len(page) > MAX_PAGE_BYTES:
        raise SiteError(
            f"template {template}: the page {path} is over {MAX_PAGE_BYTES // 1_000_000} MB, "
            "GitHub's limit per file; stopped there"
        )
    return page


def encoded(chunks: Iterable[str], limit: int | None = None) -> bytes:
    """The UTF-8 bytes of the chunks joined, made as they come (no str of the whole beside
    the bytes: a page listing 100,000 sentences is held once); stopped once past ``limit``."""
    buffer = io.BytesIO()
    for chunk in chunks:
        if buffer.write(chunk.encode("utf-8")) and limit is not None and buffer.tell() > limit:
            break
    return buffer.getvalue()


def _pages(
    atlas: Atlas, env: jinja2.Environment, found: list[type[Analysis]]
) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every page: one small function per kind of page."""
    shared = _shared(atlas, found)
    page = _renderer(atlas, env, shared)

    yield page("index.html", "index.html", **overview(atlas))
    yield page("heads/index.html", "heads.html")
    yield page(contract.DEFINITIONS_PAGE, "definitions.html")
    for flat, head in enumerate(atlas.heads):
        path = contract.head_page(head.layer, head.head)
        yield page(path, "head.html", **head_context(atlas, flat, shared))
    for path, own in sorted(atlas.pages.items()):
        yield page(path, own["template"])
    yield page("sentences/index.html", "sentences.html")
    with_view = [s for s in atlas.sentences if s.has_view]
    for position, sentence in enumerate(with_view):
        path = contract.sentence_page(sentence.index, len(atlas.sentences))
        yield page(path, "sentence.html", **sentence_context(atlas, shared, with_view, position))


def overview(atlas: Atlas) -> dict:
    """The overview's charts: one heatmap per catalogue column, the per-layer curves."""
    return {
        "heatmaps": {c.key: charts.metric_heatmap(atlas, c, "") for c in atlas.catalogue},
        "curves": charts.layer_curves(atlas, ""),
    }


def head_context(atlas: Atlas, flat: int, shared: Shared) -> dict:
    head = atlas.heads[flat]
    return {
        "head": head,
        # the sentences its page draws (``Analysis.figures``), whose data scripts it loads
        "figures": [i for i, heads in sorted(shared.figures.items()) if flat in heads],
        "previous": atlas.heads[flat - 1] if flat > 0 else None,
        "next": atlas.heads[flat + 1] if flat + 1 < len(atlas.heads) else None,
        "layer_means": {k: v[head.layer - 1] for k, v in atlas.layer_means.items()},
    }


def sentence_context(atlas: Atlas, shared: Shared, with_view: list[Sentence], position: int):
    sentence = with_view[position]
    drawn_by = sorted(shared.figures.get(sentence.index, ()))
    return {
        "sentence": sentence,
        "view": shared.views[sentence.index],
        "view_b": shared.views_b.get(sentence.index),
        "previous": with_view[position - 1] if position > 0 else None,
        "next": with_view[position + 1] if position + 1 < len(with_view) else None,
        "head_links": [atlas.heads[flat] for flat in drawn_by],  # model order
    }


def _data_files(
    atlas: Atlas, found: Iterable[type[Analysis]], only: int | None = None
) -> Iterator[tuple[str, bytes]]:
    """The page data of every analysis (``Analysis.page_files``: data/NNNN.js of each sentence
    kept and its queries and keys, from the views analysis; data/NNNN.NAME.js), of sentence
    ``only`` if given, and, in a compare atlas, model B's attention."""
    for presenter in found:
        yield from presenter.page_files(atlas, only)
    yield from _compare_files(atlas)


def _compare_files(atlas: Atlas) -> Iterator[tuple[str, bytes]]:
    """data/NNNN.b.js: model B's attention of each sentence with a page, in a compare atlas,
    in the format of data/NNNN.js under the key NNNN.b (no queries and keys)."""
    if "compare" not in atlas.results:
        return
    model = atlas.results["compare"]["model"]
    total = len(atlas.sentences)
    for view in atlas.views_b:
        if not atlas.sentences[view.index].has_view:
            continue  # its page was left out (--max-site-mb)
        script = data_script(
            view,
            key=contract.compare_key(view.index, total),
            sentence_id=atlas.sentences[view.index].id,
            layers=model["layers"],
            heads=model["heads"],
            causal=model["causal"],
            neuron={
                "available": False,
                "note": model["neuron_note"],
                "head_dim": model["head_dim"],
                "scores": neuron_scores(model.get("scores"), model["layers"], model["head_dim"]),
            },
        )
        yield contract.compare_data_script(view.index, total), script.encode("utf-8")


def _asset_files(templates: Path | None) -> list[Path]:
    """Built-in assets, each replaced by the user's file of the same name if there is one."""
    found = {p.name: p for p in (BUILTIN_TEMPLATES / ASSETS).iterdir() if p.is_file()}
    if templates is not None and (theme_folder(templates) / ASSETS).is_dir():
        found.update(
            {p.name: _own_file(templates, p) for p in (templates / ASSETS).iterdir() if p.is_file()}
        )
    return list(found.values())


def with_custom_css(env: jinja2.Environment, templates: Path | None) -> jinja2.Environment:
    """``env`` with the ``custom_css`` global that base.html reads: whether the site has the
    theme's assets/custom.css (copied with the other assets). Only then is it linked, so a site
    without one asks for no missing file and keeps its bytes."""
    env.globals["custom_css"] = any(p.name == CUSTOM_CSS for p in _asset_files(templates))
    return env


def sizes(
    atlas: Atlas,
    templates: Path | None = None,
    analyses: Iterable[Analysis | type[Analysis]] = (),
) -> dict[str, int]:
    """The size in bytes of every file of the site, rendering it without keeping the files."""
    return {path: len(content) for path, content in render(atlas, templates, analyses)}


def neuron_scores(scores: dict | None, layers: int, head_dim: int) -> dict:
    """How the model scores queries and keys (contract.SCORES_FIELDS), for the neuron view."""
    return Scores.from_json(scores, layers, head_dim).to_json()
