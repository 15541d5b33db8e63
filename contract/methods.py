"""One spec per embedding method, in a registry keyed by name: what an artifact of that method stores and means.

A :class:`MethodSpec` owns everything about a method that the trainer and the service must agree on: the arrays of
its ``model.npz`` (names, dtypes, symbolic shapes), their index-range checks, how they group into footprint
components, the paper's #param formula (Table 3), the manifest fields it fills, and how the propagated embeddings
are reconstructed from the arrays (exact serving mode). The trainer adds one model class per method
(``trainer/models.py``); nothing else names a method.

Adding a method: subclass :class:`MethodSpec` here, decorate it with :func:`register`, and add its model class (and
``build_arrays`` branch) in the trainer. Version names, the HTTP schema, the CLI and the artifact checks follow the
registry.

Entity rows are users ``0..n_users-1`` then items ``n_users..N-1`` (N = n_users + n_items).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from contract import reconstruct
from contract.dtypes import FLOAT_DTYPES, INDEX_DTYPES, as_float32_arrays

if TYPE_CHECKING:
    from contract.manifest import Manifest


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
        base = {"U": "str (<U)", "i": f"int{8 * (self.itemsize or 0)}", "f": f"float{8 * (self.itemsize or 0)}"}
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
SHAPE_KEYS = ("n_users", "n_items", "d", "m_c", "t_c", "m_r", "t_r")
# Arrays any method may store: learned per-item score offsets (TrainConfig.biases), added to h_u·h_i when serving.
# Validated when present, counted as embedding bytes (component "biases") and as parameters (Footprint.params_total).
OPTIONAL_ARRAYS: dict[str, ArraySpec] = {"item_bias": ArraySpec("f", 4, ("n_items",))}
OPTIONAL_COMPONENTS: dict[str, tuple[str, ...]] = {"biases": ("item_bias",)}


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
        return dims

    def check_arrays(self, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> None:
        """Index-range checks beyond names, dtypes and shapes (MethodError on the first problem)."""

    def params_paper(self, dims: Mapping[str, int]) -> int:
        """Embedding-layer parameters in the paper's convention (Table 3)."""
        raise NotImplementedError

    def footprint_extras(self, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> dict[str, Any]:
        """Method-specific footprint entries (sparse counts, bytes read by compressed scoring)."""
        return {"e_r_nnz": 0}

    def manifest_fields(self, config: Any) -> dict[str, Any]:
        """The method's manifest fields from a TrainConfig: ``shape`` hyper-parameters (0 when unused) and
        top-level fields (``w_cr``)."""
        return {"shape": {"m_c": 0, "t_c": 0, "m_r": 0, "t_r": 0}, "w_cr": None}

    def exact_embeddings(self, arrays: Mapping[str, np.ndarray], manifest: Manifest) -> np.ndarray:
        """H_full (N, d) float32 recomputed from the layer-0 arrays and the stored graph, as the trainer did."""
        raise NotImplementedError


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
        serving = sum(int(arrays[n].nbytes) for n in self.serving_arrays)
        full_bytes = dims["N"] * dims["d"] * 4
        return {
            "e_r_nnz": 0,
            "served_terms": dims["t_s"],
            "compressed_serving_bytes": serving,
            "compression_ratio_serving_bytes": full_bytes / serving if serving else None,
        }

    def manifest_fields(self, config: Any) -> dict[str, Any]:
        return {"shape": {"m_c": config.m_c, "t_c": config.t_c, "m_r": 0, "t_r": 0}, "w_cr": None}

    def exact_embeddings(self, arrays: Mapping[str, np.ndarray], manifest: Manifest) -> np.ndarray:
        """Layer 0 = [S^c·E^c; E^c] on Eq. 13's graph."""
        graph = _graph(arrays, manifest)
        return reconstruct.exact_legcf(graph, arrays["S_c_idx"], arrays["S_c_w"], arrays["E_c"], _layers(manifest))


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
            forward=str(manifest.config.get("fine_forward", "paper")) if manifest.config else "paper",
        )


METHODS: tuple[str, ...] = tuple(REGISTRY)
"""The registered method names, in registration order."""
COARSE_METHODS: tuple[str, ...] = tuple(name for name, spec in REGISTRY.items() if spec.has_coarse_stage)
"""Methods whose artifacts hold a coarse stage (E_c, S^c) that ``coarse_from`` can reuse."""


def exact_embeddings(arrays: Mapping[str, np.ndarray], manifest: Manifest) -> np.ndarray:
    """Recompute the propagated entity embeddings H_full (N, d) float32 of an artifact (see each spec); float16
    arrays are upcast first (temporary copies), so the math runs in float32 whatever the stored dtypes."""
    return get_spec(manifest.method).exact_embeddings(as_float32_arrays(arrays), manifest)
