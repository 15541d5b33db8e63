"""The typed manifest reads manifests written before it existed, and writes the same JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from c2f.contract.artifact import ArtifactError, load_artifact, publish, version_path
from c2f.contract.manifest import Manifest
from tests.fixtures import make_arrays

# A c2f manifest exactly as the exporter and publish() wrote it before the typed manifest (keys, nesting, nulls).
OLD_MANIFEST = {
    "method": "c2f",
    "dataset": {"uri": "file:///data/ds", "content_hash": "ab" * 32, "stats": {"n_users": 6, "n_items": 10}},
    "config": {"method": "c2f", "dim": 4, "layers": 2, "m_c": 5, "t_c": 2, "m_r": 3, "t_r": 2, "w_cr": 0.5},
    "shape": {
        "n_users": 6,
        "n_items": 10,
        "n_entities": 16,
        "d": 4,
        "layers": 2,
        "m_c": 5,
        "t_c": 2,
        "m_r": 3,
        "t_r": 2,
    },
    "w_cr": 0.5,
    "soft_lambda": 0.01,
    "metrics": {
        "trained": {"valid": {"recall@20": 0.3}, "test": {"recall@20": 0.25, "n_users": 6}, "coarse_test": None},
        "history": [{"stage": "coarse", "phase": 1, "epoch": 1, "loss": 0.6, "valid": None}],
        "timings": {"coarse_seconds": 1.5, "export_seconds": 0.2},
        "served": {"compressed": {"test": {"recall@20": 0.24}}, "exact": {"test": {"recall@20": 0.25}}},
    },
    "info": {"device": "cpu", "world_size": 1},
    "schema_version": 1,
    "model_version": "20260101T000000000000Z-c2f",
    "created_at": "2026-01-01T00:00:00Z",
    "footprint": {"method": "c2f", "params_paper": 1, "e_r_nnz": 3},  # replaced below by the real one
    "files": {},
}


def _write_old_version(root: Path) -> Path:
    """A version directory written by the old code path: json.dumps of a plain dict, np.savez of the arrays."""
    arrays = make_arrays("c2f", seed=4)
    # the footprint the old code stored is what publish() computes; take it from a throwaway publish
    scratch = root / "scratch"
    tmp_version = publish(scratch, arrays, {k: v for k, v in OLD_MANIFEST.items() if k not in ("footprint", "files")})
    stored = json.loads((version_path(scratch, tmp_version) / "manifest.json").read_text())
    vdir = version_path(root, OLD_MANIFEST["model_version"])
    vdir.mkdir(parents=True)
    np.savez(vdir / "model.npz", **arrays)  # type: ignore[arg-type]
    from c2f.contract.artifact import _sha256_file

    manifest = {**OLD_MANIFEST, "footprint": stored["footprint"]}
    manifest["files"] = {
        "model.npz": {"bytes": (vdir / "model.npz").stat().st_size, "sha256": _sha256_file(vdir / "model.npz")}
    }
    (vdir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return vdir


def test_a_manifest_in_the_old_shape_loads(tmp_path: Path) -> None:
    vdir = _write_old_version(tmp_path)
    artifact = load_artifact(vdir)
    m = artifact.manifest
    assert m.method == "c2f" and m.model_version == OLD_MANIFEST["model_version"]
    assert m.shape.m_r == 3 and m.w_cr == 0.5 and m.soft_lambda == 0.01
    assert m.dataset.content_hash == "ab" * 32
    assert m.metrics.test("trained") == {"recall@20": 0.25, "n_users": 6}
    assert m.metrics.test("compressed") == {"recall@20": 0.24}
    assert m.metrics.trained is not None and m.metrics.trained.coarse_test is None
    assert m.metrics.evaluation == {}  # written before sampled evaluation: its figures are over all users
    assert m.metrics.history[0]["stage"] == "coarse"
    assert m.footprint is not None and m.footprint.params_paper == artifact.footprint.params_paper
    assert m.info["world_size"] == 1


def test_publish_writes_the_old_json_shape(tmp_path: Path) -> None:
    body = {
        k: v
        for k, v in OLD_MANIFEST.items()
        if k not in ("schema_version", "model_version", "created_at", "footprint", "files")
    }
    version = publish(tmp_path, make_arrays("c2f", seed=4), body)
    written = json.loads((version_path(tmp_path, version) / "manifest.json").read_text())
    assert set(written) == set(OLD_MANIFEST)
    for key in ("dataset", "config", "shape", "w_cr", "soft_lambda", "metrics", "info"):
        assert written[key] == OLD_MANIFEST[key], key
    assert set(written["files"]["model.npz"]) == {"bytes", "sha256"}


def test_unknown_keys_are_kept_and_bad_types_rejected(tmp_path: Path) -> None:
    assert Manifest.model_validate({"method": "ud", "future_field": [1]}).model_dump()["future_field"] == [1]
    with pytest.raises(ArtifactError, match="manifest is invalid: shape.layers"):
        publish(tmp_path, make_arrays("ud"), {"method": "ud", "shape": {"layers": "three"}})


def test_the_fine_forward_is_read_from_the_config_with_the_old_default() -> None:
    """c2f's exact reconstruction reads the forward through ``Manifest.fine_forward``: the published config's value,
    "paper" for manifests written before the option, and an error for anything else ("auto" is never published)."""
    assert Manifest(method="c2f").fine_forward == "paper"
    assert Manifest(method="c2f", config={"w_cr": 0.5}).fine_forward == "paper"
    assert Manifest(method="c2f", config={"fine_forward": "released"}).fine_forward == "released"
    with pytest.raises(ValueError, match="fine_forward"):
        _ = Manifest(method="c2f", config={"fine_forward": "auto"}).fine_forward
