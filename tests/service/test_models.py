from __future__ import annotations

from pathlib import Path

from c2f.contract.artifact import version_path
from tests.fixtures import assert_error, build_artifact


def _corrupt(root: Path, version: str) -> None:
    path = version_path(root, version) / "model.npz"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))


def test_models_lists_versions(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    v1 = build_artifact(artifact_root, "legcf", seed=1)
    with make_client() as client:
        body = client.get("/models").json()
        assert body["loaded"]["version"] == v1 and body["loaded"]["method"] == "legcf"
        assert body["available"] == [v1] and body["latest"] == v1 and body["last_error"] is None
        v2 = build_artifact(artifact_root, "c2f", seed=2)
        r = client.post("/models/reload")
        assert r.status_code == 200
        assert r.json() == {"changed": True, "model_version": v2, "previous_version": v1}
        r = client.post("/models/reload")
        assert r.json() == {"changed": False, "model_version": v2, "previous_version": v2}
        body = client.get("/models").json()
        assert body["available"] == [v1, v2] and body["loaded"]["version"] == v2


def test_corrupt_new_artifact_keeps_old_model(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    v1 = build_artifact(artifact_root, "c2f", seed=1)
    with make_client() as client:
        v2 = build_artifact(artifact_root, "c2f", seed=2)
        _corrupt(artifact_root, v2)
        err = assert_error(client.post("/models/reload"), 409, "reload_failed")
        assert "checksum mismatch for model.npz" in err["message"]
        assert err["details"] == {"failed_version": v2, "kept_version": v1}

        body = client.get("/models").json()
        assert body["loaded"]["version"] == v1 and body["latest"] == v2
        assert body["failed_version"] == v2 and "checksum mismatch" in body["last_error"]
        assert body["reload_failures"] == 1
        r = client.get("/recommend/u0")
        assert r.status_code == 200 and r.json()["model_version"] == v1
        assert "c2f_model_reload_failures_total 1.0" in client.get("/metrics").text


def test_corrupt_artifact_is_not_swapped_in_by_the_poller(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    import time

    v1 = build_artifact(artifact_root, "legcf", seed=1)
    with make_client(reload_seconds=0.01) as client:
        # corrupted before LATEST names it: published elsewhere, then moved in (the poller could load it in between)
        staging = artifact_root.parent / "staging"
        v2 = build_artifact(staging, "legcf", seed=2)
        _corrupt(staging, v2)
        version_path(staging, v2).rename(version_path(artifact_root, v2))
        (staging / "LATEST").replace(artifact_root / "LATEST")  # atomic, as publish() does
        deadline = time.monotonic() + 30  # generous: CI machines can be busy
        while time.monotonic() < deadline and client.get("/models").json()["failed_version"] != v2:
            time.sleep(0.01)
        body = client.get("/models").json()
        assert body["failed_version"] == v2 and body["loaded"]["version"] == v1
        time.sleep(0.1)
        assert client.get("/models").json()["reload_failures"] == 1  # not retried every poll


def test_reload_requires_api_key_when_configured(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    build_artifact(artifact_root, "legcf")
    with make_client(api_key="s3cret") as client:
        err = assert_error(client.post("/models/reload"), 401, "unauthorized")
        assert "Bearer" in err["message"]
        r = client.post("/models/reload", headers={"Authorization": "Bearer wrong"})
        assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
        assert_error(client.post("/models/reload", headers={"Authorization": "Basic s3cret"}), 401, "unauthorized")
        assert client.post("/models/reload", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        # read-only endpoints stay open
        assert client.get("/models").status_code == 200
        assert client.get("/recommend/u0").status_code == 200


def test_reload_is_open_without_api_key(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        r = client.post("/models/reload")
        assert r.status_code == 200 and r.json()["model_version"] is None
