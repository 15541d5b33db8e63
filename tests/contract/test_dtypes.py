"""Stored dtypes: compact index and float types are chosen by bound, accepted by the contract, counted by the
footprint, and older int32/float32 artifacts keep loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from c2f.contract.artifact import ArtifactError, load_artifact, validate_arrays, version_path
from c2f.contract.dtypes import as_float32_arrays, index_dtype, store_float
from c2f.contract.footprint import footprint
from c2f.contract.manifest import Manifest
from c2f.contract.methods import exact_embeddings
from tests.fixtures import build_artifact, make_arrays, make_manifest

INDEX_ARRAYS = ("S_c_idx", "S_c_idx_served", "S_r_idx", "E_r_indices")
FLOAT_ARRAYS = ("S_c_w", "S_c_w_served", "H_meta", "E_c", "S_r_w", "E_r_data", "H_full", "E")


def compact(arrays: dict[str, np.ndarray], index: str = "uint16", real: str = "float16") -> dict[str, np.ndarray]:
    """``arrays`` with the index arrays as ``index`` and the embedding floats as ``real``."""
    out = dict(arrays)
    for name in INDEX_ARRAYS:
        if name in out:
            out[name] = out[name].astype(index)
    for name in FLOAT_ARRAYS:
        if name in out:
            out[name] = out[name].astype(real)
    return out


@pytest.mark.parametrize(
    ("bound", "expected"),
    [(0, np.uint16), (300, np.uint16), (65_535, np.uint16), (65_536, np.uint32), (70_000, np.uint32)],
)
def test_index_dtype_is_the_smallest_unsigned_type(bound: int, expected: type) -> None:
    assert index_dtype(bound) == np.dtype(expected)


def test_index_dtype_and_store_float_reject_bad_values() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        index_dtype(-1)
    with pytest.raises(ValueError, match="does not fit uint32"):
        index_dtype(2**33)
    with pytest.raises(ValueError, match="store dtype must be one of float32, float16"):
        store_float(np.ones(2), "bfloat16")
    with pytest.raises(ValueError, match="do not fit float16"):
        store_float(np.array([1.0, 70_000.0]), "float16")
    assert store_float(np.array([1.5, -2.0]), "float16").dtype == np.float16


@pytest.mark.parametrize("method", ["ud", "legcf", "c2f"])
@pytest.mark.parametrize(("index", "real"), [("uint16", "float16"), ("uint32", "float16"), ("int32", "float32")])
def test_compact_and_original_dtypes_publish_and_load(artifact_root: Path, method: str, index: str, real: str) -> None:
    arrays = compact(make_arrays(method, seed=3), index, real)
    version = build_artifact(artifact_root, method, arrays=arrays)
    loaded = load_artifact(version_path(artifact_root, version))
    for name, arr in arrays.items():
        assert loaded.arrays[name].dtype == arr.dtype, name
        np.testing.assert_array_equal(loaded.arrays[name], arr)
    assert loaded.manifest.footprint is not None
    assert loaded.manifest.footprint.dtypes == {name: str(arr.dtype) for name, arr in arrays.items()}


@pytest.mark.parametrize(
    ("name", "dtype", "message"),
    [
        ("S_c_idx", "int8", "expected int32, uint16 or uint32"),
        ("S_c_idx_served", "int64", "expected int32, uint16 or uint32"),
        ("H_meta", "float64", "expected float32 or float16"),
        ("graph_indices", "uint16", "expected int32"),  # the seen-items graph keeps its original types
        ("item_bias", "float16", "expected float32"),
    ],
)
def test_other_dtypes_are_rejected(name: str, dtype: str, message: str) -> None:
    arrays = make_arrays("c2f")
    arrays["item_bias"] = np.zeros(arrays["item_ids"].shape[0], np.float32)
    arrays[name] = arrays[name].astype(dtype)
    with pytest.raises(ArtifactError, match=message):
        validate_arrays(arrays, make_manifest("c2f"))


def test_compact_arrays_keep_their_checks() -> None:
    arrays = compact(make_arrays("legcf"))
    arrays["S_c_idx_served"] = arrays["S_c_idx_served"].copy()
    arrays["S_c_idx_served"][0, 0] = 5  # m_c = 5: out of range even though uint16 holds it
    with pytest.raises(ArtifactError, match=r"S_c_idx_served has values outside \[0, m_c=5\)"):
        validate_arrays(arrays, make_manifest("legcf"))
    arrays = compact(make_arrays("legcf"))
    arrays["H_meta"] = arrays["H_meta"].copy()
    arrays["H_meta"][0, 0] = np.inf  # what a float16 overflow would store
    with pytest.raises(ArtifactError, match="H_meta' contains NaN or infinite"):
        validate_arrays(arrays, make_manifest("legcf"))


@pytest.mark.parametrize("method", ["legcf", "c2f"])
def test_footprint_counts_stored_bytes(method: str) -> None:
    arrays = make_arrays(method, n_users=7, n_items=9, d=8, m_c=6, t_c=3)
    wide, small = footprint(arrays, method), footprint(compact(arrays), method)
    n, t, m_c, d = 16, 3, 6, 8
    assert wide.components["S_c"] == 4 * n * t * 4
    assert small.components["S_c"] == 4 * n * t * 2
    assert small.components["codebooks"] == 2 * m_c * d * 2 == wide.components["codebooks"] // 2
    assert small.compressed_serving_bytes == n * t * (2 + 2) + m_c * d * 2
    assert small.arrays["S_c_idx"] == n * t * 2 and small.dtypes["S_c_idx"] == "uint16"
    # id maps and the seen-items graph are unchanged, the float32 full table is still the reference
    assert small.components["graph"] == wide.components["graph"]
    assert small.full_table_bytes == wide.full_table_bytes == n * d * 4
    assert small.compression_ratio_bytes is not None and wide.compression_ratio_bytes is not None
    assert small.compression_ratio_bytes > 1.9 * wide.compression_ratio_bytes
    assert small.served_terms == wide.served_terms == t


def test_served_terms_may_differ_from_t_c() -> None:
    arrays = make_arrays("legcf", m_c=8, t_c=2)
    n = arrays["S_c_idx"].shape[0]
    rng = np.random.default_rng(0)
    arrays["S_c_idx_served"] = np.stack([rng.choice(8, 5, replace=False) for _ in range(n)]).astype(np.uint16)
    arrays["S_c_w_served"] = rng.standard_normal((n, 5)).astype(np.float16)
    dims = validate_arrays(arrays, make_manifest("legcf"))
    assert (dims["t_c"], dims["t_s"]) == (2, 5)
    assert footprint(arrays, "legcf").served_terms == 5
    arrays["S_c_w_served"] = arrays["S_c_w_served"][:, :4]
    with pytest.raises(ArtifactError, match="S_c_w_served' has shape .* expected t_s=5"):
        validate_arrays(arrays, make_manifest("legcf"))


@pytest.mark.parametrize("method", ["ud", "legcf", "c2f"])
def test_exact_embeddings_of_float16_arrays_run_in_float32(method: str) -> None:
    arrays = make_arrays(method, n_users=8, n_items=12, d=6, seed=5)
    small = compact(arrays)
    manifest = Manifest.model_validate(make_manifest(method))
    got = exact_embeddings(small, manifest)
    assert got.dtype == np.float32
    # same as the float32 math over the float16 values, and close to the float32 model
    np.testing.assert_allclose(got, exact_embeddings(as_float32_arrays(small), manifest), rtol=1e-6, atol=1e-6)
    reference = exact_embeddings(arrays, manifest)
    scale = float(np.abs(reference).max())
    np.testing.assert_allclose(got, reference, atol=2e-3 * scale)
