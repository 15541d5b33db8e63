"""Artifact builders from known arrays (no trainer): random well-formed models and a tiny hand-computable one."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from c2f.contract.artifact import publish


def _csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    indices = np.array([i for r in rows for i in r], dtype=np.int32)
    return indptr, indices


def make_arrays(
    method: str = "c2f",
    *,
    n_users: int = 6,
    n_items: int = 10,
    d: int = 4,
    m_c: int = 5,
    t_c: int = 2,
    m_r: int = 3,
    t_r: int = 2,
    seen_per_user: int = 2,
    seed: int = 0,
    buckets: int = 4,
) -> dict[str, np.ndarray]:
    """A random, valid artifact array set. Users see ``seen_per_user`` graph items and one held-out item.
    ``buckets``: hash's B, qr's m (rows of the remainder table)."""
    rng = np.random.default_rng(seed)
    n = n_users + n_items
    graph_rows, heldout_rows = [], []
    for _ in range(n_users):
        picks = rng.choice(n_items, size=min(n_items, seen_per_user + 1), replace=False)
        graph_rows.append(sorted(int(i) for i in picks[:-1]))
        heldout_rows.append([int(picks[-1])])
    g_ptr, g_idx = _csr(graph_rows)
    h_ptr, h_idx = _csr(heldout_rows)
    arrays: dict[str, np.ndarray] = {
        "user_ids": np.array([f"u{i}" for i in range(n_users)]),
        "item_ids": np.array([f"i{i}" for i in range(n_items)]),
        "graph_indptr": g_ptr,
        "graph_indices": g_idx,
        "heldout_indptr": h_ptr,
        "heldout_indices": h_idx,
    }
    if method == "ud":
        arrays["E"] = rng.standard_normal((n, d)).astype(np.float32)
        arrays["H_full"] = rng.standard_normal((n, d)).astype(np.float32)
        return arrays
    if method == "hash":
        arrays["hash_table"] = rng.standard_normal((buckets, d)).astype(np.float32)
        return arrays
    if method == "qr":
        arrays["qr_Q"] = rng.standard_normal((-(-n // buckets), d)).astype(np.float32)
        arrays["qr_R"] = rng.standard_normal((buckets, d)).astype(np.float32)
        return arrays
    arrays["S_c_idx"] = np.stack([rng.choice(m_c, size=t_c, replace=False) for _ in range(n)]).astype(np.int32)
    arrays["S_c_w"] = rng.uniform(0.1, 1.0, (n, t_c)).astype(np.float32)
    arrays["S_c_idx_served"] = np.stack([rng.choice(m_c, size=t_c, replace=False) for _ in range(n)]).astype(np.int32)
    arrays["S_c_w_served"] = rng.uniform(-0.5, 1.0, (n, t_c)).astype(np.float32)
    arrays["H_meta"] = rng.standard_normal((m_c, d)).astype(np.float32)
    arrays["E_c"] = rng.standard_normal((m_c, d)).astype(np.float32)
    if method == "c2f":
        arrays["S_r_idx"] = np.stack([rng.choice(m_r, size=t_r, replace=False) for _ in range(m_c)]).astype(np.int32)
        arrays["S_r_w"] = rng.uniform(0.0, 1.0, (m_c, t_r)).astype(np.float32)
        dense = rng.standard_normal((m_r, d)).astype(np.float32)
        dense[np.abs(dense) < 0.7] = 0.0
        rows = [[int(c) for c in np.flatnonzero(r)] for r in dense]
        e_ptr, e_idx = _csr(rows)
        arrays["E_r_indptr"] = e_ptr
        arrays["E_r_indices"] = e_idx
        arrays["E_r_data"] = dense[dense != 0].astype(np.float32)
    return arrays


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


def make_manifest(method: str = "c2f", *, layers: int = 2, w_cr: float = 0.5, **extra: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "method": method,
        "dataset": {"uri": "file://synthetic", "content_hash": "0" * 64, "stats": {}},
        "config": {"method": method, "layers": layers},
        "shape": {"layers": layers},
        "w_cr": w_cr,
        "soft_lambda": 0.1,
        "metrics": {
            "trained": {"valid": {"recall@20": 0.2}, "test": {"recall@20": 0.19}},
            "served": {"compressed": {"test": {"recall@20": 0.18}}, "exact": {"test": {"recall@20": 0.19}}},
            "history": [],
            "timings": {"fit_seconds": 1.0},
        },
    }
    if method == "hash":
        manifest["hash_seed"] = 11
    if method == "qr":
        manifest["qr_combine"] = "mult"
    manifest.update(extra)
    return manifest


def build_artifact(
    root: str | Path,
    method: str = "c2f",
    *,
    arrays: dict[str, np.ndarray] | None = None,
    manifest: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
    **kwargs: Any,
) -> str:
    """Publish a fixture artifact under ``root``; returns the version name."""
    arrays = arrays if arrays is not None else make_arrays(method, **kwargs)
    manifest = copy.deepcopy(manifest) if manifest is not None else make_manifest(method)
    return publish(root, arrays, manifest, extra_files or {})


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


def load_benchmark(name: str) -> Any:
    """Import ``benchmarks/<name>.py`` as a module (benchmarks/ is not a package), registered as ``<name>_bench``."""
    import importlib.util
    import sys

    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    if str(benchmarks) not in sys.path:
        sys.path.insert(0, str(benchmarks))  # a benchmark may import another (budget.py reads train_gowalla.py)
    spec = importlib.util.spec_from_file_location(f"{name}_bench", benchmarks / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"{name}_bench"] = module
    spec.loader.exec_module(module)
    return module
