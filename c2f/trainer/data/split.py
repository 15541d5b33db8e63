"""Vectorised per-user splitting (no Python loop over users).

The trick used throughout: give every interaction a sort key (a timestamp and/or a seeded random number),
``np.lexsort`` by (user, key), and read each interaction's rank within its user from the user's start offset
(an ``indptr`` built by ``bincount``). A per-user quota ``k_u`` then selects "the last k_u" or "the first k_u"
interactions of every user at once.

Labels: ``TRAIN = 0``, ``VALID = 1``, ``TEST = 2``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

TRAIN, VALID, TEST = 0, 1, 2


def rng_for(seed: int, stage: int) -> np.random.Generator:
    """Independent, reproducible streams per split stage (so changing one stage never reshuffles another)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stage)]))


def per_user_rank(users: np.ndarray, n_users: int, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank (0-based) of every interaction within its user, ordered by ``keys`` (first key most significant).

    Returns ``(rank, counts)`` where ``counts[u]`` is the number of interactions of user ``u``.
    """
    users = np.asarray(users, dtype=np.int64)
    counts = np.bincount(users, minlength=n_users).astype(np.int64)
    if users.size == 0:
        return np.zeros(0, dtype=np.int64), counts
    # np.lexsort sorts by the LAST key first
    order = np.lexsort(tuple(reversed(keys)) + (users,)) if keys else np.argsort(users, kind="stable")
    starts = np.cumsum(counts) - counts
    rank = np.empty(users.size, dtype=np.int64)
    rank[order] = np.arange(users.size, dtype=np.int64) - starts[users[order]]
    return rank, counts


def quota(counts: np.ndarray, fraction: float, available: np.ndarray | None = None) -> np.ndarray:
    """Per-user number of interactions to hold out: round(fraction * count), at least 1 for users with >= 2
    interactions (when fraction > 0), and never more than ``available`` (default count - 1: one stays in train)."""
    counts = np.asarray(counts, dtype=np.int64)
    if fraction <= 0:
        return np.zeros_like(counts)
    k = np.floor(counts * float(fraction) + 0.5).astype(np.int64)
    k = np.where((k == 0) & (counts >= 2), 1, k)
    cap = counts - 1 if available is None else np.asarray(available, dtype=np.int64)
    return np.clip(k, 0, np.maximum(cap, 0))


def split_table(
    users: np.ndarray,
    n_users: int,
    *,
    seed: int,
    test_fraction: float = 0.1,
    valid_fraction: float = 0.1,
    timestamps: np.ndarray | None = None,
) -> np.ndarray:
    """Per-user train/valid/test labels for a table without its own split.

    Random (seeded) per user, or temporal when ``timestamps`` is given (ties broken by the seeded random key):
    the latest ``test_fraction`` of each user's interactions are test, the previous ``valid_fraction`` valid.
    Every user keeps at least one train interaction.
    """
    rand = rng_for(seed, 1).random(len(users))
    keys = (timestamps, rand) if timestamps is not None else (rand,)
    rank, counts = per_user_rank(users, n_users, *keys)
    n_test = quota(counts, test_fraction)
    n_valid = quota(counts, valid_fraction, available=counts - 1 - n_test)
    cnt = counts[users]
    labels = np.full(len(users), TRAIN, dtype=np.int8)
    labels[rank >= cnt - n_test[users] - n_valid[users]] = VALID
    labels[rank >= cnt - n_test[users]] = TEST
    return labels


def carve_from_train(users: np.ndarray, n_users: int, fraction: float, *, seed: int) -> np.ndarray:
    """Boolean mask of train interactions moved to validation: ``quota(count, fraction)`` random items per user
    (users with a single train item give none)."""
    rand = rng_for(seed, 2).random(len(users))
    rank, counts = per_user_rank(users, n_users, rand)
    return rank < quota(counts, fraction)[users]


def carve_from_test(users: np.ndarray, n_users: int, *, seed: int) -> np.ndarray:
    """Boolean mask of test interactions moved to validation, the reference code's protocol:
    ceil(|test_u| / 3) random test items of every user (at least one when the user has any)."""
    rand = rng_for(seed, 3).random(len(users))
    rank, counts = per_user_rank(users, n_users, rand)
    k = (counts + 2) // 3
    return rank < k[users]


def dedup_pairs(
    users: np.ndarray, items: np.ndarray, n_items: int, order_key: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Indices of the first occurrence of every (user, item) pair, sorted by (user, item); and the number dropped.

    With ``order_key`` (e.g. timestamps) the kept occurrence is the one with the smallest key.
    """
    key = np.asarray(users, dtype=np.int64) * np.int64(n_items) + np.asarray(items, dtype=np.int64)
    if order_key is None:
        _, first = np.unique(key, return_index=True)
    else:
        order = np.lexsort((order_key, key))
        sorted_key = key[order]
        keep = np.ones(len(order), dtype=bool)
        keep[1:] = sorted_key[1:] != sorted_key[:-1]
        first = order[keep]
    return first.astype(np.int64), int(len(key) - len(first))


def pair_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    return np.asarray(users, dtype=np.int64) * np.int64(n_items) + np.asarray(items, dtype=np.int64)


def to_csr(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary float32 CSR with sorted indices from unique (user, item) pairs."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    order = np.lexsort((items, users))
    counts = np.bincount(users, minlength=n_users)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    index_dtype = np.int32 if max(n_items, len(users)) < 2**31 else np.int64
    matrix = sp.csr_matrix(
        (
            np.ones(len(users), dtype=np.float32),
            items[order].astype(index_dtype),
            indptr.astype(index_dtype),
        ),
        shape=(n_users, n_items),
    )
    matrix.has_sorted_indices = True
    return matrix
