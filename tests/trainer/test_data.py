"""trainer.data: readers, splits, id maps, errors, fsspec sources."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from c2f.trainer.data import DatasetError, InteractionData, load_dataset
from c2f.trainer.data import split as split_mod
from c2f.trainer.data.idmap import encode_ids, lookup
from c2f.trainer.synthetic import planted_communities, write_interactions_csv, write_lightgcn_dir


def pairs(m: sp.csr_matrix) -> set[tuple[int, int]]:
    coo = m.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


def external_pairs(data: InteractionData, m: sp.csr_matrix) -> set[tuple[str, str]]:
    return {(str(data.user_ids[u]), str(data.item_ids[i])) for u, i in pairs(m)}


def write_dir(path: Path, **files: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name.replace("__", ".")).write_text(text)
    return path


def check_split_invariants(data: InteractionData) -> None:
    train, valid, test = pairs(data.train), pairs(data.valid), pairs(data.test)
    assert not train & valid and not train & test and not valid & test
    for m in (data.train, data.valid, data.test):
        assert m.shape == (data.n_users, data.n_items)
        assert m.dtype == np.float32
        assert m.has_sorted_indices
        assert set(np.unique(m.data).tolist()) <= {1.0}
    has_train = np.diff(data.train.indptr) > 0
    held_out = np.diff(data.valid.indptr) + np.diff(data.test.indptr) > 0
    assert np.all(has_train[held_out]), "a user with valid/test items must keep >= 1 train item"
    s = data.stats
    assert (s["n_users"], s["n_items"]) == (data.n_users, data.n_items)
    assert (s["n_train"], s["n_valid"], s["n_test"]) == (data.train.nnz, data.valid.nnz, data.test.nnz)
    assert isinstance(s["split"], str) and s["split"]
    assert data.user_ids.dtype.kind == "U" and data.item_ids.dtype.kind == "U"
    assert len(set(data.user_ids.tolist())) == data.n_users
    assert len(set(data.item_ids.tolist())) == data.n_items


# ------------------------------------------------------------------------------------------------- LightGCN


def test_lightgcn_dir_basic(tmp_path: Path) -> None:
    d = write_dir(
        tmp_path / "ds",
        train__txt="0 0 1 2 3 4\n\n1 2 3 4 5 6 7 8 9 10 11\n2 \n3 5\n",
        test__txt="0 5 6\n1 0 1\n2 7\n3\n",
    )
    data = load_dataset(str(d), valid_fraction=0.0)
    assert (data.n_users, data.n_items) == (4, 12)
    assert data.user_ids.tolist() == ["0", "1", "2", "3"]
    assert data.train.nnz == 5 + 10 + 1 and data.valid.nnz == 0
    # user 2 has no train item: its test item is dropped (and counted), never a crash
    assert pairs(data.test) == {(0, 5), (0, 6), (1, 0), (1, 1)}
    assert data.stats["test_users_without_train"] == 1 and data.stats["test_dropped_no_train"] == 1
    assert data.stats["format"] == "lightgcn"
    assert data.stats["n_train_before_valid"] == 16
    check_split_invariants(data)


def test_lightgcn_id_lists_and_valid_carve(tmp_path: Path) -> None:
    users, items, _, _ = planted_communities(n_users=50, n_items=40, n_communities=4, seed=3)
    d = write_lightgcn_dir(tmp_path / "ds", users, items, with_lists=True)
    data = load_dataset(str(d), seed=7)
    assert data.user_ids[:3].tolist() == ["u0", "u1", "u2"] and data.item_ids[5] == "i5"
    n_before = data.stats["n_train_before_valid"]
    assert data.train.nnz + data.valid.nnz == n_before
    # ~10% per user, >= 1 for every user with >= 2 train items, never the last train item
    train_counts = np.diff(data.train.indptr)
    valid_counts = np.diff(data.valid.indptr)
    total = train_counts + valid_counts
    assert np.all(valid_counts[total >= 2] >= 1) and np.all(train_counts[total >= 1] >= 1)
    assert np.all(valid_counts == np.clip(np.maximum(np.floor(0.1 * total + 0.5), 1), 0, total - 1))
    check_split_invariants(data)
    again = load_dataset(str(d), seed=7)
    assert pairs(again.valid) == pairs(data.valid) and pairs(again.train) == pairs(data.train)
    other = load_dataset(str(d), seed=8)
    assert pairs(other.valid) != pairs(data.valid)
    assert pairs(other.test) == pairs(data.test)  # the dataset's own test split is never reshuffled
    assert data.content_hash == other.content_hash and len(data.content_hash) == 64


def test_valid_from_test_protocol(synthetic_lightgcn_dir: Path) -> None:
    base = load_dataset(str(synthetic_lightgcn_dir), valid_fraction=0.0)
    data = load_dataset(str(synthetic_lightgcn_dir), valid_from="test", seed=1)
    assert pairs(data.train) == pairs(base.train)  # nothing taken from train
    assert pairs(data.valid) | pairs(data.test) == pairs(base.test)
    check_split_invariants(data)
    n_test = np.diff(base.test.indptr)
    assert np.array_equal(np.diff(data.valid.indptr), (n_test + 2) // 3)  # ceil(|test_u| / 3)
    assert data.stats["n_train_before_valid"] == base.train.nnz
    assert "ceil" in data.stats["split"]
    again = load_dataset(str(synthetic_lightgcn_dir), valid_from="test", seed=1)
    assert pairs(again.valid) == pairs(data.valid)


def test_duplicates_and_test_in_train(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = write_dir(
        tmp_path / "ds",
        train__txt="0 1 1 2\n1 3 4\n1 4\n",
        test__txt="0 2 3 3\n1 0\n",
    )
    with caplog.at_level("WARNING"):
        data = load_dataset(str(d), valid_fraction=0.0)
    assert data.stats["duplicates_dropped"] == 3  # (0,1) and (1,4) in train, (0,3) in test
    assert data.stats["test_in_train_dropped"] == 1  # (0,2)
    assert pairs(data.train) == {(0, 1), (0, 2), (1, 3), (1, 4)}
    assert pairs(data.test) == {(0, 3), (1, 0)}
    assert "duplicated" in caplog.text


def test_lightgcn_gz_and_train_only(tmp_path: Path) -> None:
    users, items, _, _ = planted_communities(n_users=30, n_items=20, n_communities=2, seed=1)
    d = tmp_path / "ds"
    d.mkdir()
    lines: dict[int, list[int]] = {}
    for u, i in zip(users.tolist(), items.tolist(), strict=True):
        lines.setdefault(u, []).append(i)
    text = "".join(f"{u} {' '.join(map(str, its))}\n" for u, its in lines.items())
    (d / "train.txt.gz").write_bytes(gzip.compress(text.encode()))
    data = load_dataset(str(d))  # no test.txt: per-user random 80/10/10 split of train.txt
    assert data.train.nnz + data.valid.nnz + data.test.nnz == len(users)
    assert data.test.nnz > 0 and data.valid.nnz > 0
    assert "train.txt only" in data.stats["split"]
    check_split_invariants(data)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"train__txt": "0 1 2\n1 2 x3\n"}, r"train\.txt:2: non-integer id 'x3'"),
        ({"train__txt": "0 1 2\n1 2\n2 1.5\n"}, r"train\.txt:3: non-integer id '1\.5'"),
        ({"train__txt": "0 1\n1 -2\n"}, r"train\.txt:2: negative id -2"),
        ({"train__txt": "0 1\n-1 2\n"}, r"train\.txt:2: negative id -1"),
        ({"train__txt": ""}, r"train\.txt:1: empty file"),
        ({"train__txt": "\n  \n"}, r"train\.txt:1: empty file"),
        ({"train__txt": "0 \n1\n"}, r"train\.txt:1: no interactions"),
        ({"train__txt": "0 1\n", "test__txt": "0 1\n\n1 a\n"}, r"test\.txt:3: non-integer id 'a'"),
        ({"train__txt": "0 1\n1 99999999999999999999\n"}, r"train\.txt:2: id 99999999999999999999 is too large"),
        (
            {"train__txt": "0 1\n1 0\n2 1\n", "user_list__txt": "org_id remap_id\na 0\nb 1\n"},
            r"train\.txt:3: user id 2 not in .*user_list\.txt \(2 entries\)",
        ),
        (
            {"train__txt": "0 1\n0 7\n", "item_list__txt": "org_id remap_id\na 0\nb 1\n"},
            r"train\.txt:2: item id 7 not in .*item_list\.txt",
        ),
        (
            {"train__txt": "0 1\n", "user_list__txt": "org_id remap_id\na 0\nb 0\n"},
            r"user_list\.txt:3: duplicate remap id 0",
        ),
        (
            {"train__txt": "0 1\n", "user_list__txt": "org_id remap_id\na 0\na 1\n"},
            r"user_list\.txt:3: duplicate org id 'a'",
        ),
        (
            {"train__txt": "0 1\n", "user_list__txt": "org_id remap_id\na 0\nb x\n"},
            r"user_list\.txt:3: non-integer remap id 'x'",
        ),
        ({"train__txt": "0 1\n5000000000 1\n"}, r"train\.txt:2: id 5000000000 is too large"),
        ({"train__txt": "0 1\n1 2000000000\n"}, r"train\.txt:2: item id 2000000000 is far beyond"),
    ],
)
def test_lightgcn_errors(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    d = write_dir(tmp_path / "ds", **files)
    with pytest.raises(DatasetError, match=expected):
        load_dataset(str(d))


def test_not_found_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(str(tmp_path / "nope.csv"))
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(str(tmp_path / "nope"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DatasetError, match="without train.txt"):
        load_dataset(str(tmp_path / "empty_dir"))
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DatasetError, match="unsupported file type"):
        load_dataset(str(tmp_path / "x.json"))
    with pytest.raises(ValueError, match="valid_fraction"):
        load_dataset(str(tmp_path / "x.json"), valid_fraction=1.0)
    assert issubclass(DatasetError, ValueError)


# ------------------------------------------------------------------------------------------------- tables


def test_csv_string_ids_round_trip(synthetic_csv: Path) -> None:
    frame = pd.read_csv(synthetic_csv, dtype=str)
    original = set(zip(frame["user"], frame["item"], strict=True))
    data = load_dataset(str(synthetic_csv), seed=5)
    assert data.stats["format"] == "csv"
    assert data.user_ids.tolist() == sorted(set(frame["user"]))  # sorted, deterministic remap
    assert data.item_ids.tolist() == sorted(set(frame["item"]))
    got = external_pairs(data, data.train) | external_pairs(data, data.valid) | external_pairs(data, data.test)
    assert got == original
    check_split_invariants(data)
    # ~80/10/10 overall
    n = len(original)
    assert 0.07 < data.test.nnz / n < 0.14 and 0.07 < data.valid.nnz / n < 0.14
    assert data.content_hash == hashlib.sha256(synthetic_csv.read_bytes()).hexdigest()
    # seeded: same seed -> same split, other seed -> another one
    assert pairs(load_dataset(str(synthetic_csv), seed=5).test) == pairs(data.test)
    assert pairs(load_dataset(str(synthetic_csv), seed=6).test) != pairs(data.test)
    # id lookups
    assert lookup(data.user_ids, ["u17", "nope"]).tolist() == [int(np.flatnonzero(data.user_ids == "u17")[0]), -1]


def test_csv_gz_tsv_parquet_agree(tmp_path: Path) -> None:
    users, items, _, _ = planted_communities(n_users=40, n_items=30, n_communities=3, seed=2)
    csv = write_interactions_csv(tmp_path / "a.csv", users, items)
    gz = write_interactions_csv(tmp_path / "a.csv.gz", users, items)
    tsv = write_interactions_csv(tmp_path / "a.tsv", users, items, sep="\t")
    pq = tmp_path / "a.parquet"
    pd.DataFrame({"user_id": [f"u{u}" for u in users], "item_id": [f"i{i}" for i in items]}).to_parquet(pq)
    loaded = [load_dataset(str(p), seed=3) for p in (csv, gz, tsv, pq)]
    assert [d.stats["format"] for d in loaded] == ["csv", "csv", "tsv", "parquet"]
    assert loaded[1].content_hash == hashlib.sha256(gz.read_bytes()).hexdigest()
    assert loaded[1].content_hash != loaded[0].content_hash
    for d in loaded[1:]:
        assert d.user_ids.tolist() == loaded[0].user_ids.tolist()
        for a, b in ((d.train, loaded[0].train), (d.valid, loaded[0].valid), (d.test, loaded[0].test)):
            assert pairs(a) == pairs(b)


def test_csv_aliases_weights_duplicates(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("User_ID,Item_ID,rating\nu1,a,5\nu1,b,0\nu1,a,3\nu2,a,1\nu2,c,-1\nu2,b,2\nu1,c,1\n")
    data = load_dataset(str(p), valid_fraction=0.0)
    assert data.stats["nonpositive_weight_dropped"] == 2
    assert data.stats["duplicates_dropped"] == 1
    all_pairs = external_pairs(data, data.train) | external_pairs(data, data.test)
    assert all_pairs == {("u1", "a"), ("u1", "c"), ("u2", "a"), ("u2", "b")}


def test_temporal_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n_users, per_user = 20, 20
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(100, per_user, replace=False) for _ in range(n_users)])
    stamps = rng.permutation(users.size) * 10 + 1_600_000_000
    p = write_interactions_csv(tmp_path / "t.csv", users, items, timestamps=stamps)
    data = load_dataset(str(p))
    assert "temporal" in data.stats["split"]
    time_of = {(f"u{u}", f"i{i}"): t for u, i, t in zip(users, items, stamps, strict=True)}
    for u in range(data.n_users):

        def times(m: sp.csr_matrix, u: int = u) -> list[int]:
            return [time_of[(str(data.user_ids[u]), str(data.item_ids[i]))] for i in m[u].indices]

        tr, va, te = times(data.train), times(data.valid), times(data.test)
        assert len(te) == 2 and len(va) == 2 and len(tr) == 16
        assert max(tr) < min(va) and max(va) < min(te)  # latest 10% test, the 10% before valid
    # ISO dates are accepted as timestamps too
    q = tmp_path / "dates.csv"
    q.write_text("user,item,timestamp\na,x,2024-01-03\na,y,2024-01-01\na,z,2024-01-02\n")
    d2 = load_dataset(str(q), valid_fraction=0.0)
    assert external_pairs(d2, d2.test) == {("a", "x")}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", r"t\.csv:1: empty file"),
        ("   \n\n", r"t\.csv:1: empty file"),
        ("user,thing\nu1,a\n", r"t\.csv:1: missing column 'item'"),
        ("a,b,c\n1,2,3\n", r"t\.csv:1: missing column 'user'"),
        ("user,item\n", r"t\.csv:2: no interactions"),
        ("user,item\nu1,a\nu2,\nu3,b\n", r"t\.csv:3: empty item id"),
        ("user,item\nu1,a\n\nu2,b\n,c\n", r"t\.csv:5: empty user id"),
        ("user,item,timestamp\nu1,a,1\nu2,b,soon\n", r"t\.csv:3: timestamp 'soon' is not a number"),
        ("user,item,weight\nu1,a,1\nu2,b,x\n", r"t\.csv:3: weight 'x' is not a number"),
        ("user,item,weight\nu1,a,0\nu2,b,-1\n", r"t\.csv:2: no interactions \(every weight is <= 0\)"),
        ("user,item\nu1,a\nu2,b,c,d\n", r"t\.csv:3: malformed CSV"),
    ],
)
def test_csv_errors(tmp_path: Path, text: str, expected: str) -> None:
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(DatasetError, match=expected):
        load_dataset(str(p))


def test_gz_corrupt(tmp_path: Path) -> None:
    p = tmp_path / "t.csv.gz"
    p.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match=r"t\.csv\.gz:1: cannot decompress"):
        load_dataset(str(p))


# ------------------------------------------------------------------------------------------------- splits


def test_split_helpers_vectorised() -> None:
    users = np.array([0, 0, 0, 1] + [2] * 20)
    rank, counts = split_mod.per_user_rank(users, 4, np.arange(users.size)[::-1].astype(float))
    assert counts.tolist() == [3, 1, 20, 0]
    assert rank[:3].tolist() == [2, 1, 0]  # reversed key -> reversed ranks
    assert split_mod.quota(np.array([0, 1, 2, 5, 10, 14, 15, 20]), 0.1).tolist() == [0, 0, 1, 1, 1, 1, 2, 2]
    assert split_mod.quota(np.array([3, 3]), 0.0).tolist() == [0, 0]
    labels = split_mod.split_table(users, 4, seed=0)
    assert np.bincount(labels[users == 2], minlength=3).tolist() == [16, 2, 2]
    assert np.bincount(labels[users == 0], minlength=3).tolist() == [1, 1, 1]
    assert labels[users == 1].tolist() == [split_mod.TRAIN]
    codes, ids = encode_ids(np.array(["b", "a", "c", "a"]))
    assert ids.tolist() == ["a", "b", "c"] and codes.tolist() == [1, 0, 2, 0]


# ------------------------------------------------------------------------------------------------- sources


def test_file_uri_and_memory_filesystem(synthetic_lightgcn_dir: Path) -> None:
    local = load_dataset(str(synthetic_lightgcn_dir))
    as_uri = load_dataset(synthetic_lightgcn_dir.as_uri())
    assert pairs(as_uri.train) == pairs(local.train) and as_uri.content_hash == local.content_hash
    fs = fsspec.filesystem("memory")
    root = "/c2f-test-data-memfs"
    try:
        for name in ("train.txt", "test.txt"):
            fs.pipe(f"{root}/ds/{name}", (synthetic_lightgcn_dir / name).read_bytes())
        mem = load_dataset(f"memory://{root}/ds")
        assert pairs(mem.test) == pairs(local.test) and mem.content_hash == local.content_hash
        fs.pipe(f"{root}/bad/train.txt", b"0 1\n1 zz\n")
        with pytest.raises(DatasetError, match=r"memory://.*train\.txt:2: non-integer id 'zz'"):
            load_dataset(f"memory://{root}/bad")
    finally:
        fs.rm(root, recursive=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A local http.server on 127.0.0.1 (random port) serving tmp_path, in a thread; shut down afterwards."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.timeout(60)
def test_http_load(http_root: tuple[Path, str], synthetic_lightgcn_dir: Path, synthetic_csv: Path) -> None:
    root, base = http_root
    (root / "lg").mkdir()
    for name in ("train.txt", "test.txt"):
        (root / "lg" / name).write_bytes((synthetic_lightgcn_dir / name).read_bytes())
    (root / "t.csv").write_bytes(synthetic_csv.read_bytes())
    local = load_dataset(str(synthetic_lightgcn_dir))
    started = time.perf_counter()
    remote = load_dataset(f"{base}/lg")
    assert pairs(remote.train) == pairs(local.train) and pairs(remote.test) == pairs(local.test)
    assert remote.content_hash == local.content_hash and remote.uri == f"{base}/lg"
    remote_csv = load_dataset(f"{base}/t.csv")
    assert remote_csv.content_hash == hashlib.sha256(synthetic_csv.read_bytes()).hexdigest()
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(f"{base}/missing.csv")
    with pytest.raises(DatasetError):  # nothing listens on port 1: an error, never a hang or a crash
        load_dataset("http://127.0.0.1:1/x.csv")
    print(f"\nhttp loads and refusals: {time.perf_counter() - started:.2f} s")  # never a hang: the timeout marker


# ------------------------------------------------------------------------------------------------- item attributes


def _attribute_values(data: InteractionData) -> dict[str, list[str]]:
    from c2f.contract.attributes import ItemAttributes

    attrs = ItemAttributes.from_arrays(data.item_attributes)
    assert attrs is not None
    return attrs.item_values(np.arange(data.n_items))


def test_item_table_beside_an_interaction_table(tmp_path: Path) -> None:
    users, items, _, community = planted_communities(n_users=40, n_items=30, n_communities=3, seed=2)
    csv = write_interactions_csv(tmp_path / "plays.csv.gz", users, items)
    rows = [f"i{i},c{community[i]},{i * 1.5:g}\n" for i in range(30) if i != 4] + ["i999,c0,1\n"]  # i4 unlisted
    table = "item_id,community,price\n" + "".join(rows)
    (tmp_path / "plays.items.csv").write_text(table)
    data = load_dataset(str(csv))
    values = _attribute_values(data)
    for index, item_id in enumerate(data.item_ids.tolist()):
        i = int(item_id[1:])
        assert values["community"][index] == ("" if i == 4 else f"c{community[i]}")
        assert values["price"][index] == ("" if i == 4 else f"{i * 1.5:g}")
    stats = data.stats["item_attributes"]
    assert stats["file"] == "plays.items.csv" and stats["columns"] == ["community", "price"]
    assert stats["rows"] == 30 and stats["rows_without_interactions"] == 1 and stats["items_without_row"] == 1
    assert stats["sha256"] == hashlib.sha256(table.encode()).hexdigest()
    # the interactions' content hash is the interactions' own (unchanged by the attribute table)
    assert data.content_hash == hashlib.sha256(csv.read_bytes()).hexdigest()


def test_item_table_in_a_lightgcn_directory_as_parquet(tmp_path: Path) -> None:
    users, items, _, community = planted_communities(n_users=40, n_items=30, n_communities=3, seed=2)
    directory = write_lightgcn_dir(tmp_path / "ds", users, items)
    frame = pd.DataFrame({"item": np.arange(30), "community": [f"c{c}" for c in community], "stock": [None] + [7] * 29})
    frame.to_parquet(directory / "items.parquet")
    data = load_dataset(str(directory))
    values = _attribute_values(data)
    order = data.item_ids.astype(int)
    assert values["community"] == [f"c{community[i]}" for i in order]
    assert values["stock"] == ["" if i == 0 else "7" for i in order]  # integers as integers, a null as ""
    assert load_dataset(str(write_lightgcn_dir(tmp_path / "plain", users, items))).item_attributes == {}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("name,genre\ni1,jazz\n", r"items\.csv:1: missing column 'item'"),
        ("item,genre\n1,jazz\n2,rock\n1,pop\n", r"items\.csv:4: item '1' is listed twice"),
        ("item,genre\n1,jazz\n,rock\n", r"items\.csv:3: empty item id"),
        ("item,a:b\n1,jazz\n", r"items\.csv:1: attribute column 'a:b'"),
        ("", r"items\.csv:1: empty file"),
    ],
)
def test_bad_item_tables_name_the_line(tmp_path: Path, table: str, message: str) -> None:
    users, items, _, _ = planted_communities(n_users=20, n_items=10, n_communities=2, seed=1)
    directory = write_lightgcn_dir(tmp_path / "ds", users, items)
    (directory / "items.csv").write_text(table)
    with pytest.raises(DatasetError, match=message):
        load_dataset(str(directory))


# ------------------------------------------------------------------------------------------------- gowalla


@pytest.mark.gowalla
def test_gowalla_counts(gowalla_dir: Path) -> None:
    started = time.perf_counter()
    data = load_dataset(str(gowalla_dir))
    elapsed = time.perf_counter() - started
    print(f"\nGowalla load: {elapsed:.2f} s")
    assert (data.n_users, data.n_items) == (29858, 40981)
    assert data.stats["n_train_before_valid"] == 810128
    assert data.train.nnz + data.valid.nnz == 810128
    assert data.test.nnz == 217242
    assert data.stats["duplicates_dropped"] == 0 and data.stats["test_in_train_dropped"] == 0
    assert data.user_ids[0] == "343" and data.item_ids[0] == "8975"  # org ids from user_list / item_list
    check_split_invariants(data)
    # its time is a benchmark figure (printed above), not an assertion: it took 69 s on a loaded 2-core machine


def test_trainer_data_is_torch_free() -> None:
    code = "import sys, c2f.trainer.data, c2f.trainer.data.dataset; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
