"""A bug in the atlas's own chart or page code is reported as a bug (exit 1, traceback under
-v), never blamed on the theme as a "template error"; errors of a template stay template
errors."""

from __future__ import annotations

import pytest
from test_build import SENTENCES, write

import atlas
from atlas import charts, site
from atlas.cli import main


@pytest.fixture(scope="module")
def built(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("built")
    source = write(folder, SENTENCES)
    atlas.build(source, folder / "site", model=str(tiny_model("bert")), views=2, importance=0)
    return folder / "site"


def broken(*args, **kwargs):
    """A chart function with a bug."""
    return 1 // 0


@pytest.mark.parametrize(
    "where",
    [
        (charts, "metric_heatmap"),  # page code: the overview's heatmaps, made in site.py
        (site.CHART_FUNCTIONS, "metric_range"),  # chart code a template calls
    ],
    ids=["page-code", "called-by-a-template"],
)
def test_a_chart_bug_is_a_bug_not_a_template_error(where, built, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(*where, broken)
    out = tmp_path / "again"
    assert main(["render", str(built), "-o", str(out)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == (
        "atlas: error: unexpected ZeroDivisionError: integer division or modulo by zero "
        "(run with -v for details)"
    )
    assert "template error" not in error
    assert not out.exists(), "nothing was written"
    with pytest.raises(ZeroDivisionError) as raised:  # -v: the traceback, to the bug's line
        main(["render", str(built), "-o", str(out), "-v"])
    assert raised.traceback[-1].name == "broken"


def test_an_error_on_a_templates_line_is_a_template_error(built, tmp_path, capsys):
    theme = tmp_path / "theme"
    theme.mkdir()
    (theme / "index.html").write_text("{{ [1, 2][1] // 0 }}", encoding="utf-8")
    assert main(["render", str(built), "-o", str(tmp_path / "out"), "--templates", str(theme)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "atlas: error: template error: ZeroDivisionError: integer division or modulo by zero"
    )
