"""Stored dtypes: which integer and float types an artifact may hold, and how to choose and read them.

Index arrays (codebook rows of an assignment, column indices of a sparse codebook) are stored in the smallest
unsigned type that holds their bound: ``uint16`` when the bound is at most 65,535, else ``uint32``; artifacts
written before this hold ``int32`` and keep loading.  Real-valued embedding arrays (weights, codebooks, tables) are
``float32`` or, when a training run asks for it (``TrainConfig.store_dtype``), ``float16``.

Arithmetic always runs in float32: :func:`as_float32` upcasts a stored array (a no-op for float32), and the service
upcasts what it multiplies with at load or per bounded chunk (``c2f/service/scoring.py``), never per request over the
whole catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, get_args

import numpy as np

StoreDtype = Literal["float32", "float16"]
STORE_DTYPES: tuple[str, ...] = get_args(StoreDtype)
"""The float types ``TrainConfig.store_dtype`` may name."""

INDEX_DTYPES: tuple[str, ...] = ("int32", "uint16", "uint32")
"""Accepted dtypes of index arrays: int32 (the original format) and the compact unsigned types."""
FLOAT_DTYPES: tuple[str, ...] = ("float32", "float16")
"""Accepted dtypes of real-valued embedding arrays."""

UINT16_MAX = int(np.iinfo(np.uint16).max)  # 65,535
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65,504


def index_dtype(bound: int) -> np.dtype:
    """The smallest unsigned integer type for indices into ``bound`` rows: uint16 for bound <= 65,535, else uint32.

    ValueError for a negative bound or one beyond uint32.
    """
    bound = int(bound)
    if bound < 0:
        raise ValueError(f"an index bound must be >= 0, got {bound}")
    if bound <= UINT16_MAX:
        return np.dtype(np.uint16)
    if bound <= int(np.iinfo(np.uint32).max):
        return np.dtype(np.uint32)
    raise ValueError(f"index bound {bound} does not fit uint32")


INDEX_BOUNDS: dict[str, str] = {"S_c_idx": "m_c", "S_c_idx_served": "m_c", "S_r_idx": "m_r", "E_r_indices": "d"}
"""Index arrays and the dimension (:meth:`contract.methods.MethodSpec.dims`) that bounds their values."""


def target_dtype(
    name: str, accepts: Callable[[np.dtype], bool], dims: Mapping[str, int], store_dtype: str
) -> np.dtype | None:
    """The dtype an export stores a method's array ``name`` in: an index array (:data:`INDEX_BOUNDS`) the smallest
    unsigned type for its bound, a real array whose spec ``accepts`` float16 ``store_dtype``; None: as built.
    One rule for the trainer's export and for sizing before training (``contract.footprint``)."""
    if name in INDEX_BOUNDS:
        return index_dtype(dims[INDEX_BOUNDS[name]])
    if accepts(np.dtype(np.float16)):
        return np.dtype(store_dtype)
    return None


def store_float(values: np.ndarray, dtype: str) -> np.ndarray:
    """``values`` as the stored float type ``dtype`` ("float32" or "float16").

    ValueError naming the largest magnitude when a value would overflow float16 (it would be stored as inf).
    """
    if dtype not in STORE_DTYPES:
        raise ValueError(f"store dtype must be one of {', '.join(STORE_DTYPES)}; got {dtype!r}")
    values = np.asarray(values)
    if dtype == "float16" and values.size:
        peak = float(np.max(np.abs(values)))
        if peak > FLOAT16_MAX:
            raise ValueError(f"values up to {peak:.3g} do not fit float16 (max {FLOAT16_MAX:.0f})")
    return values.astype(dtype)


def as_float32(values: np.ndarray) -> np.ndarray:
    """A float32 view of a stored real array: the array itself when it already is float32, else an upcast copy."""
    return values if values.dtype == np.float32 else np.asarray(values, dtype=np.float32)


def as_float32_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` with every non-float32 float array upcast to float32 (others passed through, not copied): what
    the shared reconstruction math (``contract.reconstruct``) is given, so it never computes in float16."""
    return {k: as_float32(v) if v.dtype.kind == "f" else v for k, v in arrays.items()}


def dtype_names(arrays: Mapping[str, np.ndarray]) -> dict[str, str]:
    """``{"H_meta": "float16", "S_c_idx": "uint16", ...}``: each array's dtype as stored."""
    return {name: str(arr.dtype) for name, arr in arrays.items()}
