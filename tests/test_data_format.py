"""The page data's contract (atlas/contract.py): the data scripts', the queries and keys' and
the search index's fields are the contract's, each carries the data format, and data of
another format is refused when read back."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_snapshot import STORED

from atlas import contract, viewdata
from atlas.result import AtlasFileError, load
from atlas.site import render, search_index


def payload(text: str, prefix: str) -> dict:
    return json.loads(text[len(prefix) :].partition("] = ")[2].rstrip().removesuffix(";"))


def test_every_payload_holds_the_contracts_fields_and_format():
    files = dict(render(load(STORED)))
    fields = set(contract.DATA_FIELDS)
    for path, data in files.items():
        if path.startswith("data/") and path.endswith(".qk.js"):
            vectors = payload(data.decode(), viewdata.VECTORS_PREFIX)
            assert set(vectors) == set(contract.VECTORS_FIELDS), path
            assert vectors["format"] == contract.DATA_FORMAT
        elif path.startswith("data/"):
            sentence = payload(data.decode(), viewdata.DATA_PREFIX)
            assert fields <= set(sentence) <= fields | set(contract.DATA_OPTIONAL_FIELDS), path
            assert sentence["format"] == contract.DATA_FORMAT
    index = search_index(load(STORED))
    assert set(index) == set(contract.SEARCH_FIELDS) and index["format"] == contract.DATA_FORMAT
    assert all(len(row) == len(contract.SEARCH_SENTENCE_ROW) for row in index["sentences"])
    assert all(len(row) == len(contract.SEARCH_COLUMN_ROW) for row in index["columns"])
    config = files[contract.CONFIG_SCRIPT].decode()
    assert f'"dataFormat":{contract.DATA_FORMAT}' in config


def test_a_field_outside_the_contract_is_refused():
    with pytest.raises(ValueError, match=r"missing \['vectors'\], unknown \['extra'\]"):
        contract.data_payload(
            {"encoding": "deflate", "error": 0, "extra": 1}, contract.VECTORS_FIELDS
        )
    with pytest.raises(ValueError, match="a search row of 4 values"):
        contract.search_row(contract.SEARCH_SENTENCE_ROW, "0001", "text")


def test_the_vectors_layout_is_the_contracts():
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(2, 1, 2, 5, 4))
    scores = np.einsum("lhnd,lhmd->lhnm", q, k) / 2
    attention = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    text, _ = viewdata.pack_vectors(q, k, attention, causal=False)
    data = viewdata.inflate(text)
    bits = np.frombuffer(data, contract.VECTOR_BITS, count=4)
    assert set(bits.tolist()) <= set(contract.VECTOR_VALUES)
    params = 2 * 4 * np.dtype(contract.VECTOR_PARAMS).itemsize  # scale and offset, d = 4
    values = sum(5 * 4 * np.dtype(contract.VECTOR_VALUES[b]).itemsize for b in bits.tolist())
    assert len(data) == len(bits) + len(bits) * params + values
    q2, k2 = viewdata.unpack_vectors(text, 1, 2, 5, 4)
    error = viewdata.softmax_error(q2, k2, attention, causal=False)
    assert error.max() <= viewdata.VECTOR_TOLERANCE


def test_data_of_another_format_is_refused_when_read_back(tmp_path):
    stored = tmp_path / "stored"
    shutil.copytree(STORED, stored)
    script = stored / "data" / "0001.js"
    format_field = f'"format":{contract.DATA_FORMAT}'
    script.write_text(script.read_text().replace(format_field, '"format":99'), encoding="utf-8")
    with pytest.raises(
        AtlasFileError, match=f"data format 99, this atlas reads {contract.DATA_FORMAT}"
    ):
        load(stored)
    # a script from before the format was written is of format 1
    script.write_text(script.read_text().replace('"format":99,', ""), encoding="utf-8")
    assert contract.DATA_FORMAT != 1 or load(stored).views
