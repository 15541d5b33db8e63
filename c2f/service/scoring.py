"""Top-n scoring from a loaded artifact (implicit-style API), numpy only.

Two serving modes:

* ``compressed`` (legcf/c2f): never materialises the n_items × d table.  For a user,
  ``h_u = Σ_j w_j·H_meta[idx_j]`` (``S_c_idx_served``, ``S_c_w_served``), ``q = H_meta @ h_u`` (m_c values)
  and item scores are a gather
  ``(S_c_w_served[items] * q[S_c_idx_served[items]]).sum(1)`` (run as a CSR product of the items' S^c rows with q):
  O(t_c·d + m_c·d + n_items·t_c) operations per user, linear in the number of items and independent of the
  number of users; a top-n request adds O(n_items) for masking the user's seen items and the partial sort
  (``top_n``), and the memory it touches is the items' S^c rows (n_items·t_c·8 bytes) plus one (n_items,) float32
  score vector.
* ``exact``: ``H_full`` is recomputed once at load by :func:`contract.methods.exact_embeddings` and scored
  densely.  Methods without a compressed form are scored densely in compressed mode: ud from its stored table; the
  equal-memory baselines hash and qr (``spec.exact_only``) store no (N, d) table and no compressed form, so they
  are served exactly in both modes (LightGCN gives every entity its own propagated vector, so the shared rows alone
  are not the served embeddings): small on disk, an (N, d) table in memory once loaded.

Stored dtypes (:mod:`contract.dtypes`): arithmetic runs in float32.  A float16 codebook ``H_meta`` (m_c × d, small)
is upcast once at load (reported in ``memory_bytes``, so bytes in memory exceed bytes stored by m_c·d·4); float16
weights are upcast per request only for the few rows a request reads.  A float16 dense table is not copied: it is
scored in item chunks of bounded size, each upcast on the fly, so memory stays at the stored bytes and a request
allocates nothing proportional to the catalogue beyond its score vector.  uint16/uint32 indices are used as stored.

* ``compressed`` with a product-quantized part (``TrainConfig.pq_subspaces``): each entity also has M uint8 codes;
  a query builds an (M·K,) lookup table and an item's score gains the sum of its M entries
  (:class:`ProductQuantizedScorer`, on top of the sparse form for legcf/c2f, alone for ud, hash and qr):
  O(n_items·M) more per user, the items' codes (a subspace-major uint8 copy, n_items·M bytes) touched; with
  ``pq_item_scale`` each item's score is then multiplied by its scale (its served vector brought to its exact norm).

Each is a scorer (:class:`CompressedScorer`, :class:`DenseScorer`, :class:`ProductQuantizedScorer`) chosen once at
load by :func:`make_scorer`; :class:`Recommender` adds id maps, masks and top-n on top of whichever it got.

Item/user indices are 0-based within their kind (items 0..n_items-1), as in the artifact's CSR arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, get_args

import numpy as np

from c2f.contract.artifact import Artifact, ArtifactError
from c2f.contract.dtypes import as_float32
from c2f.contract.idmap import IdMap
from c2f.contract.methods import COMMON_ARRAYS, exact_embeddings
from c2f.contract.reconstruct import assignment_matrix, compressed_embeddings, pq_embeddings
from c2f.service.settings import ServingMode

MODES: tuple[str, ...] = get_args(ServingMode)
_NEG_INF = np.float32(-np.inf)
_CHUNK_ELEMENTS = 1 << 22  # temporaries of at most ~16 MB float32


_GROUP_SIZE = 64  # top_n's prefilter: entries per group


def _item_norms(item_embeddings: Callable[[np.ndarray], np.ndarray], n_items: int, row_values: int) -> np.ndarray:
    """(n_items,) float32 norms of ``item_embeddings(rows)``, a block of rows at a time (``row_values``: what one
    row's reconstruction gathers), so the temporaries stay within ~16 MB."""
    norms = np.empty(n_items, dtype=np.float32)
    step = max(1, _CHUNK_ELEMENTS // max(1, row_values))
    for start in range(0, n_items, step):
        rows = np.arange(start, min(n_items, start + step))
        norms[start : start + len(rows)] = np.linalg.norm(item_embeddings(rows), axis=1)
    return norms


def _prefilter(scores: np.ndarray, n: int) -> np.ndarray | None:
    """Indices of a superset of the top ``n`` (usually a few hundred entries), or None when no bound helps.

    Group-max bound: the n-th largest of the group maxima is a lower bound L on the n-th best score (the top n group
    maxima are n distinct entries >= L), so ``scores >= L`` keeps everything that can be in the top n.  The groups
    are strided (entry i is in group i % n_groups) so the maxima are one vectorised reduction.  None when there are
    too few groups or fewer than n finite group maxima.
    """
    n_groups = scores.shape[0] // _GROUP_SIZE
    if n_groups < 4 * n:
        return None
    group_max = scores[: n_groups * _GROUP_SIZE].reshape(_GROUP_SIZE, n_groups).max(axis=0)
    bound = np.partition(group_max, n_groups - n)[n_groups - n]
    return np.flatnonzero(scores >= bound) if np.isfinite(bound) else None


def _candidates(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of every score >= the n-th largest (the top n, boundary ties included); the exact partition runs on
    the prefiltered entries only."""
    pool = _prefilter(scores, n)
    values = scores if pool is None else scores[pool]
    if values.size > n:
        kth = values[np.argpartition(values, values.size - n)[values.size - n]]
        keep = np.flatnonzero(values >= kth)
    else:
        keep = np.arange(values.size)
    return keep if pool is None else pool[keep]


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``n`` largest finite scores, best first (ties: lower index first).

    -inf marks excluded entries; fewer than ``n`` results come back when fewer are finite.
    """
    size = scores.shape[0]
    n = min(n, size)
    if n <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    # Everything scoring at least the n-th best value, so ties at the boundary are resolved by index.
    cand = np.arange(size) if n == size else _candidates(scores, n)
    order = np.lexsort((cand, -scores[cand]))
    idx = cand[order][:n].astype(np.int64)
    vals = scores[idx]
    keep = np.isfinite(vals)
    return idx[keep], vals[keep].astype(np.float32)


class Scorer(Protocol):
    """How a recommender reads embeddings and scores items: dense (an (N, d) table) or compressed (S^c, H_meta)."""

    kind: str  # "dense" | "compressed" | "pq" | "compressed+pq": what the scorer reads (GET /footprint's ``scoring``)
    item_norms: np.ndarray  # (n_items,) float32 norms of the served item vectors (cosine similarity)

    def user_embeddings(self, user_indices: np.ndarray) -> np.ndarray: ...
    def item_embeddings(self, item_indices: np.ndarray) -> np.ndarray: ...
    def scores_for_vectors(self, vectors: np.ndarray) -> np.ndarray: ...
    def memory_bytes(self) -> dict[str, int]: ...


class DenseScorer:
    """Scores from a dense (N, d) entity table: ud's stored ``H_full``, or exact mode's reconstruction."""

    kind = "dense"

    def __init__(self, table: np.ndarray, n_users: int, *, derived: bool) -> None:
        """``table``: (N, d) float32 or float16 (stored compactly; scored in upcast chunks), users first.
        ``derived``: built at load (counted in memory_bytes)."""
        self._table = table
        self._users = table[:n_users]
        self._items = table[n_users:]
        self._derived = derived
        # rows of items upcast at a time when the table is not float32: bounds each request's temporaries
        self._chunk_rows = max(1, _CHUNK_ELEMENTS // max(1, table.shape[1]))
        self.item_norms = np.empty(self._items.shape[0], dtype=np.float32)
        for start, block in self._item_blocks():
            self.item_norms[start : start + block.shape[0]] = np.linalg.norm(block, axis=1)

    def _item_blocks(self) -> Iterable[tuple[int, np.ndarray]]:
        """(first row, float32 block) over the item rows: the table itself when float32, else upcast chunks."""
        if self._items.dtype == np.float32:
            yield 0, self._items
            return
        for start in range(0, self._items.shape[0], self._chunk_rows):
            yield start, np.asarray(self._items[start : start + self._chunk_rows], dtype=np.float32)

    def user_embeddings(self, user_indices: np.ndarray) -> np.ndarray:
        return np.asarray(self._users[user_indices], dtype=np.float32)

    def item_embeddings(self, item_indices: np.ndarray) -> np.ndarray:
        return np.asarray(self._items[item_indices], dtype=np.float32)

    def scores_for_vectors(self, vectors: np.ndarray) -> np.ndarray:
        if self._items.dtype == np.float32:
            return np.asarray(vectors @ self._items.T, dtype=np.float32)
        out = np.empty((vectors.shape[0], self._items.shape[0]), dtype=np.float32)
        for start, block in self._item_blocks():
            out[:, start : start + block.shape[0]] = vectors @ block.T
        return out

    def memory_bytes(self) -> dict[str, int]:
        return {"exact_H_full": int(self._table.nbytes)} if self._derived else {}


class CompressedScorer:
    """Scores straight from the served assignment and codebook, never materialising the n_items × d table.

    ``S_idx, S_w: (N, t_c)`` (``S_c_idx_served``, ``S_c_w_served``), ``H_meta: (m_c, d)``.
    """

    kind = "compressed"

    def __init__(
        self, S_idx: np.ndarray, S_w: np.ndarray, H_meta: np.ndarray, n_users: int, *, item_norms: bool = True
    ) -> None:
        """``item_norms=False``: skip the items' norms (a scorer that adds to these vectors computes its own)."""
        # A float16 codebook is upcast once (m_c × d: small, and every request multiplies with all of it).
        self._H_meta_upcast = H_meta.dtype != np.float32
        self._S_idx, self._S_w, self._H_meta = S_idx, S_w, as_float32(H_meta)
        self._n_users = n_users
        self._n_items = S_idx.shape[0] - n_users
        # The items' rows of S^c as CSR (n_items × m_c, t_c entries a row): S_items @ q is exactly the gather
        # Σ_j w[i, j]·q[idx[i, j]], done in C.  Same size as the items' S_c_idx/S_c_w_served rows.
        self._items_S = assignment_matrix(S_idx[n_users:], S_w[n_users:], H_meta.shape[0])
        row_values = self._H_meta.shape[1] * S_idx.shape[1]
        self.item_norms = (
            _item_norms(self.item_embeddings, self._n_items, row_values) if item_norms else np.empty(0, np.float32)
        )

    def user_embeddings(self, user_indices: np.ndarray) -> np.ndarray:
        return compressed_embeddings(self._S_idx, self._S_w, self._H_meta, user_indices)

    def item_embeddings(self, item_indices: np.ndarray) -> np.ndarray:
        return compressed_embeddings(self._S_idx, self._S_w, self._H_meta, item_indices + self._n_users)

    def scores_for_vectors(self, vectors: np.ndarray) -> np.ndarray:
        q = np.asarray(self._H_meta @ vectors.T, dtype=np.float32)  # (m_c, B): codebook vs query
        return np.ascontiguousarray(np.asarray(self._items_S @ q, dtype=np.float32).T)  # (B, n_items) gather

    def memory_bytes(self) -> dict[str, int]:
        S = self._items_S
        out = {"item_assignments_csr": int(S.data.nbytes + S.indices.nbytes + S.indptr.nbytes)}
        if self._H_meta_upcast:
            out["H_meta_float32"] = int(self._H_meta.nbytes)
        return out


class ProductQuantizedScorer:
    """Scores from the product-quantized part of the served vectors (``pq_codes``, ``pq_codebooks``;
    c2f/trainer/quantize.py), added to a sparse form's (``base``, legcf/c2f) or alone (methods without one).

    ``codes: (N, M)`` uint8, ``codebooks: (M, K, w)`` with M·w = d. For a query v the score of item i is
    Σ_m codebooks[m, codes[i, m]]·v_m (v_m: v's m-th block of w values): an (M, K) lookup table per query, then
    one gather of n_items values per subspace from the items' codes, held subspace-major as uint8 (n_items·M bytes:
    what is stored). O(M·K·w + n_items·M) per query on top of the base's. Not a CSR product of one-hot codes (as
    the sparse form runs): that would hold 8 bytes per code, 8× the stored codes, where this form's point is
    memory. Alone, the vectors are in the quantizer's rotated basis, which leaves every dot product and norm as it
    was."""

    def __init__(
        self,
        codes: np.ndarray,
        codebooks: np.ndarray,
        n_users: int,
        base: CompressedScorer | None = None,
        item_scale: np.ndarray | None = None,
    ) -> None:
        """``item_scale``: (n_items,) ``pq_item_scale``, each item's served vector (base + codes) times it; used as
        stored (a float16 one is upcast a buffer at a time inside the multiply, never copied whole)."""
        self.kind = "pq" if base is None else "compressed+pq"
        self._base = base
        self._item_scale = item_scale
        self._user_codes = np.array(codes[:n_users])  # (n_users, M) uint8: a copy, so the stored (N, M) is freed
        self._books = as_float32(codebooks)  # (M, K, w): M·K·w = K·d values, upcast once
        self._books_upcast = codebooks.dtype != np.float32
        self._item_codes = np.ascontiguousarray(codes[n_users:].T)  # (M, n_items) uint8: one gather per subspace
        row_values = codes.shape[1] * self._books.shape[2]  # M·w = d values a decoded row
        self.item_norms = _item_norms(self.item_embeddings, self._item_codes.shape[1], row_values)

    def _vectors(self, codes: np.ndarray, rows: np.ndarray, base: np.ndarray | None) -> np.ndarray:
        decoded = pq_embeddings(codes, self._books, rows)
        return decoded if base is None else base + decoded

    def user_embeddings(self, user_indices: np.ndarray) -> np.ndarray:
        base = None if self._base is None else self._base.user_embeddings(user_indices)
        return self._vectors(self._user_codes, np.asarray(user_indices), base)

    def item_embeddings(self, item_indices: np.ndarray) -> np.ndarray:
        base = None if self._base is None else self._base.item_embeddings(item_indices)
        vectors = self._vectors(self._item_codes.T, np.asarray(item_indices), base)  # (n_items, M) view: no copy
        if self._item_scale is not None:
            vectors *= self._item_scale[item_indices, None]
        return vectors

    def scores_for_vectors(self, vectors: np.ndarray) -> np.ndarray:
        M, _, w = self._books.shape
        blocks = vectors.reshape(vectors.shape[0], M, w).astype(np.float32, copy=False)
        table = np.einsum("mkw,bmw->mbk", self._books, blocks)  # (M, B, K): each block against its centroids
        scores = np.take(table[0], self._item_codes[0], axis=1)  # (B, n_items)
        for m in range(1, M):  # over subspaces (M ≤ d), each a vectorised gather over all items
            scores += np.take(table[m], self._item_codes[m], axis=1)
        if self._base is not None:
            scores += self._base.scores_for_vectors(vectors)
        if self._item_scale is not None:
            scores *= self._item_scale
        return scores

    def memory_bytes(self) -> dict[str, int]:
        out = {**(self._base.memory_bytes() if self._base is not None else {})}
        out["item_codes_by_subspace"] = int(self._item_codes.nbytes)
        out["user_codes"] = int(self._user_codes.nbytes)
        if self._books_upcast:
            out["pq_codebooks_float32"] = int(self._books.nbytes)
        return out


def make_scorer(artifact: Artifact, mode: ServingMode) -> Scorer:
    """The scorer for ``artifact`` in serving ``mode``: exact mode reconstructs H_full at load and scores densely;
    compressed mode scores from the product-quantized form when the artifact has one, else from the served
    assignment when the method has one, else from its stored dense table, else (``spec.exact_only``: hash, qr) as
    exact mode does."""
    a = artifact.arrays
    if mode == "compressed" and "pq_codes" in a:  # the product-quantized part, alone or on the sparse form
        base = None
        if artifact.spec.compressed:
            served = (a["S_c_idx_served"], a["S_c_w_served"], a["H_meta"])
            base = CompressedScorer(*served, artifact.n_users, item_norms=False)  # norms are of the summed vectors
        return ProductQuantizedScorer(a["pq_codes"], a["pq_codebooks"], artifact.n_users, base, a.get("pq_item_scale"))
    if mode == "exact" or artifact.spec.exact_only:  # hash, qr: no compressed form and no stored (N, d) table
        manifest = artifact.manifest
        missing = [f for f in artifact.spec.exact_fields if getattr(manifest, f, None) is None]
        if manifest.shape.layers is None or missing:
            raise ArtifactError(
                f"exact mode needs shape.layers{''.join(f' and {f}' for f in missing) or ''} in the manifest"
            )
        full = np.asarray(exact_embeddings(a, manifest), dtype=np.float32)
        if full.shape != (artifact.n_entities, artifact.d):
            raise ArtifactError(
                f"exact reconstruction has shape {full.shape}, expected {(artifact.n_entities, artifact.d)}"
            )
        return DenseScorer(full, artifact.n_users, derived=True)
    if artifact.spec.compressed:
        return CompressedScorer(a["S_c_idx_served"], a["S_c_w_served"], a["H_meta"], artifact.n_users)
    return DenseScorer(a[artifact.spec.table], artifact.n_users, derived=False)


def stored_arrays_kept(artifact: Artifact, mode: ServingMode) -> set[str]:
    """The stored arrays the scorer :func:`make_scorer` builds keeps as loaded (not copies): the sparse form's
    indices and weights, a float32 codebook (a float16 one is upcast into a copy), the item scales, ud's stored
    table; the codes are re-laid out and an exact-mode table is rebuilt, so neither keeps a stored array."""
    a = artifact.arrays

    def as_loaded(name: str) -> set[str]:  # a float32 array is used as it is; any other dtype is upcast (a copy)
        return {name} if a[name].dtype == np.float32 else set()

    if mode == "exact" or (artifact.spec.exact_only and "pq_codes" not in a):
        return set()
    kept: set[str] = set()
    if "pq_codes" in a:
        kept = as_loaded("pq_codebooks") | ({"pq_item_scale"} & set(a))  # the scales are used as stored
    if artifact.spec.compressed:
        return kept | {"S_c_idx_served", "S_c_w_served"} | as_loaded("H_meta")
    return kept if "pq_codes" in a else {artifact.spec.table}


class Recommender:
    """Scores users against items (and items against items) for one loaded artifact.

    Immutable after construction and safe to share between threads.
    """

    def __init__(self, artifact: Artifact, mode: str = "compressed") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown serving mode {mode!r} (expected one of {', '.join(MODES)})")
        self.artifact = artifact
        self.mode: str = mode
        a = artifact.arrays
        self.n_users = artifact.n_users
        self.n_items = artifact.n_items
        self.version = artifact.version
        self.method = artifact.method
        self.user_ids: np.ndarray = a["user_ids"]
        self.item_ids: np.ndarray = a["item_ids"]
        # binary search over the id arrays as loaded (no Python object per id: a million users cost no dict)
        self._user_index = IdMap(self.user_ids)
        self._item_index = IdMap(self.item_ids)
        self._graph = (a["graph_indptr"], a["graph_indices"])
        self._heldout = (a["heldout_indptr"], a["heldout_indices"])
        counts = np.bincount(a["graph_indices"], minlength=self.n_items) + np.bincount(
            a["heldout_indices"], minlength=self.n_items
        )
        self._popularity = counts.astype(np.float32)
        # (n_items,) learned per-item score offsets (TrainConfig.biases), added to every user's scores; None without
        self._item_bias: np.ndarray | None = a.get("item_bias")
        self.scorer: Scorer = make_scorer(artifact, mode)  # type: ignore[arg-type]  # checked against MODES above
        # what serving holds: the id maps, graph and biases the recommender reads, the stored arrays the scorer
        # keeps; every other array (exact mode's layer-0 arrays, a full table served from codes) is freed once the
        # caller drops the artifact as loaded, and self.artifact.arrays is what stays in memory of the stored ones
        self.artifact = artifact.holding({*COMMON_ARRAYS, "item_bias", *stored_arrays_kept(artifact, mode)})  # type: ignore[arg-type]
        self.scoring: str = self.scorer.kind
        self._item_norms = self.scorer.item_norms

    # ----------------------------------------------------------------------------------------------------------
    # id maps
    # ----------------------------------------------------------------------------------------------------------
    def user_index(self, user_id: str) -> int | None:
        return self._user_index.get(user_id)

    def item_index(self, item_id: str) -> int | None:
        return self._item_index.get(item_id)

    # ----------------------------------------------------------------------------------------------------------
    # embeddings and raw scores
    # ----------------------------------------------------------------------------------------------------------
    def user_embeddings(self, user_indices: np.ndarray) -> np.ndarray:
        """(len(user_indices), d) float32 user vectors as served."""
        return self.scorer.user_embeddings(user_indices)

    def item_embeddings(self, item_indices: np.ndarray) -> np.ndarray:
        """(len(item_indices), d) float32 item vectors as served (for a few items; never call on all items)."""
        return self.scorer.item_embeddings(item_indices)

    def scores_for_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Dot products of query vectors (B, d) with every item: (B, n_items) float32."""
        return self.scorer.scores_for_vectors(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))

    def user_scores(self, user_indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Raw (unmasked) scores (len(user_indices), n_items): h_u·h_i, plus b_i when the model has item biases."""
        idx = np.asarray(user_indices, dtype=np.int64)
        scores = self.scores_for_vectors(self.user_embeddings(idx))
        if self._item_bias is not None:
            scores += self._item_bias
        return scores

    # ----------------------------------------------------------------------------------------------------------
    # masks
    # ----------------------------------------------------------------------------------------------------------
    def seen_items(self, user_index: int) -> np.ndarray:
        """Items the user interacted with in training (graph ∪ held-out validation), possibly with repeats."""
        (gp, gi), (hp, hi) = self._graph, self._heldout
        return np.concatenate([gi[gp[user_index] : gp[user_index + 1]], hi[hp[user_index] : hp[user_index + 1]]])

    def _exclude_array(self, exclude_items: Iterable[int] | None) -> np.ndarray:
        if exclude_items is None:
            return np.empty(0, np.int64)
        arr = np.fromiter((int(i) for i in exclude_items), dtype=np.int64)
        return arr[(arr >= 0) & (arr < self.n_items)]

    def _check_user(self, user_index: int) -> None:
        if not 0 <= user_index < self.n_users:
            raise IndexError(f"user index {user_index} out of range [0, {self.n_users})")

    def _check_item(self, item_index: int) -> None:
        if not 0 <= item_index < self.n_items:
            raise IndexError(f"item index {item_index} out of range [0, {self.n_items})")

    # ----------------------------------------------------------------------------------------------------------
    # public API
    # ----------------------------------------------------------------------------------------------------------
    def recommend(
        self,
        user_index: int,
        n: int = 20,
        exclude_seen: bool = True,
        exclude_items: Iterable[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for one user: (item indices int64, scores float32), best first."""
        return self.recommend_batch([user_index], n, exclude_seen, exclude_items)[0]

    def recommend_batch(
        self,
        user_indices: Sequence[int] | np.ndarray,
        n: int = 20,
        exclude_seen: bool = True,
        exclude_items: Iterable[int] | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``n`` for several users; ``exclude_items`` applies to all of them.  One (indices, scores) per user."""
        users = [int(u) for u in user_indices]
        for u in users:
            self._check_user(u)
        excl = self._exclude_array(exclude_items)
        results: list[tuple[np.ndarray, np.ndarray]] = []
        step = max(1, _CHUNK_ELEMENTS // max(1, self.n_items))
        for start in range(0, len(users), step):
            chunk = users[start : start + step]
            scores = self.user_scores(chunk)
            for row, u in enumerate(chunk):
                s = scores[row]
                if exclude_seen:
                    s[self.seen_items(u)] = _NEG_INF
                if excl.size:
                    s[excl] = _NEG_INF
                results.append(top_n(s, n))
        return results

    def similar_items(self, item_index: int, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """Cosine neighbours of an item (the item itself excluded): (item indices, cosine similarities)."""
        self._check_item(item_index)
        vec = self.item_embeddings(np.array([item_index], dtype=np.int64))
        dots = self.scores_for_vectors(vec)[0]
        denom = self._item_norms * self._item_norms[item_index]
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where(denom > 0, dots / denom, 0.0).astype(np.float32)
        cos[item_index] = _NEG_INF
        return top_n(cos, n)

    def popular(self, n: int = 20, exclude: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Most-interacted items in the training data (graph ∪ held-out), minus ``exclude``: (indices, counts)."""
        scores = self._popularity.copy()
        excl = self._exclude_array(exclude)
        if excl.size:
            scores[excl] = _NEG_INF
        return top_n(scores, n)

    def smoke_test(self) -> None:
        """A tiny end-to-end query; raises when the model produces non-finite or malformed output."""
        if self.n_users == 0 or self.n_items == 0:
            raise ArtifactError("model has no users or no items")
        k = min(10, self.n_items)
        idx, scores = self.recommend(0, k, exclude_seen=False)
        if len(idx) != k or not np.all(np.isfinite(scores)):
            raise ArtifactError("smoke query returned non-finite or too few scores")
        self.similar_items(0, min(5, max(1, self.n_items - 1)))

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held by this recommender on top of the artifact's arrays (derived structures)."""
        return {
            "item_norms": int(self._item_norms.nbytes),
            "popularity": int(self._popularity.nbytes),
            "id_lookup": self._user_index.nbytes() + self._item_index.nbytes(),
            **self.scorer.memory_bytes(),
        }
