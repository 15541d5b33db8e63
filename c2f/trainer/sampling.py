"""Vectorised BPR triplet sampling: nnz triplets per epoch (every training interaction once, or users drawn uniformly as
LightGCN does), k uniform negatives each."""

from __future__ import annotations

from collections.abc import Iterator
from typing import get_args

import numpy as np
import scipy.sparse as sp

from c2f.contract.config import Sampling

SAMPLING = get_args(Sampling)


class BPRSampler:
    """Draws (user, positive item, negative items) batches from a binary (n_users, n_items) CSR matrix.

    Negatives are uniform over items and re-drawn (vectorised, a few rounds) when they hit a training positive.
    ``by="interactions"``: an epoch is a permutation of the nnz training pairs. ``by="users"``: an epoch is nnz draws
    of a user uniformly among those with training items, each with one of its positives uniformly (LightGCN's and
    NGCF's sampler): every user weighs the same, as in the per-user mean of Recall@K, where "interactions" weighs a
    user by its number of items.
    """

    def __init__(
        self,
        train: sp.csr_matrix,
        negatives: int = 1,
        seed: int = 0,
        max_redraws: int = 20,
        by: str = "interactions",
    ):
        if by not in SAMPLING:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLING)}; got {by!r}")
        train = sp.csr_matrix(train)
        train.sort_indices()
        self.n_users, self.n_items = train.shape
        self.negatives = negatives
        self.max_redraws = max_redraws
        self.users = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(train.indptr))
        self.items = train.indices.astype(np.int64)
        # Sorted keys u * n_items + i for O(log nnz) membership tests.
        self.keys = self.users * self.n_items + self.items
        self.rng = np.random.default_rng(seed)
        self.by = by
        degree = np.diff(train.indptr).astype(np.int64)
        self.active_users = np.flatnonzero(degree).astype(np.int64)  # (n_active,) users with training items
        self.active_start = train.indptr[self.active_users].astype(np.int64)  # their first pair's position
        self.active_degree = degree[self.active_users]

    def __len__(self) -> int:
        return len(self.users)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean array, same shape as ``items``: whether (user, item) is a training interaction."""
        keys = np.asarray(users * self.n_items + items)
        shape = keys.shape  # the broadcast shape of users and items, as before the queries were sorted
        keys = keys.ravel()
        # the queries sorted first: numpy's search narrows each from the previous one, so sorted queries walk the
        # keys once instead of a cache-missing binary search each
        order = np.argsort(keys)
        queries = keys[order]
        pos = np.minimum(np.searchsorted(self.keys, queries), len(self.keys) - 1)
        found = np.empty(len(keys), dtype=bool)
        found[order] = self.keys[pos] == queries
        return found.reshape(shape)

    def negatives_for(self, users: np.ndarray) -> np.ndarray:
        """(len(users), k) int64 items that are not training positives of their user (almost surely)."""
        shape = (len(users), self.negatives)
        neg = self.rng.integers(0, self.n_items, size=shape)
        users_2d = np.broadcast_to(users[:, None], shape)
        for _ in range(self.max_redraws):
            bad = self.is_positive(users_2d, neg)
            if not bad.any():
                break
            neg[bad] = self.rng.integers(0, self.n_items, size=int(bad.sum()))
        return neg

    def epoch(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yields (users (b,), positives (b,), negatives (b, k)) int64 batches, nnz triplets in all: every
        interaction once (``by="interactions"``) or uniform users with a uniform positive each (``by="users"``)."""
        if self.by == "users":
            order = self._user_uniform_pairs(len(self.users))
        else:
            order = self.rng.permutation(len(self.users))
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            users = self.users[chosen]
            yield users, self.items[chosen], self.negatives_for(users)

    def _user_uniform_pairs(self, n: int) -> np.ndarray:
        """(n,) int64 positions of training pairs: a uniform active user each, then a uniform pair of that user."""
        picked = self.rng.integers(0, len(self.active_users), size=n)
        offset = (self.rng.random(n) * self.active_degree[picked]).astype(np.int64)
        return self.active_start[picked] + np.minimum(offset, self.active_degree[picked] - 1)
