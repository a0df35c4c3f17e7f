"""Bad input found by trying to break the atlas: each gives one clear line and exit 2, and a
theme cannot run code. (A first part of the cases listed in docs/errors.md.)"""

from __future__ import annotations

import pytest
from conftest import build
from test_cli import error_line

from atlas.cli import main, printable

STORED = __import__("pathlib").Path(__file__).parent / "snapshots" / "stored-atlas"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "nested.jsonl",
            '{"text": "a", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
            "nested.jsonl:1: JSON nested too deeply",
        ),
        (
            "id.jsonl",
            '{"text": "a", "id": ' + "9" * 5000 + "}\n",
            "id.jsonl:1: a number too long to read (over 4,300 digits)",
        ),
        (
            "surrogate.jsonl",
            '{"text": "a \\ud800 b"}\n',
            "surrogate.jsonl:1: a lone surrogate (\\ud800) is not a character",
        ),
    ],
)
def test_bad_jsonl_gives_one_line(tmp_path, capsys, name, content, message):
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    assert build([str(source), "-o", str(tmp_path / "site")]) == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "site").exists()


def test_a_folder_named_like_an_input_is_not_a_missing_file(tmp_path, capsys):
    (tmp_path / "x.txt").mkdir()
    assert build([str(tmp_path / "x.txt"), "-o", str(tmp_path / "site")]) == 2
    assert "x.txt: is a folder, not a file" in error_line(capsys)


def test_control_characters_never_reach_the_terminal(tiny_model, tmp_path, capsys):
    """An id holding an escape sequence is refused, shown escaped in the line that says so; one
    holding a character that turns the terminal's text around (U+202E, not a control character
    but a format one) is shown escaped in the warning that names it."""
    source = tmp_path / "ids.jsonl"
    long = " ".join(["the cat sat on the mat"] * 40)
    source.write_text(f'{{"text": "{long}", "id": "\\u001b[31mred"}}\n', encoding="utf-8")
    out = tmp_path / "site"
    argv = [str(x) for x in ("build", source, "-o", out, "--model", tiny_model("bert"))]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "ids.jsonl:1: a control character (\\x1b) in a string" in err and "\x1b" not in err
    source.write_text(f'{{"text": "{long}", "id": "\\u202ered"}}\n', encoding="utf-8")
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "(id \\u202ered, line 1) truncated" in err and "\u202e" not in err
    assert printable("tab\there\n") == "tab\\there\\n" and printable("東京") == "東京"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 1 // 0 }}", "template error: ZeroDivisionError"),
        ('{% include "index.html" %}', "template error: a template includes or extends itself"),
        (
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "template error: not allowed in a theme",
        ),
        ("{{ charts.head_map.__globals__ }}", "template error: not allowed in a theme"),
    ],
)
def test_a_theme_gets_one_line_and_cannot_run_code(tmp_path, capsys, template, message):
    theme = tmp_path / "theme"
    theme.mkdir()
    (theme / "index.html").write_text(template)
    out = tmp_path / "site"
    assert main(["render", str(STORED), "-o", str(out), "--templates", str(theme), "-q"]) == 2
    assert message in error_line(capsys)
    assert not out.exists()


def stored_with(tmp_path, change) -> str:
    """A copy of the stored snapshot site whose atlas.json is changed by ``change(data)``."""
    import json
    import shutil

    site = tmp_path / "stored"
    shutil.copytree(STORED, site)
    data = json.loads((site / "atlas.json").read_text())
    data = change(data) or data
    (site / "atlas.json").write_text(json.dumps(data))
    return str(site)


def put(path: str, value):
    """A change that sets one field, given as a dotted path with list indices."""

    def change(data):
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target = data
        for part in parents:
            target = target[part]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value

    return change


DELETE = object()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (put("sentences", 5), "$.sentences: 5 is not of type 'array'"),
        (lambda data: [1, 2], "not an atlas.json (no schema_version)"),
        (put("sentences.0.index", DELETE), "$.sentences[0]: 'index' is a required property"),
        (put("heads.0.layer", "1"), "$.heads[0].layer: '1' is not of type 'integer'"),
        (put("catalogue", {}), "$.catalogue: {} is not of type 'array'"),
        (put("heads.0.metrics", {}), "$.heads[0].metrics: missing cls_entropy, duplicate, entropy"),
        (put("heads", []), "$.heads: [] should be non-empty"),
        (put("model.layers", 0), "$.model.layers: 0 is less than the minimum of 1"),
        (put("results.distances.matrix", None), "$.results.distances.matrix: None is not of"),
        (put("results.distances.stress", float("nan")), "NaN is not a number JSON allows"),
        (put("schema_version", "1"), 'schema version "1" (str), this atlas reads 9 (int)'),
        # numbers (issue 17): past float's range, and outside a column kind's range
        (put("heads.3.metrics.entropy", 10**400), "100000… (401 digits) is too large a number"),
        (put("results.distances.matrix.0.1", 10**400), "is too large a number, past ±1.8e308"),
        (
            put("heads.1.metrics.entropy_norm", -0.5),
            "$.heads[1].metrics.entropy_norm: -0.5 is "
            "outside 0 to 1, the range of a column of kind 'ratio'",
        ),
        (put("layer_means.to_sep.1", 1.01), "$.layer_means.to_sep[1]: 1.01 is outside 0 to 1"),
        (put("model_means.self", 2), "$.model_means.self: 2 is outside 0 to 1"),
    ],
)
def test_render_names_the_first_problem_of_a_bad_atlas_json(tmp_path, capsys, change, message):
    out = tmp_path / "site"
    assert main(["render", stored_with(tmp_path, change), "-o", str(out), "-q"]) == 2
    assert message in error_line(capsys)
    assert not out.exists()
