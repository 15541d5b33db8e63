"""Each broken publish of benchmarks/faults.py is refused by the loader, for the reason it is meant to test."""

from __future__ import annotations

from pathlib import Path

import pytest

import benchmarks.faults as faults
from benchmarks.faults import FAULTS, publish_faulty
from c2f.contract import artifact
from c2f.contract.artifact import ArtifactError, latest_version, load_artifact, version_path
from tests.fixtures import build_artifact

EXPECTED = {
    "flipped_bytes": "checksum mismatch",
    "truncated": "size mismatch",
    "bad_json": "not valid JSON",
    "wrong_shape": "has shape",
    "nan": "NaN",
    "dotdot_latest": "does not hold a valid version name",
    "missing_version": "does not exist",
}


@pytest.mark.parametrize("kind", FAULTS)
def test_fault_is_refused_with_its_reason(artifact_root: Path, kind: str) -> None:
    good = build_artifact(artifact_root, "c2f", seed=0)
    broken = publish_faulty(artifact_root, kind, seed=1)
    with pytest.raises(ArtifactError, match=EXPECTED[kind]):
        load_artifact(version_path(artifact_root, latest_version(artifact_root) or good))
    if broken is not None:
        assert latest_version(artifact_root) == broken
    assert sorted(p.name for p in artifact_root.parent.iterdir() if "staging" in p.name) == []
    load_artifact(version_path(artifact_root, good))  # the good version is untouched


def test_the_faults_break_the_files_the_artifact_format_names() -> None:
    """benchmarks/faults.py spells the documented file names out (a benchmark imports no c2f layer): they are the
    format's own."""
    for name in ("LATEST_FILE", "VERSIONS_DIR", "MANIFEST_FILE", "MODEL_FILE"):
        assert getattr(faults, name) == getattr(artifact, name), name
