"""Parquet tables through pyarrow: string ids are dictionary-encoded (codes per row, strings per distinct id only),
with the same ids, order and splits as the CSV path, and the same errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import c2f.trainer.data.readers as readers
from c2f.trainer.data import DatasetError, load_dataset
from c2f.trainer.synthetic import planted_communities


def _write(tmp_path: Path, name: str, **columns: object) -> Path:
    path = tmp_path / name
    pq.write_table(pa.table(columns), path)
    return path


def test_string_ids_load_like_csv_and_never_per_row_python_strings(tmp_path, monkeypatch) -> None:
    users, items, _, _ = planted_communities(n_users=300, n_items=120, seed=2)
    u = np.array([f"user-{x}" for x in users])
    i = np.array([f"item {x} " for x in items])  # trailing space: stripped on both paths
    csv = tmp_path / "t.csv"
    csv.write_text("user,item\n" + "".join(f"{a},{b}\n" for a, b in zip(u, i, strict=True)))
    plain = _write(tmp_path, "plain.parquet", user=pa.array(u), item=pa.array(i))
    # the same columns stored dictionary-encoded (as pandas categoricals or benchmarks/scale.py write them)
    codes_u, vocab_u = np.unique(u, return_inverse=True)[1], np.unique(u)
    codes_i, vocab_i = np.unique(i, return_inverse=True)[1], np.unique(i)
    dictionary = _write(
        tmp_path,
        "dict.parquet",
        user=pa.DictionaryArray.from_arrays(pa.array(codes_u.astype(np.int32)), pa.array(vocab_u)),
        item=pa.DictionaryArray.from_arrays(pa.array(codes_i.astype(np.int32)), pa.array(vocab_i)),
    )
    # pandas must not be what turns the id columns into strings (that is one Python object per row)
    seen_sizes: list[int] = []
    original = readers._encode_vocabulary

    def spy(codes, vocab, *args):
        seen_sizes.append(len(vocab))
        return original(codes, vocab, *args)

    monkeypatch.setattr(readers, "_encode_vocabulary", spy)
    ref = load_dataset(str(csv), seed=5)
    seen_sizes.clear()
    for path in (plain, dictionary):
        got = load_dataset(str(path), seed=5)
        assert got.stats["format"] == "parquet"
        assert np.array_equal(got.user_ids, ref.user_ids) and np.array_equal(got.item_ids, ref.item_ids)
        assert got.item_ids[0] == got.item_ids[0].strip()
        for split in ("train", "valid", "test"):
            assert (getattr(got, split) != getattr(ref, split)).nnz == 0, split
    # the vocabularies handed to the string step hold the distinct ids, not the rows
    assert seen_sizes == [300, 120, 300, 120]


def test_integer_id_columns_become_their_decimal_strings(tmp_path) -> None:
    path = _write(tmp_path, "ints.parquet", user=pa.array([10, 2, 10, 2, 7, 7]), item=pa.array([5, 5, 6, 7, 6, 7]))
    data = load_dataset(str(path), seed=0)
    assert data.user_ids.tolist() == ["10", "2", "7"]  # string order, as for CSV
    assert data.item_ids.tolist() == ["5", "6", "7"]


def test_missing_and_empty_ids_are_reported_with_their_row(tmp_path) -> None:
    nulls = _write(tmp_path, "n.parquet", user=pa.array(["a", "b", None, "c"]), item=pa.array(["x", "y", "z", "w"]))
    with pytest.raises(DatasetError, match=r"n\.parquet:3: empty user id"):
        load_dataset(str(nulls))
    blank = _write(tmp_path, "b.parquet", user=pa.array(["a", "b", "c", "d"]), item=pa.array(["x", "y", "x", "  "]))
    with pytest.raises(DatasetError, match=r"b\.parquet:4: empty item id"):
        load_dataset(str(blank))
    nouser = _write(tmp_path, "c.parquet", who=pa.array(["a"]), item=pa.array(["x"]))
    with pytest.raises(DatasetError, match="missing column 'user'"):
        load_dataset(str(nouser))
