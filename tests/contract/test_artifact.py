from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from c2f.contract import artifact as art
from c2f.contract.artifact import (
    ArtifactError,
    latest_version,
    list_versions,
    load_artifact,
    load_latest,
    publish,
    version_path,
)
from tests.fixtures import build_artifact, make_arrays, make_manifest


@pytest.mark.parametrize("method", ["ud", "legcf", "c2f"])
def test_round_trip_exact(artifact_root: Path, method: str) -> None:
    arrays = make_arrays(method, seed=3)
    manifest = make_manifest(method)
    version = publish(artifact_root, arrays, manifest, {"curve.png": b"\x89PNG fake"})

    assert re.fullmatch(r"\d{8}T\d{12}Z-" + method, version)
    assert latest_version(artifact_root) == version
    assert list_versions(artifact_root) == [version]
    loaded = load_artifact(version_path(artifact_root, version))
    assert loaded.version == version and loaded.method == method
    assert set(loaded.arrays) == set(arrays)
    for name, arr in arrays.items():
        got = loaded.arrays[name]
        assert got.dtype == arr.dtype, name
        np.testing.assert_array_equal(got, arr, err_msg=name)
        assert not got.flags.writeable
    m = loaded.manifest
    assert m.schema_version == 1 and m.model_version == version and m.created_at and m.created_at.endswith("Z")
    assert set(m.files) == {"model.npz", "curve.png"}
    assert m.files["curve.png"].bytes == len(b"\x89PNG fake")
    assert m.shape.n_users == 6 and m.shape.n_items == 10 and m.shape.layers == 2
    assert m.footprint is not None and m.footprint.params_paper == loaded.footprint.params_paper
    assert m.metrics.model_dump(exclude_unset=True) == manifest["metrics"]
    assert (loaded.n_users, loaded.n_items, loaded.d) == (6, 10, 4)
    # the caller's manifest is not mutated
    assert "model_version" not in manifest
    assert load_latest(artifact_root) is not None


def test_numpy_scalars_in_manifest_are_serialised(artifact_root: Path) -> None:
    manifest = make_manifest("legcf", metrics={"trained": {"test": {"recall@20": np.float32(0.25)}}})
    version = build_artifact(artifact_root, "legcf", manifest=manifest)
    loaded = load_artifact(version_path(artifact_root, version))
    assert loaded.manifest.metrics.test("trained")["recall@20"] == pytest.approx(0.25)


def test_versions_sort_in_publish_order_and_are_unique(artifact_root: Path) -> None:
    versions = [build_artifact(artifact_root, "legcf", seed=i) for i in range(4)]
    assert len(set(versions)) == 4
    assert list_versions(artifact_root) == sorted(versions) == versions
    assert latest_version(artifact_root) == versions[-1]


def test_empty_root(tmp_path: Path) -> None:
    assert latest_version(tmp_path / "nothing") is None
    assert list_versions(tmp_path / "nothing") == []
    assert load_latest(tmp_path / "nothing") is None


def _model_file(root: Path, version: str) -> Path:
    return version_path(root, version) / "model.npz"


def test_corrupted_file_is_a_checksum_mismatch(artifact_root: Path) -> None:
    version = build_artifact(artifact_root, "c2f")
    path = _model_file(artifact_root, version)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch for model.npz"):
        load_artifact(path.parent)


def test_truncated_file_is_reported(artifact_root: Path) -> None:
    version = build_artifact(artifact_root, "c2f")
    path = _model_file(artifact_root, version)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ArtifactError, match=r"size mismatch for model\.npz.*truncated"):
        load_artifact(path.parent)
    # without verification the zip reader itself fails, still as an ArtifactError naming the file
    with pytest.raises(ArtifactError, match="model.npz"):
        load_artifact(path.parent, verify=False)


def test_corrupted_extra_file(artifact_root: Path) -> None:
    version = build_artifact(artifact_root, "legcf", extra_files={"curve.png": b"abcdef"})
    (version_path(artifact_root, version) / "curve.png").write_bytes(b"abcdeF")
    with pytest.raises(ArtifactError, match="checksum mismatch for curve.png"):
        load_artifact(version_path(artifact_root, version))


def test_missing_listed_file(artifact_root: Path) -> None:
    version = build_artifact(artifact_root, "legcf", extra_files={"curve.png": b"abc"})
    (version_path(artifact_root, version) / "curve.png").unlink()
    with pytest.raises(ArtifactError, match="curve.png is listed in the manifest but missing"):
        load_artifact(version_path(artifact_root, version))


def _rewrite_manifest(root: Path, version: str, **changes: object) -> None:
    mpath = version_path(root, version) / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest.update(changes)
    mpath.write_text(json.dumps(manifest))


def test_manifest_problems(artifact_root: Path) -> None:
    version = build_artifact(artifact_root, "legcf")
    vdir = version_path(artifact_root, version)
    _rewrite_manifest(artifact_root, version, schema_version=2)
    with pytest.raises(ArtifactError, match="unsupported schema_version 2"):
        load_artifact(vdir)
    _rewrite_manifest(artifact_root, version, schema_version=1, method="xyz")
    with pytest.raises(ArtifactError, match="unknown method 'xyz'"):
        load_artifact(vdir)
    (vdir / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="manifest.json .* not valid JSON"):
        load_artifact(vdir)
    (vdir / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="manifest.json not found"):
        load_artifact(vdir)
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(artifact_root / "versions" / "nope")


def test_manifest_path_traversal_is_rejected(artifact_root: Path) -> None:
    version = build_artifact(artifact_root, "legcf")
    mpath = version_path(artifact_root, version) / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["files"]["../../LATEST"] = {"bytes": 1, "sha256": "0"}
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="invalid file name"):
        load_artifact(mpath.parent)
    with pytest.raises(ArtifactError, match="invalid version name"):
        version_path(artifact_root, "../../etc")


def test_shape_mismatch_with_manifest(artifact_root: Path) -> None:
    version = build_artifact(artifact_root, "legcf")
    _rewrite_manifest(artifact_root, version, shape={"n_users": 99, "layers": 2})
    with pytest.raises(ArtifactError, match=r"shape.n_users=99 but the arrays give 6"):
        load_artifact(version_path(artifact_root, version))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: a.pop("H_meta"), "missing arrays: H_meta"),
        (lambda a: a.__setitem__("S_c_idx", a["S_c_idx"].astype(np.int64)), "S_c_idx' has dtype int64"),
        (lambda a: a.__setitem__("H_meta", a["H_meta"].astype(np.float64)), "H_meta' has dtype float64"),
        (lambda a: a.__setitem__("S_c_w", a["S_c_w"][:-1]), "S_c_w' has shape"),
        (lambda a: a["S_c_idx"].__setitem__((0, 0), 99), "S_c_idx has values outside"),
        (lambda a: a["H_meta"].__setitem__((0, 0), np.nan), "NaN"),
        (lambda a: a["graph_indices"].__setitem__(0, 10), "graph_indices has values outside"),
        (lambda a: a.__setitem__("graph_indptr", a["graph_indptr"][::-1].copy()), "graph_indptr is not a valid"),
        (lambda a: a.__setitem__("S_r_idx", a["S_r_idx"] + 5), "S_r_idx has values outside"),
        (lambda a: a.__setitem__("E_r_data", a["E_r_data"][:-1]), "E_r_data and E_r_indices"),
        (lambda a: a.__setitem__("extra", np.array([object()], dtype=object)), "pickle is not allowed"),
    ],
)
def test_invalid_arrays_are_never_published(artifact_root: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    arrays = make_arrays("c2f")
    mutate(arrays)
    with pytest.raises(ArtifactError, match=re.escape(message)):
        publish(artifact_root, arrays, make_manifest("c2f"))
    assert list_versions(artifact_root) == [] and latest_version(artifact_root) is None
    assert not list(artifact_root.glob(".tmp-*"))


def test_bad_method_and_extra_file_names(artifact_root: Path) -> None:
    with pytest.raises(ArtifactError, match="method must be one of"):
        publish(artifact_root, make_arrays("c2f"), {"method": "bert"})
    with pytest.raises(ArtifactError, match="invalid extra file name"):
        publish(artifact_root, make_arrays("ud"), make_manifest("ud"), {"../x": b""})
    with pytest.raises(ArtifactError, match="invalid extra file name"):
        publish(artifact_root, make_arrays("ud"), make_manifest("ud"), {"model.npz": b""})


def test_crash_mid_publish_keeps_old_version(artifact_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = build_artifact(artifact_root, "legcf", seed=1)

    def crash(src: object, dst: object) -> None:
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError, match="simulated crash"):
        build_artifact(artifact_root, "legcf", seed=2)
    monkeypatch.undo()

    assert latest_version(artifact_root) == old
    assert list_versions(artifact_root) == [old]
    assert not list(artifact_root.glob(".tmp-*")), "temp directory left behind"
    loaded = load_artifact(version_path(artifact_root, old))
    np.testing.assert_array_equal(loaded.arrays["H_meta"], make_arrays("legcf", seed=1)["H_meta"])


def test_crash_before_pointer_update_keeps_old_latest(artifact_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = build_artifact(artifact_root, "legcf", seed=1)

    def crash(src: object, dst: object) -> None:
        raise OSError("simulated crash during LATEST replace")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        build_artifact(artifact_root, "legcf", seed=2)
    monkeypatch.undo()
    # the new directory is complete but not current; LATEST still names the old, loadable version
    assert latest_version(artifact_root) == old
    assert len(list_versions(artifact_root)) == 2
    assert not list(artifact_root.glob(".LATEST.tmp-*"))
    load_artifact(version_path(artifact_root, old))
    load_artifact(version_path(artifact_root, list_versions(artifact_root)[-1]))


def test_stale_temp_dirs_are_ignored(artifact_root: Path) -> None:
    version = build_artifact(artifact_root, "ud")
    (artifact_root / ".tmp-deadbeef").mkdir()
    (artifact_root / ".tmp-deadbeef" / "model.npz").write_bytes(b"half")
    (artifact_root / "versions" / "not-a-version").mkdir()
    assert list_versions(artifact_root) == [version]


def test_broken_latest_pointer(artifact_root: Path) -> None:
    (artifact_root / "LATEST").write_text("garbage\n")
    with pytest.raises(ArtifactError, match="does not hold a valid version name"):
        latest_version(artifact_root)
    (artifact_root / "LATEST").write_text("20990101T000000000000Z-c2f\n")
    with pytest.raises(ArtifactError, match="does not exist"):
        latest_version(artifact_root)


def test_publish_fsyncs_files_and_directories(artifact_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if Path("/proc/self/fd").exists() else str(fd))
        real_fsync(fd)

    monkeypatch.setattr(art.os, "fsync", spy)
    version = build_artifact(artifact_root, "legcf", extra_files={"curve.png": b"x"})
    names = [Path(p).name for p in synced]
    for expected in ("model.npz", "curve.png", "manifest.json", "versions", artifact_root.name):
        assert expected in names, (expected, names)
    assert any(n.startswith(".tmp-") for n in names)  # the temp directory itself
    assert any(n.startswith(".LATEST.tmp-") for n in names)  # the pointer before os.replace
    assert latest_version(artifact_root) == version
