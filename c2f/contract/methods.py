"""One spec per embedding method, in a registry keyed by name: what an artifact of that method stores and means.

A :class:`MethodSpec` owns everything about a method that the trainer and the service must agree on: the arrays of
its ``model.npz`` (names, dtypes, symbolic shapes), their index-range checks, how they group into footprint
components, the paper's #param formula (Table 3), the manifest fields it fills, and how the propagated embeddings
are reconstructed from the arrays (exact serving mode). The trainer adds one model class per method
(``c2f/trainer/models.py``) and one trainer (``c2f/trainer/methods.py``); nothing else names a method.

Adding a method: subclass :class:`MethodSpec` here, decorate it with :func:`register`, and add its model class
(``c2f/trainer/models.py``) and its trainer, registered under the same name (``c2f/trainer/methods.py``). Version
names, the HTTP schema, the CLI and the artifact checks follow the registry.

Entity rows are users ``0..n_users-1`` then items ``n_users..N-1`` (N = n_users + n_items).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from c2f.contract import reconstruct
from c2f.contract.dtypes import FLOAT_DTYPES, INDEX_DTYPES, as_float32_arrays

if TYPE_CHECKING:
    from c2f.contract.manifest import Manifest


class MethodError(ValueError):
    """An unknown method name, or arrays that do not fit a method's spec."""


@dataclass(frozen=True)
class ArraySpec:
    """One array of ``model.npz``: dtype kind (``"U"``, ``"i"``, ``"f"``), itemsize (None: any) and shape, whose
    entries are dimension names resolved from the arrays (see :meth:`MethodSpec.dims`) or None for any length.
    ``also``: further accepted dtype names (the compact stored types of :mod:`contract.dtypes`)."""

    kind: str
    itemsize: int | None
    shape: tuple[str | None, ...]
    also: tuple[str, ...] = ()

    def accepts(self, dtype: np.dtype) -> bool:
        """Whether an array of ``dtype`` may be stored under this spec."""
        if dtype.kind == self.kind and (self.itemsize is None or dtype.itemsize == self.itemsize):
            return True
        return str(dtype) in self.also

    def expected(self) -> str:
        """The accepted dtypes in words, for error messages (``"int32, uint16 or uint32"``)."""
        bits = 8 * (self.itemsize or 0)
        base = {"U": "str (<U)", "i": f"int{bits}", "u": f"uint{bits}", "f": f"float{bits}"}
        names = [base[self.kind], *self.also]
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def index_array(*shape: str | None) -> ArraySpec:
    """An index array: int32 (the original format) or compact uint16/uint32 (:func:`contract.dtypes.index_dtype`)."""
    return ArraySpec("i", 4, shape, also=tuple(d for d in INDEX_DTYPES if d != "int32"))


def real_array(*shape: str | None) -> ArraySpec:
    """A real-valued embedding array: float32, or float16 when stored compactly (``TrainConfig.store_dtype``)."""
    return ArraySpec("f", 4, shape, also=tuple(d for d in FLOAT_DTYPES if d != "float32"))


# Arrays every method stores: external ids and the seen-items graph (training and held-out validation, CSR).
COMMON_ARRAYS: dict[str, ArraySpec] = {
    "user_ids": ArraySpec("U", None, ("n_users",)),
    "item_ids": ArraySpec("U", None, ("n_items",)),
    "graph_indptr": ArraySpec("i", 8, ("n_users+1",)),
    "graph_indices": ArraySpec("i", 4, (None,)),
    "heldout_indptr": ArraySpec("i", 8, ("n_users+1",)),
    "heldout_indices": ArraySpec("i", 4, (None,)),
}
COMMON_COMPONENTS: dict[str, tuple[str, ...]] = {
    "id_maps": ("user_ids", "item_ids"),
    "graph": ("graph_indptr", "graph_indices", "heldout_indptr", "heldout_indices"),
}
MAX_PLANNED_DIM = 4096  # the largest embedding size a budget may choose (POST /train's bound on dim)
SHAPE_KEYS = ("n_users", "n_items", "d", "m_c", "t_c", "m_r", "t_r")
# Arrays any method may store: learned per-item score offsets (TrainConfig.biases), added to h_u·h_i when serving.
# Validated when present, counted as embedding bytes (component "biases") and as parameters (Footprint.params_total).
# And the product-quantized part of the served vectors (TrainConfig.pq_subspaces, c2f/trainer/quantize.py): pq_m uint8
# codes an entity into pq_m codebooks of pq_k centroids of pq_w = d / pq_m values. When present, compressed mode
# serves the sparse form plus the decoded codes (legcf, c2f: the codes quantize the sparse form's residual) or the
# decoded codes alone (methods without a sparse form): c2f/contract/served.py. With the codes, pq_item_scale
# (TrainConfig.pq_item_norms) multiplies each item's served vector, so that it has the norm of the item's exact
# vector: quantization shrinks norms unevenly, and an item's norm is much of its score (popularity, in LightGCN),
# while a user's norm scales all of that user's scores alike and is left as it is.
# And the item attribute table (a dataset's items.csv / items.parquet; c2f/contract/attributes.py): string columns
# per item, dictionary-encoded (each column's sorted distinct values, and per item the position of its value among
# them), for the service's `where=` filters. Not embedding bytes: counted apart, as the id maps and the graph are.
# And the fold-in map (TrainConfig.served_users = "fold_in", c2f/contract/foldin.py): compressed serving then holds no
# user rows; a user's vector is the least-squares estimate from its training items mapped by h ≈ f·W + c, fitted at
# export on the trained users.
OPTIONAL_ARRAYS: dict[str, ArraySpec] = {
    "item_bias": ArraySpec("f", 4, ("n_items",)),
    "pq_codes": ArraySpec("u", 1, ("N", "pq_m")),
    "pq_codebooks": real_array("pq_m", "pq_k", "pq_w"),
    "pq_item_scale": real_array("n_items"),
    "item_attr_names": ArraySpec("U", None, ("n_attrs",)),
    "item_attr_offsets": ArraySpec("i", 8, ("n_attrs+1",)),
    "item_attr_values": ArraySpec("U", None, (None,)),
    "item_attr_codes": ArraySpec("u", None, ("n_attrs", "n_items")),
    "fold_in_W": ArraySpec("f", 4, ("d", "d")),
    "fold_in_c": ArraySpec("f", 4, ("d",)),
}
OPTIONAL_COMPONENTS: dict[str, tuple[str, ...]] = {
    "biases": ("item_bias",),
    "pq": ("pq_codes", "pq_codebooks", "pq_item_scale"),
    "attributes": ("item_attr_names", "item_attr_offsets", "item_attr_values", "item_attr_codes"),
    "fold_in": ("fold_in_W", "fold_in_c"),
}
PQ_ARRAYS = ("pq_codes", "pq_codebooks")
FOLD_IN_ARRAYS = OPTIONAL_COMPONENTS["fold_in"]
ATTRIBUTE_ARRAYS = OPTIONAL_COMPONENTS["attributes"]
# Footprint components that are not embedding bytes (Footprint.embedding_bytes counts every other one).
NON_EMBEDDING_COMPONENTS = (*COMMON_COMPONENTS, "attributes")


def _dim(arrays: Mapping[str, np.ndarray], name: str, axis: int) -> int:
    arr = arrays.get(name)
    if arr is None or arr.ndim <= axis:
        raise MethodError(f"array {name!r} is missing or has too few dimensions")
    return int(arr.shape[axis])


def check_index_range(arrays: Mapping[str, np.ndarray], name: str, bound: int, what: str) -> None:
    """Every value of ``arrays[name]`` lies in ``[0, bound)`` (``what`` names the bound in the message)."""
    idx = arrays[name]
    if idx.size and (idx.min() < 0 or idx.max() >= bound):
        raise MethodError(f"{name} has values outside [0, {what}={bound})")


class MethodSpec:
    """The artifact contract of one method. Subclasses set the class attributes and override the formulas."""

    name: ClassVar[str]
    description: ClassVar[str]
    arrays: ClassVar[dict[str, ArraySpec]]  # on top of COMMON_ARRAYS
    components: ClassVar[dict[str, tuple[str, ...]]]  # footprint groups of ``arrays``
    table: ClassVar[str]  # the (rows, d) array whose second axis is d
    compressed: ClassVar[bool]  # True: scorable from S_c_idx_served, S_c_w_served, H_meta without an (N, d) table
    exact_fields: ClassVar[tuple[str, ...]] = ()  # manifest fields exact reconstruction needs besides shape.layers
    has_coarse_stage: ClassVar[bool] = False  # stores E_c and S^c (a c2f run may reuse it: TrainConfig.coarse_from)
    serving_arrays: ClassVar[tuple[str, ...]] = ()  # the sparse form compressed scoring reads (when ``compressed``)

    # ----------------------------------------------------------------------------------------------------------
    def required_arrays(self) -> dict[str, ArraySpec]:
        """Every array an artifact of this method must contain."""
        return {**COMMON_ARRAYS, **self.arrays}

    def present_arrays(self, arrays: Mapping[str, np.ndarray]) -> dict[str, ArraySpec]:
        """The required arrays and the optional ones that ``arrays`` has: what validation checks."""
        return {**self.required_arrays(), **{n: a for n, a in OPTIONAL_ARRAYS.items() if n in arrays}}

    def all_components(self) -> dict[str, tuple[str, ...]]:
        return {**COMMON_COMPONENTS, **self.components, **OPTIONAL_COMPONENTS}

    def dims(self, arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
        """Named dimensions read off the arrays: n_users, n_items, N, n_users+1, d and the method's own."""
        dims = {"n_users": _dim(arrays, "user_ids", 0), "n_items": _dim(arrays, "item_ids", 0)}
        dims["N"] = dims["n_users"] + dims["n_items"]
        dims["n_users+1"] = dims["n_users"] + 1
        dims["d"] = _dim(arrays, self.table, 1)
        if any(name in arrays for name in PQ_ARRAYS) or "pq_item_scale" in arrays:
            if not all(name in arrays for name in PQ_ARRAYS):
                raise MethodError("the product-quantized serving form needs both pq_codes and pq_codebooks")
            dims["pq_m"] = _dim(arrays, "pq_codebooks", 0)
            dims["pq_k"] = _dim(arrays, "pq_codebooks", 1)
            dims["pq_w"] = _dim(arrays, "pq_codebooks", 2)
        if any(name in arrays for name in FOLD_IN_ARRAYS) and not all(name in arrays for name in FOLD_IN_ARRAYS):
            raise MethodError(f"the fold-in map needs both {' and '.join(FOLD_IN_ARRAYS)}")
        if any(name in arrays for name in ATTRIBUTE_ARRAYS):
            missing = [name for name in ATTRIBUTE_ARRAYS if name not in arrays]
            if missing:
                raise MethodError(f"the item attribute table needs {', '.join(ATTRIBUTE_ARRAYS)}; missing {missing}")
            dims["n_attrs"] = _dim(arrays, "item_attr_names", 0)
            dims["n_attrs+1"] = dims["n_attrs"] + 1
        return dims

    def check_served_pq(self, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> None:
        """The product-quantized form, when present: pq_m·pq_w = d and every code below pq_k (≤ 256)."""
        if "pq_m" not in dims:
            return
        if dims["pq_m"] * dims["pq_w"] != dims["d"]:
            raise MethodError(f"pq_codebooks cover pq_m·pq_w = {dims['pq_m'] * dims['pq_w']} values, not d={dims['d']}")
        if not 1 <= dims["pq_k"] <= 256:
            raise MethodError(f"pq_codebooks has {dims['pq_k']} centroids a subspace; uint8 codes need 1..256")
        check_index_range(arrays, "pq_codes", dims["pq_k"], "pq_k")

    def check_arrays(self, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> None:
        """Index-range checks beyond names, dtypes and shapes (MethodError on the first problem)."""

    def params_paper(self, dims: Mapping[str, int]) -> int:
        """Embedding-layer parameters in the paper's convention (Table 3)."""
        raise NotImplementedError

    def footprint_extras(self, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> dict[str, Any]:
        """Method-specific footprint entries (sparse counts, served terms); the served form's bytes are
        :func:`contract.footprint.served_form_extras`'."""
        return {"e_r_nnz": 0}

    def manifest_fields(self, config: Any) -> dict[str, Any]:
        """The method's manifest fields from a TrainConfig: ``shape`` hyper-parameters (0 when unused) and
        top-level fields (``w_cr``)."""
        return {"shape": {"m_c": 0, "t_c": 0, "m_r": 0, "t_r": 0}, "w_cr": None}

    def exact_embeddings(self, arrays: Mapping[str, np.ndarray], manifest: Manifest) -> np.ndarray:
        """H_full (N, d) float32 recomputed from the layer-0 arrays and the stored graph, as the trainer did."""
        raise NotImplementedError

    # ---- sizing without training (c2f/contract/budget.py): what the arrays would be for a config on N entities ----
    exact_only: ClassVar[bool] = False  # no compressed form and no stored (N, d) table: every mode serves exact
    budget_knob: ClassVar[str] = ""  # the TrainConfig field a memory budget sets (the largest value that fits)

    def knob_range(self, config: Any, n_entities: int) -> tuple[int, int]:
        """Smallest and largest value of :attr:`budget_knob` worth trying on N entities (bytes are
        non-decreasing in the knob over this range)."""
        raise NotImplementedError

    def sized(self, config: Any, value: int) -> dict[str, Any]:
        """The TrainConfig fields to set for knob value ``value`` (the knob and any size derived from it)."""
        return {self.budget_knob: value}

    def planned_dims(self, config: Any, n_users: int, n_items: int) -> dict[str, int]:
        """The named dimensions (see :meth:`dims`) that training ``config`` on these entities gives."""
        n = n_users + n_items
        return {"n_users": n_users, "n_items": n_items, "N": n, "n_users+1": n_users + 1, "d": int(config.dim)}

    def planned_lengths(self, dims: Mapping[str, int]) -> dict[str, int]:
        """Upper bounds on the lengths of this method's arrays whose shape has a free (None) axis."""
        return {}


REGISTRY: dict[str, MethodSpec] = {}


def register(cls: type[MethodSpec]) -> type[MethodSpec]:
    """Class decorator: add one instance of ``cls`` to :data:`REGISTRY` under ``cls.name``."""
    if cls.name in REGISTRY:
        raise ValueError(f"method {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def get_spec(method: object) -> MethodSpec:
    """The spec of ``method``; MethodError naming the known methods otherwise."""
    spec = REGISTRY.get(method) if isinstance(method, str) else None
    if spec is None:
        raise MethodError(f"unknown method {method!r} (expected one of {', '.join(REGISTRY)})")
    return spec


def _graph(arrays: Mapping[str, np.ndarray], manifest: Manifest) -> Any:
    """The stored training interactions as a (n_users, n_items) CSR matrix."""
    n_items = manifest.shape.n_items if manifest.shape.n_items is not None else len(arrays["item_ids"])
    return reconstruct.interaction_graph(arrays["graph_indptr"], arrays["graph_indices"], n_items)


def _layers(manifest: Manifest) -> int:
    layers = manifest.shape.layers
    if layers is None:
        raise MethodError("exact reconstruction needs shape.layers in the manifest")
    return layers


@register
class UDSpec(MethodSpec):
    """``ud``: LightGCN with a full (N, d) table (the uncompressed baseline)."""

    name = "ud"
    description = "full embedding table (LightGCN)"
    arrays = {
        "H_full": real_array("N", "d"),  # propagated table, served directly
        "E": real_array("N", "d"),  # layer-0 table
    }
    components = {"full_table": ("H_full",), "layer0_table": ("E",)}
    table = "H_full"
    compressed = False

    def params_paper(self, dims: Mapping[str, int]) -> int:
        """N·d."""
        return dims["N"] * dims["d"]

    def exact_embeddings(self, arrays: Mapping[str, np.ndarray], manifest: Manifest) -> np.ndarray:
        """Â^l·E (Eq. 5-6)."""
        graph = _graph(arrays, manifest)
        return reconstruct.exact_ud(graph, arrays["E"], _layers(manifest))

    budget_knob = "dim"

    def knob_range(self, config: Any, n_entities: int) -> tuple[int, int]:
        return 1, MAX_PLANNED_DIM


@register
class LegcfSpec(MethodSpec):
    """``legcf``: coarse meta-embeddings only (LEGCF, paper §3.1): S^c (N, t_c) over a codebook E^c (m_c, d)."""

    name = "legcf"
    description = "coarse meta-embeddings (LEGCF)"
    arrays = {
        "S_c_idx": index_array("N", "t_c"),  # trained assignment (layer 0)
        "S_c_w": real_array("N", "t_c"),
        "S_c_idx_served": index_array("N", "t_s"),  # serving form, fitted at export: S·H_meta ≈ H_full
        "S_c_w_served": real_array("N", "t_s"),
        "H_meta": real_array("m_c", "d"),  # served (propagated, refit) codebook
        "E_c": real_array("m_c", "d"),  # layer-0 coarse codebook
    }
    components = {"S_c": ("S_c_idx", "S_c_w", "S_c_idx_served", "S_c_w_served"), "codebooks": ("H_meta", "E_c")}
    table = "H_meta"
    compressed = True
    has_coarse_stage = True
    serving_arrays = ("S_c_idx_served", "S_c_w_served", "H_meta")

    def dims(self, arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
        dims = super().dims(arrays)
        dims["m_c"] = _dim(arrays, "H_meta", 0)
        dims["t_c"] = _dim(arrays, "S_c_idx", 1)
        dims["t_s"] = _dim(arrays, "S_c_idx_served", 1)  # served terms per entity (TrainConfig.served_terms)
        return dims

    def check_arrays(self, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> None:
        for name in ("S_c_idx", "S_c_idx_served"):
            check_index_range(arrays, name, dims["m_c"], "m_c")

    def params_paper(self, dims: Mapping[str, int]) -> int:
        """t_c·N + m_c·d."""
        return dims["t_c"] * dims["N"] + dims["m_c"] * dims["d"]

    def footprint_extras(self, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> dict[str, Any]:
        return {"e_r_nnz": 0, "served_terms": dims["t_s"]}

    def manifest_fields(self, config: Any) -> dict[str, Any]:
        return {"shape": {"m_c": config.m_c, "t_c": config.t_c, "m_r": 0, "t_r": 0}, "w_cr": None}

    def exact_embeddings(self, arrays: Mapping[str, np.ndarray], manifest: Manifest) -> np.ndarray:
        """Layer 0 = [S^c·E^c; E^c] on Eq. 13's graph."""
        graph = _graph(arrays, manifest)
        return reconstruct.exact_legcf(graph, arrays["S_c_idx"], arrays["S_c_w"], arrays["E_c"], _layers(manifest))

    budget_knob = "m_c"

    def knob_range(self, config: Any, n_entities: int) -> tuple[int, int]:
        """From the t_c trained and t_s served distinct rows an entity needs to N // budget_entities_per_row (N
        without a cap): more rows than that are each trained by too few entities (BudgetConfig's attributes)."""
        low = max(int(config.t_c), int(config.terms_served))
        per_row = int(config.budget_entities_per_row)
        return low, max(low, n_entities // per_row if per_row > 0 else n_entities)

    def planned_dims(self, config: Any, n_users: int, n_items: int) -> dict[str, int]:
        dims = super().planned_dims(config, n_users, n_items)
        return {**dims, "m_c": int(config.m_c), "t_c": int(config.t_c), "t_s": int(config.terms_served)}


@register
class C2FSpec(LegcfSpec):
    """``c2f``: LEGCF's coarse stage refined by a sparse fine codebook (paper §3.2-3.3): S^r (m_c, t_r) over
    S_λ(E^r) (m_r, d), stored as CSR."""

    name = "c2f"
    description = "coarse-to-fine meta-embeddings (C2F)"
    arrays = {
        **LegcfSpec.arrays,
        "S_r_idx": index_array("m_c", "t_r"),
        "S_r_w": real_array("m_c", "t_r"),
        "E_r_indptr": ArraySpec("i", 8, ("m_r+1",)),
        "E_r_indices": index_array(None),
        "E_r_data": real_array(None),
    }
    components = {**LegcfSpec.components, "S_r": ("S_r_idx", "S_r_w"), "E_r": ("E_r_indptr", "E_r_indices", "E_r_data")}
    exact_fields = ("w_cr",)

    def dims(self, arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
        dims = super().dims(arrays)
        dims["t_r"] = _dim(arrays, "S_r_idx", 1)
        dims["m_r+1"] = _dim(arrays, "E_r_indptr", 0)
        dims["m_r"] = dims["m_r+1"] - 1
        return dims

    def check_arrays(self, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> None:
        super().check_arrays(arrays, dims)
        if dims["m_r"] < 0:
            raise MethodError("E_r_indptr must have at least one entry")
        if arrays["E_r_data"].shape != arrays["E_r_indices"].shape:
            raise MethodError("E_r_data and E_r_indices have different lengths")
        reconstruct.check_csr(arrays, "E_r", dims["m_r"], dims["d"])
        check_index_range(arrays, "S_r_idx", dims["m_r"], "m_r")

    def params_paper(self, dims: Mapping[str, int]) -> int:
        """t_c·N + m_c·d + m_r·d + t_r·m_c (E^r counted dense, as in Table 3)."""
        return super().params_paper(dims) + dims["m_r"] * dims["d"] + dims["t_r"] * dims["m_c"]

    def footprint_extras(self, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> dict[str, Any]:
        nnz = int(arrays["E_r_data"].shape[0])
        m_r, d = dims["m_r"], dims["d"]
        return {
            **super().footprint_extras(arrays, dims),
            "e_r_nnz": nnz,
            "e_r_density": nnz / (m_r * d) if m_r * d else 0.0,
            "params_sparse_E_r": dims["t_c"] * dims["N"] + dims["m_c"] * d + nnz + dims["t_r"] * dims["m_c"],
        }

    def manifest_fields(self, config: Any) -> dict[str, Any]:
        shape = {"m_c": config.m_c, "t_c": config.t_c, "m_r": config.m_r, "t_r": config.t_r}
        return {"shape": shape, "w_cr": config.w_cr}

    def exact_embeddings(self, arrays: Mapping[str, np.ndarray], manifest: Manifest) -> np.ndarray:
        """Layer 0 = [S^c·Ê^c; Ê^c; S_λ(E^r)] on Eq. 14's graph (Eq. 17-22)."""
        if manifest.w_cr is None:
            raise MethodError("exact reconstruction of a c2f model needs w_cr in the manifest")
        graph = _graph(arrays, manifest)
        d = int(arrays["E_c"].shape[1])
        m_r = int(arrays["E_r_indptr"].shape[0]) - 1
        fine = reconstruct.sparse_fine_codebook(arrays, m_r, d)
        return reconstruct.exact_c2f(
            graph,
            arrays["S_c_idx"],
            arrays["S_c_w"],
            arrays["E_c"],
            arrays["S_r_idx"],
            arrays["S_r_w"],
            fine,
            float(manifest.w_cr),
            _layers(manifest),
            forward=manifest.fine_forward,
        )

    def sized(self, config: Any, value: int) -> dict[str, Any]:
        """m_c = ``value`` and m_r in the configured m_r : m_c ratio (at least t_r)."""
        m_r = max(int(config.t_r), round(value * int(config.m_r) / max(1, int(config.m_c))))
        return {"m_c": value, "m_r": m_r}

    def planned_dims(self, config: Any, n_users: int, n_items: int) -> dict[str, int]:
        dims = super().planned_dims(config, n_users, n_items)
        return {**dims, "m_r": int(config.m_r), "m_r+1": int(config.m_r) + 1, "t_r": int(config.t_r)}

    def planned_lengths(self, dims: Mapping[str, int]) -> dict[str, int]:
        """S_λ(E^r)'s non-zeros are not known before training: at most all m_r·d of them."""
        nnz = dims["m_r"] * dims["d"]
        return {"E_r_indices": nnz, "E_r_data": nnz}


def auto_hash_buckets(value: int, n_entities: int) -> int:
    """``TrainConfig.hash_buckets`` resolved on N entities: the value, or ceil(N/16) rows for 0."""
    return int(value) if value > 0 else max(1, -(-n_entities // 16))


def auto_qr_buckets(value: int, n_entities: int) -> int:
    """``TrainConfig.qr_buckets`` (rows m of the remainder table) resolved on N entities: the value, or
    ceil(sqrt(N)) for 0 (about the fewest rows in total, m + ceil(N/m))."""
    return int(value) if value > 0 else max(1, math.isqrt(max(0, n_entities - 1)) + 1)


@register
class HashSpec(MethodSpec):
    """``hash``: the hashing trick. Every entity (users and items in one shared space) is mapped by a fixed seeded
    hash (:func:`contract.reconstruct.hash_buckets`, seed in the manifest's ``hash_seed``) to one of B rows of a
    trainable table; layer 0 = that row, propagated by LightGCN. Only the (B, d) table is stored."""

    name = "hash"
    description = "hashing trick: B shared rows (LightGCN)"
    arrays = {"hash_table": real_array("B", "d")}
    components = {"hash_table": ("hash_table",)}
    table = "hash_table"
    compressed = False
    exact_only = True
    exact_fields = ("hash_seed",)
    budget_knob = "hash_buckets"

    def dims(self, arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
        return {**super().dims(arrays), "B": _dim(arrays, "hash_table", 0)}

    def params_paper(self, dims: Mapping[str, int]) -> int:
        """B·d."""
        return dims["B"] * dims["d"]

    def footprint_extras(self, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> dict[str, Any]:
        return {"e_r_nnz": 0, "hash_buckets": dims["B"]}

    def manifest_fields(self, config: Any) -> dict[str, Any]:
        return {**super().manifest_fields(config), "hash_seed": int(config.seed)}

    def exact_embeddings(self, arrays: Mapping[str, np.ndarray], manifest: Manifest) -> np.ndarray:
        """Layer 0 = table[h(i)] on the plain interaction graph (as UD)."""
        if manifest.hash_seed is None:
            raise MethodError("exact reconstruction of a hash model needs hash_seed in the manifest")
        graph = _graph(arrays, manifest)
        table = arrays["hash_table"]
        buckets = reconstruct.hash_buckets(graph.shape[0] + graph.shape[1], table.shape[0], int(manifest.hash_seed))
        return reconstruct.exact_ud(graph, table[buckets], _layers(manifest))

    def knob_range(self, config: Any, n_entities: int) -> tuple[int, int]:
        return 1, max(1, n_entities)

    def planned_dims(self, config: Any, n_users: int, n_items: int) -> dict[str, int]:
        dims = super().planned_dims(config, n_users, n_items)
        return {**dims, "B": auto_hash_buckets(int(config.hash_buckets), dims["N"])}


@register
class QRSpec(MethodSpec):
    """``qr``: the quotient-remainder trick (Shi et al., KDD'20). Entity i (users and items in one space) has
    layer 0 = Q[i // m] ⊙ R[i % m] (or Q[i // m] + R[i % m], manifest ``qr_combine``), propagated by LightGCN;
    Q has ceil(N/m) rows, R has m rows, and every entity gets a distinct pair of rows."""

    name = "qr"
    description = "quotient-remainder trick: Q[i//m] * R[i%m] (LightGCN)"
    arrays = {"qr_Q": real_array("qr_q", "d"), "qr_R": real_array("qr_m", "d")}
    components = {"qr_tables": ("qr_Q", "qr_R")}
    table = "qr_R"
    compressed = False
    exact_only = True
    exact_fields = ("qr_combine",)
    budget_knob = "qr_buckets"

    def dims(self, arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
        return {**super().dims(arrays), "qr_q": _dim(arrays, "qr_Q", 0), "qr_m": _dim(arrays, "qr_R", 0)}

    def check_arrays(self, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> None:
        m = dims["qr_m"]
        if m < 1 or dims["qr_q"] != -(-dims["N"] // m):
            raise MethodError(
                f"qr_Q has {dims['qr_q']} rows and qr_R {m}: expected ceil(N/m) quotient rows for N={dims['N']}"
            )

    def params_paper(self, dims: Mapping[str, int]) -> int:
        """(rows_Q + rows_R)·d."""
        return (dims["qr_q"] + dims["qr_m"]) * dims["d"]

    def footprint_extras(self, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> dict[str, Any]:
        return {"e_r_nnz": 0, "qr_quotient_rows": dims["qr_q"], "qr_remainder_rows": dims["qr_m"]}

    def manifest_fields(self, config: Any) -> dict[str, Any]:
        return {**super().manifest_fields(config), "qr_combine": str(config.qr_combine)}

    def exact_embeddings(self, arrays: Mapping[str, np.ndarray], manifest: Manifest) -> np.ndarray:
        """Layer 0 = Q[i // m] ⊙ R[i % m] (or +) on the plain interaction graph (as UD)."""
        if manifest.qr_combine is None:
            raise MethodError("exact reconstruction of a qr model needs qr_combine in the manifest")
        graph = _graph(arrays, manifest)
        n = graph.shape[0] + graph.shape[1]
        X0 = reconstruct.qr_layer0(arrays["qr_Q"], arrays["qr_R"], n, str(manifest.qr_combine))
        return reconstruct.exact_ud(graph, X0, _layers(manifest))

    def knob_range(self, config: Any, n_entities: int) -> tuple[int, int]:
        """m from ceil(sqrt(N)) (about the fewest rows, m + ceil(N/m)) to N (Q one row): over this range the
        total rows never decrease with m, and R, the hashing-trick-like table, gets the most rows that fit."""
        return auto_qr_buckets(0, n_entities), max(1, n_entities)

    def planned_dims(self, config: Any, n_users: int, n_items: int) -> dict[str, int]:
        dims = super().planned_dims(config, n_users, n_items)
        m = auto_qr_buckets(int(config.qr_buckets), dims["N"])
        return {**dims, "qr_m": m, "qr_q": -(-dims["N"] // m)}


METHODS: tuple[str, ...] = tuple(REGISTRY)
"""The registered method names, in registration order."""
COARSE_METHODS: tuple[str, ...] = tuple(name for name, spec in REGISTRY.items() if spec.has_coarse_stage)
"""Methods whose artifacts hold a coarse stage (E_c, S^c) that ``coarse_from`` can reuse."""


def exact_embeddings(arrays: Mapping[str, np.ndarray], manifest: Manifest) -> np.ndarray:
    """Recompute the propagated entity embeddings H_full (N, d) float32 of an artifact (see each spec); float16
    arrays are upcast first (temporary copies), so the math runs in float32 whatever the stored dtypes."""
    return get_spec(manifest.method).exact_embeddings(as_float32_arrays(arrays), manifest)
