"""Full-ranking Recall@K / NDCG@K (the LightGCN protocol), vectorised and chunked over users with torch.

For every user with at least one truth item: score all items (``user_emb @ item_emb.T``), mask the ``exclude``
items (train, valid, ...) to -inf, take the top ``max(ks)`` and read the hits from a dense boolean mask of the
user's truth items. Recall@K = hits@K / |truth_u|; NDCG@K = DCG@K / IDCG@K with binary gains, discount
1 / log2(rank + 2) (rank 0-based) and IDCG over min(K, |truth_u|) ideal hits. Both are averaged over the evaluated
users (those with >= 1 truth item); ``n_users`` says how many that was.

At scale the evaluated users are a seeded sample (:func:`sample_users`): early stopping reads a fixed sample of
validation users every epoch, the final test evaluations a capped one. A sampled evaluation also reports each
metric's standard error ``<metric>_se`` = s / sqrt(n) (s: the per-user values' standard deviation, ddof 1) and
``n_eligible``, the number of users it was drawn from. Memory per chunk: O(rows x n_items) for the scores and the
truth mask, the excluded items set per chunk from the CSR rows (never a dense user x item mask).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from c2f.trainer.bars import shown as bars_shown

KS = (1, 5, 10, 20)
# upper bound on the elements of one (users x items) score chunk: 2**25 float32 = 128 MiB
_MAX_CHUNK_ELEMENTS = 2**25


def _as_tensor(x: Any, device: torch.device | None = None) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
    if t.dtype != torch.float32:
        t = t.float()
    return t.to(device) if device is not None else t


def _as_csr(m: Any, shape: tuple[int, int], what: str) -> sp.csr_matrix:
    out = sp.csr_matrix(m)
    if out.shape != shape:
        raise ValueError(f"{what} has shape {out.shape}, expected {shape}")
    return out


def metric_keys(ks: Sequence[int] = KS) -> list[str]:
    return [f"{name}@{k}" for k in ks for name in ("recall", "ndcg")]


def eligible_users(truth: sp.csr_matrix) -> np.ndarray:
    """(n,) int64 sorted indices of the users with at least one truth item."""
    return np.flatnonzero(np.diff(sp.csr_matrix(truth).indptr) > 0).astype(np.int64)


def sample_users(truth: sp.csr_matrix, size: int, seed: int, stream: int = 0) -> np.ndarray:
    """A seeded sample of ``size`` users among those with truth items (all of them when ``size`` is 0 or not
    smaller), sorted; (n,) int64. The same ``(truth, size, seed, stream)`` always gives the same users;
    ``stream`` separates independent samples drawn from one seed (e.g. validation vs test)."""
    users = eligible_users(truth)
    if size <= 0 or size >= users.size:
        return users
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5CA1E, int(stream)]))
    return np.sort(rng.choice(users, size=int(size), replace=False))


@torch.no_grad()
def evaluate(
    user_emb: Any,
    item_emb: Any,
    truth: sp.csr_matrix,
    exclude: sp.csr_matrix | Sequence[sp.csr_matrix] | None,
    ks: Sequence[int] = KS,
    chunk_size: int = 4096,
    users: np.ndarray | None = None,
    progress: str | None = None,
    item_bias: Any = None,
) -> dict[str, float]:
    """Recall@K and NDCG@K over all items for every user that has truth items (or the ``users`` among them).

    ``user_emb`` (n_users, d) and ``item_emb`` (n_items, d): torch tensors (any device; computed there) or numpy
    arrays. ``truth`` (n_users, n_items) CSR; ``exclude``: one CSR or a list of CSRs (e.g. ``[train, valid]``) whose
    items are never recommended. Returns ``{"recall@K": .., "ndcg@K": .., ..., "n_users": count}``.
    ``users`` (int array): evaluate only these users (a sample, :func:`sample_users`; users without truth items are
    skipped); the result then also holds ``"<metric>_se"`` standard errors and ``"n_eligible"``.
    ``progress``: a label for a progress bar over the chunks (None: no bar).
    ``item_bias`` (n_items,): added to every user's scores (score = u·i + b_i), a chunk at a time: folding it into
    the embeddings instead ([u, 1]·[i, b_i]) would copy both tables (0.7 GB at 1.3M entities, d = 128).
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    items = _as_tensor(item_emb)
    device = items.device
    users_t = _as_tensor(user_emb, device)
    if users_t.ndim != 2 or items.ndim != 2 or users_t.shape[1] != items.shape[1]:
        raise ValueError(f"embedding shapes do not match: users {tuple(users_t.shape)}, items {tuple(items.shape)}")
    n_users, n_items = int(users_t.shape[0]), int(items.shape[0])
    bias = None if item_bias is None else _as_tensor(item_bias, device).reshape(1, -1)
    if bias is not None and bias.shape[1] != n_items:
        raise ValueError(f"item_bias has {bias.shape[1]} values for {n_items} items")
    truth = _as_csr(truth, (n_users, n_items), "truth")
    if exclude is None:
        excludes: list[sp.csr_matrix] = []
    elif isinstance(exclude, Sequence):
        excludes = [_as_csr(m, (n_users, n_items), "exclude") for m in exclude if m is not None]
    else:
        excludes = [_as_csr(exclude, (n_users, n_items), "exclude")]

    n_truth = np.diff(truth.indptr)
    eval_users = np.flatnonzero(n_truth > 0)
    n_eligible = int(eval_users.size)
    sampled = users is not None
    if users is not None:
        chosen = np.sort(np.asarray(users, dtype=np.int64))
        chosen = chosen[np.r_[True, chosen[1:] != chosen[:-1]]] if chosen.size else chosen  # distinct
        if chosen.size and (chosen[0] < 0 or chosen[-1] >= n_users):
            raise ValueError(f"users must be in [0, {n_users})")
        eval_users = chosen[n_truth[chosen] > 0]
    result: dict[str, float] = {key: 0.0 for key in metric_keys(ks)}
    result["n_users"] = int(eval_users.size)
    if sampled:
        result.update({f"{key}_se": 0.0 for key in metric_keys(ks)})
        result["n_eligible"] = n_eligible
    if eval_users.size == 0 or n_items == 0:
        return result

    k_max = min(max(ks), n_items)
    discount = 1.0 / torch.log2(torch.arange(k_max, dtype=torch.float64, device=device) + 2.0)
    cum_discount = torch.cumsum(discount, 0)  # cum_discount[j] = IDCG with j+1 ideal hits
    recall_sum = {k: 0.0 for k in ks}
    ndcg_sum = {k: 0.0 for k in ks}
    # sums of squares of the per-user values, for the standard errors of a sample
    recall_sq = {k: 0.0 for k in ks}
    ndcg_sq = {k: 0.0 for k in ks}
    rows_per_chunk = max(1, min(int(chunk_size), _MAX_CHUNK_ELEMENTS // max(n_items, 1)))

    rows_per_chunk = min(rows_per_chunk, int(eval_users.size))
    # buffers reused across chunks (no per-chunk allocation / page faults); the truth mask is reset sparsely
    score_buf = torch.empty((rows_per_chunk, n_items), dtype=torch.float32, device=device)
    mask_buf = torch.zeros((rows_per_chunk, n_items), dtype=torch.bool, device=device)
    items_t = items.T

    starts = range(0, eval_users.size, rows_per_chunk)
    hidden = progress is None or len(starts) < 2 or not bars_shown()
    bar = tqdm(starts, desc=progress, leave=False, dynamic_ncols=True, disable=hidden)
    for start in bar:
        rows = eval_users[start : start + rows_per_chunk]
        n_rows = rows.size
        scores = score_buf[:n_rows]
        torch.matmul(users_t[torch.from_numpy(rows).to(device)], items_t, out=scores)  # (n_rows, n_items)
        if bias is not None:
            scores.add_(bias)
        for m in excludes:
            sub = m[rows]
            if sub.nnz:
                r = np.repeat(np.arange(n_rows), np.diff(sub.indptr))
                scores[
                    torch.from_numpy(r).to(device), torch.from_numpy(sub.indices.astype(np.int64)).to(device)
                ] = -torch.inf
        top_scores, top_idx = torch.topk(scores, k_max, dim=1)
        sub_truth = truth[rows]
        mask = mask_buf[:n_rows]
        r = np.repeat(np.arange(n_rows), np.diff(sub_truth.indptr))
        where = (torch.from_numpy(r).to(device), torch.from_numpy(sub_truth.indices.astype(np.int64)).to(device))
        mask[where] = True
        # an excluded item only appears in the top list when fewer than k_max items are left: never a hit
        hits = (mask.gather(1, top_idx) & (top_scores > -torch.inf)).to(torch.float64)  # (n_rows, k_max)
        mask[where] = False
        n_t = torch.from_numpy(n_truth[rows].astype(np.float64)).to(device)
        cum_hits = torch.cumsum(hits, 1)
        dcg = torch.cumsum(hits * discount, 1)
        for k in ks:
            kk = min(k, k_max)
            recall_u = cum_hits[:, kk - 1] / n_t
            ideal = cum_discount[(torch.clamp(n_t, max=kk) - 1).long()]
            ndcg_u = dcg[:, kk - 1] / ideal
            recall_sum[k] += float(recall_u.sum())
            ndcg_sum[k] += float(ndcg_u.sum())
            recall_sq[k] += float((recall_u * recall_u).sum())
            ndcg_sq[k] += float((ndcg_u * ndcg_u).sum())
    bar.close()

    count = float(eval_users.size)
    for k in ks:
        result[f"recall@{k}"] = recall_sum[k] / count
        result[f"ndcg@{k}"] = ndcg_sum[k] / count
        if sampled:
            result[f"recall@{k}_se"] = _standard_error(recall_sum[k], recall_sq[k], count)
            result[f"ndcg@{k}_se"] = _standard_error(ndcg_sum[k], ndcg_sq[k], count)
    return result


def _standard_error(total: float, squares: float, count: float) -> float:
    """s / sqrt(n) of n values from their sum and sum of squares (s with ddof 1; 0 for a single value)."""
    if count < 2:
        return 0.0
    variance = max(squares - total * total / count, 0.0) / (count - 1.0)
    return float(np.sqrt(variance / count))
