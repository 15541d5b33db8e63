"""benchmarks/quality.py: the default row is what users get, the yardstick and front arithmetic, the CSV, and one
tiny end-to-end point (no quality figure is asserted: the study's figures live in BENCHMARKS.md)."""

from __future__ import annotations

import csv
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import benchmarks.quality as bench
from c2f.contract.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_row_trains_what_c2f_train_and_post_train_train() -> None:
    """`c2f train DATA` (no options) and `POST /train` with only a dataset build the same TrainConfig as the
    benchmark's "default" row."""
    from c2f.cli.main import train
    from c2f.service.jobs import TrainRequest

    default = TrainConfig.from_dict(bench.VARIANTS["default"])
    assert default == TrainConfig.from_dict({})  # the default recipe (DEFAULT_RECIPE), not TrainConfig()'s c2f
    assert (default.method, default.served_users) == ("ud", "fold_in")
    cli_method = inspect.signature(train).parameters["method"].default
    assert TrainConfig.from_dict({"method": cli_method}) == default
    request = TrainRequest(dataset_uri="data")
    assert TrainConfig.from_dict({**request.job_params(), "method": request.method}) == default


def _point(dataset: str, label: str, seed: int, served_bytes: int, served: float, trained: float) -> dict:
    return {
        "dataset": dataset,
        "label": label,
        "seed": seed,
        "trained": {"recall@20": trained, "ndcg@20": trained / 2},
        "served": {"recall@20": served, "ndcg@20": served / 2},
        "peak_mb": 100.0 + seed % 10,
        "serving_bytes": served_bytes,
        "n_entities": 1_000,  # the float32 d = 128 table: 512,000 bytes
        "wall_seconds": 1.0,
    }


POINTS = [
    _point("a", "ud64", 2024, 256_000, 0.20, 0.20),
    _point("a", "ud64", 2025, 256_000, 0.22, 0.22),
    _point("a", "ud128", 2024, 512_000, 0.20, 0.20),
    _point("a", "small", 2024, 10_240, 0.15, 0.16),
    _point("a", "small", 2025, 10_240, 0.17, 0.18),
    _point("a", "bigger-worse", 2024, 20_480, 0.10, 0.11),
    _point("b", "small", 2024, 10_240, 0.30, 0.30),
]


def test_rows_are_measured_against_the_better_full_table_and_the_front() -> None:
    summary = bench.summarise(POINTS)
    small = summary["a"]["small"]
    assert small["seeds"] == [2024, 2025]
    assert small["bytes_pct"] == 2.0  # 10,240 of 512,000
    assert abs(small["served_r20"] - 0.16) < 1e-12
    assert abs(small["pct_of_full"] - 100 * 0.16 / 0.21) < 1e-9  # ud64's mean 0.21 beats ud128's 0.20
    assert small["wins"] and not summary["a"]["bigger-worse"]["wins"]
    assert summary["b"]["small"]["pct_of_full"] is None  # no full table ran on b
    lines = bench.summary_table(summary).splitlines()
    assert next(line for line in lines if "| small |" in line).endswith("| 2 of 2 |")
    assert next(line for line in lines if "| bigger-worse |" in line).endswith("| 0 of 1 |")


def test_the_csv_has_a_row_per_dataset_and_variant(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    bench.report(POINTS, ["small,ud64"], str(path))
    rows = list(csv.DictReader(path.open()))
    assert set(bench.CSV_COLUMNS) <= set(rows[0])
    assert {(r["dataset"], r["method"]) for r in rows} == {(p["dataset"], p["label"]) for p in POINTS}
    small = next(r for r in rows if r["dataset"] == "a" and r["method"] == "small")
    assert small["seeds"] == "2024 2025" and small["bytes_pct"] == "2.000" and small["served_r20"] == "0.1600"


def test_paired_compares_each_dataset_over_common_seeds() -> None:
    (line,) = bench.paired(POINTS, "small", "ud64")
    assert line.startswith("a: served R@20 small − ud64 = -0.0500 over seeds 2024,2025")


def test_one_point_end_to_end(synthetic_lightgcn_dir: Path, tmp_path: Path) -> None:
    """--run trains the default row on a tiny dataset and --render reads its result back."""
    result = tmp_path / "r.json"
    params = ["--param", "epochs=2", "--param", "dim=8", "--param", "m_c=8", "--param", "m_r=4", "--param", "d_r=4"]
    command = [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--run", "default", "--seed", "7"]
    command += ["--dataset", str(synthetic_lightgcn_dir), "--out", str(tmp_path / "art"), "--result", str(result)]
    subprocess.run([*command, *params], check=True, cwd=ROOT, timeout=300, env={**os.environ, "TQDM_DISABLE": "1"})
    point = json.loads(result.read_text())
    assert point["label"] == "default" and point["seed"] == 7 and point["serving_memory_bytes"] > 0
    loaded = bench.load(result)
    assert loaded["dataset"] == synthetic_lightgcn_dir.name and loaded["n_entities"] == point["n_entities"]


def test_collect_writes_self_contained_points(tmp_path: Path) -> None:
    """A train_gowalla-style result (no dataset, label or bytes in it) is copied with them written in, read from its
    folders and its artifact's manifest, under the new label; the copy loads without the artifact."""
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "manifest.json").write_text(json.dumps({"footprint": {"serving_memory_bytes": 1234, "n_entities": 50}}))
    source = tmp_path / "runs" / "lastfm" / "probe-b4096" / "ud64-seed2024.json"
    source.parent.mkdir(parents=True)
    metrics = {"recall@20": 0.2, "ndcg@20": 0.1}
    result = {"seed": 2024, "trained": metrics, "served_compressed": metrics, "path": str(artifact), "peak_rss_mb": 9}
    source.write_text(json.dumps(result))
    (copy,) = bench.collect([source], tmp_path / "out", {"probe-b4096": "ud64"})
    assert copy == tmp_path / "out" / "lastfm" / "ud64" / "ud64-seed2024.json"
    (artifact / "manifest.json").unlink()
    point = bench.load(copy)
    assert (point["dataset"], point["label"], point["serving_bytes"], point["n_entities"]) == (
        "lastfm",
        "ud64",
        1234,
        50,
    )


def test_help_prints() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--help"], capture_output=True)
    assert out.returncode == 0 and b"ud+pq@2%" in out.stdout, out.stderr
