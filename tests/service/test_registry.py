from __future__ import annotations

import time
from pathlib import Path

import pytest

from c2f.contract.artifact import version_path
from c2f.service.registry import LoadedModel, ModelRegistry
from tests.fixtures import build_artifact


def _corrupt(root: Path, version: str) -> None:
    path = version_path(root, version) / "model.npz"
    data = bytearray(path.read_bytes())
    data[-50] ^= 0xFF
    path.write_bytes(bytes(data))


def test_empty_root_loads_nothing(artifact_root: Path) -> None:
    reg = ModelRegistry(artifact_root)
    result = reg.load_initial()
    assert result.ok and reg.current is None
    assert reg.status()["loaded"] is None and reg.status()["available"] == []


def test_reload_swaps_to_new_version(artifact_root: Path) -> None:
    swapped: list[str] = []
    reg = ModelRegistry(artifact_root, on_swap=lambda m: swapped.append(m.version))
    v1 = build_artifact(artifact_root, "c2f", seed=1)
    assert reg.load_initial().version == v1
    first = reg.current
    assert isinstance(first, LoadedModel) and first.version == v1

    result = reg.reload()
    assert result.ok and not result.changed and reg.current is first  # same version: nothing reloaded

    v2 = build_artifact(artifact_root, "legcf", seed=2)
    result = reg.reload()
    assert result.ok and result.changed and result.version == v2 and result.previous_version == v1
    assert reg.current is not None and reg.current.version == v2
    assert first.version == v1  # an old snapshot stays intact for requests still using it
    assert swapped == [v1, v2]
    status = reg.status()
    assert status["loaded"]["version"] == v2 and status["available"] == [v1, v2] and status["latest"] == v2


def test_corrupt_new_version_keeps_old(artifact_root: Path) -> None:
    failures: list[tuple[str | None, str]] = []
    reg = ModelRegistry(artifact_root, on_failure=lambda v, m: failures.append((v, m)))
    v1 = build_artifact(artifact_root, "c2f", seed=1)
    reg.load_initial()
    v2 = build_artifact(artifact_root, "c2f", seed=2)
    _corrupt(artifact_root, v2)

    result = reg.reload()
    assert not result.ok and result.version == v1 and result.attempted_version == v2
    assert "checksum mismatch for model.npz" in (result.error or "")
    assert reg.current is not None and reg.current.version == v1
    status = reg.status()
    assert status["failed_version"] == v2 and "checksum mismatch" in status["last_error"]
    assert status["reload_failures"] == 1 and failures[0][0] == v2

    # the poller does not re-verify the same broken version every period; an explicit (forced) reload does
    assert not reg.reload().ok and reg.reload_failures == 1
    assert not reg.reload(force=True).ok and reg.reload_failures == 2

    # the next good version clears the error
    v3 = build_artifact(artifact_root, "c2f", seed=3)
    assert reg.reload().version == v3
    assert reg.status()["last_error"] is None and reg.status()["failed_version"] is None


def test_smoke_failure_keeps_old(artifact_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = ModelRegistry(artifact_root)
    v1 = build_artifact(artifact_root, "legcf", seed=1)
    reg.load_initial()
    build_artifact(artifact_root, "legcf", seed=2)

    def broken(self: object) -> None:
        raise RuntimeError("smoke query exploded")

    monkeypatch.setattr("c2f.service.scoring.Recommender.smoke_test", broken)
    result = reg.reload()
    assert not result.ok and "RuntimeError: smoke query exploded" in (result.error or "")
    assert reg.current is not None and reg.current.version == v1


def test_initial_load_falls_back_to_older_version(artifact_root: Path) -> None:
    v1 = build_artifact(artifact_root, "c2f", seed=1)
    v2 = build_artifact(artifact_root, "c2f", seed=2)
    _corrupt(artifact_root, v2)
    reg = ModelRegistry(artifact_root)
    result = reg.load_initial()
    assert result.ok and reg.current is not None and reg.current.version == v1
    status = reg.status()
    assert status["latest"] == v2 and status["failed_version"] == v2 and "checksum" in status["last_error"]


def test_broken_pointer_is_reported_once(artifact_root: Path) -> None:
    build_artifact(artifact_root, "ud")
    reg = ModelRegistry(artifact_root)
    reg.load_initial()
    (artifact_root / "LATEST").write_text("nonsense")
    assert not reg.reload().ok
    assert not reg.reload().ok
    assert reg.reload_failures == 1
    assert "valid version name" in reg.status()["last_error"]
    assert reg.current is not None


def test_poller_picks_up_new_versions(artifact_root: Path) -> None:
    build_artifact(artifact_root, "legcf", seed=1)
    reg = ModelRegistry(artifact_root, reload_seconds=0.02)
    reg.load_initial()
    reg.start()
    try:
        v2 = build_artifact(artifact_root, "legcf", seed=2)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (reg.current is None or reg.current.version != v2):
            time.sleep(0.01)
        assert reg.current is not None and reg.current.version == v2
    finally:
        reg.stop()
    assert reg._thread is None


def test_exact_mode_registry(artifact_root: Path) -> None:
    build_artifact(artifact_root, "c2f", seed=4)
    reg = ModelRegistry(artifact_root, mode="exact")
    assert reg.load_initial().ok
    assert reg.current is not None and reg.current.recommender.scoring == "dense"


# ---------------------------------------------------------------- issue 11, defect 7


def test_last_error_is_cleared_when_latest_names_the_served_version_again(artifact_root: Path) -> None:
    reg = ModelRegistry(artifact_root)
    v1 = build_artifact(artifact_root, "c2f", seed=1)
    assert reg.load_initial().version == v1
    v2 = build_artifact(artifact_root, "c2f", seed=2)
    _corrupt(artifact_root, v2)
    assert not reg.reload().ok
    assert reg.status()["last_error"] and reg.status()["failed_version"] == v2
    (artifact_root / "LATEST").write_text(v1 + "\n")  # the operator rolls back
    assert reg.reload().ok
    status = reg.status()
    assert status["last_error"] is None and status["failed_version"] is None
    assert status["loaded"]["version"] == v1


def test_failed_version_is_retried_once_its_files_are_repaired(artifact_root: Path) -> None:
    reg = ModelRegistry(artifact_root)
    build_artifact(artifact_root, "c2f", seed=1)
    reg.load_initial()
    v2 = build_artifact(artifact_root, "c2f", seed=2)
    model = version_path(artifact_root, v2) / "model.npz"
    good = model.read_bytes()
    _corrupt(artifact_root, v2)
    assert not reg.reload().ok
    assert reg.reload().error is not None and reg.current is not None and reg.current.version != v2  # not retried
    model.write_bytes(good)  # repaired in place (same size: the mtime tells)
    result = reg.reload()  # the poller's call: no force
    assert result.ok and result.changed and reg.current is not None and reg.current.version == v2
    assert reg.status()["last_error"] is None


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "/../x"])
def test_version_names_must_match_in_full(artifact_root: Path, suffix: str) -> None:
    from c2f.contract.artifact import ArtifactError

    v1 = build_artifact(artifact_root, "c2f", seed=1)
    with pytest.raises(ArtifactError):
        version_path(artifact_root, v1 + suffix)
