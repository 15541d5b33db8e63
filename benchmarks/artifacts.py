"""Fixture artifacts from random arrays (no trainer): a well-formed model of any method, published as a version.

Used by benchmarks/chaos.py and benchmarks/faults.py, and by the tests (tests/fixtures.py re-exports them).
"""

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
