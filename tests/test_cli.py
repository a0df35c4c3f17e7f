"""The command line: options, and bad input answered with one line and a non-zero exit."""

from __future__ import annotations

import pytest
from conftest import build

from atlas import __version__
from atlas.cli import main

GOOD = "The cat sat on the mat .\nThe dog ran home .\n"


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("atlas: error: ")
    return lines[0]


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"atlas {__version__}"


def test_help_explains_every_build_option(capsys):
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--model",
        "--max-length",
        "--batch-size",
        "--device",
        "--title",
        "--limit",
        "--views",
        "--templates",
        "--quiet",
        "--verbose",
        "--output",
        "--clean",
        "--force",
    ):
        assert option in text


def test_missing_input(tmp_path, capsys):
    assert build([str(tmp_path / "nope.txt"), "-o", str(tmp_path / "site")]) == 2
    assert "no such file" in error_line(capsys)


def test_bad_line_names_file_and_line(tmp_path, capsys):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"text": "fine"}\n{oops\n')
    assert build([str(source), "-o", str(tmp_path / "site")]) == 2
    assert "bad.jsonl:2: invalid JSON" in error_line(capsys)


def test_existing_folder_that_is_not_a_site_is_left_alone(tiny_model, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text(GOOD)
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("irreplaceable")
    assert build([str(source), "-o", str(precious), "--model", str(tiny_model("bert"))]) == 2
    assert "not empty and is not an atlas site" in error_line(capsys)
    assert [p.name for p in precious.iterdir()] == ["chapter1.tex"]
    assert (precious / "chapter1.tex").read_text() == "irreplaceable"


def test_output_that_is_a_file(tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text(GOOD)
    target = tmp_path / "site"
    target.write_text("a file")
    assert build([str(source), "-o", str(target)]) == 2
    assert "is not a folder" in error_line(capsys)
    assert target.read_text() == "a file"


@pytest.mark.slow  # two builds
def test_rebuild_replaces_the_earlier_site_and_keeps_other_files(tiny_model, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text(GOOD)
    out = tmp_path / "site"
    model = str(tiny_model("bert"))
    assert build([str(source), "-o", str(out), "--model", model]) == 0
    (out / "mine.html").write_text("not from the atlas")
    source.write_text("Only one sentence now .\n")
    assert build([str(source), "-o", str(out), "--model", model]) == 0
    assert (out / "mine.html").read_text() == "not from the atlas"
    assert not (out / "sentences" / "0002.html").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".site")] == []
    assert build([str(source), "-o", str(out), "--model", model, "--clean"]) == 0
    assert not (out / "mine.html").exists()


def test_unknown_model(tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text(GOOD)
    empty = tmp_path / "empty-model"
    empty.mkdir()
    assert build([str(source), "-o", str(tmp_path / "site"), "--model", str(empty)]) == 2
    assert "cannot load model" in error_line(capsys)
    assert not (tmp_path / "site").exists()


def test_max_length_over_the_limit(tiny_model, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text(GOOD)
    args = [str(source), "-o", str(tmp_path / "site"), "--model", str(tiny_model("bert"))]
    assert build([*args, "--max-length", "4096"]) == 2
    assert "exceeds the model's limit of 64" in error_line(capsys)


def test_cuda_when_there_is_none(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    source = tmp_path / "in.txt"
    source.write_text(GOOD)
    assert build([str(source), "-o", str(tmp_path / "site"), "--device", "cuda"]) == 2
    assert "no CUDA device" in error_line(capsys)


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_bad_numbers_are_usage_errors(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["build", "x.txt", "--batch-size", value])
    assert stop.value.code == 2
    assert "--batch-size" in capsys.readouterr().err


def test_render_of_a_file_that_is_not_an_atlas(tmp_path, capsys):
    bogus = tmp_path / "atlas.json"
    bogus.write_text('{"hello": 1}')
    assert main(["render", str(bogus), "-o", str(tmp_path / "site")]) == 2
    assert "not an atlas.json" in error_line(capsys)


def test_limit_and_title(tiny_model, tmp_path):
    from atlas.result import load

    source = tmp_path / "in.txt"
    source.write_text(GOOD + "A third one .\n")
    out = tmp_path / "site"
    model = str(tiny_model("bert"))
    assert (
        build(
            [str(source), "-o", str(out), "--model", model, "--limit", "2", "--title", "My <atlas>"]
        )
        == 0
    )
    atlas = load(out)
    assert atlas.corpus.sentences == 2 and atlas.title == "My <atlas>"
    assert "My &lt;atlas&gt;" in (out / "index.html").read_text()


@pytest.mark.slow  # a build, then renders
def test_broken_user_template_is_one_line(tiny_model, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text(GOOD)
    out = tmp_path / "site"
    assert build([str(source), "-o", str(out), "--model", str(tiny_model("bert"))]) == 0
    theme = tmp_path / "theme"
    theme.mkdir()
    (theme / "heads.html").write_text("{% extends 'base.html' %}\n{% block main %}{{ oops(\n")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(["render", str(out), "-o", str(out), "--templates", str(theme)]) == 2
    assert "heads.html:2" in error_line(capsys)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
