"""`c2f train` under torchrun: two CPU processes (gloo) train one model data-parallel and publish it once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from c2f.contract.artifact import latest_version, list_versions, load_artifact, version_path
from c2f.trainer.data import load_dataset
from c2f.trainer.synthetic import popularity_recall

PARAMS = dict(dim=32, m_c=24, m_r=8, t_r=3, d_r=16, epochs=12, seed=7)


def _torchrun(dataset: Path, root: Path, **params: object) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "c2f.cli.main", "train", str(dataset), "--method", "c2f", "--batch-size", "1024", "--out", str(root),
    ]  # fmt: skip
    for key, value in {**PARAMS, **params}.items():
        command += ["-p", f"{key}={json.dumps(value)}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_torchrun_two_processes_train_and_publish_once(synthetic_lightgcn_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    done = _torchrun(synthetic_lightgcn_dir, root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Rank 0 alone published and reported; the ranks ended bit-identical (train() checks, else it raises).
    versions = list_versions(root)
    assert len(versions) == 1, versions
    assert done.stdout.count("published ") == 1
    assert latest_version(root) == versions[0]
    artifact = load_artifact(version_path(root, versions[0]))
    assert artifact.manifest.info["world_size"] == 2
    recall = artifact.manifest.metrics.test("trained")["recall@20"]
    baseline = popularity_recall(load_dataset(str(synthetic_lightgcn_dir)), k=20)
    assert recall > baseline + 0.25, (recall, baseline)
    history = artifact.manifest.metrics.history
    assert {r["stage"] for r in history} == {"coarse", "fine"}
    assert any(r["assignment_update"] for r in history if r["stage"] == "fine")  # Eq. 23-24 shared by rank 0
    assert np.all(np.diff(np.sort(artifact.arrays["S_r_idx"], axis=1), axis=1) > 0)  # t_r distinct fine rows


def test_torchrun_failure_after_joining_the_group_exits_without_hanging(
    synthetic_lightgcn_dir: Path, tmp_path: Path
) -> None:
    """Every rank fails after the process group is up (a missing coarse_from): the launch ends non-zero, promptly,
    with the reason on stderr, and nothing is published."""
    root = tmp_path / "artifacts"
    done = _torchrun(synthetic_lightgcn_dir, root, coarse_from=str(tmp_path / "no-such-version"))
    assert done.returncode != 0
    assert "no-such-version" in done.stderr
    assert list_versions(root) == []
