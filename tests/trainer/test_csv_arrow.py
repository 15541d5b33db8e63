"""CSV tables through pyarrow: the same columns, ids and errors as the pandas reference path, without pandas for
a well-formed file (pandas' ``dtype=str`` frame is two Python strings per row)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import c2f.trainer.data.readers as readers
from c2f.trainer.data import DatasetError

CASES = {
    "plain": "user,item\nu1,a\nu2,b\nu1,b\n",
    "crlf, quoted, padded": 'user_id,item_id\r\n"u 1", a \r\nu2,"b,c"\r\n',
    "weights": "user,item,rating\nu1,a,1.5\nu2,b,2\nu3,a,0\n",
    "numeric timestamps": "user,item,ts\nu1,a,1700000000\nu2,b,1700000100\n",
    "dates": "user,item,timestamp\nu1,a,2024-01-01\nu2,b,2024-02-03T10:00:00Z\n",
    "padded numbers": "user,item,weight\nu1,a, 1\nu2,b,2 \n",
    "tsv": "user\titem\nu1\ta\nu2\tb\n",
    "blank lines": "user,item\nu1,a\n\nu2,b\n  \nu3,c\n",
    "all-empty row": "user,item\nu1,a\n,\nu2,b\n",
    "not utf-8": b"user,item\nu1,a\n" + b"u\xff,b\n",
    "trailing blank lines": "user,item\nu1,a\nu2,b\n\n\n",
}


def _same(a: readers.TableColumns, b: readers.TableColumns) -> None:
    for field in ("users", "user_ids", "items", "item_ids", "weights", "timestamps"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None) == (y is None), field
        if x is not None:
            assert np.array_equal(x, y), field
    assert [a.line(p) for p in range(len(a.users))] == [b.line(p) for p in range(len(b.users))]


@pytest.mark.parametrize("case", sorted(CASES))
def test_arrow_and_pandas_paths_agree(case: str) -> None:
    text = CASES[case]
    data = text if isinstance(text, bytes) else text.encode()
    fmt = "tsv" if case == "tsv" else "csv"
    _same(readers.read_table(data, "t.csv", fmt), readers.read_csv_pandas(data, "t.csv", fmt))


def test_a_well_formed_file_never_reaches_pandas(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    rows = "".join(
        f"user{u},item {i},{w}\n"
        for u, i, w in zip(rng.integers(0, 50, 2000), rng.integers(0, 80, 2000), rng.integers(1, 5, 2000), strict=True)
    )
    data = ("user,item,weight\n" + rows).encode()
    reference = readers.read_csv_pandas(data, "t.csv", "csv")

    def no_pandas(*args, **kwargs):
        raise AssertionError("pandas.read_csv called for a well-formed CSV")

    monkeypatch.setattr(pd, "read_csv", no_pandas)
    got = readers.read_table(data, "t.csv", "csv")
    _same(got, reference)
    assert got.lines is None and got.line(0) == 2  # row 0 sits under the header


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user,item,weight\nu1,a,1\nu2,b,x\n", r"t\.csv:3: weight 'x' is not a number"),
        ("user,item,weight\nu1,a,1\nu2,b,nan\n", r"t\.csv:3: weight 'nan' is not a number"),
        ("user,item\nu1,a\nu2,b,c,d\n", r"t\.csv:3: malformed CSV"),
        ("user,item\nu1,a\nu2,\n", r"t\.csv:3: empty item id"),
    ],
)
def test_errors_name_the_line_as_the_pandas_path_does(text: str, expected: str) -> None:
    with pytest.raises(DatasetError, match=expected):
        readers.read_table(text.encode(), "t.csv", "csv")
