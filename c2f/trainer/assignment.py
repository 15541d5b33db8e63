"""Sparse assignments: METIS initialisation (§3.1, §3.3) and the gradient-free updates (Eq. 11, Eq. 23-24).

An assignment with t non-zeros per row is kept as two arrays: ``idx: (rows, t) int64`` column indices and
``w: (rows, t) float32`` weights, so "exactly t non-zeros per row" holds by construction.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from c2f.contract.reconstruct import assignment_matrix
from c2f.trainer.data.memory import release_freed_memory

# elements of one block of a (rows x codebook) temporary: 2**24 float32 = 64 MiB
_BLOCK_ELEMENTS = 1 << 24


def metis_parts(graph: sp.csr_matrix, n_parts: int, seed: int = 0) -> np.ndarray:
    """Partition the user-item graph (users and items together, N nodes) into ``n_parts`` with METIS.

    Returns (N,) int64 part ids in [0, n_parts). Falls back to a seeded random balanced split when METIS is
    unavailable or the graph is too small to split.
    """
    n_users, n_items = graph.shape
    n = n_users + n_items
    if n_parts <= 1:
        return np.zeros(n, dtype=np.int64)
    xadj, adjncy = bipartite_adjacency(graph)
    try:
        import pymetis

        options = pymetis.Options(seed=seed)
        adjacency = pymetis.CSRAdjacency(xadj, adjncy)
        _, parts = pymetis.part_graph(n_parts, adjacency, options=options)
        result = np.asarray(parts, dtype=np.int64)
        del adjacency, xadj, adjncy
        # METIS's freed work arrays stay cached in malloc's heap, where the next phase would carry them to its peak
        release_freed_memory()
        if result.shape == (n,) and result.max() < n_parts:
            return result
    except Exception:  # pragma: no cover - METIS refuses degenerate graphs; a random split is the fallback
        pass
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(n) % n_parts).astype(np.int64)


def bipartite_adjacency(graph: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """METIS's CSR arrays of the symmetric user-item graph [[0, G], [Gᵀ, 0]] (users then items; sorted neighbour
    lists, no self loops): xadj (N + 1,) and adjncy (2·nnz,), int64 (pymetis's index type, so it reads them
    without a copy). Built from G and Gᵀ directly: no (2·nnz) COO triplets and no int32 copies beside the int64
    ones (about 0.3 GB at a million users)."""
    n_users = graph.shape[0]
    G = sp.csr_matrix(graph, copy=True)
    G.sum_duplicates()  # sorted, distinct neighbours
    GT = G.T.tocsr()
    GT.sum_duplicates()
    xadj = np.concatenate([G.indptr.astype(np.int64), G.nnz + GT.indptr[1:].astype(np.int64)])
    adjncy = np.empty(G.nnz + GT.nnz, dtype=np.int64)
    np.add(G.indices, n_users, out=adjncy[: G.nnz], casting="unsafe")
    adjncy[G.nnz :] = GT.indices
    return xadj, adjncy


def metis_assignment(
    parts: np.ndarray, n_meta: int, t: int, w_star: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Initial S^c (§3.1): each entity gets its part's meta-embedding with weight w*, and t−1 other distinct
    random meta-embeddings sharing (1 − w*) equally. Returns idx (N, t) int64, w (N, t) float32."""
    n = len(parts)
    rng = np.random.default_rng(seed)
    idx = np.empty((n, t), dtype=np.int64)
    idx[:, 0] = parts
    if t > 1:
        # Distinct others: offsets 1..n_meta-1 without replacement per row, added modulo n_meta. The (rows, n_meta-1)
        # random keys are drawn a block of rows at a time: the generator fills row after row either way, so the
        # result is the same as one (N, n_meta - 1) draw, without its N·n_meta·8 bytes (3 GB at 1.3M entities).
        rows_per_block = max(1, _BLOCK_ELEMENTS // max(n_meta - 1, 1))
        for start in range(0, n, rows_per_block):
            stop = min(n, start + rows_per_block)
            keys = rng.random((stop - start, n_meta - 1))
            offsets = np.argpartition(keys, t - 2, axis=1)[:, : t - 1] + 1
            idx[start:stop, 1:] = (parts[start:stop, None] + offsets) % n_meta
    w = np.empty((n, t), dtype=np.float32)
    w[:, 0] = w_star if t > 1 else 1.0
    if t > 1:
        w[:, 1:] = (1.0 - w_star) / (t - 1)
    return idx, w


def top_t(scores: torch.Tensor, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the t largest values of each row of a dense (rows, cols) tensor (Eq. 24). -> idx, w (numpy)."""
    values, indices = torch.topk(scores, t, dim=1)
    return indices.cpu().numpy().astype(np.int64), values.cpu().numpy().astype(np.float32)


def pinv_assignment(
    H_full: torch.Tensor, H_meta: torch.Tensor, t: int, normalise: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 11: S = top-t(H_full · pinv(H_meta)). H_full (N, d), H_meta (m, d) -> idx, w: (N, t).

    The paper keeps the projected values as weights. They are not normalised, so they rescale every layer-0
    embedding and the assignment edges of A^c at once. Measured on
    Gowalla (``benchmarks/train_gowalla.py``, variants legcf and legcf-raw-eq11, BENCHMARKS.md 2026-11-27): from
    the same phase-1 state (validation NDCG@20 0.0741), raw weights gave 0.0697 after the first update and
    0.0527-0.0546 after the next ones, while rows normalised to sum 1 gave 0.0746. So by default the kept weights
    are normalised per row (``normalise=False`` gives the paper's raw values).
    """
    pinv = torch.linalg.pinv(H_meta.double()).float()  # (d, m)
    # a block of rows at a time: the (N, m) projection is never held whole (1.5 GB at 1.3M entities, m = 300)
    rows_per_block = max(1, _BLOCK_ELEMENTS // max(pinv.shape[1], 1))
    parts = [top_t(H_full[s : s + rows_per_block] @ pinv, t) for s in range(0, H_full.shape[0], rows_per_block)]
    idx = np.concatenate([p[0] for p in parts])
    values = np.concatenate([p[1] for p in parts])
    return normalise_rows(idx, values) if normalise else (idx, values)


# Smallest weight normalise_rows gives a kept index, relative to the row's total: every kept index stays a
# non-zero (a stored index with weight 0 would be bytes that do nothing and would break "exactly t per row").
MIN_ROW_WEIGHT = 1e-3


def normalise_rows(idx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn kept scores into mixing weights that sum to 1 per row, every weight > 0: positive parts, each floored
    at ``MIN_ROW_WEIGHT`` of the row's positive total (uniform when no value is > 0).

    Used for S^r: Eq. 23's raw values have an arbitrary scale (a product of two pseudo-inverse projections), and
    Eq. 17 reads S^r·S_λ(E^r) as a mix of fine rows weighted by w_cr, so each row is normalised to sum 1.
    idx, values: (rows, t) -> idx, weights (rows, t) float32.
    """
    values = np.asarray(values, dtype=np.float64)
    positive = np.maximum(values, 0.0)
    sums = positive.sum(axis=1, keepdims=True)
    floored = np.maximum(positive, MIN_ROW_WEIGHT * sums)
    uniform = np.full_like(values, 1.0 / values.shape[1])
    weights = np.where(sums > 0, floored / np.where(sums > 0, floored.sum(axis=1, keepdims=True), 1.0), uniform)
    return idx, weights.astype(np.float32)


def row_weights(scores: torch.Tensor, t: int, how: str = "normalised") -> tuple[np.ndarray, np.ndarray]:
    """Keep the t best of each row of ``scores`` (rows, cols) as an assignment: idx, w (rows, t).

    "normalised": the top-t values turned into weights by :func:`normalise_rows`. "softmax" (the released code's
    S^r): the top-t of the row softmax, not renormalised (so a row sums to at most 1)."""
    if how == "softmax":
        return top_t(torch.softmax(scores.float(), dim=1), t)
    if how != "normalised":
        raise ValueError(f"S^r weights must be 'normalised' or 'softmax', got {how!r}")
    return normalise_rows(*top_t(scores, t))


def fine_assignment_init(
    S_c_idx: np.ndarray,
    S_c_w: np.ndarray,
    m_c: int,
    fine_parts: np.ndarray,
    m_r: int,
    t_r: int,
    w_star: float,
    weights: str = "normalised",
) -> tuple[np.ndarray, np.ndarray]:
    """Initial S^r (§3.3 steps 1-3): S̃^r (N, m_r) has w* on each entity's METIS part and (1 − w*)/(m_r − 1)
    elsewhere; Ŝ^r = (S^c)ᵀ·S̃^r (m_c, m_r); keep the t_r largest per coarse row. Computed without forming S̃^r:
    Ŝ^r = c·colsum(S^c)·1ᵀ + (w* − c)·(S^c)ᵀ·onehot(parts), with c = (1 − w*)/(m_r − 1)."""
    n = S_c_idx.shape[0]
    S_c = assignment_matrix(S_c_idx, S_c_w, m_c)
    onehot = sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), fine_parts)), shape=(n, m_r))
    c = (1.0 - w_star) / max(m_r - 1, 1)
    usage = np.asarray(S_c.sum(axis=0)).reshape(-1, 1)  # (m_c, 1)
    S_hat = c * usage + (w_star - c) * np.asarray((S_c.T @ onehot).todense())
    return row_weights(torch.from_numpy(np.asarray(S_hat, dtype=np.float32)), t_r, weights)


def bridging_assignment(
    H_full: torch.Tensor, H_coarse: torch.Tensor, H_fine: torch.Tensor, t_r: int, weights: str = "normalised"
) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 23-24: S^r = top-t_r((H_full·pinv(Ĥ^c))ᵀ·(H_full·pinv(H^r))), entities bridging coarse and fine.

    H_full (N, d), H_coarse (m_c, d), H_fine (m_r, d) -> idx, w: (m_c, t_r), weighted by :func:`row_weights`.
    """
    pinv_coarse = torch.linalg.pinv(H_coarse.double()).float()  # (d, m_c)
    pinv_fine = torch.linalg.pinv(H_fine.double()).float()  # (d, m_r)
    # Σ over blocks of entities of to_coarseᵀ·to_fine: the (N, m_c) and (N, m_r) projections are never held whole
    rows_per_block = max(1, _BLOCK_ELEMENTS // max(pinv_coarse.shape[1] + pinv_fine.shape[1], 1))
    scores = torch.zeros((pinv_coarse.shape[1], pinv_fine.shape[1]), dtype=H_full.dtype, device=H_full.device)
    for start in range(0, H_full.shape[0], rows_per_block):
        block = H_full[start : start + rows_per_block]
        scores += (block @ pinv_coarse).T @ (block @ pinv_fine)
    return row_weights(scores, t_r, weights)


def similarity_assignment(
    H_coarse: torch.Tensor, H_fine: torch.Tensor, t_r: int, weights: str = "normalised"
) -> tuple[np.ndarray, np.ndarray]:
    """Ablation D: S^r matched from codebook cosine similarity alone, without entities as the bridge."""
    a = torch.nn.functional.normalize(H_coarse, dim=1)
    b = torch.nn.functional.normalize(H_fine, dim=1)
    return row_weights(a @ b.T, t_r, weights)
