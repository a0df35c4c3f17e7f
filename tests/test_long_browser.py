"""Long inputs: sparse page rows (atlas/viewdata.py, contract.SPARSE_FROM) hold the stated
bound on hand-made attention, and a 4,096-token sentence of a real (tiny) model gets a page that
draws a window of rows, whose numbers are the model's within that bound."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import transformers
from browser import Browser, open_sentence_page, require_chromium
from test_viewdata import record
from tiny_models import make_long_bert

from atlas import contract, viewdata
from atlas.analyses.base import RunInfo, feed
from atlas.analyses.views import ViewData

ROOT = pathlib.Path(__file__).resolve().parent.parent
KEPT = 1 / (2 * contract.ATTENTION_SCALE)  # a kept value's rounding
REST = 1 / (2 * contract.REST_SCALE)  # the remainder's rounding
LONG = 4096

require_chromium()


def peaked(heads: int, n: int, seed: int = 0) -> np.ndarray:
    """Rows of a few large values over a floor of small ones, as trained heads have."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(heads, n, n)) * 4
    a = np.exp(scores - scores.max(-1, keepdims=True))
    return (a / a.sum(-1, keepdims=True)).astype(np.float32)


def check_bound(attention: np.ndarray, index, rest, value) -> None:
    """The contract's bound: kept values to their rounding, every dropped value at most the
    row's smallest kept one and at most the remainder, the remainder the rest of the row."""
    index = index.astype(np.int64)
    exact = np.take_along_axis(attention, index, -1).astype(np.float64)
    assert np.abs(exact - value).max() <= KEPT + 1e-9
    dropped = attention.astype(np.float64).copy()
    np.put_along_axis(dropped, index, -1.0, -1)
    largest_dropped = dropped.max(-1)
    assert (largest_dropped <= exact.min(-1) + 1e-7).all()
    assert (largest_dropped <= rest + REST + 1e-7).all()
    rest_exact = attention.astype(np.float64).sum(-1) - exact.sum(-1)
    assert np.abs(rest_exact - rest).max() <= REST + 1e-7


def test_sparse_rows_keep_the_largest_values_and_an_exact_remainder():
    attention = peaked(3, 40)
    index, rest, value = viewdata.unpack_sparse(viewdata.sparse_rows(attention, 4), 40, 4)
    assert index.shape == (3, 40, 4) and rest.shape == (3, 40) and value.shape == (3, 40, 4)
    assert (np.diff(value, axis=-1) <= 0).all()  # largest first
    check_bound(attention, index, rest, value)


def test_a_sentence_past_sparse_from_gets_sparse_rows_layer_by_layer():
    """ViewMaker makes sparse rows as the layers stream by: every head, no rollout, no queries
    and keys; View.matrix gives the kept values; a short sentence stays dense."""
    n, layers, heads = contract.SPARSE_FROM + 8, 2, 3
    attention = np.stack([peaked(heads, n, seed) for seed in range(layers)])
    view = viewdata.make_view(record(attention), vectors=True, causal=False)
    assert view.top == viewdata.sparse_top(n, layers * heads) == viewdata.SPARSE_TOP
    assert not view.rollout and not view.vectors
    index, rest, value = view.sparse()
    check_bound(attention.reshape(-1, n, n), index, rest, value)
    dense = view.matrix(layers, heads).reshape(-1, n, n)
    kept = np.take_along_axis(dense, index.astype(np.int64), -1)
    assert np.array_equal(kept, value.astype(np.float32))
    short = record(np.full((layers, heads, 2, 2), 0.5))
    assert viewdata.make_view(short, vectors=False, causal=False).top == 0


def test_a_sparse_view_cut_to_some_heads_keeps_their_rows():
    """--max-site-mb keeps only the example heads of a page it drops (budget._only_heads): of a
    sparse sentence, those heads' rows as they were."""
    from atlas.budget import _only_heads

    n = contract.SPARSE_FROM + 3
    view = viewdata.make_view(record(np.stack([peaked(2, n), peaked(2, n, 1)])), vectors=False,
                              causal=False)  # fmt: skip
    cut = _only_heads(view, [1, 2])
    assert cut.heads_kept == [1, 2] and cut.top == view.top
    for whole, part in zip(view.sparse(), cut.sparse(), strict=True):
        assert np.array_equal(whole[[1, 2]], part)


def test_sparse_rows_fit_the_budget_and_past_their_indices_there_is_no_page():
    assert viewdata.sparse_top(4096, 144) == 1  # 12 × 12 heads: one value and the remainder
    assert viewdata.view_bytes(4096, 144) == 144 * 4096 * 5 < viewdata.MAX_VIEW_BYTES
    assert viewdata.view_bytes(4096, 4) == 4 * 4096 * (3 * viewdata.SPARSE_TOP + 2)
    assert viewdata.view_bytes(70_000, 1) > viewdata.MAX_VIEW_BYTES  # indices are uint16


def test_feed_streams_layers_into_the_views_analysis():
    """The views analysis keeps a long sentence's page (it had none before) from add_layer."""
    n = contract.SPARSE_FROM + 1
    analysis = ViewData(limit=1)
    analysis.start(RunInfo(layers=1, heads=2, causal=False, sentences=1))
    feed(analysis, record(peaked(2, n)[None]))
    assert not analysis.too_long and analysis.kept[0].top


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def long_site(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path, str]:
    """A site of one 4,096-token sentence through a tiny 2 × 2-head BERT of 8,192 positions."""
    folder = tmp_path_factory.mktemp("long")
    model = make_long_bert(folder / "bert", layers=2, heads=2)
    text = " ".join(("the cat sat on the mat and the bird watched the fish " * 500).split())
    (folder / "in.txt").write_text(text + "\n", encoding="utf-8")
    site = folder / "site"
    args = ["build", str(folder / "in.txt"), "-o", str(site), "--model", str(model),
            "--device", "cpu", "--importance", "0", "--max-length", str(LONG)]  # fmt: skip
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "atlas.cli", *args], capture_output=True,
                          text=True, env=env, timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return site, model, text


@pytest.mark.slow
def test_a_4096_token_page_draws_a_window_and_holds_the_models_numbers(browser, long_site):
    site, model, text = long_site
    atlas = json.loads((site / "atlas.json").read_text(encoding="utf-8"))
    assert atlas["sentences"][0]["has_view"] and "too_long" not in atlas["results"]["views"]
    view = viewdata.read_view(site / contract.data_script(0, 1))
    assert view.n == LONG and view.top == viewdata.SPARSE_TOP
    page_bytes = (site / contract.data_script(0, 1)).stat().st_size
    page_bytes += (site / contract.sentence_page(0, 1)).stat().st_size
    assert page_bytes < 5 * 2**20

    # The model's own attention of the same tokens, and the stored rows within the bound.
    tokenizer = transformers.AutoTokenizer.from_pretrained(model)
    encoded = tokenizer(text, truncation=True, max_length=LONG, return_tensors="pt")
    assert tokenizer.convert_ids_to_tokens(encoded["input_ids"][0]) == view.tokens
    bert = transformers.AutoModel.from_pretrained(model, attn_implementation="eager").eval()
    with torch.no_grad():
        attention = torch.cat(bert(**encoded, output_attentions=True).attentions).numpy()
    attention = attention.reshape(-1, LONG, LONG)  # [heads in model order, n, n]
    index, rest, value = view.sparse()
    check_bound(attention, index, rest, value)

    # The page draws a window of rows and an "other tokens" column, and decodes the same rows.
    page, report = open_sentence_page(browser, site / contract.sentence_page(0, 1))
    size = contract.WINDOW_TOKENS
    assert page.locator("#token-window output").inner_text() == f"1–{size} of {LONG}"
    assert page.locator("#head-view .hv-from .hv-token").count() == size + 1
    rows = page.evaluate("""() => { const s = AtlasData.get('0001');
        return [0, 100, 4095].map((i) => { const r = s.row(2, 2, i);
          return [Array.from(r.index), r.value, r.rest]; }); }""")
    for (indices, values, remainder), i in zip(rows, (0, 100, 4095), strict=True):
        assert indices == index[3, i].tolist()
        assert np.allclose(values, value[3, i]) and abs(remainder - rest[3, i]) < 1e-6
    # The "other tokens" column of row 1 is the rest of the row: 1 less the window's values.
    window = page.evaluate("Array.from(AtlasData.get('0001').at('tokens').matrix(1, 1))")
    m = np.array(window).reshape(size + 1, size + 1)
    bound = viewdata.SPARSE_TOP * KEPT + REST + 1e-6
    assert np.allclose(m[:size].sum(1), attention[0, :size].sum(1), atol=bound)
    slider = page.locator("#token-window input")
    slider.fill("2000")
    slider.dispatch_event("change")
    page.wait_for_function("document.querySelector('#token-window output').textContent[0] === '2'")
    assert page.locator("#head-view .hv-from .hv-token").count() == size + 1
    assert report.clean, report
    page.close()
