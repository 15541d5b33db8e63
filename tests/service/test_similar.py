from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from c2f.contract.artifact import load_artifact
from c2f.contract.methods import exact_embeddings
from tests.fixtures import (
    assert_error,
    build_artifact,
    dense_reconstruction,
    make_arrays,
    make_manifest,
    tiny_known_arrays,
)


@pytest.fixture
def tiny_root(artifact_root: Path) -> Path:
    build_artifact(artifact_root, "legcf", arrays=tiny_known_arrays(), manifest=make_manifest("legcf"))
    return artifact_root


def test_similar_items(tiny_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        r = client.get("/similar-items/i2", params={"n": 4})
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["item_id"] == "i2" and body["model_version"].endswith("-legcf")
    # i2 = (2, 1): cos to i0 (1,0) = 2/√5, i3 (0.2,3) = 3.4/(√5·√9.04), i4 (1.5,-1) = 2/(√5·√3.25), i1 = 1/√5
    assert [it["item_id"] for it in body["items"]] == ["i0", "i3", "i4", "i1"]
    expected = [2 / np.sqrt(5), 3.4 / np.sqrt(5 * 9.04), 2 / np.sqrt(5 * 3.25), 1 / np.sqrt(5)]
    assert [it["score"] for it in body["items"]] == pytest.approx(expected, rel=1e-5)


def test_similar_items_excludes_the_item_and_caps_n(tiny_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        items = client.get("/similar-items/i0?n=100").json()["items"]
    assert len(items) == 4 and "i0" not in [it["item_id"] for it in items]


def test_unknown_item_and_bad_n(tiny_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        err = assert_error(client.get("/similar-items/zzz"), 404, "unknown_item")
        assert "zzz" in err["message"]
        assert_error(client.get("/similar-items/i0?n=0"), 422, "validation_error")
        assert_error(client.get("/similar-items/i0?n=1001"), 422, "validation_error")


def test_similar_items_exact_mode(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    """Exact mode ranks an item's neighbours by the cosine of the exact vectors (the contract's reconstruction),
    which here order the items differently from the compressed ones."""
    arrays = make_arrays("legcf")
    version = build_artifact(artifact_root, "legcf", arrays=arrays, manifest=make_manifest("legcf"))
    artifact = load_artifact(artifact_root / "versions" / version)
    n_users, query = len(arrays["user_ids"]), 2

    def cosines(vectors: np.ndarray) -> np.ndarray:
        items = vectors[n_users:] / np.linalg.norm(vectors[n_users:], axis=1, keepdims=True)
        cos = items @ items[query]
        cos[query] = -np.inf
        return cos

    exact = cosines(exact_embeddings(artifact.arrays, artifact.manifest))
    order = np.argsort(-exact, kind="stable")[:4]
    assert not np.array_equal(order, np.argsort(-cosines(dense_reconstruction(arrays)), kind="stable")[:4])
    with make_client(serving_mode="exact") as client:
        r = client.get(f"/similar-items/{arrays['item_ids'][query]}?n=4")
        assert r.status_code == 200, r.text
        items = r.json()["items"]
    assert [it["item_id"] for it in items] == arrays["item_ids"][order].tolist()
    assert [it["score"] for it in items] == pytest.approx(exact[order].tolist(), rel=1e-5)
