"""External string ids <-> contiguous integer indices (deterministic: sorted order)."""

from __future__ import annotations

import numpy as np


def encode_ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map arbitrary string ids to 0..n-1 in sorted (lexicographic) order.

    Returns ``(codes, ids)`` with ``ids[codes[k]] == values[k]``; ``codes`` is int64, ``ids`` a ``<U`` array.
    """
    arr = np.asarray(values).astype(str)
    ids, codes = np.unique(arr, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), ids


def integer_ids(n: int) -> np.ndarray:
    """External ids for integer-indexed data without a mapping file: ``"0", "1", ...``."""
    return np.arange(n, dtype=np.int64).astype(str)


def index_of(ids: np.ndarray) -> dict[str, int]:
    """``{external id: index}`` for lookups."""
    return {str(v): i for i, v in enumerate(ids.tolist())}


def lookup(ids: np.ndarray, wanted: np.ndarray | list[str]) -> np.ndarray:
    """Indices of ``wanted`` external ids in the sorted-or-not ``ids`` array; -1 where absent (vectorised)."""
    ids = np.asarray(ids).astype(str)
    query = np.asarray(wanted).astype(str)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    pos = np.searchsorted(sorted_ids, query)
    pos_clipped = np.minimum(pos, max(len(ids) - 1, 0))
    if len(ids) == 0:
        return np.full(query.shape, -1, dtype=np.int64)
    found = sorted_ids[pos_clipped] == query
    return np.where(found, order[pos_clipped], -1).astype(np.int64)
