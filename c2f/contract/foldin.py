"""Fold-in: a served vector for a user the model never trained, from the items it touched (and for a new item, from
its users), without retraining. Numpy and scipy.sparse only: the service folds in at request time and benchmarks
measure the same code.

Every estimator starts from one LightGCN propagation step over the served vectors of the entity's neighbours
(He et al. 2020, Eq. 3, with the graph's symmetric normalisation):

    f_u = Σ_{i ∈ N_u} h_i / sqrt(|N_u| · deg_i)          (deg_i: item i's degree in the training graph)

A trained user's final vector is the mean over layers of propagated embeddings, so f_u points roughly the right
way but is on another scale, and the layer-0 part of h_u is missing. Estimators:

* ``"propagate"``: f_u itself.
* ``"linear"`` (the default): f_u mapped by the ridge regression of trained entities' served vectors on their own
  f (:meth:`FoldIn.fit`, at load, on a seeded sample): h ≈ f·W + c, W (d, d). It learns the scale and the part of
  the trained vectors that propagation predicts, from the model itself; for items the fit also predicts the item
  bias. Chosen over the others by measurement on held-out users (BENCHMARKS.md, "Fold-in").
* ``"least_squares"``: the implicit-ALS fold-in with the item vectors fixed (Hu, Koren & Volinsky 2008, Eq. 4):
  u = (G + α·Σ_{i ∈ N_u} h_i h_iᵀ + λI)⁻¹ (1 + α)·Σ_{i ∈ N_u} h_i, G = Σ_all h_i h_iᵀ (d, d): every item a
  negative of weight 1, the history's items positives of confidence 1 + α.

Shapes: ``indptr`` (B+1,) and ``indices`` (nnz,) int: a CSR of B histories over the neighbour side's 0-based
indices; vectors (B, d) float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import numpy as np
import scipy.sparse as sp

Estimator = Literal["linear", "propagate", "least_squares"]
ESTIMATORS: tuple[str, ...] = get_args(Estimator)
DEFAULT_ESTIMATOR: Estimator = "linear"

FIT_SAMPLE = 20_000  # trained entities the linear map is fitted on (seeded): bounded load time at any scale
_RIDGE = 1e-3  # ridge of the linear fit, relative to the mean diagonal of FᵀF
_BLOCK = 65_536  # neighbour vectors gathered at a time: temporaries of at most _BLOCK × d float32
_LS_ALPHA = 10.0  # α: the confidence of a history's items over the implicit negatives
_LS_RIDGE = 1e-2  # λ, relative to the mean diagonal of G


def history_csr(indptr: np.ndarray, indices: np.ndarray, n_neighbours: int) -> sp.csr_matrix:
    """The (B, n_neighbours) 0/1 matrix of B histories (duplicates within a history count once)."""
    indptr = np.asarray(indptr, dtype=np.int64)
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    keys = np.unique(rows * n_neighbours + np.asarray(indices, dtype=np.int64))  # sorted: row-major, deduplicated
    counts = np.bincount(keys // n_neighbours, minlength=len(indptr) - 1) if keys.size else np.zeros(len(indptr) - 1)
    new_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    data = np.ones(keys.size, dtype=np.float32)
    return sp.csr_matrix((data, keys % n_neighbours, new_indptr), shape=(len(indptr) - 1, n_neighbours))


class FoldIn:
    """Estimates served vectors of new entities of one side (users, or items) from their neighbours' served vectors.

    ``neighbour_vectors(rows) -> (len(rows), d)`` gives the neighbour side's served vectors by 0-based index;
    ``neighbour_degree`` (n_neighbours,) their degrees in the training graph. After :meth:`fit`, ``W`` (d, d) and
    ``c`` (d,) map propagation features to vectors, and ``bias_weights`` ((d,), scalar) predict an item bias.
    """

    def __init__(
        self, neighbour_vectors: Callable[[np.ndarray], np.ndarray], neighbour_degree: np.ndarray, d: int
    ) -> None:
        self.neighbour_vectors = neighbour_vectors
        self.n_neighbours = int(neighbour_degree.shape[0])
        self.d = d
        # 1/sqrt(deg): a neighbour the graph never saw (degree 0) weighs as one of degree 1
        self._inv_sqrt_degree = (1.0 / np.sqrt(np.maximum(neighbour_degree, 1))).astype(np.float32)
        self.W: np.ndarray | None = None
        self.c: np.ndarray | None = None
        self.bias_weights: tuple[np.ndarray, float] | None = None
        self._gram: np.ndarray | None = None

    # ---- features ----
    def features(self, histories: sp.csr_matrix) -> np.ndarray:
        """(B, d) float32 propagation features f of B histories ((B, n_neighbours) 0/1 CSR, as
        :func:`history_csr` builds them)."""
        A = sp.csr_matrix(histories)
        size = np.diff(A.indptr)
        # the weight of each (history, neighbour) entry: 1 / sqrt(|N_u| · deg_i)
        weights = self._inv_sqrt_degree[A.indices] / np.sqrt(np.maximum(np.repeat(size, size), 1)).astype(np.float32)
        # only the neighbours some history touches are ever decoded, a block of them at a time
        used, position = np.unique(A.indices, return_inverse=True)
        rows = np.repeat(np.arange(A.shape[0]), size)
        out = np.zeros((A.shape[0], self.d), dtype=np.float32)
        for start in range(0, used.size, _BLOCK):
            block = (position >= start) & (position < start + _BLOCK)
            indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[block], minlength=A.shape[0]))])
            entries = sp.csr_matrix(
                (weights[block], position[block] - start, indptr), shape=(A.shape[0], min(_BLOCK, used.size - start))
            )
            out += entries @ self.neighbour_vectors(used[start : start + _BLOCK])
        return out

    # ---- the linear map ----
    def fit(self, histories: sp.csr_matrix, targets: np.ndarray, biases: np.ndarray | None = None) -> FoldIn:
        """Fit ``W``, ``c`` (and the bias predictor when ``biases`` (B,) is given) by ridge regression of
        ``targets`` (B, d), trained entities' served vectors, on the features of their own ``histories``."""
        F = self.features(histories).astype(np.float64)
        X = np.hstack([F, np.ones((F.shape[0], 1))])
        gram = X.T @ X
        ridge = _RIDGE * float(np.trace(gram[:-1, :-1])) / max(1, self.d)
        gram[np.arange(self.d), np.arange(self.d)] += ridge  # the intercept is not shrunk
        Y = targets.astype(np.float64)
        if biases is not None:
            Y = np.hstack([Y, biases.astype(np.float64)[:, None]])
        solution = np.linalg.solve(gram, X.T @ Y)
        self.W = solution[: self.d, : self.d].astype(np.float32)
        self.c = solution[self.d, : self.d].astype(np.float32)
        if biases is not None:
            self.bias_weights = (solution[: self.d, self.d].astype(np.float32), float(solution[self.d, self.d]))
        return self

    # ---- estimates ----
    def vectors(self, histories: sp.csr_matrix, estimator: Estimator = DEFAULT_ESTIMATOR) -> np.ndarray:
        """(B, d) float32 served-vector estimates for B histories."""
        if estimator == "propagate":
            return self.features(histories)
        if estimator == "linear":
            if self.W is None or self.c is None:
                raise RuntimeError("the linear fold-in needs fit() first")
            return self.features(histories) @ self.W + self.c
        if estimator == "least_squares":
            return self._least_squares(histories)
        raise ValueError(f"unknown fold-in estimator {estimator!r}; one of {', '.join(ESTIMATORS)}")

    def bias(self, histories: sp.csr_matrix) -> np.ndarray | None:
        """(B,) float32 predicted item biases of B new items (None when the model has no item biases)."""
        if self.bias_weights is None:
            return None
        w, c0 = self.bias_weights
        return (self.features(histories) @ w + c0).astype(np.float32)

    def _least_squares(self, histories: sp.csr_matrix) -> np.ndarray:
        gram = self._neighbour_gram()
        ridge = _LS_RIDGE * float(np.trace(gram)) / max(1, self.d)
        A = sp.csr_matrix(histories)
        out = np.zeros((A.shape[0], self.d), dtype=np.float32)
        for row in range(A.shape[0]):  # one small (d, d) solve per history: request time folds in one
            cols = A.indices[A.indptr[row] : A.indptr[row + 1]]
            if cols.size == 0:
                continue
            H = self.neighbour_vectors(cols).astype(np.float64)
            system = gram + _LS_ALPHA * (H.T @ H)
            system[np.arange(self.d), np.arange(self.d)] += ridge
            out[row] = np.linalg.solve(system, (1.0 + _LS_ALPHA) * H.sum(axis=0))
        return out

    def _neighbour_gram(self) -> np.ndarray:
        """G = Σ_all h hᵀ (d, d) over the neighbour side, a block at a time (computed once)."""
        if self._gram is None:
            gram = np.zeros((self.d, self.d))
            for start in range(0, self.n_neighbours, _BLOCK):
                H = self.neighbour_vectors(np.arange(start, min(self.n_neighbours, start + _BLOCK))).astype(np.float64)
                gram += H.T @ H
            self._gram = gram
        return self._gram

    def nbytes(self) -> int:
        """Bytes held: the degree weights, the linear map and, once built, the least-squares Gram matrix."""
        held = self._inv_sqrt_degree.nbytes
        held += 0 if self.W is None or self.c is None else self.W.nbytes + self.c.nbytes
        held += 0 if self.bias_weights is None else self.bias_weights[0].nbytes + 8
        return int(held + (0 if self._gram is None else self._gram.nbytes))


def fitted(
    neighbour_vectors: Callable[[np.ndarray], np.ndarray],
    own_vectors: Callable[[np.ndarray], np.ndarray],
    graph: sp.csr_matrix,
    d: int,
    own_biases: np.ndarray | None = None,
    seed: int = 0,
) -> FoldIn:
    """A :class:`FoldIn` for the side whose rows ``graph`` (n_own, n_neighbours) holds, its linear map fitted on a
    seeded sample of at most :data:`FIT_SAMPLE` of its trained entities that have neighbours: ``own_vectors``
    gives their served vectors, ``own_biases`` (n_own,) their biases (items) or None."""
    graph = sp.csr_matrix(graph)
    degree = np.asarray((graph != 0).sum(axis=0)).ravel()
    fold = FoldIn(neighbour_vectors, degree, d)
    candidates = np.flatnonzero(np.diff(graph.indptr))
    if candidates.size == 0:
        fold.W, fold.c = np.eye(d, dtype=np.float32), np.zeros(d, dtype=np.float32)
        return fold
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(candidates, size=min(FIT_SAMPLE, candidates.size), replace=False))
    biases = None if own_biases is None else own_biases[sample]
    return fold.fit(graph[sample], own_vectors(sample), biases)
