"""``load_dataset(uri) -> InteractionData``: the one entry point from a dataset URI to train/valid/test matrices.

Torch-free (numpy / scipy / pandas / fsspec only).

Protocol (what ``stats["split"]`` describes):

* LightGCN directory with ``test.txt``: that test split is used as is (test pairs already in train are removed,
  test pairs of users without any train item are dropped: such users cannot be scored).
* Anything else (tables, or a LightGCN directory without ``test.txt``): per user, seeded, 10% test and
  ``valid_fraction`` valid, the rest train -- the *latest* interactions when a timestamp column exists, random ones
  otherwise. Every user keeps at least one train interaction.
* Validation for early stopping (``valid_from="train"``, LightGCN with a test file): ``valid_fraction`` of each
  user's train items (round half up, at least one for users with >= 2 train items, never the last one), seeded.
* ``valid_from="test"`` (the reference code's protocol): per user ceil(|test_u| / 3) test items go to validation,
  the rest stay test.

``content_hash`` is the sha256 of the bytes as stored (before decompression). For a single file that is exactly
``sha256sum file``; for a LightGCN directory the present files are hashed in the order train.txt, test.txt,
user_list.txt, item_list.txt, each preceded by ``b"<name>\\0<size>\\0"`` so that file boundaries count.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from c2f.contract.attributes import MAX_ATTRIBUTES, encode_attributes
from c2f.trainer.data import idmap, split
from c2f.trainer.data.memory import release_freed_memory
from c2f.trainer.data.readers import (
    LIGHTGCN_FILES,
    DatasetError,
    LightGCNFile,
    Source,
    decompress,
    open_source,
    parse_id_list,
    parse_lightgcn,
    read_item_table,
    read_table,
    strip_compression,
    table_format,
)

__all__ = ["DatasetError", "InteractionData", "load_dataset"]

log = logging.getLogger(__name__)

TEST_FRACTION = 0.1
# ids must be (nearly) contiguous remap ids in the LightGCN format: refuse id spaces far larger than the data
_MAX_SPARSITY = 16
_MAX_SLACK = 1_000_000


@dataclass
class InteractionData:
    train: sp.csr_matrix  # (n_users, n_items) float32 0/1, the graph and BPR positives
    valid: sp.csr_matrix  # (n_users, n_items) held out for early stopping (may be empty)
    test: sp.csr_matrix  # (n_users, n_items)
    user_ids: np.ndarray  # (n_users,) str external ids
    item_ids: np.ndarray  # (n_items,) str
    uri: str
    content_hash: str
    stats: dict[str, Any] = field(default_factory=dict)
    # the item attribute table (items.csv / items.parquet beside the interactions), encoded for these items as the
    # artifact stores it (c2f/contract/attributes.py); empty without one
    item_attributes: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(self.train.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.train.shape[1])

    @property
    def seen(self) -> sp.csr_matrix:
        """train + valid: every interaction known at test time (what test evaluation excludes)."""
        return _binary(self.train + self.valid)

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"InteractionData(uri={self.uri!r}, users={self.n_users}, items={self.n_items}, "
            f"train={s.get('n_train')}, valid={s.get('n_valid')}, test={s.get('n_test')}, "
            f"format={s.get('format')!r})"
        )


def _binary(m: sp.spmatrix) -> sp.csr_matrix:
    out = sp.csr_matrix(m, dtype=np.float32)
    out.sum_duplicates()
    out.data[:] = 1.0
    out.sort_indices()
    return out


def load_dataset(
    uri: str,
    *,
    seed: int = 2024,
    valid_fraction: float = 0.1,
    valid_from: Literal["train", "test"] = "train",
    storage_options: dict[str, Any] | None = None,
) -> InteractionData:
    """Read a dataset (LightGCN directory or CSV/TSV/Parquet table) from any fsspec URI and split it.

    Raises ``DatasetError`` (a ``ValueError``) whose message names the file, the line and the problem.
    """
    if not 0.0 <= float(valid_fraction) < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    if valid_from not in ("train", "test"):
        raise ValueError(f"valid_from must be 'train' or 'test', got {valid_from!r}")
    source = open_source(uri, storage_options)
    fmt = table_format(source.path)
    if fmt is not None:
        if not source.exists(source.path):
            raise DatasetError(f"{uri}: not found")
        data = _load_table(source, fmt, seed=seed, valid_fraction=valid_fraction, valid_from=valid_from)
        _attach_attributes(source, data, _table_attribute_files(source.path))
        release_freed_memory()  # the reader's temporaries, cached by the allocators (c2f/trainer/data/memory.py)
        return data
    if _find(source, "train.txt") is not None:
        data = _load_lightgcn(source, seed=seed, valid_fraction=valid_fraction, valid_from=valid_from)
        _attach_attributes(source, data, [source.child(f"items{ext}") for ext in ATTRIBUTE_EXTENSIONS])
        release_freed_memory()
        return data
    if source.fs is not None and source.exists(source.path) and not source.isfile(source.path):
        raise DatasetError(f"{uri}: directory without train.txt (not a LightGCN dataset)")
    if source.exists(source.path):
        raise DatasetError(
            f"{uri}: unsupported file type (expected .csv, .tsv, .parquet, optionally compressed, "
            "or a LightGCN directory)"
        )
    raise DatasetError(f"{uri}: not found")


# ----------------------------------------------------------------------------------------------------------------
# Item attribute tables
# ----------------------------------------------------------------------------------------------------------------

ATTRIBUTE_EXTENSIONS = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet")
"""Where an item attribute table is looked for: ``items<ext>`` in a LightGCN directory, ``<name>.items<ext>`` beside
an interaction table ``<name>.csv`` (the first that exists)."""


def _table_attribute_files(path: str) -> list[str]:
    """``data/plays.csv.gz`` -> ``data/plays.items.csv``, ``data/plays.items.csv.gz``, ..."""
    base = strip_compression(path.rstrip("/"))
    stem = base[: base.rfind(".")] if "." in base.rsplit("/", 1)[-1] else base
    return [f"{stem}.items{ext}" for ext in ATTRIBUTE_EXTENSIONS]


def _attach_attributes(source: Source, data: InteractionData, candidates: list[str]) -> None:
    """Read the first existing attribute table of ``candidates`` into ``data.item_attributes`` (and its stats)."""
    path = next((p for p in candidates if source.exists(p)), None)
    if path is None:
        return
    raw = source.read_raw(path)
    display = source.display(path)
    fmt = table_format(path)
    assert fmt is not None  # every candidate ends in a table extension
    table = read_item_table(decompress(raw, path, display), display, fmt, MAX_ATTRIBUTES)
    data.item_attributes = encode_attributes(data.item_ids, table.item_ids, table.columns)
    known = np.isin(table.item_ids, data.item_ids)
    data.stats["item_attributes"] = {
        "file": display.rsplit("/", 1)[-1],
        "sha256": hashlib.sha256(raw).hexdigest(),
        "columns": list(table.columns),
        "rows": int(table.item_ids.size),
        "rows_without_interactions": int((~known).sum()),
        "items_without_row": int(data.n_items - known.sum()),
    }
    if (~known).any():
        log.info("%s: %d items have no interactions and are ignored", display, int((~known).sum()))


# ----------------------------------------------------------------------------------------------------------------
# LightGCN directories
# ----------------------------------------------------------------------------------------------------------------


def _find(source: Source, name: str) -> str | None:
    for candidate in (name, name + ".gz"):
        path = source.child(candidate)
        if source.exists(path):
            return path
    return None


def _check_range(values: np.ndarray, lines: np.ndarray, limit: int, file: str, what: str, listing: str | None) -> None:
    bad = np.flatnonzero(values >= limit)
    if bad.size:
        pos = int(bad[0])
        where = f"not in {listing} ({limit} entries)" if listing else f"out of range (n={limit})"
        raise DatasetError(f"{file}:{int(lines[pos])}: {what} id {int(values[pos])} {where}")


def _load_lightgcn(source: Source, *, seed: int, valid_fraction: float, valid_from: str) -> InteractionData:
    hasher = hashlib.sha256()
    parsed: dict[str, LightGCNFile] = {}
    lists: dict[str, np.ndarray] = {}
    names: dict[str, str] = {}
    for base in LIGHTGCN_FILES:
        path = _find(source, base)
        if path is None:
            continue
        raw = source.read_raw(path)
        file_name = path.rsplit("/", 1)[-1]
        hasher.update(f"{file_name}\0{len(raw)}\0".encode())
        hasher.update(raw)
        display = source.display(path)
        names[base] = display
        data = decompress(raw, path, display)
        if base in ("train.txt", "test.txt"):
            parsed[base] = parse_lightgcn(data, display)
        else:
            lists[base] = parse_id_list(data, display)
    train = parsed["train.txt"]
    test = parsed.get("test.txt")
    files = [f for f in (train, test) if f is not None]

    # entity counts: the id lists when present, else the largest id seen + 1
    def count(kind: str, listing: str) -> tuple[int, np.ndarray | None]:
        if listing in lists:
            ids = lists[listing]
            for f in files:
                values, lines = (f.head_users, f.head_lines) if kind == "user" else (f.items, f.item_lines)
                _check_range(values, lines, len(ids), f.name, kind, names[listing])
            return len(ids), ids
        n = 0
        distinct = 0
        for f in files:
            values = f.head_users if kind == "user" else f.items
            if values.size:
                n = max(n, int(values.max()) + 1)
                distinct += int(np.unique(values).size)
        if n > _MAX_SPARSITY * distinct + _MAX_SLACK:
            for f in files:
                values, lines = (f.head_users, f.head_lines) if kind == "user" else (f.items, f.item_lines)
                if values.size and int(values.max()) + 1 == n:
                    pos = int(values.argmax())
                    raise DatasetError(
                        f"{f.name}:{int(lines[pos])}: {kind} id {n - 1} is far beyond the {distinct} ids used "
                        f"(LightGCN ids must be contiguous remap ids; add {listing} or use a CSV table)"
                    )
        return n, None

    n_users, user_list = count("user", "user_list.txt")
    n_items, item_list = count("item", "item_list.txt")
    user_ids = user_list if user_list is not None else idmap.integer_ids(n_users)
    item_ids = item_list if item_list is not None else idmap.integer_ids(n_items)

    if train.items.size == 0:
        raise DatasetError(f"{train.name}:1: no interactions (every line holds a user without items)")

    stats: dict[str, Any] = {"format": "lightgcn"}
    keep, dup_train = split.dedup_pairs(train.users, train.items, n_items)
    tr_u, tr_i = train.users[keep], train.items[keep]
    duplicates = dup_train

    if test is not None:
        keep, dup_test = split.dedup_pairs(test.users, test.items, n_items)
        te_u, te_i = test.users[keep], test.items[keep]
        duplicates += dup_test
        in_train = np.isin(
            split.pair_keys(te_u, te_i, n_items), split.pair_keys(tr_u, tr_i, n_items), assume_unique=True
        )
        stats["test_in_train_dropped"] = int(in_train.sum())
        if in_train.any():
            log.warning("%s: %d test interactions also in train were removed from test", test.name, in_train.sum())
        te_u, te_i = te_u[~in_train], te_i[~in_train]
        has_train = np.bincount(tr_u, minlength=n_users) > 0
        orphan = ~has_train[te_u]
        stats["test_users_without_train"] = int(np.unique(te_u[orphan]).size)
        stats["test_dropped_no_train"] = int(orphan.sum())
        if orphan.any():
            log.warning(
                "%s: dropped %d test interactions of %d users without train items (they cannot be scored)",
                test.name,
                orphan.sum(),
                stats["test_users_without_train"],
            )
        te_u, te_i = te_u[~orphan], te_i[~orphan]
        if valid_from == "train":
            moved = split.carve_from_train(tr_u, n_users, valid_fraction, seed=seed)
            va_u, va_i = tr_u[moved], tr_i[moved]
            tr_u, tr_i = tr_u[~moved], tr_i[~moved]
            protocol = (
                f"lightgcn test.txt; valid = {valid_fraction:g} of each user's train items "
                f"(>=1 when >=2 train items), seed {seed}"
            )
        else:
            moved = split.carve_from_test(te_u, n_users, seed=seed)
            va_u, va_i = te_u[moved], te_i[moved]
            te_u, te_i = te_u[~moved], te_i[~moved]
            protocol = f"lightgcn test.txt; valid = ceil(|test_u|/3) of each user's test items, seed {seed}"
    else:
        labels, protocol = _split_labels(tr_u, n_users, None, seed, valid_fraction, valid_from)
        va_u, va_i = tr_u[labels == split.VALID], tr_i[labels == split.VALID]
        te_u, te_i = tr_u[labels == split.TEST], tr_i[labels == split.TEST]
        tr_u, tr_i = tr_u[labels == split.TRAIN], tr_i[labels == split.TRAIN]
        protocol = "lightgcn train.txt only; " + protocol

    stats["duplicates_dropped"] = int(duplicates)
    if duplicates:
        log.warning("%s: dropped %d duplicated (user, item) pairs", source.uri, duplicates)
    return _assemble(
        source.uri,
        hasher.hexdigest(),
        (tr_u, tr_i),
        (va_u, va_i),
        (te_u, te_i),
        user_ids,
        item_ids,
        stats,
        protocol,
        valid_from,
    )


def _compact(codes: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop the ids no code refers to: codes renumbered 0..k-1 in the same (sorted) order, ids[used]."""
    used, inverse = np.unique(codes, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), ids[used]


def _split_labels(
    users: np.ndarray,
    n_users: int,
    timestamps: np.ndarray | None,
    seed: int,
    valid_fraction: float,
    valid_from: str,
) -> tuple[np.ndarray, str]:
    kind = "temporal (latest)" if timestamps is not None else "random"
    if valid_from == "train":
        labels = split.split_table(
            users,
            n_users,
            seed=seed,
            test_fraction=TEST_FRACTION,
            valid_fraction=valid_fraction,
            timestamps=timestamps,
        )
        protocol = (
            f"per-user {kind} split: test {TEST_FRACTION:g}, valid {valid_fraction:g}, rest train "
            f"(>=1 train item per user), seed {seed}"
        )
        return labels, protocol
    labels = split.split_table(
        users, n_users, seed=seed, test_fraction=TEST_FRACTION, valid_fraction=0.0, timestamps=timestamps
    )
    test_pos = np.flatnonzero(labels == split.TEST)
    moved = split.carve_from_test(users[test_pos], n_users, seed=seed)
    labels[test_pos[moved]] = split.VALID
    protocol = (
        f"per-user {kind} split: test {TEST_FRACTION:g}, rest train (>=1 train item per user); "
        f"valid = ceil(|test_u|/3) of each user's test items, seed {seed}"
    )
    return labels, protocol


# ----------------------------------------------------------------------------------------------------------------
# Interaction tables
# ----------------------------------------------------------------------------------------------------------------


def _load_table(source: Source, fmt: str, *, seed: int, valid_fraction: float, valid_from: str) -> InteractionData:
    raw = source.read_raw(source.path)
    content_hash = hashlib.sha256(raw).hexdigest()
    display = source.display(source.path)
    table = read_table(decompress(raw, source.path, display), display, fmt)
    stats: dict[str, Any] = {"format": fmt, "n_rows": int(table.users.size)}
    users, items, timestamps = table.users, table.items, table.timestamps
    user_ids, item_ids = table.user_ids, table.item_ids
    if table.weights is not None:
        positive = table.weights > 0
        stats["nonpositive_weight_dropped"] = int((~positive).sum())
        if not positive.any():
            raise DatasetError(f"{display}:{table.line(0)}: no interactions (every weight is <= 0)")
        users, items = users[positive], items[positive]
        timestamps = timestamps[positive] if timestamps is not None else None
        # ids whose every row was dropped are not entities (as if they never appeared)
        users, user_ids = _compact(users, user_ids)
        items, item_ids = _compact(items, item_ids)
    n_users, n_items = len(user_ids), len(item_ids)
    keep, duplicates = split.dedup_pairs(users, items, n_items, order_key=timestamps)
    users, items = users[keep], items[keep]
    timestamps = timestamps[keep] if timestamps is not None else None
    stats["duplicates_dropped"] = duplicates
    if duplicates:
        log.warning("%s: dropped %d duplicated (user, item) pairs", display, duplicates)
    labels, protocol = _split_labels(users, n_users, timestamps, seed, valid_fraction, valid_from)
    return _assemble(
        source.uri,
        content_hash,
        (users[labels == split.TRAIN], items[labels == split.TRAIN]),
        (users[labels == split.VALID], items[labels == split.VALID]),
        (users[labels == split.TEST], items[labels == split.TEST]),
        user_ids,
        item_ids,
        stats,
        protocol,
        valid_from,
    )


def _assemble(
    uri: str,
    content_hash: str,
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    stats: dict[str, Any],
    protocol: str,
    valid_from: str,
) -> InteractionData:
    n_users, n_items = len(user_ids), len(item_ids)
    matrices = [split.to_csr(u, i, n_users, n_items) for u, i in (train, valid, test)]
    out_stats: dict[str, Any] = {
        "n_users": n_users,
        "n_items": n_items,
        "n_train": int(matrices[0].nnz),
        "n_valid": int(matrices[1].nnz),
        "n_test": int(matrices[2].nnz),
        "n_test_users": int((np.diff(matrices[2].indptr) > 0).sum()),
        # training interactions before validation was carved out of them (== n_train when valid came from test)
        "n_train_before_valid": int(matrices[0].nnz + (matrices[1].nnz if valid_from == "train" else 0)),
        "duplicates_dropped": 0,
        "split": protocol,
    }
    out_stats.update(stats)
    return InteractionData(
        train=matrices[0],
        valid=matrices[1],
        test=matrices[2],
        user_ids=np.asarray(user_ids).astype(str),
        item_ids=np.asarray(item_ids).astype(str),
        uri=uri,
        content_hash=content_hash,
        stats=out_stats,
    )
