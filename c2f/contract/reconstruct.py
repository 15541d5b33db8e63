"""Numpy/scipy math shared by the trainer and the service: graphs, propagation, embedding reconstruction.

Entity rows are users ``0..n_users-1`` then items ``n_users..N-1`` (N = n_users + n_items). Meta-embedding nodes
follow the entities: coarse rows ``N..N+m_c-1``, then fine rows ``N+m_c..N+m_c+m_r-1`` (paper Eq. 3, 13, 14).

The trainer builds its adjacency with :func:`expanded_adjacency` too, so the service's exact mode recomputes the
same embeddings the trainer evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from c2f.contract.manifest import FineForwardName


def interaction_graph(indptr: np.ndarray, indices: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Binary user × item CSR matrix from ``indptr (n_users+1,)`` and ``indices (nnz,)``."""
    n_users = len(indptr) - 1
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(n_users, n_items))


def soft_threshold(values: np.ndarray, lam: float) -> np.ndarray:
    """S_λ(x) = sign(x)·max(|x| − λ, 0) (paper Eq. 16)."""
    return np.sign(values) * np.maximum(np.abs(values) - lam, 0.0)


def assignment_matrix(idx: np.ndarray, w: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """A sparse assignment as a matrix: ``idx, w: (rows, t)`` -> (rows, n_cols) float32 CSR with ``w[r, j]`` at
    column ``idx[r, j]`` (t entries a row, in order; repeated columns of a row are summed by scipy when used)."""
    n, t = idx.shape
    indptr = np.arange(0, n * t + 1, t, dtype=np.int64)
    return sp.csr_matrix(
        (np.asarray(w, np.float32).reshape(-1), np.asarray(idx).reshape(-1).astype(np.int64), indptr),
        shape=(n, n_cols),
        dtype=np.float32,
    )


def check_csr(arrays: Mapping[str, np.ndarray], prefix: str, n_rows: int, n_cols: int) -> None:
    """``<prefix>_indptr`` / ``<prefix>_indices`` form a valid (n_rows, n_cols) CSR structure (ValueError if not)."""
    indptr, indices = arrays[f"{prefix}_indptr"], arrays[f"{prefix}_indices"]
    if indptr.shape[0] != n_rows + 1:
        raise ValueError(f"{prefix}_indptr has length {indptr.shape[0]}, expected {n_rows + 1}")
    if indptr[0] != 0 or indptr[-1] != indices.shape[0] or np.any(np.diff(indptr) < 0):
        raise ValueError(
            f"{prefix}_indptr is not a valid CSR row pointer (must start at 0, be non-decreasing and end at "
            f"len({prefix}_indices)={indices.shape[0]})"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= n_cols):
        raise ValueError(f"{prefix}_indices has values outside [0, {n_cols})")


def _assignment_coo(
    idx: np.ndarray, w: np.ndarray, row_offset: int, col_offset: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COO triplets of an assignment block: row r links to ``col_offset + idx[r, j]`` with weight ``w[r, j]``."""
    block = assignment_matrix(idx, w, int(idx.max()) + 1 if idx.size else 0).tocoo()  # idx may be unsigned
    return block.row.astype(np.int64) + row_offset, block.col.astype(np.int64) + col_offset, block.data


def expanded_adjacency(
    graph: sp.csr_matrix,
    S_c_idx: np.ndarray | None = None,
    S_c_w: np.ndarray | None = None,
    m_c: int = 0,
    S_r_idx: np.ndarray | None = None,
    S_r_w: np.ndarray | None = None,
    m_r: int = 0,
) -> sp.csr_matrix:
    """Symmetric-normalised adjacency D^-1/2 A D^-1/2 of the (expanded) interaction graph, built in O(nnz).

    graph: (n_users, n_items) binary CSR. Without assignments this is LightGCN's Â (Eq. 2, 5); with
    ``S_c_idx/S_c_w: (N, t_c)`` it is Eq. 13; adding ``S_r_idx/S_r_w: (m_c, t_r)`` gives Eq. 14.
    Degrees are row sums of |A| so that negative assignment weights (Eq. 11 can produce them) stay well defined.
    Returns a float32 CSR of shape (N + m_c + m_r) square.
    """
    graph = sp.csr_matrix(graph)
    n_users, n_items = graph.shape
    n_entities = n_users + n_items
    size = n_entities + m_c + m_r
    coo = graph.tocoo()
    rows = [coo.row.astype(np.int64), coo.col.astype(np.int64) + n_users]
    cols = [coo.col.astype(np.int64) + n_users, coo.row.astype(np.int64)]
    vals = [np.ones(coo.nnz, np.float32), np.ones(coo.nnz, np.float32)]
    if S_c_idx is not None and S_c_w is not None:
        r, c, v = _assignment_coo(S_c_idx, S_c_w, 0, n_entities)
        rows += [r, c]
        cols += [c, r]
        vals += [v, v]
    if S_r_idx is not None and S_r_w is not None:
        r, c, v = _assignment_coo(S_r_idx, S_r_w, n_entities, n_entities + m_c)
        rows += [r, c]
        cols += [c, r]
        vals += [v, v]
    row = np.concatenate(rows)
    col = np.concatenate(cols)
    val = np.concatenate(vals)
    degree = np.bincount(row, weights=np.abs(val), minlength=size)
    with np.errstate(divide="ignore"):
        d_inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(degree), 0.0)
    val = (val * d_inv_sqrt[row] * d_inv_sqrt[col]).astype(np.float32)
    adj = sp.csr_matrix((val, (row, col)), shape=(size, size), dtype=np.float32)
    adj.sum_duplicates()
    return adj


# columns propagated at once by propagate: its temporaries are a few (size, block) float32 arrays
_COLUMN_BLOCK = 32


def propagate(
    adj: sp.csr_matrix,
    X0: np.ndarray,
    layers: int,
    step: Callable[[np.ndarray], np.ndarray] | None = None,
    block: int = _COLUMN_BLOCK,
) -> np.ndarray:
    """Layer mean (1/(L+1))·Σ_l Â^l·X0 (Eq. 5-6). X0: (size, d) float32 -> (size, d) float32.

    ``step``: a replacement for one layer's h -> Â·h (the released fine stage's corrected step; like Â it acts on
    each column alone). A block of columns at a time, so that beside X0 and the result only a few (size, block)
    arrays are alive: propagating all d columns at once holds four (size, d) ones, 2.7 GB at 1.3M entities and
    d = 128 (the served exact evaluation at export and the service's exact mode at load)."""
    X0 = np.asarray(X0, dtype=np.float32)
    out = np.empty(X0.shape, dtype=np.float32)
    for start in range(0, X0.shape[1], block):
        total = np.array(X0[:, start : start + block], dtype=np.float32, copy=True)
        current = total.copy()
        for _ in range(layers):
            current = np.asarray(adj @ current if step is None else step(current), dtype=np.float32)
            total += current
        out[:, start : start + block] = total / np.float32(layers + 1)
    return out


def compressed_embeddings(
    S_idx: np.ndarray, S_w: np.ndarray, H_meta: np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """Σ_j S_w[r, j]·H_meta[S_idx[r, j]] for each row r (LEGCF Eq. 10 view). Returns (len(rows), d) float32.

    Many rows are done a block at a time, so the (rows, t, d) gather never exceeds ~64 MB."""
    if rows is not None:
        S_idx = S_idx[rows]
        S_w = S_w[rows]
    n, t = S_idx.shape
    step = max(1, (1 << 24) // max(t * H_meta.shape[1], 1))
    if n <= step:
        return np.einsum("nt,ntd->nd", S_w, H_meta[S_idx], dtype=np.float32)
    out = np.empty((n, H_meta.shape[1]), dtype=np.float32)
    for start in range(0, n, step):
        block = slice(start, start + step)
        out[block] = np.einsum("nt,ntd->nd", S_w[block], H_meta[S_idx[block]], dtype=np.float32)
    return out


def pq_embeddings(codes: np.ndarray, codebooks: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Product-quantized vectors: row r is the concatenation over subspaces m of codebooks[m, codes[r, m]].

    codes (N, M) uint8, codebooks (M, K, d/M) -> (len(rows), d) float32, in the basis the codes were fitted in
    (c2f/trainer/quantize.py: the original one for a sparse form's residual, else a rotation of it that keeps dot
    products and norms)."""
    if rows is not None:
        codes = codes[rows]
    M, _, width = codebooks.shape
    books = np.asarray(codebooks, dtype=np.float32)
    out = np.empty((codes.shape[0], M * width), dtype=np.float32)
    for m in range(M):
        out[:, m * width : (m + 1) * width] = books[m][codes[:, m]]
    return out


def sparse_fine_codebook(arrays: Mapping[str, np.ndarray], m_r: int, d: int) -> np.ndarray:
    """Dense (m_r, d) view of the thresholded fine codebook S_λ(E^r) stored as CSR arrays."""
    matrix = sp.csr_matrix(
        (arrays["E_r_data"], arrays["E_r_indices"], arrays["E_r_indptr"]), shape=(m_r, d), dtype=np.float32
    )
    return np.asarray(matrix.todense(), dtype=np.float32)


def refined_coarse_codebook(
    E_c: np.ndarray, S_r_idx: np.ndarray, S_r_w: np.ndarray, fine: np.ndarray, w_cr: float
) -> np.ndarray:
    """Ê^c = (1 − w_cr)·E^c + w_cr·S^r·S_λ(E^r) (Eq. 17). fine: (m_r, d) thresholded. Returns (m_c, d)."""
    return ((1.0 - w_cr) * E_c + w_cr * compressed_embeddings(S_r_idx, S_r_w, fine)).astype(np.float32)


def exact_ud(graph: sp.csr_matrix, E: np.ndarray, layers: int) -> np.ndarray:
    """UD: H_full = mean_l Â^l·E (Eq. 5-6) on the plain interaction graph. E: (N, d) -> (N, d) float32."""
    n_entities = graph.shape[0] + graph.shape[1]
    return propagate(expanded_adjacency(graph), E, layers)[:n_entities]


def exact_legcf(
    graph: sp.csr_matrix, S_c_idx: np.ndarray, S_c_w: np.ndarray, E_c: np.ndarray, layers: int
) -> np.ndarray:
    """LEGCF: layer 0 = [S^c·E^c; E^c] propagated on Eq. 13's graph. S_c_idx/S_c_w: (N, t_c), E_c: (m_c, d).
    Returns the entity rows (N, d) float32."""
    n_entities = graph.shape[0] + graph.shape[1]
    m_c = E_c.shape[0]
    adj = expanded_adjacency(graph, S_c_idx, S_c_w, m_c)
    X0 = np.vstack([compressed_embeddings(S_c_idx, S_c_w, E_c), E_c])
    return propagate(adj, X0, layers)[:n_entities]


def exact_c2f(
    graph: sp.csr_matrix,
    S_c_idx: np.ndarray,
    S_c_w: np.ndarray,
    E_c: np.ndarray,
    S_r_idx: np.ndarray,
    S_r_w: np.ndarray,
    fine: np.ndarray,
    w_cr: float,
    layers: int,
    forward: FineForwardName = "paper",
) -> np.ndarray:
    """C2F: layer 0 = [S^c·Ê^c; Ê^c; S_λ(E^r)] on Eq. 14's graph (Eq. 17-22). S_r_idx/S_r_w: (m_c, t_r),
    fine = S_λ(E^r): (m_r, d). Returns the entity rows (N, d) float32.

    ``forward="released"`` (the authors' code, TrainConfig.fine_forward): fine rows tanh(S_λ(E^r)), entity rows
    tanh(S^c·E^c) (the unrefined codebook), and :func:`released_fine_step` after every propagation."""
    n_entities = graph.shape[0] + graph.shape[1]
    m_c, m_r = E_c.shape[0], fine.shape[0]
    adj = expanded_adjacency(graph, S_c_idx, S_c_w, m_c, S_r_idx, S_r_w, m_r)
    if forward == "released":
        fine = np.tanh(fine)
        refined = refined_coarse_codebook(E_c, S_r_idx, S_r_w, fine, w_cr)
        X0 = np.vstack([np.tanh(compressed_embeddings(S_c_idx, S_c_w, E_c)), refined, fine])
        S_c, S_r = assignment_matrix(S_c_idx, S_c_w, m_c), assignment_matrix(S_r_idx, S_r_w, m_r)
        return propagate(adj, X0, layers, released_fine_step(adj, S_c, S_r, n_entities, m_c, w_cr))[:n_entities]
    refined = refined_coarse_codebook(E_c, S_r_idx, S_r_w, fine, w_cr)
    X0 = np.vstack([compressed_embeddings(S_c_idx, S_c_w, refined), refined, fine])
    return propagate(adj, X0, layers)[:n_entities]


def released_fine_step(
    adj: sp.csr_matrix, S_c: sp.csr_matrix, S_r: sp.csr_matrix, n_entities: int, m_c: int, w_cr: float
) -> Callable[[np.ndarray], np.ndarray]:
    """One propagation step of the authors' released fine stage (not in the paper): h = Â^r·h, then with raw S^c
    (N, m_c), S^r (m_c, m_r) and gate g = w_cr: h_full −= S^c·h_c; h_c −= S^r·h_f; h_c = g·S^r·h_f + (1 − g)·h_c;
    h_full += S^c·h_c, where h_c are the coarse rows and h_f the fine rows. The trainer's Fine model applies the
    same step in torch."""

    def step(h: np.ndarray) -> np.ndarray:
        h = np.asarray(adj @ h, dtype=np.float32)
        h_full, h_c, h_f = h[:n_entities], h[n_entities : n_entities + m_c], h[n_entities + m_c :]
        h_full = h_full - S_c @ h_c
        h_c = h_c - S_r @ h_f
        h_c = w_cr * (S_r @ h_f) + (1.0 - w_cr) * h_c
        h_full = h_full + S_c @ h_c
        return np.vstack([h_full, h_c, h_f]).astype(np.float32)

    return step


# splitmix64 (Steele et al. 2014): its increment and finaliser constants. Array arithmetic on uint64 wraps
# modulo 2^64 silently, which is what the hash needs; the same numpy code runs in the trainer and the service.
_SPLITMIX_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_SPLITMIX_M1 = np.uint64(0xBF58476D1CE4E5B9)
_SPLITMIX_M2 = np.uint64(0x94D049BB133111EB)


def _splitmix_finalise(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _SPLITMIX_M1
    z = (z ^ (z >> np.uint64(27))) * _SPLITMIX_M2
    return z ^ (z >> np.uint64(31))


def hash_buckets(n_entities: int, buckets: int, seed: int) -> np.ndarray:
    """The hashing trick's fixed map: entity row i (users then items, one shared space) -> bucket in [0, buckets).

    splitmix64 of the state ``mix(seed) + (i + 1)·γ`` modulo ``buckets``: deterministic for (n, buckets, seed) on
    every platform, so the artifact stores only the seed. Returns (n_entities,) int64."""
    if buckets < 1:
        raise ValueError(f"buckets must be >= 1, got {buckets}")
    offset = _splitmix_finalise(np.array([seed % 2**64], dtype=np.uint64))
    state = np.arange(1, n_entities + 1, dtype=np.uint64) * _SPLITMIX_GAMMA + offset
    return (_splitmix_finalise(state) % np.uint64(buckets)).astype(np.int64)


def qr_rows(n_entities: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The quotient-remainder trick's map (Shi et al., KDD'20): entity i -> (i // m, i % m), the rows of the
    quotient table Q (ceil(N/m) rows) and the remainder table R (m rows). Every entity gets a distinct pair.
    Returns two (n_entities,) int64 arrays."""
    if m < 1:
        raise ValueError(f"the remainder table needs m >= 1 rows, got {m}")
    i = np.arange(n_entities, dtype=np.int64)
    return i // m, i % m


def qr_layer0(Q: np.ndarray, R: np.ndarray, n_entities: int, combine: str) -> np.ndarray:
    """Layer-0 entity embeddings of the QR trick: Q[i // m] ⊙ R[i % m] ("mult") or Q[i // m] + R[i % m] ("sum").
    Q: (ceil(N/m), d), R: (m, d) -> (N, d) float32."""
    q, r = qr_rows(n_entities, R.shape[0])
    if combine == "mult":
        return np.asarray(Q[q] * R[r], dtype=np.float32)
    if combine == "sum":
        return np.asarray(Q[q] + R[r], dtype=np.float32)
    raise ValueError(f"qr combine must be 'mult' or 'sum', got {combine!r}")
