"""Initialisation of the fine stage (§3.2): which coarse rows seed E^r, SparsePCA (Eq. 15), and λ (Eq. 16)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import SparsePCA


def select_coarse_rows(S_c_idx: np.ndarray, S_c_w: np.ndarray, m_c: int, m_r: int, how: str, seed: int) -> np.ndarray:
    """Indices (m_r,) of the coarse meta-embeddings that seed the fine codebook.

    "most_used" (default): the rows carrying the most assignment weight Σ|w| over all entities, i.e. the
    meta-embeddings through which most users and items are composed, so the fine codebook starts from the
    semantics that matter most (the paper asks for a selection that preserves associative relations).
    "random": uniform draws with replacement, as the released code does. Both are measured in the benchmark.
    When m_r > m_c the most-used order is cycled.
    """
    if how == "random":
        return np.random.default_rng(seed).integers(0, m_c, size=m_r)
    usage = np.bincount(S_c_idx.reshape(-1), weights=np.abs(S_c_w).reshape(-1), minlength=m_c)
    order = np.argsort(-usage, kind="stable")
    return order[np.arange(m_r) % m_c]


def init_fine_codebook(
    E_c: np.ndarray, rows: np.ndarray, d_r: int, ablation: str, seed: int, how: str = "codes"
) -> np.ndarray:
    """E^r (m_r, d) float32 from the selected coarse rows (Eq. 15 and Fig. 2).

    SparsePCA fits the m_r selected rows X ≈ U·V with d_r sparse components V (d_r, d) and codes U (m_r, d_r).
    "codes" (the paper's Fig. 2 and the released code): each row of U is written into d_r random positions of a
    d-vector, zeros elsewhere. "reconstruction": the rows of U·V, i.e. the selected coarse rows as SparsePCA
    approximates them, in the same coordinates as E^c (so Eq. 17 mixes like with like).
    Ablation A: random normal init (same scale as E^c) instead of selected rows; B: the selected rows as they are.
    """
    rng = np.random.default_rng(seed)
    m_r, d = len(rows), E_c.shape[1]
    if ablation == "A":
        return (rng.standard_normal((m_r, d)) * E_c.std()).astype(np.float32)
    selected = E_c[rows].astype(np.float64)
    if ablation == "B":
        return selected.astype(np.float32)
    d_r = min(d_r, d)
    pca = SparsePCA(n_components=d_r, alpha=1.0, random_state=seed, max_iter=200)
    codes = pca.fit_transform(selected)
    if how == "reconstruction":
        return (codes @ pca.components_ + pca.mean_).astype(np.float32)
    positions = np.argsort(rng.random((m_r, d)), axis=1)[:, :d_r]
    E_r = np.zeros((m_r, d), dtype=np.float32)
    np.put_along_axis(E_r, positions, codes.astype(np.float32), axis=1)
    return E_r


def lambda_for_sparsity(E_r: np.ndarray, target_nonzero: float) -> float:
    """λ such that a fraction ``target_nonzero`` of the entries of S_λ(E^r) are non-zero at initialisation.

    λ's meaning depends on the scale of E^r (the paper's λ = 3 and the released λ = 1 refer to N(0,1)-scale
    values), so it is chosen by the sparsity it yields; §4.4 reports about half non-zero as best.
    """
    magnitudes = np.abs(E_r).reshape(-1)
    return float(np.quantile(magnitudes, 1.0 - target_nonzero))


def nonzero_fraction(values: np.ndarray) -> float:
    """Fraction of non-zero entries."""
    return float(np.count_nonzero(values)) / max(values.size, 1)
