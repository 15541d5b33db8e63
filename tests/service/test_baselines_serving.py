"""Serving the equal-memory baselines (hash, qr) and refusing impossible memory budgets on POST /train.

hash and qr store only their small tables; the service reconstructs LightGCN's propagated embeddings from them at
load, in either serving mode (they have no compressed form). The reference below builds the propagation from the
definitions with dense numpy, independently of c2f/contract/reconstruct.py's sparse code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from c2f.contract.artifact import ArtifactError, load_artifact, version_path
from c2f.service.scoring import Recommender
from tests.fixtures import build_artifact, make_arrays, make_manifest

N_USERS, N_ITEMS, D, LAYERS = 9, 14, 5, 2


def _reference_layer0(method: str, arrays: dict[str, np.ndarray], seed: int = 11, combine: str = "mult") -> np.ndarray:
    n = N_USERS + N_ITEMS
    if method == "hash":
        mask = 2**64 - 1

        def mix(z: int) -> int:
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
            return z ^ (z >> 31)

        table = arrays["hash_table"]
        rows = [mix((mix(seed) + (i + 1) * 0x9E3779B97F4A7C15) & mask) % table.shape[0] for i in range(n)]
        return table[rows]
    Q, R = arrays["qr_Q"], arrays["qr_R"]
    m = R.shape[0]
    return np.stack([Q[i // m] * R[i % m] if combine == "mult" else Q[i // m] + R[i % m] for i in range(n)])


def _reference_propagated(arrays: dict[str, np.ndarray], X0: np.ndarray) -> np.ndarray:
    """mean_{l=0..L} Â^l X0 with Â = D^-1/2 [[0, R], [Rᵀ, 0]] D^-1/2 built densely."""
    R = np.zeros((N_USERS, N_ITEMS))
    for u in range(N_USERS):
        R[u, arrays["graph_indices"][arrays["graph_indptr"][u] : arrays["graph_indptr"][u + 1]]] = 1.0
    A = np.block([[np.zeros((N_USERS, N_USERS)), R], [R.T, np.zeros((N_ITEMS, N_ITEMS))]])
    deg = A.sum(1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    adj = inv[:, None] * A * inv[None, :]
    total, current = X0.astype(np.float64), X0.astype(np.float64)
    for _ in range(LAYERS):
        current = adj @ current
        total = total + current
    return total / (LAYERS + 1)


def _publish(root: Path, method: str, *, combine: str = "mult", buckets: int = 4) -> tuple[str, dict]:
    arrays = make_arrays(method, n_users=N_USERS, n_items=N_ITEMS, d=D, buckets=buckets, seen_per_user=4, seed=3)
    manifest = make_manifest(method, layers=LAYERS)
    if method == "qr":
        manifest["qr_combine"] = combine
    return build_artifact(root, method, arrays=arrays, manifest=manifest), arrays


@pytest.mark.parametrize(("method", "combine", "buckets"), [("hash", "mult", 6), ("qr", "mult", 4), ("qr", "sum", 7)])
def test_both_modes_serve_the_propagated_embeddings(artifact_root: Path, method: str, combine: str, buckets: int):
    version, arrays = _publish(artifact_root, method, combine=combine, buckets=buckets)
    artifact = load_artifact(version_path(artifact_root, version))
    H = _reference_propagated(arrays, _reference_layer0(method, arrays, combine=combine))
    expected = H[:N_USERS] @ H[N_USERS:].T
    for mode in ("exact", "compressed"):
        rec = Recommender(artifact, mode)
        assert rec.scoring == "dense"
        assert rec.memory_bytes()["exact_H_full"] == (N_USERS + N_ITEMS) * D * 4  # reconstructed at load
        np.testing.assert_allclose(rec.user_scores(np.arange(N_USERS)), expected, rtol=1e-4, atol=1e-5)
        for u in range(N_USERS):
            scores = expected[u].copy()
            scores[rec.seen_items(u)] = -np.inf
            idx, _ = rec.recommend(u, 5)
            np.testing.assert_allclose(np.sort(scores[idx]), np.sort(np.sort(scores)[::-1][:5]), rtol=1e-4)
    fp = artifact.manifest.footprint
    assert fp is not None
    rows = buckets if method == "hash" else buckets + -(-(N_USERS + N_ITEMS) // buckets)
    assert fp.params_paper == rows * D and fp.embedding_bytes == rows * D * 4
    assert fp.compressed_serving_bytes is None


def test_the_hash_seed_decides_the_rows(artifact_root: Path) -> None:
    version, arrays = _publish(artifact_root, "hash", buckets=6)
    other = make_manifest("hash", layers=LAYERS, hash_seed=12)
    other_version = build_artifact(artifact_root, "hash", arrays=arrays, manifest=other)
    a = Recommender(load_artifact(version_path(artifact_root, version)), "exact").user_scores([0, 1])
    b = Recommender(load_artifact(version_path(artifact_root, other_version)), "exact").user_scores([0, 1])
    assert not np.allclose(a, b)


def test_artifacts_missing_what_reconstruction_needs_are_refused(artifact_root: Path) -> None:
    arrays = make_arrays("hash", n_users=N_USERS, n_items=N_ITEMS, d=D, buckets=6)
    manifest = make_manifest("hash", layers=LAYERS)
    del manifest["hash_seed"]
    version = build_artifact(artifact_root, "hash", arrays=arrays, manifest=manifest)
    with pytest.raises(ArtifactError, match="hash_seed"):
        Recommender(load_artifact(version_path(artifact_root, version)), "compressed")
    arrays = make_arrays("qr", n_users=N_USERS, n_items=N_ITEMS, d=D, buckets=4)
    arrays["qr_Q"] = arrays["qr_Q"][:-1]  # ceil(23 / 4) = 6 quotient rows needed
    with pytest.raises(ArtifactError, match="expected ceil"):
        build_artifact(artifact_root, "qr", arrays=arrays, manifest=make_manifest("qr", layers=LAYERS))


def test_the_service_serves_a_hash_model_over_http(artifact_root: Path, make_client: Any) -> None:
    _publish(artifact_root, "hash", buckets=6)
    with make_client() as client:
        response = client.get("/recommend/u0", params={"n": 3})
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == 3
        footprint = client.get("/footprint").json()
        assert footprint["method"] == "hash" and footprint["serving_mode"] == "compressed"
        assert footprint["scoring"] == "dense"  # no compressed form: H_full reconstructed at load
        assert footprint["derived"]["exact_H_full"] == (N_USERS + N_ITEMS) * D * 4
        assert footprint["embedding_bytes"] == 6 * D * 4


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    from c2f.trainer.synthetic import planted_communities, write_lightgcn_dir

    users, items, _, _ = planted_communities(n_users=40, n_items=30, n_communities=2, items_per_user=(3, 6))
    write_lightgcn_dir(tmp_path / "data" / "ds", users, items)
    return tmp_path / "data"


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("legcf", {"budget": 2.0, "biases": False}, "smallest legcf model at d=128 needs on any dataset (3.125%)"),
        ("hash", {"budget_bytes": 100, "dim": 64, "biases": False}, "100 bytes is below the smallest hash model"),
        ("hash", {"budget": 2.0, "budget_bytes": 10**6}, "not both"),
        ("hash", {"budget": 0}, "greater than 0"),
    ],
)
def test_post_train_refuses_an_impossible_budget_with_422(
    make_client: Any, data_root: Path, method: str, params: dict, message: str
) -> None:
    with make_client(redis_url=None, data_root=data_root) as client:
        body = {"dataset_uri": "ds", "method": method, "params": params}
        response = client.post("/train", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and message in error["message"]


def test_post_train_passes_a_possible_budget_on_to_the_queue(make_client: Any, data_root: Path) -> None:
    with make_client(redis_url=None, data_root=data_root) as client:  # no queue: 503 once validation passed
        body = {"dataset_uri": "ds", "method": "hash", "params": {"budget": 2.0}}
        response = client.post("/train", json=body)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "queue_unavailable"
