"""Full-ranking Recall@K / NDCG@K (the LightGCN protocol), vectorised and chunked over users with torch.

For every user with at least one truth item: score all items (``user_emb @ item_emb.T``), mask the ``exclude``
items (train, valid, ...) to -inf, take the top ``max(ks)`` and read the hits from a dense boolean mask of the
user's truth items. Recall@K = hits@K / |truth_u|; NDCG@K = DCG@K / IDCG@K with binary gains, discount
1 / log2(rank + 2) (rank 0-based) and IDCG over min(K, |truth_u|) ideal hits. Both are averaged over the evaluated
users (those with >= 1 truth item); ``n_users`` says how many that was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

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


@torch.no_grad()
def evaluate(
    user_emb: Any,
    item_emb: Any,
    truth: sp.csr_matrix,
    exclude: sp.csr_matrix | Sequence[sp.csr_matrix] | None,
    ks: Sequence[int] = KS,
    chunk_size: int = 4096,
) -> dict[str, float]:
    """Recall@K and NDCG@K over all items for every user that has truth items.

    ``user_emb`` (n_users, d) and ``item_emb`` (n_items, d): torch tensors (any device; computed there) or numpy
    arrays. ``truth`` (n_users, n_items) CSR; ``exclude``: one CSR or a list of CSRs (e.g. ``[train, valid]``) whose
    items are never recommended. Returns ``{"recall@K": .., "ndcg@K": .., ..., "n_users": count}``.
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
    truth = _as_csr(truth, (n_users, n_items), "truth")
    if exclude is None:
        excludes: list[sp.csr_matrix] = []
    elif isinstance(exclude, Sequence):
        excludes = [_as_csr(m, (n_users, n_items), "exclude") for m in exclude if m is not None]
    else:
        excludes = [_as_csr(exclude, (n_users, n_items), "exclude")]

    n_truth = np.diff(truth.indptr)
    eval_users = np.flatnonzero(n_truth > 0)
    result: dict[str, float] = {key: 0.0 for key in metric_keys(ks)}
    result["n_users"] = int(eval_users.size)
    if eval_users.size == 0 or n_items == 0:
        return result

    k_max = min(max(ks), n_items)
    discount = 1.0 / torch.log2(torch.arange(k_max, dtype=torch.float64, device=device) + 2.0)
    cum_discount = torch.cumsum(discount, 0)  # cum_discount[j] = IDCG with j+1 ideal hits
    recall_sum = {k: 0.0 for k in ks}
    ndcg_sum = {k: 0.0 for k in ks}
    rows_per_chunk = max(1, min(int(chunk_size), _MAX_CHUNK_ELEMENTS // max(n_items, 1)))

    rows_per_chunk = min(rows_per_chunk, int(eval_users.size))
    # buffers reused across chunks (no per-chunk allocation / page faults); the truth mask is reset sparsely
    score_buf = torch.empty((rows_per_chunk, n_items), dtype=torch.float32, device=device)
    mask_buf = torch.zeros((rows_per_chunk, n_items), dtype=torch.bool, device=device)
    items_t = items.T

    for start in range(0, eval_users.size, rows_per_chunk):
        rows = eval_users[start : start + rows_per_chunk]
        n_rows = rows.size
        scores = score_buf[:n_rows]
        torch.matmul(users_t[torch.from_numpy(rows).to(device)], items_t, out=scores)  # (n_rows, n_items)
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
            recall_sum[k] += float((cum_hits[:, kk - 1] / n_t).sum())
            ideal = cum_discount[(torch.clamp(n_t, max=kk) - 1).long()]
            ndcg_sum[k] += float((dcg[:, kk - 1] / ideal).sum())

    count = float(eval_users.size)
    for k in ks:
        result[f"recall@{k}"] = recall_sum[k] / count
        result[f"ndcg@{k}"] = ndcg_sum[k] / count
    return result
