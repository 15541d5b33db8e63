"""Planted-community interaction data: the one generator of synthetic data, for the tests, the benchmarks and
``c2f demo`` (numpy only at import time; fast, < 1 s).

Users and items are split into ``n_communities`` communities; each user draws its items from its own community
with probability ``p_in`` (else from the other communities), with a mild popularity skew inside every community.
A model that learns the communities beats the popularity baseline by a wide margin on Recall@20.

    users, items, cu, ci = planted_communities()
    write_lightgcn_dir(tmp / "ds", users, items)         # train.txt / test.txt (+ optional id lists)
    write_interactions_csv(tmp / "ds.csv", users, items)  # user,item with ids "u17" / "i3"
    data = load_dataset(str(tmp / "ds"))
    popularity_recall(data)                               # the baseline Recall@20 to beat
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def planted_communities(
    n_users: int = 600,
    n_items: int = 400,
    n_communities: int = 8,
    items_per_user: tuple[int, int] = (8, 20),
    p_in: float = 0.9,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unique interaction pairs ``(users, items)`` sorted by (user, item); every user has between
    ``items_per_user[0]`` and ``items_per_user[1]`` items (inclusive). Memory is O(n_users * n_items): meant for
    test-sized data.

    Returns ``(users, items, community_of_user, community_of_item)``, all int64.
    """
    lo, hi = items_per_user
    if not 1 <= lo <= hi:
        raise ValueError(f"items_per_user must satisfy 1 <= lo <= hi, got {items_per_user}")
    if n_communities < 1 or n_items < n_communities or n_users < 1:
        raise ValueError("need n_users >= 1 and n_items >= n_communities >= 1")
    rng = np.random.default_rng(seed)
    community_of_user = rng.permutation(np.arange(n_users) % n_communities).astype(np.int64)
    community_of_item = rng.permutation(np.arange(n_items) % n_communities).astype(np.int64)
    hi = min(hi, n_items)
    lo = min(lo, hi)

    # item popularity inside its community: mild Zipf (weight 1/sqrt(rank+1)) over a random ranking
    weight = np.empty(n_items)
    for c in range(n_communities):
        members = np.flatnonzero(community_of_item == c)
        ranks = rng.permutation(members.size)
        weight[members] = 1.0 / np.sqrt(ranks + 1.0)
    probs = np.empty((n_communities, n_items))
    for c in range(n_communities):
        inside = community_of_item == c
        p = np.where(inside, p_in * weight / weight[inside].sum(), 0.0)
        if (~inside).any():
            p += np.where(~inside, (1.0 - p_in) * weight / weight[~inside].sum(), 0.0)
        else:
            p = weight / weight.sum()
        probs[c] = p / p.sum()

    counts = rng.integers(lo, hi + 1, size=n_users)
    # Gumbel top-k: sampling without replacement from ``probs`` for all users at once
    gumbel = rng.gumbel(size=(n_users, n_items))
    keys = np.log(probs[community_of_user] + 1e-300) + gumbel
    order = np.argsort(-keys, axis=1)
    take = np.arange(n_items)[None, :] < counts[:, None]
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    items = order[take].astype(np.int64)
    sort = np.lexsort((items, users))
    return users[sort], items[sort], community_of_user, community_of_item


def _per_user_test_mask(users: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_users = int(users.max()) + 1 if users.size else 0
    rand = rng.random(users.size)
    order = np.lexsort((rand, users))
    counts = np.bincount(users, minlength=n_users)
    starts = np.cumsum(counts) - counts
    rank = np.empty(users.size, dtype=np.int64)
    rank[order] = np.arange(users.size) - starts[users[order]]
    k = np.floor(counts * test_fraction + 0.5).astype(np.int64)
    k = np.where((k == 0) & (counts >= 2) & (test_fraction > 0), 1, k)
    k = np.minimum(k, np.maximum(counts - 1, 0))
    return rank < k[users]


def _write_text(path: Path, text: str) -> None:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def _lightgcn_lines(users: np.ndarray, items: np.ndarray, n_users: int) -> str:
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    bounds = np.searchsorted(users, np.arange(n_users + 1))
    lines = []
    for u in range(n_users):
        row = items[bounds[u] : bounds[u + 1]]
        if row.size:
            lines.append(f"{u} " + " ".join(map(str, row.tolist())))
    return "\n".join(lines) + "\n"


def write_lightgcn_dir(
    path: str | Path,
    users: np.ndarray,
    items: np.ndarray,
    test_fraction: float = 0.2,
    seed: int = 0,
    *,
    with_lists: bool = False,
    user_names: Sequence[str] | None = None,
    item_names: Sequence[str] | None = None,
) -> Path:
    """Write ``train.txt`` / ``test.txt`` (LightGCN format) with a per-user random ``test_fraction`` test split
    (every user keeps >= 1 train item). ``with_lists`` also writes ``user_list.txt`` / ``item_list.txt`` with org
    ids ``user_names`` / ``item_names`` (default ``"u<k>"`` / ``"i<k>"``). Returns the directory."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    n_users = int(users.max()) + 1
    n_items = int(items.max()) + 1
    test = _per_user_test_mask(users, test_fraction, seed)
    _write_text(out / "train.txt", _lightgcn_lines(users[~test], items[~test], n_users))
    _write_text(out / "test.txt", _lightgcn_lines(users[test], items[test], n_users))
    if with_lists:
        users_named = user_names if user_names is not None else [f"u{u}" for u in range(n_users)]
        items_named = item_names if item_names is not None else [f"i{i}" for i in range(n_items)]
        _write_text(
            out / "user_list.txt", "org_id remap_id\n" + "".join(f"{n} {u}\n" for u, n in enumerate(users_named))
        )
        _write_text(
            out / "item_list.txt", "org_id remap_id\n" + "".join(f"{n} {i}\n" for i, n in enumerate(items_named))
        )
    return out


def write_interactions_csv(
    path: str | Path,
    users: np.ndarray,
    items: np.ndarray,
    with_ids_prefix: bool = True,
    *,
    timestamps: np.ndarray | None = None,
    sep: str = ",",
) -> Path:
    """Write a ``user,item[,timestamp]`` table (``.gz`` suffix -> gzip). With ``with_ids_prefix`` the ids are the
    strings ``"u17"`` / ``"i3"``, else the integers. Returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    u = [f"u{x}" if with_ids_prefix else str(x) for x in np.asarray(users).tolist()]
    i = [f"i{x}" if with_ids_prefix else str(x) for x in np.asarray(items).tolist()]
    header = ["user", "item"] + (["timestamp"] if timestamps is not None else [])
    columns: list[list[Any]] = [u, i] + ([np.asarray(timestamps).tolist()] if timestamps is not None else [])
    rows = [sep.join(map(str, row)) for row in zip(*columns, strict=True)]
    _write_text(out, sep.join(header) + "\n" + "\n".join(rows) + "\n")
    return out


def popularity_metrics(data: Any, ks: tuple[int, ...] = (20,)) -> dict[str, float]:
    """Recall@k and NDCG@k on ``data.test`` of the popularity baseline (every user gets the items ranked by their
    train counts; train and valid items excluded, as for a trained model): ``{"recall@20": .., "ndcg@20": ..}``."""
    from c2f.trainer.evaluate import evaluate  # lazy: keeps this module torch-free at import time

    popularity = np.asarray(data.train.sum(axis=0), dtype=np.float32).reshape(-1, 1)
    ones = np.ones((data.n_users, 1), dtype=np.float32)
    return evaluate(ones, popularity, data.test, [data.train, data.valid], ks=ks)


def popularity_recall(data: Any, k: int = 20) -> float:
    """Recall@k on ``data.test`` of the popularity baseline (:func:`popularity_metrics`)."""
    return float(popularity_metrics(data, (k,))[f"recall@{k}"])
