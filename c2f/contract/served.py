"""What serving reads: the served form of an artifact in a serving mode, numpy only.

The service scores with a :class:`ServedForm` and the trainer's served metrics evaluate the vectors of one, so the
manifest's served figures are those of what the service ranks with. An artifact in a mode is served in exactly one
of five forms, chosen once by :func:`form_class` from the method spec, the stored array names and the mode:

* ``exact`` (:class:`ExactForm`): the propagated (N, d) float32 table rebuilt at load
  (:func:`contract.methods.exact_embeddings`); exact mode, and compressed mode of hash and qr without codes
  (``spec.exact_only``: no compressed form and no stored (N, d) table).
* ``table`` (:class:`TableForm`): the stored (N, d) table (ud's ``H_full``) in compressed mode.
* ``sparse`` (:class:`SparseForm`): legcf/c2f in compressed mode, h_r = Σ_j w[r, j]·H_meta[idx[r, j]].
* ``sparse+pq`` (:class:`SparsePQForm`): the sparse form plus the decoded product-quantized codes of its residual.
* ``pq`` (:class:`PQForm`): the decoded codes alone (ud, hash, qr with codes), in the quantizer's rotated basis.

In the two pq forms an item's vector is multiplied by its ``pq_item_scale`` when the artifact stores one. Every form
also holds the item biases (``item_bias``, added to user scores by the service and by the trainer's evaluation).

With the fold-in map stored (``fold_in_W``, ``fold_in_c``: ``TrainConfig.served_users = "fold_in"``), the stored forms
(table, sparse, pq, sparse+pq) hold the item rows only (:attr:`ServedForm.users_folded_in`): a user's vector is
folded in from its items by whoever serves it (:mod:`contract.foldin`), and the user rows' bytes are not held.

Entity rows are users ``0..n_users-1`` then items ``n_users..N-1``; item indices are 0-based within items.
Arithmetic runs in float32 whatever the stored dtypes: small float16 codebooks are upcast once at load (reported
in ``memory_bytes``), float16 weights and scales a request's rows at a time, a float16 table in bounded chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from functools import cached_property
from typing import ClassVar, Literal, get_args

import numpy as np

from c2f.contract.dtypes import as_float32
from c2f.contract.methods import FOLD_IN_ARRAYS, OPTIONAL_ARRAYS, PQ_ARRAYS, MethodSpec
from c2f.contract.reconstruct import assignment_matrix, compressed_embeddings, pq_embeddings

ServingMode = Literal["compressed", "exact"]
"""compressed: score from the stored compressed form; exact: recompute the propagated table at load."""
MODES: tuple[str, ...] = get_args(ServingMode)
CHUNK_ELEMENTS = 1 << 22  # temporaries of at most ~16 MB float32


class ServedForm:
    """One served form: vectors for entity rows, scores for query vectors, the stored arrays it keeps, its bytes.

    Subclasses set :attr:`name`, :attr:`scoring` and :meth:`reads`, and implement :meth:`vectors` and
    :meth:`scores`."""

    name: ClassVar[str]  # "exact" | "table" | "sparse" | "sparse+pq" | "pq"
    scoring: ClassVar[str]  # GET /footprint's ``scoring``: "dense" | "compressed" | "compressed+pq" | "pq"

    def __init__(self, spec: MethodSpec, arrays: Mapping[str, np.ndarray]) -> None:
        self.n_users = int(arrays["user_ids"].shape[0])
        self.n_items = int(arrays["item_ids"].shape[0])
        self.item_bias: np.ndarray | None = arrays.get("item_bias")  # (n_items,) float32 or None
        # the stored arrays this form holds as loaded (not copies): what serving must keep of the artifact
        self.kept: set[str] = set() if self.item_bias is None else {"item_bias"}
        # the stored fold-in map (fold_in_W (d, d), fold_in_c (d,)) that serves users when the form holds none
        self.fold_in_map: tuple[np.ndarray, np.ndarray] | None = None
        if self.folds_in_users(arrays.keys()):
            self.kept |= set(FOLD_IN_ARRAYS)
            self.fold_in_map = (arrays["fold_in_W"], arrays["fold_in_c"])
        sizes = {name: int(arr.nbytes) for name, arr in arrays.items()}
        self.serving_bytes = self.held_bytes(
            spec, sizes, self.n_users + self.n_items, int(arrays[spec.table].shape[1]), n_users=self.n_users
        )

    # ---- what it reads, by name (also for sizing without arrays: contract/footprint.py) ----
    @classmethod
    def reads(cls, spec: MethodSpec, present: Collection[str]) -> tuple[str, ...]:
        """The stored arrays this form is built from, item biases aside, for an artifact with arrays ``present``."""
        raise NotImplementedError

    @classmethod
    def folds_in_users(cls, present: Collection[str]) -> bool:
        """Whether this form, for an artifact with arrays ``present``, holds item rows only (the fold-in map is
        stored)."""
        return all(name in present for name in FOLD_IN_ARRAYS)

    @classmethod
    def held_bytes(cls, spec: MethodSpec, sizes: Mapping[str, int], n_entities: int, d: int, n_users: int = 0) -> int:
        """Bytes serving holds for this form (``Footprint.serving_memory_bytes``): the arrays it reads at their
        stored sizes ``sizes`` (bytes by name), plus item biases. Small float16 codebooks it upcasts count as
        stored. With users folded in, an array of one row an entity counts its item rows only (of ``n_entities``,
        the last ``n_entities - n_users``), and the fold-in map counts."""
        reads = cls.reads(spec, sizes.keys())
        if not cls.folds_in_users(sizes.keys()):
            return sum(sizes[name] for name in reads) + sizes.get("item_bias", 0)
        n_items = n_entities - n_users
        held = sum(sizes[name] // n_entities * n_items if _per_entity(spec, name) else sizes[name] for name in reads)
        return held + sizes.get("item_bias", 0) + sum(sizes[name] for name in FOLD_IN_ARRAYS)

    @property
    def users_folded_in(self) -> bool:
        """Whether this form holds item rows only (users folded in from their items with :attr:`fold_in_map`)."""
        return self.fold_in_map is not None

    @property
    def first_row(self) -> int:
        """The first entity row the per-entity arrays are held from: 0, or n_users when users are folded in."""
        return self.n_users if self.users_folded_in else 0

    def _held_rows(self, rows: np.ndarray | None) -> np.ndarray | None:
        """Entity ``rows`` as positions among the rows this form holds (all, or items only)."""
        if rows is None or not self.first_row:
            return rows
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and int(rows.min()) < self.first_row:
            raise ValueError("this served form holds no user rows: users are folded in from their items")
        return rows - self.first_row

    def _hold(self, arrays: Mapping[str, np.ndarray], name: str) -> np.ndarray:
        """``arrays[name]`` as float32: kept as loaded when it is float32 already, else an upcast copy."""
        out = as_float32(arrays[name])
        if out is arrays[name]:
            self.kept.add(name)
        return out

    # ---- what it serves ----
    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(len(rows), d) float32 served vectors of entity ``rows`` (users then items; None: every row held, all N
        of them, or the items' alone when users are folded in)."""
        raise NotImplementedError

    def user_vectors(self, users: np.ndarray) -> np.ndarray:
        """(len(users), d) float32 served vectors of users (ValueError when users are folded in)."""
        return self.vectors(np.asarray(users, dtype=np.int64))

    def item_vectors(self, items: np.ndarray) -> np.ndarray:
        """(len(items), d) float32 served vectors of items (0-based within items; for a few, never for all)."""
        return self.vectors(np.asarray(items, dtype=np.int64) + self.n_users)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """(B, n_items) float32 dot products of query vectors (B, d) float32 with every item's served vector."""
        raise NotImplementedError

    @cached_property
    def item_norms(self) -> np.ndarray:
        """(n_items,) float32 norms of the served item vectors (cosine similarity), a block of items at a time so
        the temporaries stay within ~16 MB."""
        norms = np.empty(self.n_items, dtype=np.float32)
        step = max(1, CHUNK_ELEMENTS // max(1, self._row_values()))
        for start in range(0, self.n_items, step):
            items = np.arange(start, min(self.n_items, start + step))
            norms[start : start + len(items)] = np.linalg.norm(self.item_vectors(items), axis=1)
        return norms

    def _row_values(self) -> int:
        """Values one row's decoding gathers (sizes the norms' blocks)."""
        raise NotImplementedError

    def memory_bytes(self) -> dict[str, int]:
        """Bytes of what the form derived at load (copies, re-laid-out arrays), by name; the kept arrays aside."""
        return {}


class _DenseForm(ServedForm):
    """Rows of an (N, d) table, float32 or float16 (scored in upcast chunks: memory stays at the stored bytes)."""

    scoring = "dense"

    def __init__(self, spec: MethodSpec, arrays: Mapping[str, np.ndarray], table: np.ndarray) -> None:
        super().__init__(spec, arrays)
        self._table = table[self.first_row :].copy() if self.first_row else table  # a copy: the full one is freed
        self._items = self._table[self.n_users - self.first_row :]
        # item rows upcast at a time when the table is not float32: bounds each request's temporaries
        self._chunk_rows = max(1, CHUNK_ELEMENTS // max(1, table.shape[1]))

    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        held = self._held_rows(rows)
        return as_float32(self._table if held is None else self._table[held])

    def _item_blocks(self) -> Iterable[tuple[int, np.ndarray]]:
        """(first item, float32 block) over the item rows: the table itself when float32, else upcast chunks."""
        if self._items.dtype == np.float32:
            yield 0, self._items
            return
        for start in range(0, self._items.shape[0], self._chunk_rows):
            yield start, np.asarray(self._items[start : start + self._chunk_rows], dtype=np.float32)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        if self._items.dtype == np.float32:
            return np.asarray(queries @ self._items.T, dtype=np.float32)
        out = np.empty((queries.shape[0], self._items.shape[0]), dtype=np.float32)
        for start, block in self._item_blocks():
            out[:, start : start + block.shape[0]] = queries @ block.T
        return out

    def _row_values(self) -> int:
        return int(self._table.shape[1])


class ExactForm(_DenseForm):
    """The propagated (N, d) float32 table, rebuilt at load (``table``: :func:`contract.methods.exact_embeddings`,
    computed by the caller); no stored embedding array is kept."""

    name = "exact"

    @classmethod
    def reads(cls, spec: MethodSpec, present: Collection[str]) -> tuple[str, ...]:
        return ()

    @classmethod
    def folds_in_users(cls, present: Collection[str]) -> bool:
        return False  # rebuilt from the layer-0 arrays: the trained users come with it

    @classmethod
    def held_bytes(cls, spec: MethodSpec, sizes: Mapping[str, int], n_entities: int, d: int, n_users: int = 0) -> int:
        """The (N, d) float32 table rebuilt at load (small on disk, a full table in memory), plus item biases."""
        return n_entities * d * 4 + sizes.get("item_bias", 0)

    def memory_bytes(self) -> dict[str, int]:
        return {"exact_H_full": int(self._table.nbytes)}


class TableForm(_DenseForm):
    """The stored (N, d) table (``spec.table``: ud's H_full), used as stored (float16 too, never copied)."""

    name = "table"

    def __init__(self, spec: MethodSpec, arrays: Mapping[str, np.ndarray]) -> None:
        super().__init__(spec, arrays, arrays[spec.table])
        if not self.users_folded_in:
            self.kept.add(spec.table)

    @classmethod
    def reads(cls, spec: MethodSpec, present: Collection[str]) -> tuple[str, ...]:
        return (spec.table,)

    def memory_bytes(self) -> dict[str, int]:
        return {"table_item_rows": int(self._table.nbytes)} if self.users_folded_in else {}


class SparseForm(ServedForm):
    """The served assignment over the served codebook, never materialising an (n_items, d) table.

    ``S_c_idx_served, S_c_w_served: (N, t_s)``, ``H_meta: (m_c, d)`` (a float16 one upcast once: small, and every
    query multiplies with all of it). For a query v, ``q = H_meta @ v`` (m_c values) and item i scores
    Σ_j w[i, j]·q[idx[i, j]] (a CSR product of the items' rows with q): O(m_c·d + n_items·t_s) a query, touching
    the items' rows (n_items·t_s·12 bytes) and one (n_items,) score vector."""

    name = "sparse"
    scoring = "compressed"

    def __init__(self, spec: MethodSpec, arrays: Mapping[str, np.ndarray]) -> None:
        super().__init__(spec, arrays)
        idx_name, w_name, meta_name = spec.serving_arrays
        # used as stored (uint16 / float16 included); the item rows copied when users are folded in
        self._idx, self._w = arrays[idx_name], arrays[w_name]
        if self.first_row:
            self._idx, self._w = self._idx[self.first_row :].copy(), self._w[self.first_row :].copy()
        else:
            self.kept |= {idx_name, w_name}
        self._meta = self._hold(arrays, meta_name)
        self._meta_upcast = meta_name not in self.kept
        # the items' rows as CSR (n_items × m_c, t_s entries a row): S_items @ q is the gather above, done in C
        first_item = self.n_users - self.first_row
        self._items_S = assignment_matrix(self._idx[first_item:], self._w[first_item:], self._meta.shape[0])

    @classmethod
    def reads(cls, spec: MethodSpec, present: Collection[str]) -> tuple[str, ...]:
        return spec.serving_arrays

    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        return compressed_embeddings(self._idx, self._w, self._meta, self._held_rows(rows))

    def scores(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(self._meta @ queries.T, dtype=np.float32)  # (m_c, B): codebook vs query
        return np.ascontiguousarray(np.asarray(self._items_S @ q, dtype=np.float32).T)  # (B, n_items) gather

    def _row_values(self) -> int:
        return int(self._meta.shape[1] * self._idx.shape[1])

    def memory_bytes(self) -> dict[str, int]:
        S = self._items_S
        out = {"item_assignments_csr": int(S.data.nbytes + S.indices.nbytes + S.indptr.nbytes)}
        if self.users_folded_in:  # the item rows copied out of the stored assignment
            out["assignment_item_rows"] = int(self._idx.nbytes + self._w.nbytes)
        if self._meta_upcast:
            out["H_meta_float32"] = int(self._meta.nbytes)
        return out


class PQForm(ServedForm):
    """The product-quantized codes (``pq_codes`` (N, M) uint8, ``pq_codebooks`` (M, K, w), M·w = d;
    c2f/trainer/quantize.py) decoded: row r is concat_m codebooks[m, codes[r, m]], times ``pq_item_scale`` for
    items when stored.

    For a query v item i scores Σ_m codebooks[m, codes[i, m]]·v_m (v_m: v's m-th block of w values): an (M, K)
    lookup table a query, then one gather of n_items values a subspace from the codes, held subspace-major as
    uint8 (N·M bytes: what is stored; not a CSR of one-hot codes, 8 bytes a code). O(M·K·w + n_items·M) a query."""

    name = "pq"
    scoring = "pq"

    def __init__(self, spec: MethodSpec, arrays: Mapping[str, np.ndarray]) -> None:
        super().__init__(spec, arrays)
        # (M, N) uint8, a subspace-major copy: each subspace's item codes are contiguous for the gather, and the
        # stored (N, M) array can be freed
        self._codes_T = np.ascontiguousarray(arrays["pq_codes"][self.first_row :].T)
        self._books = self._hold(arrays, "pq_codebooks")  # (M, K, w): M·K·w = K·d values
        self._books_upcast = "pq_codebooks" not in self.kept
        # (n_items,) used as stored: a float16 one is upcast a buffer at a time inside the multiply, never copied
        self._item_scale: np.ndarray | None = arrays.get("pq_item_scale")
        if self._item_scale is not None:
            self.kept.add("pq_item_scale")

    @classmethod
    def reads(cls, spec: MethodSpec, present: Collection[str]) -> tuple[str, ...]:
        return (*PQ_ARRAYS, *(("pq_item_scale",) if "pq_item_scale" in present else ()))

    def _base_vectors(self, rows: np.ndarray | None) -> np.ndarray | None:
        """The part the codes add to (:class:`SparsePQForm`: the sparse form's vectors); None here."""
        return None

    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        decoded = pq_embeddings(self._codes_T.T, self._books, self._held_rows(rows))  # (rows held, M) view: no copy
        base = self._base_vectors(rows)
        vectors = decoded if base is None else np.add(base, decoded, out=base)
        if self._item_scale is not None:
            entities = (
                np.arange(self.first_row, self.first_row + vectors.shape[0]) if rows is None else np.asarray(rows)
            )
            items = entities >= self.n_users
            vectors[items] *= self._item_scale[entities[items] - self.n_users, None]
        return vectors

    def _base_scores(self, queries: np.ndarray) -> np.ndarray | None:
        return None

    def scores(self, queries: np.ndarray) -> np.ndarray:
        M, _, w = self._books.shape
        blocks = queries.reshape(queries.shape[0], M, w).astype(np.float32, copy=False)
        table = np.einsum("mkw,bmw->mbk", self._books, blocks)  # (M, B, K): each block against its centroids
        item_codes = self._codes_T[:, self.n_users - self.first_row :]  # (M, n_items): each row contiguous
        scores = np.take(table[0], item_codes[0], axis=1)  # (B, n_items)
        for m in range(1, M):  # over subspaces (M ≤ d), each a vectorised gather over all items
            scores += np.take(table[m], item_codes[m], axis=1)
        base = self._base_scores(queries)
        if base is not None:
            scores += base
        if self._item_scale is not None:
            scores *= self._item_scale
        return scores

    def _row_values(self) -> int:
        return int(self._codes_T.shape[0] * self._books.shape[2])  # M·w = d values a decoded row

    def memory_bytes(self) -> dict[str, int]:
        out = {
            "item_codes_by_subspace": self.n_items * self._codes_T.shape[0],
            "user_codes": (self.n_users - self.first_row) * self._codes_T.shape[0],
        }
        if self._books_upcast:
            out["pq_codebooks_float32"] = int(self._books.nbytes)
        return out


class SparsePQForm(PQForm):
    """The sparse form plus the decoded codes, which quantize the sparse form's residual H_full − S·H_meta in the
    original basis (so the two parts add up); ``pq_item_scale`` multiplies the summed item vectors.
    O(n_items·M) a query on top of the sparse form's."""

    name = "sparse+pq"
    scoring = "compressed+pq"

    def __init__(self, spec: MethodSpec, arrays: Mapping[str, np.ndarray]) -> None:
        super().__init__(spec, arrays)
        self.base = SparseForm(spec, arrays)
        self.kept |= self.base.kept

    @classmethod
    def reads(cls, spec: MethodSpec, present: Collection[str]) -> tuple[str, ...]:
        return (*SparseForm.reads(spec, present), *super().reads(spec, present))

    def _base_vectors(self, rows: np.ndarray | None) -> np.ndarray | None:
        return self.base.vectors(rows)

    def _base_scores(self, queries: np.ndarray) -> np.ndarray | None:
        return self.base.scores(queries)

    def memory_bytes(self) -> dict[str, int]:
        return {**self.base.memory_bytes(), **super().memory_bytes()}


def _per_entity(spec: MethodSpec, name: str) -> bool:
    """Whether stored array ``name`` has one row an entity (users then items)."""
    want = spec.arrays.get(name) or OPTIONAL_ARRAYS.get(name)
    return want is not None and bool(want.shape) and want.shape[0] == "N"


def form_class(spec: MethodSpec, present: Collection[str], mode: str) -> type[ServedForm]:
    """The one decision of what serving reads, for an artifact of ``spec`` with arrays named ``present``:
    exact mode rebuilds the table; compressed mode reads the codes when stored (on the sparse form for methods
    that have one), else the sparse form, else the stored (N, d) table, else (hash, qr) the rebuilt table."""
    if mode not in MODES:
        raise ValueError(f"unknown serving mode {mode!r} (expected one of {', '.join(MODES)})")
    if mode == "exact":
        return ExactForm
    if all(name in present for name in PQ_ARRAYS):
        return SparsePQForm if spec.compressed else PQForm
    if spec.compressed:
        return SparseForm
    return ExactForm if spec.exact_only else TableForm


def served_form(
    spec: MethodSpec, arrays: Mapping[str, np.ndarray], mode: str, exact: Callable[[], np.ndarray] | None = None
) -> ServedForm:
    """The served form of an artifact's ``arrays`` in ``mode``. ``exact``: returns the propagated (N, d) float32
    table (:func:`contract.methods.exact_embeddings`), called only when the form is exact (the caller checks the
    manifest and the shape: the service and the trainer report problems differently)."""
    cls = form_class(spec, arrays.keys(), mode)
    if cls is ExactForm:
        if exact is None:
            raise ValueError(f"{spec.name} in {mode} mode is served exactly: pass the exact table")
        return ExactForm(spec, arrays, exact())
    return cls(spec, arrays)
