"""The contract between Python and the pages, defined once.

How heads and sentences are named, where each file of the site lives, how attention and its
rollout are scaled in the data files and which CSS class a pattern label gets. Python
(templates, through the Jinja globals of ``site.environment``) reads it from here; the scripts
read it from ``assets/config.js``, which ``page_config`` generates for each site. Nothing else
spells these out.
"""

from __future__ import annotations

import json
import re

# Attention is stored as round(value × ATTENTION_SCALE) in one unsigned byte.
ATTENTION_SCALE = 255
# A sentence's attention rollout (docs/metrics.md, "Token importance"), computed in Python from
# the model's float attention, is stored as round(value × ROLLOUT_SCALE) in an unsigned 16-bit
# little-endian integer, [n, n] (row = the token whose last-layer vector it is): each value
# within 1/(2 × 65535) ≈ 7.6e-6 of the float rollout. (Rolled out from the uint8 attention in
# the page, the error compounded over the layers, up to 0.08 on a 337-token sentence.)
ROLLOUT_SCALE = 65535
# Drawn before a token that continues the word of the token before, where tokens stand apart
# (a column, an axis); inline, such a token is glued to the one before (atlas/pieces.py).
JOINER = "·"

# Colour scales, defined once for every chart and view (docs/design.md, "Colour"), all readable
# with any colour vision deficiency (tests/test_colours.py simulates protan, deutan and tritan):
# - HEAD_COLOURS: one per head (1-based, H1 first), in every view: Okabe & Ito's palette (its
#   yellow left out: too faint as a thin line on white), then five of Paul Tol's, picked so that
#   every pair stays at least 15 CIELAB units apart under each simulated deficiency. Heads past
#   the twelfth get generated hues (views-common.js), told apart by their H-number.
# - SEQUENTIAL: attention 0 (white) to 1, ColorBrewer Blues: one hue, lightness falling steadily.
# - DIVERGING: below 0 blue, 0 near white, above 0 orange (Vega's "blueorange"), never red
#   against green: B − A in a compare atlas, the neuron view's signed vector values.
# - The Vega-Lite charts use the same families by name: SEQUENTIAL_SCHEME (metrics on a fixed
#   0..1 range and accuracies), UNBOUNDED_SCHEME (other metrics), DIVERGING_SCHEME (B − A), and
#   LAYER_SCHEME (viridis, ordered by layer); categories in charts take HEAD_COLOURS.
HEAD_COLOURS = [
    "#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#000000",
    "#663333", "#332288", "#80ba5a", "#666633", "#aa3377",
]  # fmt: skip
SEQUENTIAL = [
    "#ffffff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c",
]  # fmt: skip
DIVERGING = [
    "#134b85", "#2f78b3", "#5da2cb", "#9dcae1", "#d2e5ef", "#f2f0eb",
    "#fce0ba", "#fbbf74", "#e8932f", "#c5690d", "#994a07",
]  # fmt: skip
SEQUENTIAL_SCHEME = "blues"
UNBOUNDED_SCHEME = "purples"
DIVERGING_SCHEME = "blueorange"
LAYER_SCHEME = "viridis"

# Where the pages and data files live, relative to the site's root. {slug}: head_slug(); {key}:
# sentence_key().
HEAD_PAGE = "heads/{slug}.html"
SENTENCE_PAGE = "sentences/{key}.html"
DATA_SCRIPT = "data/{key}.js"
VECTORS_SCRIPT = "data/{key}.qk.js"
CONFIG_SCRIPT = "assets/config.js"
# The search box's index (sentences' text, each column's top heads), one file for the site,
# loaded by assets/search.js the first time the box is used. A sentence without a page is found
# in the sentence list, at its row (SENTENCE_ROW_ID is the row's id).
SEARCH_SCRIPT = "assets/search-index.js"
SENTENCE_ROW_ID = "s{key}"
SENTENCE_ROW = "sentences/index.html#" + SENTENCE_ROW_ID
COMPARE_PAGE = "compare.html"
# Every catalogue column's formula and paper; a column's entry is DEFINITIONS_PAGE#<its key>.
DEFINITIONS_PAGE = "definitions.html"
# A compare atlas keeps model B's attention of a sentence under its own key, "0001.b", so its
# data script is DATA_SCRIPT of that key (data/0001.b.js), in the same format as A's.
COMPARE_KEY = "{key}.b"
# An analysis's own data for a sentence's page (``Analysis.page_data``), beside its attention:
# data/0001.NAME.js, NAME the analysis's name, setting window[PAGE_DATA_GLOBAL][NAME]["0001"].
PAGE_DATA_SCRIPT = "data/{key}.{name}.js"
ANALYSIS_NAME = re.compile(r"[a-z][a-z0-9_]*")

# Every file the site's layout has, and nothing else: the site writes no other name, whatever
# atlas.json or a theme says (a crafted "pages" entry must not write .git/hooks/pre-commit).
# The fixed pages, then each pattern: {slug} and {key} as head_slug() and sentence_key() spell
# them; an analysis's own page (layers.html) at the root; an asset by its file name.
FIXED_PAGES = ("index.html", "heads/index.html", "sentences/index.html")
FIXED_FILES = (*FIXED_PAGES, CONFIG_SCRIPT, SEARCH_SCRIPT, "atlas.json", ".nojekyll")
ANALYSIS_PAGE = re.compile(r"(?!index\.html$)[a-z][a-z0-9-]*\.html")
ASSET = re.compile(r"assets/(?!\.\.?$)[^/\\\x00-\x1f]+")
_SLUG, _KEY = r"L[0-9]{2,}-H[0-9]{2,}", r"[0-9]{4,}"


def _pattern(template: str, **parts: str) -> re.Pattern:
    text = re.escape(template)
    for name, part in parts.items():
        text = text.replace(re.escape("{" + name + "}"), part)
    return re.compile(text)


SITE_PATTERNS = (
    _pattern(HEAD_PAGE, slug=_SLUG),
    _pattern(SENTENCE_PAGE, key=_KEY),
    _pattern(DATA_SCRIPT, key=_KEY),
    _pattern(DATA_SCRIPT, key=_pattern(COMPARE_KEY, key=_KEY).pattern),
    _pattern(VECTORS_SCRIPT, key=_KEY),
    _pattern(PAGE_DATA_SCRIPT, key=_KEY, name=ANALYSIS_NAME.pattern),
    ANALYSIS_PAGE,
    ASSET,
)


def is_site_path(path: str) -> bool:
    """True if ``path`` (relative, "/"-separated) is a file of the site's layout."""
    return path in FIXED_FILES or any(p.fullmatch(path) for p in SITE_PATTERNS)


# The globals the data scripts set (file:// pages cannot fetch(), so data comes as scripts).
DATA_GLOBAL = "ATLAS_DATA"
VECTORS_GLOBAL = "ATLAS_VECTORS"
CONFIG_GLOBAL = "ATLAS_CONFIG"
SEARCH_GLOBAL = "ATLAS_SEARCH"
PAGE_DATA_GLOBAL = "ATLAS_PAGE_DATA"


def head_name(layer: int, head: int) -> str:
    """L9-H6: 1-based, as in the papers; also a sentence page's address (#L9-H6)."""
    return f"L{layer}-H{head}"


def head_names(layers: int, heads: int) -> list[str]:
    """Every head's name in model order: L1-H1, L1-H2, ..., L2-H1, ..."""
    return [head_name(layer + 1, head + 1) for layer in range(layers) for head in range(heads)]


def head_slug(layer: int, head: int) -> str:
    """L09-H06: the file name stem, zero-padded so files sort in model order."""
    return f"L{layer:02d}-H{head:02d}"


def sentence_key(index: int, total: int) -> str:
    """A sentence's page and data name: 1-based, zero-padded to at least 4 digits."""
    return str(index + 1).zfill(max(4, len(str(total))))


def head_page(layer: int, head: int) -> str:
    return HEAD_PAGE.format(slug=head_slug(layer, head))


def sentence_page(index: int, total: int) -> str:
    return SENTENCE_PAGE.format(key=sentence_key(index, total))


def data_script(index: int, total: int) -> str:
    return DATA_SCRIPT.format(key=sentence_key(index, total))


def vectors_script(index: int, total: int) -> str:
    return VECTORS_SCRIPT.format(key=sentence_key(index, total))


def sentence_row_id(index: int, total: int) -> str:
    """The id of a sentence's row in the sentence list: "s0023"."""
    return SENTENCE_ROW_ID.format(key=sentence_key(index, total))


def compare_key(index: int, total: int) -> str:
    """The key of model B's attention of a sentence in a compare atlas: "0001.b"."""
    return COMPARE_KEY.format(key=sentence_key(index, total))


def compare_data_script(index: int, total: int) -> str:
    """data/0001.b.js: model B's attention of a sentence, in a compare atlas."""
    return DATA_SCRIPT.format(key=compare_key(index, total))


def label_class(label: str) -> str:
    """The CSS class of a pattern label: "[CLS]" -> "label-cls", "previous-token" ->
    "label-previous-token"; a compound label of two shares ("[CLS] + next") -> "label-mixed",
    the class of heads that are not one pattern."""
    if " + " in label:
        return "label-mixed"
    return "label-" + (re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "none")


def page_config(
    layers: int,
    heads: int,
    labels: dict[str, str],
    labels_b: dict[str, str] | None = None,
    types: dict[str, list[str]] | None = None,
) -> dict:
    """What the scripts need to know: the contract above (colour scales included) plus every
    head's name, slug, label and label class (in model order, so head (l, h) is
    ``heads[(l - 1) * H + h - 1]``); in a compare atlas also model B's label (``labelB``,
    ``labelClassB``), which a sentence page shows while it shows B's attention; with head
    types (``types``: "sink", "induction", ...), each head's (the search finds heads by them)."""
    return {
        "dataFormat": DATA_FORMAT,
        "attentionScale": ATTENTION_SCALE,
        "rolloutScale": ROLLOUT_SCALE,
        "restScale": REST_SCALE,
        "windowTokens": WINDOW_TOKENS,
        "joiner": JOINER,
        "paths": {
            "headPage": HEAD_PAGE,
            "sentencePage": SENTENCE_PAGE,
            "data": DATA_SCRIPT,
            "vectors": VECTORS_SCRIPT,
            "search": SEARCH_SCRIPT,
            "sentenceRow": SENTENCE_ROW,
            "definitions": DEFINITIONS_PAGE,
        },
        "globals": {"data": DATA_GLOBAL, "vectors": VECTORS_GLOBAL, "search": SEARCH_GLOBAL},
        "colours": {"heads": HEAD_COLOURS, "sequential": SEQUENTIAL, "diverging": DIVERGING},
        "layers": layers,
        "heads": heads,
        "headList": [
            {
                "name": head_name(layer, head),
                "slug": head_slug(layer, head),
                "label": labels.get(head_name(layer, head), ""),
                "labelClass": label_class(labels.get(head_name(layer, head), "")),
                **(
                    {
                        "labelB": labels_b.get(head_name(layer, head), ""),
                        "labelClassB": label_class(labels_b.get(head_name(layer, head), "")),
                    }
                    if labels_b is not None
                    else {}
                ),
                **({"types": types.get(head_name(layer, head), [])} if types is not None else {}),
            }
            for layer in range(1, layers + 1)
            for head in range(1, heads + 1)
        ],
    }


def page_data_script(index: int, total: int, name: str) -> str:
    """data/0001.NAME.js: the page data of analysis NAME for a sentence's page."""
    if not ANALYSIS_NAME.fullmatch(name):
        raise ValueError(f"{name!r} cannot name a data file: an analysis name is [a-z][a-z0-9_]*")
    return PAGE_DATA_SCRIPT.format(key=sentence_key(index, total), name=name)


def page_data_js(name: str, key: str, value: object) -> str:
    """The script of one page data file: ``value`` as JSON under [NAME][key] of the global."""
    target = f"window.{PAGE_DATA_GLOBAL}"
    return (
        f"{target} = {target} || {{}};\n{target}[{script_json(name)}] = {target}"
        f"[{script_json(name)}] || {{}};\n{target}[{script_json(name)}][{script_json(key)}] = "
        f"{script_json(value)};\n"
    )


def config_script(config: dict) -> str:
    """assets/config.js: the page config on a global, read by every script of the site."""
    return f"window.{CONFIG_GLOBAL} = {script_json(config)};\n"


def search_script(index: dict) -> str:
    """assets/search-index.js: the search index on a global (a script: file:// cannot fetch)."""
    return f"window.{SEARCH_GLOBAL} = {script_json(index)};\n"


def script_json(payload: object) -> str:
    """JSON safe to place inside a <script> or a .js file: sorted, compact, "<" escaped so no
    string can close a script element, and the two line separators JavaScript rejects."""
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# The page data's format: the fields of the data scripts, the layout of the queries and keys,
# the rows of the search index, and one version for all of them. Every data script
# (data/NNNN.js, data/NNNN.qk.js) and the search index carry DATA_FORMAT as "format", and
# assets/config.js as "dataFormat"; the pages (atlas-data.js, search.js) refuse to draw data of
# another format and say to rebuild the site. Bump it when anything below changes.
DATA_FORMAT = 3
# data/NNNN.js: one sentence (atlas/viewdata.py writes it, atlas-data.js reads it), and the
# fields written only when there is something in them.
DATA_FIELDS = (
    "format", "key", "index", "id", "layers", "heads", "causal", "tokens", "shown", "joins",
    "segments", "special", "encoding", "attention", "neuron",
)  # fmt: skip
DATA_OPTIONAL_FIELDS = ("headsKept", "rollout", "words", "wordOf", "arcs", "generated", "top")
# Its "neuron" field: whether the neuron view has queries and keys, why not, the head size, and
# how the model turns them into attention ("scores", below).
NEURON_FIELDS = ("available", "note", "head_dim", "scores")
# "scores" (atlas/scores.py defines the arithmetic; atlas.json's model card holds the same):
# per layer, the factor q·k is multiplied by, the soft-cap c (scores become c·tanh(s/c); null:
# none) and the sliding window w (a query i sees keys j with i − w < j, or |i − j| ≤ w in a
# bidirectional model; null: none). The queries and keys are the model's own, after its q/k
# norms and rotary position encoding, each query head paired with the key head it shares.
SCORES_FIELDS = ("scale", "softcap", "window")
# Long sentences (more than SPARSE_FROM tokens) keep each attention row sparsely, so that a
# 4,096-token page stays a few megabytes: the row's "top" largest values and the rest of the row
# as one remainder. Layout of the inflated attention, per head stored (model order, or
# headsKept): SPARSE_INDEX indices [n, top] (each row's kept columns, largest value first), then
# SPARSE_REST remainders [n] (value × REST_SCALE), then ATTENTION_SCALE values [n, top] (u1).
# The bound the pages and docs state: each kept value is within 1/(2 × ATTENTION_SCALE) of the
# model's; a dropped value is at most the row's smallest kept value (before rounding) and at most
# the remainder; the remainder, the row's sum less its kept values, is within
# 1/(2 × REST_SCALE) of the model's. A payload with "top" is sparse; without it, dense [n, n].
SPARSE_FROM = 512
SPARSE_INDEX = "<u2"  # so a sparse sentence has at most 65,536 tokens
SPARSE_REST = "<u2"
REST_SCALE = 65535
# A long sentence's page draws WINDOW_TOKENS rows at a time (a slider moves them) and gathers
# the attention outside them into one faint "other tokens" column.
WINDOW_TOKENS = 96
# data/NNNN.qk.js: a sentence's queries and keys.
VECTORS_FIELDS = ("format", "encoding", "vectors", "error")
# The inflated bytes of "vectors", little-endian (numpy dtypes): VECTOR_BITS[2·L·H], the bits
# of each block's values (queries' blocks, then keys', in model order); then for each block
# VECTOR_PARAMS scale[d], VECTOR_PARAMS offset[d], then values[n·d] of VECTOR_VALUES[its bits];
# a value is raw × scale + offset.
VECTOR_BITS = "u1"
VECTOR_PARAMS = "<f2"
VECTOR_VALUES = {8: "i1", 16: "<i2"}
# assets/search-index.js: a row per sentence and a row per catalogue column (search.js reads
# them by position, in this order).
SEARCH_FIELDS = ("format", "sentences", "columns")
SEARCH_SENTENCE_ROW = ("key", "text", "text_b", "has_page")
SEARCH_COLUMN_ROW = ("title", "top_heads", "key", "description")


def data_payload(fields: dict, allowed: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    """``fields`` with the data format, checked against the contract: every field of
    ``allowed`` (but "format") present, and nothing that is not in ``allowed`` or ``optional``;
    a field the pages do not know is a change of format, not a quiet addition."""
    payload = {"format": DATA_FORMAT, **fields}
    missing = [name for name in allowed if name not in payload]
    unknown = [name for name in payload if name not in allowed and name not in optional]
    if missing or unknown:
        raise ValueError(f"page data against the contract: missing {missing}, unknown {unknown}")
    return payload


def search_row(names: tuple[str, ...], *values: object) -> list:
    """One row of the search index, its values in the order ``names`` gives them."""
    if len(values) != len(names):
        raise ValueError(f"a search row of {len(names)} values ({', '.join(names)})")
    return list(values)
