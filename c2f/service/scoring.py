"""Top-n scoring from a loaded artifact (implicit-style API), numpy only.

What a model is served from, in either serving mode, is its served form (:mod:`contract.served`): the exact
table rebuilt at load, ud's stored table, the sparse form (legcf, c2f: never an n_items × d table), the
product-quantized codes alone or on the sparse form. The form is chosen once at load; :class:`Recommender` adds
id maps, item biases, masks and top-n on top of whichever it got, and frees every stored array the form does not
keep. The trainer's served metrics evaluate the same form's vectors. Which items a ranking may answer (exclude,
hidden, an allow-list, attribute filters) is one :class:`service.filters.ItemFilter` per request; with few
answerable items only those are scored (their vectors gathered from the served form).

Item/user indices are 0-based within their kind (items 0..n_items-1), as in the artifact's CSR arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import cached_property
from typing import Literal, get_args

import numpy as np
import scipy.sparse as sp

from c2f.contract.artifact import Artifact, ArtifactError
from c2f.contract.attributes import ItemAttributes
from c2f.contract.foldin import DEFAULT_ESTIMATOR, Estimator, FoldIn, fitted, history_csr, stored
from c2f.contract.idmap import IdMap
from c2f.contract.manifest import Footprint
from c2f.contract.methods import ATTRIBUTE_ARRAYS, COMMON_ARRAYS, exact_embeddings
from c2f.contract.served import CHUNK_ELEMENTS, ServedForm, served_form
from c2f.service.filters import ItemFilter

UserVectors = Literal["trained", "fold_in"]
"""What a known user is scored with: its trained vector, or one folded in from its training items."""
USER_VECTORS: tuple[str, ...] = get_args(UserVectors)
_NEG_INF = np.float32(-np.inf)
_CHUNK_ELEMENTS = CHUNK_ELEMENTS  # users scored at a time: score temporaries of at most ~16 MB float32


_GROUP_SIZE = 64  # top_n's prefilter: entries per group


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


def _one_blas_thread() -> AbstractContextManager[object]:
    """BLAS limited to one thread for the block (threadpoolctl, in the serve extra), else nothing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a numpy-only install: BLAS as configured
        return nullcontext()
    return threadpool_limits(limits=1)


def _histories_csr(histories: Sequence[np.ndarray], bound: int, kind: str) -> sp.csr_matrix:
    """The (B, bound) 0/1 CSR of B index histories; IndexError for an index outside [0, bound)."""
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if len(histories) else indptr[:0]
    if indices.size and (indices.min() < 0 or indices.max() >= bound):
        raise IndexError(f"{kind} index out of range [0, {bound})")
    return history_csr(indptr, indices, bound)


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


def _gather_divisor(form: str, d: int, fp: Footprint) -> int:
    """Score only an item filter's candidates (their vectors gathered) when they are at most n_items / this: where
    gathering them costs about what scoring every item does. Scoring every item reads a dense form's d values an
    item, the sparse form's t_s terms, the codes' M bytes; gathering decodes d values a candidate (t_s·d for the
    sparse form). Measured on a 40,000-item catalogue, d = 64, one core: break-even at about n_items/2 for a
    dense table, n_items/50 for the sparse form and n_items/20 for the codes with M = 8 (tests pin the choice, not
    the speed)."""
    if form in ("exact", "table"):
        return 2
    if form in ("pq", "sparse+pq"):
        return max(2, 2 * d // max(1, fp.pq_subspaces or 1))
    return max(2, d)


def _exact_table(artifact: Artifact) -> np.ndarray:
    """The propagated (N, d) float32 table of ``artifact`` (:func:`contract.methods.exact_embeddings`), for the
    exact form; ArtifactError when the manifest lacks what it needs or the result has the wrong shape."""
    manifest = artifact.manifest
    missing = [f for f in artifact.spec.exact_fields if getattr(manifest, f, None) is None]
    if manifest.shape.layers is None or missing:
        needs = "".join(f" and {f}" for f in missing)
        raise ArtifactError(f"exact mode needs shape.layers{needs} in the manifest")
    full = np.asarray(exact_embeddings(artifact.arrays, manifest), dtype=np.float32)
    if full.shape != (artifact.n_entities, artifact.d):
        expected = (artifact.n_entities, artifact.d)
        raise ArtifactError(f"exact reconstruction has shape {full.shape}, expected {expected}")
    return full


class Recommender:
    """Scores users against items (and items against items) for one loaded artifact.

    Immutable after construction and safe to share between threads.
    """

    def __init__(self, artifact: Artifact, mode: str = "compressed", user_vectors: UserVectors = "trained") -> None:
        self.artifact = artifact
        self.mode: str = mode
        # "trained": a known user is scored with its trained (served) vector; "fold_in": with the vector folded in
        # from its training items, as a new visitor would be (:meth:`fold_in`), which served held-out and trained
        # users better than their trained vectors on lastfm and ml-1m (BENCHMARKS.md, "Fold-in")
        self.user_vectors: UserVectors = user_vectors
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
        # the served form, chosen once: what every score and vector below reads (exact mode rebuilds its table here)
        self.scorer: ServedForm = served_form(artifact.spec, a, mode, lambda: _exact_table(artifact))
        # (n_items,) learned per-item score offsets (TrainConfig.biases), added to every user's scores; None without
        self._item_bias = self.scorer.item_bias
        # what serving holds: the id maps and graph the recommender reads, the stored arrays the form keeps; every
        # other array (exact mode's layer-0 arrays, a full table served from codes) is freed once the caller drops
        # the artifact as loaded, and self.artifact.arrays is what stays in memory of the stored ones
        self.artifact = artifact.holding({*COMMON_ARRAYS, *self.scorer.kept, *ATTRIBUTE_ARRAYS})
        self.scoring: str = self.scorer.scoring
        self._item_norms = self.scorer.item_norms
        # the item attribute table (where= filters), None when the artifact has none
        self.attributes: ItemAttributes | None = ItemAttributes.from_arrays(self.artifact.arrays)
        self.gather_limit = self.n_items // _gather_divisor(self.scorer.name, artifact.d, artifact.footprint)
        # users folded in from their items (c2f.contract.foldin), the linear map fitted here on trained users
        d = int(artifact.d)
        graph = sp.csr_matrix(
            (np.ones(len(self._graph[1]), dtype=np.float32), self._graph[1], self._graph[0]),
            shape=(self.n_users, self.n_items),
        )
        if self.scorer.fold_in_map is not None:  # no user rows served: every user is folded in, with the stored map
            self.user_vectors = "fold_in"
            self.user_fold_in: FoldIn = stored(self.scorer.item_vectors, graph, *self.scorer.fold_in_map)
        else:
            with _one_blas_thread():  # thousands of small solves: BLAS threads only contend (20x slower on 2 cores)
                self.user_fold_in = fitted(self.scorer.item_vectors, self.scorer.user_vectors, graph, d)
                self.user_fold_in.vectors(graph[:0])  # the default estimator's map is fitted now, not by a request

    @cached_property
    def item_fold_in(self) -> FoldIn:
        """New items folded in from their users (the symmetric estimate, with the item bias predicted too), fitted
        on trained items at first use."""
        # built here, not held from __init__: its data (nnz float32 ones) would be held for a benchmark-only path
        gp, gi = self._graph
        graph = sp.csr_matrix((np.ones(len(gi), dtype=np.float32), gi, gp), shape=(self.n_users, self.n_items))
        graph_t = sp.csr_matrix(graph.T)
        own_biases = self._item_bias
        # users as served: folded in themselves when the form holds no user rows
        users = self.user_embeddings if self.scorer.users_folded_in else self.scorer.user_vectors
        return fitted(users, self.scorer.item_vectors, graph_t, int(self.artifact.d), own_biases=own_biases)

    # ----------------------------------------------------------------------------------------------------------
    # id maps
    # ----------------------------------------------------------------------------------------------------------
    def user_index(self, user_id: str) -> int | None:
        return self._user_index.get(user_id)

    def item_index(self, item_id: str) -> int | None:
        return self._item_index.get(item_id)

    def item_indices(self, item_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """(len(item_ids),) int64 indices of many item ids at once (one vectorised search); -1 where unknown."""
        if len(item_ids) == 0:
            return np.empty(0, np.int64)
        return self._item_index.lookup(list(item_ids))  # not np.asarray(dtype=str): IdMap.lookup bounds its width

    # ----------------------------------------------------------------------------------------------------------
    # embeddings and raw scores
    # ----------------------------------------------------------------------------------------------------------
    def user_embeddings(self, user_indices: np.ndarray) -> np.ndarray:
        """(len(user_indices), d) float32 user vectors as served (trained, or folded in: ``user_vectors``)."""
        if self.user_vectors == "fold_in":
            return self.fold_in([self.seen_items(int(u)) for u in np.asarray(user_indices).ravel()])
        return self.scorer.user_vectors(user_indices)

    def item_embeddings(self, item_indices: np.ndarray) -> np.ndarray:
        """(len(item_indices), d) float32 item vectors as served (for a few items; never call on all items)."""
        return self.scorer.item_vectors(item_indices)

    def scores_for_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Dot products of query vectors (B, d) with every item: (B, n_items) float32."""
        return self.scorer.scores(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))

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
    def graph_items(self, user_index: int) -> np.ndarray:
        """The user's training-graph items (what its trained vector and the fold-in's fit saw)."""
        gp, gi = self._graph
        return gi[gp[user_index] : gp[user_index + 1]]

    def seen_items(self, user_index: int) -> np.ndarray:
        """Items the user interacted with in training (graph ∪ held-out validation), possibly with repeats."""
        (gp, gi), (hp, hi) = self._graph, self._heldout
        return np.concatenate([gi[gp[user_index] : gp[user_index + 1]], hi[hp[user_index] : hp[user_index + 1]]])

    def filter_for(
        self,
        exclude_items: Iterable[int] | None = None,
        item_filter: ItemFilter | None = None,
    ) -> ItemFilter:
        """``item_filter`` (every item answerable when None) with ``exclude_items`` dropped too."""
        if item_filter is None:
            return ItemFilter.build(self.n_items, exclude=exclude_items)
        if exclude_items is None:
            return item_filter
        more = ItemFilter.build(self.n_items, exclude=exclude_items).blocked
        return ItemFilter.build(
            self.n_items,
            exclude=np.union1d(item_filter.blocked, more),
            allow=item_filter.candidates,
            mask=item_filter.keep,
        )

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
        item_filter: ItemFilter | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for one user: (item indices int64, scores float32), best first."""
        return self.recommend_batch([user_index], n, exclude_seen, exclude_items, item_filter)[0]

    def recommend_batch(
        self,
        user_indices: Sequence[int] | np.ndarray,
        n: int = 20,
        exclude_seen: bool = True,
        exclude_items: Iterable[int] | None = None,
        item_filter: ItemFilter | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``n`` for several users; ``exclude_items`` and ``item_filter`` (exclude, hidden, allow-list, attribute
        filter: :class:`service.filters.ItemFilter`) apply to all of them. One (indices, scores) per user."""
        users = [int(u) for u in user_indices]
        for u in users:
            self._check_user(u)
        seen = [self.seen_items(u) for u in users] if exclude_seen else None
        return self.rank(
            self.user_embeddings(np.asarray(users, dtype=np.int64)),
            n,
            self.filter_for(exclude_items, item_filter),
            seen,
        )

    def rank(
        self,
        queries: np.ndarray,
        n: int,
        item_filter: ItemFilter | None = None,
        drop: Sequence[np.ndarray] | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``n`` items for each query vector (B, d), h·h_i (+ b_i with item biases), among the items
        ``item_filter`` answers, minus ``drop[b]`` (item indices, e.g. a user's seen items) for row b.

        With few answerable items (at most :attr:`gather_limit`) only those are scored, from their served vectors;
        else every item, the others set to -inf. Either way the order is the full ranking's, filtered."""
        filt = item_filter if item_filter is not None else ItemFilter.none(self.n_items)
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        columns = self._gathered(filt)  # the items the score columns stand for (None: every item)
        width = self.n_items if columns is None else columns.size
        step = max(1, _CHUNK_ELEMENTS // max(1, width))
        vectors = self.item_embeddings(columns) if columns is not None and columns.size else None
        results: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, queries.shape[0], step):
            chunk = queries[start : start + step]
            if columns is None:
                scores = self.scores_for_vectors(chunk)
                if self._item_bias is not None:
                    scores += self._item_bias
                filt.apply(scores)
            elif vectors is None:
                scores = np.empty((chunk.shape[0], 0), dtype=np.float32)
            else:
                scores = np.asarray(chunk @ vectors.T, dtype=np.float32)
                if self._item_bias is not None:
                    scores += self._item_bias[columns]
            for row in range(chunk.shape[0]):
                s = scores[row]
                dropped = drop[start + row] if drop is not None else None
                if dropped is not None and dropped.size:
                    if columns is None:
                        s[dropped] = _NEG_INF
                    else:
                        s[np.isin(columns, dropped)] = _NEG_INF
                idx, vals = top_n(s, n)
                results.append((idx if columns is None else columns[idx], vals))
        return results

    def _gathered(self, filt: ItemFilter) -> np.ndarray | None:
        """The filter's candidates when few enough to score them alone (:attr:`gather_limit`), else None."""
        candidates = filt.candidates
        return candidates if candidates is not None and candidates.size <= self.gather_limit else None

    def fold_in(self, histories: Sequence[np.ndarray], estimator: Estimator = DEFAULT_ESTIMATOR) -> np.ndarray:
        """(B, d) float32 vectors of B users the model never trained, each folded in from the item indices it
        interacted with (:mod:`c2f.contract.foldin`); an empty history gives a vector that ranks by item bias."""
        return self.user_fold_in.vectors(_histories_csr(histories, self.n_items, "item"), estimator)

    def fold_in_items(self, histories: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(B, d) float32 vectors of B items the model never trained, each folded in from the user indices that
        interacted with it, and their (B,) predicted item biases (None when the model has none)."""
        return self.item_fold_in.vectors_and_bias(_histories_csr(histories, self.n_users, "user"))

    def recommend_histories(
        self,
        histories: Sequence[np.ndarray],
        n: int = 20,
        exclude_seen: bool = True,
        exclude_items: Iterable[int] | None = None,
        estimator: Estimator = DEFAULT_ESTIMATOR,
        item_filter: ItemFilter | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``n`` for B users folded in from item-index histories; ``exclude_seen`` drops each history's items,
        ``exclude_items`` and ``item_filter`` (:class:`service.filters.ItemFilter`: hidden items, allow-list,
        attribute filter) apply to all of them. One (indices, scores) per history."""
        filt = self.filter_for(exclude_items, item_filter)
        results: list[tuple[np.ndarray, np.ndarray]] = []
        step = max(1, _CHUNK_ELEMENTS // max(1, self.n_items))
        for start in range(0, len(histories), step):
            chunk = histories[start : start + step]
            drop = [np.asarray(history, dtype=np.int64) for history in chunk] if exclude_seen else None
            results.extend(self.rank(self.fold_in(chunk, estimator), n, filt, drop))
        return results

    def recommend_vectors(
        self,
        vectors: np.ndarray,
        seen: Sequence[np.ndarray | None],
        n: int = 20,
        exclude_items: Iterable[int] | None = None,
        item_filter: ItemFilter | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``n`` for B users served from vectors of their own ((B, d): folded in, or moved by recorded events,
        :mod:`service.live`), plus item biases; row b drops the item indices ``seen[b]`` (None: none) and every row
        ``exclude_items`` and what ``item_filter`` drops (:class:`service.filters.ItemFilter`). One (indices, scores)
        per row."""
        drop = [np.empty(0, np.int64) if mask is None else np.asarray(mask, dtype=np.int64) for mask in seen]
        return self.rank(vectors, n, self.filter_for(exclude_items, item_filter), drop)

    def similar_items(
        self, item_index: int, n: int = 20, item_filter: ItemFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cosine neighbours of an item (the item itself excluded) among the items ``item_filter`` answers:
        (item indices, cosine similarities)."""
        self._check_item(item_index)
        filt = item_filter if item_filter is not None else ItemFilter.none(self.n_items)
        vec = self.item_embeddings(np.array([item_index], dtype=np.int64))
        columns = self._gathered(filt)
        if columns is None:
            dots = self.scores_for_vectors(vec)[0]
            norms = self._item_norms
        else:
            columns = columns[columns != item_index]
            dots = (
                (self.item_embeddings(columns) @ vec[0]).astype(np.float32) if columns.size else np.empty(0, np.float32)
            )
            norms = self._item_norms[columns]
        denom = norms * self._item_norms[item_index]
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where(denom > 0, dots / denom, 0.0).astype(np.float32)
        if columns is None:
            filt.apply(cos)
            cos[item_index] = _NEG_INF
            return top_n(cos, n)
        idx, vals = top_n(cos, n)
        return columns[idx], vals

    def popular(
        self, n: int = 20, exclude: Iterable[int] | None = None, item_filter: ItemFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Most-interacted items in the training data (graph ∪ held-out), minus ``exclude``, among the items
        ``item_filter`` answers: (indices, counts)."""
        filt = self.filter_for(exclude, item_filter)
        if filt.candidates is not None:
            idx, vals = top_n(self._popularity[filt.candidates], n)
            return filt.candidates[idx], vals
        return top_n(filt.apply(self._popularity.copy()), n)

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
            # the fold-in's Gram system, maps, degree weights and fit sample (POST /recommend, recorded events)
            "fold_in": self.user_fold_in.nbytes()
            + (self.__dict__["item_fold_in"].nbytes() if "item_fold_in" in self.__dict__ else 0),
            **self.scorer.memory_bytes(),
        }
