from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from c2f.contract.artifact import load_artifact, version_path
from c2f.contract.footprint import footprint, params_paper
from tests.fixtures import assert_error, build_artifact, make_arrays, make_manifest

GOWALLA_USERS, GOWALLA_ITEMS = 29_858, 40_981
GOWALLA_N = GOWALLA_USERS + GOWALLA_ITEMS  # 70,839


def test_params_paper_matches_table_3() -> None:
    # Table 3, Gowalla: C2F "0.19m" = 2·70,839 + 300·128 + 100·128 + 4·300 (t_c=2, m_c=300, m_r=100, t_r=4)
    assert params_paper("c2f", GOWALLA_N, 128, m_c=300, t_c=2, m_r=100, t_r=4) == 194_078
    # UD dim 128 "9.07m" and dim 64 "4.53m"; LEGCF "0.21m" with 500 buckets and t=2
    assert params_paper("ud", GOWALLA_N, 128) == 9_067_392
    assert params_paper("ud", GOWALLA_N, 64) == 4_533_696
    assert params_paper("legcf", GOWALLA_N, 128, m_c=500, t_c=2) == 205_678


def _gowalla_shaped_c2f(t_r: int = 4) -> dict[str, np.ndarray]:
    n, d, m_c, m_r = GOWALLA_N, 128, 300, 100
    nnz = m_r * d // 2
    return {
        "user_ids": np.array([str(i) for i in range(GOWALLA_USERS)]),
        "item_ids": np.array([str(i) for i in range(GOWALLA_ITEMS)]),
        "graph_indptr": np.zeros(GOWALLA_USERS + 1, np.int64),
        "graph_indices": np.zeros(0, np.int32),
        "heldout_indptr": np.zeros(GOWALLA_USERS + 1, np.int64),
        "heldout_indices": np.zeros(0, np.int32),
        "S_c_idx": np.zeros((n, 2), np.int32),
        "S_c_w": np.zeros((n, 2), np.float32),
        "S_c_idx_served": np.zeros((n, 2), np.int32),
        "S_c_w_served": np.zeros((n, 2), np.float32),
        "H_meta": np.zeros((m_c, d), np.float32),
        "E_c": np.zeros((m_c, d), np.float32),
        "S_r_idx": np.zeros((m_c, t_r), np.int32),
        "S_r_w": np.zeros((m_c, t_r), np.float32),
        "E_r_indptr": np.arange(0, nnz + 1, d // 2, dtype=np.int64),
        "E_r_indices": np.tile(np.arange(d // 2, dtype=np.int32), m_r),
        "E_r_data": np.ones(nnz, np.float32),
    }


def test_footprint_of_gowalla_shaped_c2f() -> None:
    fp = footprint(_gowalla_shaped_c2f(), "c2f").model_dump()
    assert fp["params_paper"] == 194_078
    assert (fp["n_entities"], fp["d"], fp["m_c"], fp["t_c"], fp["m_r"], fp["t_r"]) == (GOWALLA_N, 128, 300, 2, 100, 4)
    assert fp["full_table_bytes"] == GOWALLA_N * 128 * 4
    assert fp["compression_ratio_params"] == pytest.approx(9_067_392 / 194_078)
    assert fp["e_r_nnz"] == 6_400 and fp["e_r_density"] == pytest.approx(0.5)
    assert fp["params_sparse_E_r"] == 194_078 - 6_400
    # bytes as stored: S_c = trained and served idx (int32) and weights (float32), N × t_c each
    assert fp["components"]["S_c"] == 4 * GOWALLA_N * 2 * 4
    assert fp["components"]["codebooks"] == 2 * 300 * 128 * 4
    assert fp["components"]["S_r"] == 2 * 300 * 4 * 4
    assert fp["components"]["E_r"] == 101 * 8 + 6_400 * 4 * 2
    assert fp["total_bytes"] == sum(fp["arrays"].values()) == sum(fp["components"].values())
    assert fp["embedding_bytes"] == fp["total_bytes"] - fp["components"]["id_maps"] - fp["components"]["graph"]
    assert fp["compressed_serving_bytes"] == GOWALLA_N * 2 * 8 + 300 * 128 * 4
    assert fp["compression_ratio_bytes"] == pytest.approx(fp["full_table_bytes"] / fp["embedding_bytes"])
    assert fp["compression_ratio_bytes"] > 10


def test_footprint_ud_is_uncompressed() -> None:
    arrays = make_arrays("ud", n_users=3, n_items=5, d=4)
    fp = footprint(arrays, "ud").model_dump()
    assert fp["params_paper"] == 8 * 4 and fp["compression_ratio_params"] == 1.0
    assert fp["components"]["full_table"] == fp["full_table_bytes"] == 8 * 4 * 4
    assert fp["e_r_nnz"] == 0 and fp["compressed_serving_bytes"] is None


def test_footprint_endpoint(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    manifest = make_manifest("c2f")
    version = build_artifact(artifact_root, "c2f", manifest=manifest)
    stored = load_artifact(version_path(artifact_root, version)).manifest.footprint.model_dump()
    with make_client() as client:
        r = client.get("/footprint")
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["model_version"] == version and body["method"] == "c2f"
    assert body["serving_mode"] == "compressed" and body["scoring"] == "compressed"
    assert body["components"] == stored["components"] and body["params_paper"] == stored["params_paper"]
    assert body["full_table_bytes"] == 16 * 4 * 4
    # compressed serving keeps the served pair and the float32 H_meta of the stored arrays, not layer 0's
    layer0 = ("E_c", "E_r_data", "E_r_indices", "E_r_indptr", "S_r_idx", "S_r_w", "S_c_idx", "S_c_w")
    kept = body["total_bytes"] - sum(body["arrays"][name] for name in layer0)
    assert body["loaded_bytes"] == kept + sum(body["derived"].values())
    assert body["metrics"]["trained"] == manifest["metrics"]["trained"]
    assert body["metrics"]["served"] == manifest["metrics"]["served"]
    assert body["process_rss_bytes"] > 1_000_000


def test_footprint_endpoint_exact_mode(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    build_artifact(artifact_root, "legcf")
    with make_client(serving_mode="exact") as client:
        body = client.get("/footprint").json()
    assert body["serving_mode"] == "exact" and body["scoring"] == "dense"
    assert body["derived"]["exact_H_full"] == 16 * 4 * 4


def test_footprint_without_model(make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        assert_error(client.get("/footprint"), 503, "no_model")


def test_footprint_endpoint_reports_stored_and_in_memory_bytes(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    from tests.contract.test_dtypes import compact

    arrays = make_arrays("legcf", n_users=6, n_items=10, d=4, m_c=5, t_c=2)
    wide = {name: int(arr.nbytes) for name, arr in arrays.items()}
    build_artifact(artifact_root, "legcf", arrays=compact(arrays))
    with make_client() as client:
        body = client.get("/footprint").json()
    assert body["dtypes"]["H_meta"] == "float16" and body["dtypes"]["S_c_idx_served"] == "uint16"
    assert body["dtypes"]["graph_indices"] == "int32"
    # stored: every compact array at half its float32/int32 size
    assert body["arrays"]["H_meta"] == wide["H_meta"] // 2 == 5 * 4 * 2
    assert body["arrays"]["S_c_idx_served"] == wide["S_c_idx_served"] // 2
    assert body["stored_bytes"] == body["total_bytes"] == sum(body["arrays"].values())
    assert body["compressed_serving_bytes"] == 16 * 2 * (2 + 2) + 5 * 4 * 2 and body["served_terms"] == 2
    # in memory: the stored arrays plus the float32 codebook upcast at load (and the other derived structures)
    assert body["derived"]["H_meta_float32"] == 5 * 4 * 4
    # in memory: the stored arrays compressed serving keeps (not the trained assignment, E_c or the float16 H_meta
    # it upcast) plus what the scorer derived
    kept = body["stored_bytes"] - sum(body["arrays"][name] for name in ("S_c_idx", "S_c_w", "E_c", "H_meta"))
    assert body["in_memory_bytes"] == body["loaded_bytes"] == kept + sum(body["derived"].values())


def test_footprint_and_page_count_the_live_catalog(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    """The hidden items and the item attribute table are counted (how many, bytes), never as embedding bytes."""
    from c2f.contract.attributes import encode_attributes
    from c2f.service.catalog import HiddenSnapshot

    arrays = make_arrays("legcf", n_users=6, n_items=40)
    plain = footprint(arrays, "legcf")
    table = encode_attributes(arrays["item_ids"], arrays["item_ids"], {"genre": np.array(["jazz", "rock"] * 20)})
    build_artifact(artifact_root, "legcf", arrays={**arrays, **table}, manifest=make_manifest("legcf"))
    with make_client() as client:
        client.app.state.catalog._install(HiddenSnapshot(frozenset({"i1", "i2", "gone"}), 3, "e"))
        body = client.get("/footprint").json()
        page = client.get("/").text
    catalog = body["catalog"]
    table_bytes = sum(int(a.nbytes) for a in table.values())
    assert catalog["attribute_columns"] == ["genre"] and catalog["attribute_values"] == {"genre": 2}
    assert table_bytes <= catalog["attribute_bytes"] <= table_bytes + 64  # the arrays (and the column names)
    assert body["components"]["attributes"] == table_bytes
    assert body["embedding_bytes"] == plain.embedding_bytes  # not embedding bytes
    assert catalog["hidden_items"] == 3 and catalog["hidden_bytes"] > 3 * 40 and catalog["hidden_stale"] is False
    assert 'id="hidden-count">3<' in page and "<code>genre</code> (2 values)" in page
    assert f'data-bytes="{catalog["attribute_bytes"]}"' in page and "item attribute table" in page
