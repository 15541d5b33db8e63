"""Artifact builders from known arrays (no trainer): random well-formed models (:mod:`benchmarks.artifacts`), their
PQ serving form, and a tiny hand-computable one."""

from __future__ import annotations

from typing import Any

import numpy as np

# the random well-formed artifacts live in benchmarks/ (benchmarks/chaos.py publishes them too); tests import them here
from benchmarks.artifacts import build_artifact, make_arrays, make_manifest  # noqa: F401


def with_pq(
    arrays: dict[str, np.ndarray], subspaces: int = 2, centroids: int = 8, seed: int = 0, item_scale: bool = False
) -> dict[str, np.ndarray]:
    """``arrays`` plus a random product-quantized serving form (pq_codes (N, M) uint8, pq_codebooks (M, K, d/M))
    for its N entities and d (read off user_ids, item_ids and the method's table); ``item_scale``: also a random
    positive pq_item_scale (n_items,) float32."""
    rng = np.random.default_rng(seed)
    n = len(arrays["user_ids"]) + len(arrays["item_ids"])
    d = arrays[next(name for name in ("H_full", "H_meta", "hash_table", "qr_R") if name in arrays)].shape[1]
    out = dict(arrays)
    out["pq_codes"] = rng.integers(0, centroids, (n, subspaces)).astype(np.uint8)
    out["pq_codebooks"] = rng.standard_normal((subspaces, centroids, d // subspaces)).astype(np.float32)
    if item_scale:
        out["pq_item_scale"] = rng.uniform(0.5, 2.0, len(arrays["item_ids"])).astype(np.float32)
    return out


def tiny_known_arrays() -> dict[str, np.ndarray]:
    """A 2-user, 5-item LEGCF model small enough to score by hand (m_c = 2, t_c = 2, d = 2).

    H_meta = [[1, 0], [0, 1]] so each entity's served vector is just its weights (w_0, w_1) placed on axes 0/1.
        u0 = (1, 0.5)     u1 = (0, 1)
        i0 = (1, 0)       scores u0: 1.0    u1: 0
        i1 = (0, 1)                  0.5        1
        i2 = (2, 1)                  2.5        1      <- u0 has seen i2 (graph)
        i3 = (0.2, 3)                1.7        3      <- u0 has i3 held out (seen)
        i4 = (1.5, -1)               1.0        -1
    u0 top-3 without seen: i0 (1.0), i4 (1.0), i1 (0.5)   [tie i0/i4 broken by index]
    u0 top-3 with seen:    i2 (2.5), i3 (1.7), i0 (1.0)
    u1 (sees i0) top-2:    i3 (3.0), i1 (1.0)             [i1 and i2 tie at 1.0 -> lower index]
    """
    w_users = [[1.0, 0.5], [0.0, 1.0]]
    w_items = [[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.2, 3.0], [1.5, -1.0]]
    n = 7
    return {
        "user_ids": np.array(["alice", "bob"]),
        "item_ids": np.array(["i0", "i1", "i2", "i3", "i4"]),
        "graph_indptr": np.array([0, 1, 2], dtype=np.int64),
        "graph_indices": np.array([2, 0], dtype=np.int32),
        "heldout_indptr": np.array([0, 1, 1], dtype=np.int64),
        "heldout_indices": np.array([3], dtype=np.int32),
        "S_c_idx": np.tile(np.array([0, 1], dtype=np.int32), (n, 1)),
        "S_c_w": np.ones((n, 2), dtype=np.float32),
        "S_c_idx_served": np.tile(np.array([0, 1], dtype=np.int32), (n, 1)),
        "S_c_w_served": np.array(w_users + w_items, dtype=np.float32),
        "H_meta": np.eye(2, dtype=np.float32),
        "E_c": np.eye(2, dtype=np.float32),
    }


def dense_reconstruction(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """(N, d) S_c_w_served · H_meta computed the slow, obvious way (reference for compressed scoring)."""
    idx, w, H = arrays["S_c_idx_served"], arrays["S_c_w_served"], arrays["H_meta"]
    out = np.zeros((idx.shape[0], H.shape[1]), dtype=np.float64)
    for r in range(idx.shape[0]):
        for j in range(idx.shape[1]):
            out[r] += float(w[r, j]) * H[idx[r, j]].astype(np.float64)
    return out


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response has ``status`` and the JSON error shape with ``code``; returns the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def planted_ud_arrays(
    communities: int = 4, users_per: int = 10, items_per: int = 12, seen: int = 5, seed: int = 0
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A ud model with planted communities, no training: d = ``communities``; an item of community c has the vector
    e_c (plus 5% noise) and a popularity-like norm, a user of community c the vector 2·e_c and ``seen`` graph items
    of its own community. Returns (arrays, community of each item (n_items,))."""
    rng = np.random.default_rng(seed)
    n_users, n_items = communities * users_per, communities * items_per
    user_comm = np.arange(n_users) % communities
    item_comm = np.arange(n_items) % communities
    eye = np.eye(communities, dtype=np.float32)
    items = eye[item_comm] * rng.uniform(0.5, 1.5, (n_items, 1)) + 0.05 * rng.standard_normal((n_items, communities))
    users = 2.0 * eye[user_comm]
    rows = [np.sort(rng.choice(np.flatnonzero(item_comm == c), size=seen, replace=False)) for c in user_comm]
    table = np.vstack([users, items]).astype(np.float32)
    arrays = {
        "user_ids": np.array([f"u{i}" for i in range(n_users)]),
        "item_ids": np.array([f"i{i}" for i in range(n_items)]),
        "graph_indptr": np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64),
        "graph_indices": np.concatenate(rows).astype(np.int32),
        "heldout_indptr": np.zeros(n_users + 1, dtype=np.int64),
        "heldout_indices": np.zeros(0, dtype=np.int32),
        "E": table,
        "H_full": table,
    }
    return arrays, item_comm
