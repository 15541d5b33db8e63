"""Fold-in: a served vector for a user the model never trained, from the items it touched (and for a new item, from
its users), without retraining. Numpy and scipy.sparse only: the service folds in at request time and benchmarks
measure the same code.

Two base estimates of an entity's vector from its neighbours' served vectors h_i:

* ``propagate``: one LightGCN propagation step (He et al. 2020, Eq. 3, the graph's symmetric normalisation),
  f_u = Σ_{i ∈ N_u} h_i / sqrt(|N_u| · deg_i), deg_i the neighbour's degree in the training graph.
* ``least_squares``: the implicit-ALS solve with the neighbours fixed (Hu, Koren & Volinsky 2008, Eq. 4),
  u = (G + α·Σ_{i ∈ N_u} h_i h_iᵀ + λI)⁻¹ (1 + α)·Σ_{i ∈ N_u} h_i, G = Σ_all h_i h_iᵀ (d, d): every neighbour a
  negative of weight 1, the history's own positives of confidence 1 + α.

Neither is on the scale of the model's trained vectors (what item biases are added to), and neither knows the part
of a trained vector that the history does not explain. ``+map`` fixes both: the base estimate mapped by the ridge
regression of trained entities' served vectors on their own base estimates (:meth:`FoldIn.map_for`, fitted on a
seeded sample of the model's trained entities): h ≈ f·W + c, W (d, d); for items the same fit predicts the item
bias. A model trained with ``served_users = "fold_in"`` stores the users' map (``fold_in_W``, ``fold_in_c``, of
the ``least_squares`` base), fitted at export on the trained users' exact vectors, since it serves no user vector
to fit one on (:func:`stored`). The default, ``least_squares+map``, was chosen on users held out of training
entirely (BENCHMARKS.md, "Fold-in"): the raw least-squares estimate ranks badly next to item biases, and the mapped
propagation step trails it.

Shapes: histories are (B, n_neighbours) 0/1 CSR matrices (:func:`history_csr`); vectors (B, d) float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import numpy as np
import scipy.sparse as sp

Estimator = Literal["least_squares+map", "propagate+map", "least_squares", "propagate"]
ESTIMATORS: tuple[str, ...] = get_args(Estimator)
DEFAULT_ESTIMATOR: Estimator = "least_squares+map"
DEFAULT_BASE = DEFAULT_ESTIMATOR.partition("+")[0]  # the base estimate whose map a model stores (:func:`stored`)

FIT_SAMPLE = 5_000  # trained entities a map is fitted on (seeded): bounded load time at any scale
_RIDGE = 1e-3  # ridge of the linear fit, relative to the mean diagonal of FᵀF
_BLOCK = 65_536  # neighbour vectors gathered at a time: temporaries of at most _BLOCK × d float32
_LS_BATCH = 4096  # histories whose neighbours are decoded together
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
    ``neighbour_degree`` (n_neighbours,) their degrees in the training graph. The ``+map`` estimators fit their map
    on first use from ``fit_histories`` (trained entities' histories, CSR) and ``fit_targets`` (their served vectors,
    (B, d)), with ``fit_biases`` ((B,), items) also predicted when given.
    """

    def __init__(
        self,
        neighbour_vectors: Callable[[np.ndarray], np.ndarray],
        neighbour_degree: np.ndarray,
        d: int,
        fit_histories: sp.csr_matrix | None = None,
        fit_targets: np.ndarray | None = None,
        fit_biases: np.ndarray | None = None,
        maps: dict[str, Map] | None = None,
    ) -> None:
        self.neighbour_vectors = neighbour_vectors
        self.n_neighbours = int(neighbour_degree.shape[0])
        self.d = d
        # 1/sqrt(deg): a neighbour the graph never saw (degree 0) weighs as one of degree 1
        self._inv_sqrt_degree = (1.0 / np.sqrt(np.maximum(neighbour_degree, 1))).astype(np.float32)
        self._fit = (fit_histories, fit_targets, fit_biases)
        self._maps: dict[str, Map] = dict(maps or {})  # base estimate -> its fitted (or given) map
        self._B0: tuple[np.ndarray, np.ndarray] | None = None  # (G + λI, its inverse), float64

    # ---- base estimates ----
    def propagate(self, histories: sp.csr_matrix) -> np.ndarray:
        """(B, d) float32 propagation step f of B histories."""
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

    def least_squares(self, histories: sp.csr_matrix) -> np.ndarray:
        """(B, d) float32 implicit-ALS estimates of B histories.

        With B0 = G + λI inverted once, a history of k < 2d/3 neighbours H (k, d) is solved through the Woodbury
        identity, (B0 + α·HᵀH)⁻¹ = B0⁻¹ − Pᵀ(I/α + P·Hᵀ)⁻¹P with P = H·B0⁻¹: a (k, k) system instead of (d, d)."""
        B0, B0_inv = self._base_system()
        A = sp.csr_matrix(histories)
        out = np.zeros((A.shape[0], self.d), dtype=np.float32)
        for start in range(0, A.shape[0], _LS_BATCH):  # a batch's neighbours decoded once
            stop = min(A.shape[0], start + _LS_BATCH)
            offset = A.indptr[start]
            used, position = np.unique(A.indices[offset : A.indptr[stop]], return_inverse=True)
            if used.size == 0:
                continue
            vectors = self.neighbour_vectors(used).astype(np.float64)
            for row in range(start, stop):
                H = vectors[position[A.indptr[row] - offset : A.indptr[row + 1] - offset]]
                if H.shape[0]:
                    out[row] = self._solve(H, B0, B0_inv)
        return out

    def _solve(self, H: np.ndarray, B0: np.ndarray, B0_inv: np.ndarray) -> np.ndarray:
        """u = (B0 + α·HᵀH)⁻¹ (1 + α)·Σ_rows H for one history's neighbours H (k, d) float64."""
        r = (1.0 + _LS_ALPHA) * H.sum(axis=0)
        # direct past k ≈ 2d/3: the Woodbury path's k²·d + k³/3 passes the direct solve's d³/3 there (at d = 128
        # measured: Woodbury 0.25 vs 0.33 ms at k = 64, 0.62 vs 0.41 ms at k = 127); B0 is kept, not re-inverted
        if 3 * H.shape[0] >= 2 * self.d:
            return np.linalg.solve(B0 + _LS_ALPHA * (H.T @ H), r)
        P = H @ B0_inv
        inner = np.eye(H.shape[0]) / _LS_ALPHA + P @ H.T
        return B0_inv @ r - P.T @ np.linalg.solve(inner, P @ r)

    def base(self, histories: sp.csr_matrix, name: str) -> np.ndarray:
        """The base estimate ``name`` ("propagate" or "least_squares") of B histories."""
        if name == "propagate":
            return self.propagate(histories)
        if name == "least_squares":
            return self.least_squares(histories)
        raise ValueError(f"unknown fold-in estimator {name!r}; one of {', '.join(ESTIMATORS)}")

    # ---- the map ----
    def map_for(self, base: str) -> Map:
        """The map of base estimate ``base``, fitted on first use: the ridge regression of the trained entities'
        served vectors (and biases) on their own base estimates."""
        if base not in self._maps:
            histories, targets, biases = self._fit
            if histories is None or targets is None or histories.shape[0] == 0:
                self._maps[base] = Map(np.eye(self.d, dtype=np.float32), np.zeros(self.d, dtype=np.float32), None)
            else:
                self._maps[base] = Map.fit(self.base(histories, base), targets, biases)
        return self._maps[base]

    # ---- estimates ----
    def vectors(self, histories: sp.csr_matrix, estimator: Estimator = DEFAULT_ESTIMATOR) -> np.ndarray:
        """(B, d) float32 served-vector estimates for B histories."""
        base, mapped = _parse(estimator)
        estimate = self.base(histories, base)
        return self._mapped(estimate, base) if mapped else estimate

    def bias(self, histories: sp.csr_matrix, estimator: Estimator = DEFAULT_ESTIMATOR) -> np.ndarray | None:
        """(B,) float32 predicted biases of B new items (None when the fit had no biases)."""
        return self.vectors_and_bias(histories, estimator)[1]

    def vectors_and_bias(
        self, histories: sp.csr_matrix, estimator: Estimator = DEFAULT_ESTIMATOR
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`vectors` and :meth:`bias` from one base estimate (the least-squares one is a solve a history)."""
        base, mapped = _parse(estimator)
        estimate = self.base(histories, base)
        fitted_map = self.map_for(base)
        vectors = self._mapped(estimate, base) if mapped else estimate
        if fitted_map.bias is None:
            return vectors, None
        w, c0 = fitted_map.bias
        return vectors, (estimate @ w + c0).astype(np.float32)

    def _mapped(self, estimate: np.ndarray, base: str) -> np.ndarray:
        fitted_map = self.map_for(base)
        return (estimate @ fitted_map.W + fitted_map.c).astype(np.float32)

    def _base_system(self) -> tuple[np.ndarray, np.ndarray]:
        """B0 = G + λI and B0⁻¹, (d, d) float64, G = Σ_all h hᵀ over the neighbour side (a block at a time),
        computed once (one tuple store: a thread sees both or neither)."""
        if self._B0 is None:
            gram = np.zeros((self.d, self.d))
            for start in range(0, self.n_neighbours, _BLOCK):
                H = self.neighbour_vectors(np.arange(start, min(self.n_neighbours, start + _BLOCK))).astype(np.float64)
                gram += H.T @ H
            B0 = gram + _LS_RIDGE * float(np.trace(gram)) / max(1, self.d) * np.eye(self.d)
            self._B0 = (B0, np.linalg.inv(B0))
        return self._B0

    def nbytes(self) -> int:
        """Bytes held: the degree weights, the fitted maps, the Gram matrix and the fit sample's targets."""
        held = self._inv_sqrt_degree.nbytes + sum(m.nbytes() for m in self._maps.values())
        held += 0 if self._B0 is None else sum(m.nbytes for m in self._B0)
        histories, targets, biases = self._fit
        for array in (targets, biases):
            held += 0 if array is None else array.nbytes
        if histories is not None:
            held += histories.data.nbytes + histories.indices.nbytes + histories.indptr.nbytes
        return int(held)


class Map:
    """h ≈ f·W + c: ``W`` (d, d) and ``c`` (d,) float32; ``bias`` ((d,) weights, offset) predicts an item bias."""

    def __init__(self, W: np.ndarray, c: np.ndarray, bias: tuple[np.ndarray, float] | None) -> None:
        self.W, self.c, self.bias = W, c, bias

    @classmethod
    def fit(cls, features: np.ndarray, targets: np.ndarray, biases: np.ndarray | None = None) -> Map:
        """Ridge regression (intercept unshrunk) of ``targets`` (B, d) and ``biases`` (B,) on ``features`` (B, d)."""
        d = features.shape[1]
        X = np.hstack([features.astype(np.float64), np.ones((features.shape[0], 1))])
        gram = X.T @ X
        gram[np.arange(d), np.arange(d)] += _RIDGE * float(np.trace(gram[:-1, :-1])) / max(1, d)
        Y = targets.astype(np.float64)
        if biases is not None:
            Y = np.hstack([Y, biases.astype(np.float64)[:, None]])
        solution = np.linalg.solve(gram, X.T @ Y)
        bias = None if biases is None else (solution[:d, d].astype(np.float32), float(solution[d, d]))
        return cls(solution[:d, :d].astype(np.float32), solution[d, :d].astype(np.float32), bias)

    def nbytes(self) -> int:
        return int(self.W.nbytes + self.c.nbytes + (0 if self.bias is None else self.bias[0].nbytes + 8))


def _parse(estimator: str) -> tuple[str, bool]:
    """("propagate" | "least_squares", whether mapped) of an estimator name."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown fold-in estimator {estimator!r}; one of {', '.join(ESTIMATORS)}")
    base, _, mapped = estimator.partition("+")
    return base, bool(mapped)


def fitted(
    neighbour_vectors: Callable[[np.ndarray], np.ndarray],
    own_vectors: Callable[[np.ndarray], np.ndarray],
    graph: sp.csr_matrix,
    d: int,
    own_biases: np.ndarray | None = None,
    seed: int = 0,
) -> FoldIn:
    """A :class:`FoldIn` for the side whose rows ``graph`` (n_own, n_neighbours) holds, whose maps fit on a seeded
    sample of at most :data:`FIT_SAMPLE` of its trained entities that have neighbours: ``own_vectors`` gives their
    served vectors, ``own_biases`` (n_own,) their biases (items) or None."""
    graph = sp.csr_matrix(graph)
    degree = np.bincount(graph.indices, minlength=graph.shape[1])
    candidates = np.flatnonzero(np.diff(graph.indptr))
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(candidates, size=min(FIT_SAMPLE, candidates.size), replace=False))
    histories = graph[sample]
    histories.data[:] = 1.0
    biases = None if own_biases is None else own_biases[sample]
    return FoldIn(neighbour_vectors, degree, d, histories, own_vectors(sample), biases)


def stored(
    neighbour_vectors: Callable[[np.ndarray], np.ndarray], graph: sp.csr_matrix, W: np.ndarray, c: np.ndarray
) -> FoldIn:
    """The users' :class:`FoldIn` of a model that stores its map (``fold_in_W`` (d, d), ``fold_in_c`` (d,), of the
    default estimator's base): ``graph`` (n_users, n_items) gives the items' degrees; nothing is fitted here."""
    graph = sp.csr_matrix(graph)
    degree = np.bincount(graph.indices, minlength=graph.shape[1])
    W32, c32 = np.asarray(W, dtype=np.float32), np.asarray(c, dtype=np.float32)
    return FoldIn(neighbour_vectors, degree, int(W32.shape[0]), maps={DEFAULT_BASE: Map(W32, c32, None)})
