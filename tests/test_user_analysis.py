"""An analysis of the user's, from outside the package (tests/user_analysis/peak.py), plugged in
with ``--analysis FILE.py:CLASS``: its catalogue column, its chart on the overview, its section
on head pages and its page data file, its B − A under --compare, and a clear error for a
broken --analysis; the pages checked in Chromium."""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest
from browser import Browser, require_chromium
from test_compare import copy_model, perturb_queries

import atlas
from atlas import contract
from atlas.cli import main
from atlas.plugins import PluginError, analysis_class
from atlas.result import load

HERE = pathlib.Path(__file__).resolve().parent
PEAK = str(HERE / "user_analysis" / "peak.py") + ":Peak"
EXAMPLES = HERE.parent / "examples" / "sentences.txt"
LIMIT, VIEWS = 12, 3


@pytest.fixture(scope="module")
def peak_site(tiny_model, tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("peak") / "site"
    model, limit, views = str(tiny_model("bert")), str(LIMIT), str(VIEWS)
    assert main(["build", str(EXAMPLES), "-o", str(out), "-q", "--model", model,
                 "--limit", limit, "--views", views, "--analysis", PEAK]) == 0  # fmt: skip
    return out


def expected_peaks(model: pathlib.Path) -> np.ndarray:
    """Each head's mean largest weight per query, straight from the model's attention."""
    from atlas.corpus import read_corpus
    from atlas.running import Runner

    runner = Runner(str(model), device="cpu")
    examples = read_corpus(EXAMPLES, limit=LIMIT)
    total = np.zeros((runner.info.layers, runner.info.heads))
    for record in runner.run(examples, batch_size=4, capture=()):
        total += record.attention.max(-1).mean(-1)
    return total.reshape(-1) / len(examples)


def test_its_column_joins_the_catalogue_with_the_right_values(peak_site, tiny_model):
    built = load(peak_site)
    column = built.column("peak")
    assert (column.analysis, column.kind, column.title) == ("peak", "share", "peak weight")
    assert [c.key for c in built.catalogue][-1] == "peak"  # the user's analysis comes last
    values = [h.metrics["peak"] for h in built.heads]
    assert values == pytest.approx(expected_peaks(tiny_model("bert")), abs=1e-5)
    heads = (peak_site / "heads" / "index.html").read_text()
    assert 'data-column="peak"' in heads  # the heads table has its column


def test_its_chart_section_and_page_data_are_written(peak_site):
    built = load(peak_site)
    index = (peak_site / "index.html").read_text()
    assert 'id="peak"' in index and 'data-spec="spec-peak-by-layer"' in index
    spec = json.loads(re.search(r'id="spec-peak-by-layer">(.*?)</script>', index).group(1))
    assert [row["peak"] for row in spec["data"]["values"]] == built.layer_means["peak"]
    head = (peak_site / "heads" / "L02-H03.html").read_text()
    assert 'id="peak-head"' in head and f"{built.head(2, 3).metrics['peak']:.3f}" in head
    with_page = [s.index for s in built.sentences if s.has_view]
    written = sorted(p.name for p in (peak_site / "data").glob("*.peak.js"))
    total = len(built.sentences)
    assert written == [pathlib.Path(contract.page_data_script(i, total, "peak")).name
                       for i in with_page]  # fmt: skip
    script = (peak_site / contract.page_data_script(0, total, "peak")).read_text()
    payload = json.loads(script.rsplit(" = ", 1)[1].rstrip(";\n"))
    assert payload == {"peak": built.results["peak"]["sentences"][0]}


def test_re_rendering_needs_it_again_and_then_gives_the_same_site(peak_site, tmp_path, capsys):
    out = tmp_path / "again"
    assert main(["render", str(peak_site), "-o", str(out), "-q", "--analysis", PEAK]) == 0
    for page in ("index.html", "heads/L01-H01.html", "data/0001.peak.js"):
        assert (out / page).read_bytes() == (peak_site / page).read_bytes()
    # without it: its column still shows, its sections and page data do not, and a warning
    # says how to get them
    bare = tmp_path / "bare"
    assert main(["render", str(peak_site), "-o", str(bare)]) == 0
    assert "not known here (peak)" in capsys.readouterr().err
    index = (bare / "index.html").read_text()
    assert 'data-spec="spec-heatmap-peak"' in index and 'id="peak"' not in index
    assert not list((bare / "data").glob("*.peak.js"))


def test_the_library_takes_it_too(tiny_model, tmp_path):
    """``atlas.build(..., analysis=("FILE.py:CLASS",))`` and ``analyses=[...]`` both work."""
    peak = analysis_class(PEAK)
    built = atlas.build(EXAMPLES, tmp_path / "site", model=str(tiny_model("bert")), limit=4,
                        views=1, analyses=[*atlas.analyses.default_analyses(), peak()])  # fmt: skip
    assert "peak" in built.results and (tmp_path / "site" / "data" / "0001.peak.js").is_file()


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("peak.py", "expected MODULE:CLASS"),
        ("no/such/file.py:Peak", "no such file: no/such/file.py"),
        ("atlas_no_such_module:Peak", "no module named atlas_no_such_module"),
        (str(HERE / "user_analysis" / "peak.py") + ":PEAK", "not a subclass"),
        (str(HERE / "user_analysis" / "peak.py") + ":Nothing", "Nothing is not found"),
    ],
)
def test_a_bad_analysis_is_one_line(spec, error, capsys, tmp_path):
    with pytest.raises(PluginError, match=error):
        analysis_class(spec)
    assert main(["build", str(EXAMPLES), "-o", str(tmp_path / "s"), "-q", "--analysis", spec]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and error in err


def test_compare_gives_its_b_minus_a(tiny_model, tmp_path):
    """Under --compare the user's column is run on model B too, and the Compare page and atlas
    hold B − A of it, as for every built-in column."""
    b = copy_model(tiny_model("bert"), tmp_path / "bert-b", perturb_queries(1))
    out = tmp_path / "site"
    assert main(["build", str(EXAMPLES), "-o", str(out), "-q", "--model", str(tiny_model("bert")),
                 "--compare", str(b), "--limit", str(LIMIT), "--views", "2",
                 "--analysis", PEAK]) == 0  # fmt: skip
    built = load(out)
    assert "peak" in built.results["compare"]["columns"]
    b_alone = expected_peaks(b)
    for flat, head in enumerate(built.heads):
        mine = head.parts["compare"]
        assert mine["b"]["peak"] == pytest.approx(b_alone[flat], abs=1e-5)
        delta = b_alone[flat] - head.metrics["peak"]
        assert mine["delta"]["peak"] == pytest.approx(delta, abs=2e-6)
    assert 'data-spec="spec-delta-peak"' in (out / "compare.html").read_text()


def test_its_pages_work_in_chromium(peak_site, tmp_path):
    """The overview draws its chart, a head page shows its card, a sentence page reads its page
    data; no console error, nothing fetched from outside. Screenshots are kept in tmp_path."""
    require_chromium()
    with Browser() as browser:
        page, report = browser.open(peak_site / "index.html")
        page.wait_for_selector("#peak .vega.drawn svg, #peak .vega.drawn canvas")
        page.locator("#peak").screenshot(path=str(tmp_path / "overview-peak.png"))
        page, report_head = browser.open(peak_site / "heads" / "L01-H02.html")
        assert page.locator("#peak-head").is_visible()
        page, report_sentence = browser.open(peak_site / "sentences" / "0001.html")
        built = load(peak_site)
        shown = page.locator("#peak-value").text_content()
        assert shown == f"{built.results['peak']['sentences'][0]:.3f}"
        page.locator("#peak-sentence").screenshot(path=str(tmp_path / "sentence-peak.png"))
    for r in (report, report_head, report_sentence):
        assert r.clean, r


def test_the_design_notes_show_this_very_file():
    """docs/design.md's worked example is the code of tests/user_analysis/peak.py."""
    code = (HERE / "user_analysis" / "peak.py").read_text()
    body = code[code.index("from pathlib import Path") :]
    assert f"```python\n{body}```" in (HERE.parent / "docs" / "design.md").read_text()


def test_a_chart_name_is_the_sites_once():
    """Two analyses (or an analysis and the site) cannot give one chart name."""

    class Clash(atlas.analyses.Analysis):
        name = "clash"

        @classmethod
        def charts(cls):
            return {"metric_heatmap": lambda atlas: {}}

    with pytest.raises(atlas.site.SiteError, match="clash analysis's chart 'metric_heatmap'"):
        atlas.site.chart_functions([Clash])


def test_page_data_has_its_place_in_the_sites_layout():
    assert contract.page_data_script(0, 12, "peak") == "data/0001.peak.js"
    assert contract.is_site_path("data/0001.peak.js")
    assert not contract.is_site_path("data/0001.Peak.js")
    with pytest.raises(ValueError, match="cannot name a data file"):
        contract.page_data_script(0, 12, "../x")
