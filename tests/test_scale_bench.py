"""benchmarks/scale.py: the synthetic table generator and the benchmark's plumbing on a tiny size (no timings are
asserted: they live in BENCHMARKS.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import benchmarks.scale as bench
from c2f.trainer.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_generator_hits_the_size_with_communities_and_zipf_popularity() -> None:
    users, items = bench.synthetic_interactions(5000, 1500, 65_000, n_communities=10, zipf=0.9, p_in=0.8, seed=1)
    assert 0.9 * 65_000 < users.size <= 1.1 * 65_000
    keys = users * 1500 + items
    assert np.unique(keys).size == keys.size  # unique pairs
    assert np.bincount(users, minlength=5000).min() >= 1
    popularity = np.sort(np.bincount(items, minlength=1500))[::-1]
    assert popularity[:15].sum() > 0.1 * users.size  # the top 1% of items: well over 1% of interactions
    # the same seed gives the same table
    again = bench.synthetic_interactions(5000, 1500, 65_000, n_communities=10, zipf=0.9, p_in=0.8, seed=1)
    assert np.array_equal(again[0], users) and np.array_equal(again[1], items)


def test_slope_is_the_log_log_growth_exponent() -> None:
    assert bench.slope([1e3, 1e4, 1e5], [2.0, 20.0, 200.0]) == pytest.approx(1.0)
    assert bench.slope([1e3, 1e4], [5.0, 5.0]) == pytest.approx(0.0)
    assert bench.slope([1e3], [1.0]) is None


def test_written_table_has_string_ids_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    rows = bench.write_table(path, 400, 120, 4000, seed=3, n_communities=4)
    data = load_dataset(str(path), seed=3)
    assert data.stats["format"] == "parquet" and data.stats["n_rows"] == rows
    assert data.n_users == 400 and data.n_items == 120
    assert data.user_ids[0].startswith("u") and data.item_ids[0].startswith("i")


@pytest.mark.timeout(900)
def test_tiny_run_records_every_phase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = json.dumps({"dim": 16, "m_c": 16, "batch_size": 2048, "valid_users": 300, "test_users": 500})
    code = bench.main(
        ["--users", "2000", "--per-user", "10", "--methods", "legcf", "--epochs", "1", "--requests", "30"]
        + ["--params", params, "--out", str(tmp_path)]
    )
    assert code == 0
    report = json.loads((tmp_path / "scale.json").read_text())
    (size,) = report["results"]
    (run,) = size["train"]
    assert run["method"] == "legcf" and run["n_users"] == 2000
    figures = bench.run_figures(run)
    for key in ("load", "metis", "precompute", "epoch", "valid", "test", "export", "total", "rss", "artifact"):
        assert figures[key] > 0, key
    assert run["phase_calls"]["evaluation_valid"] >= 2 and run["phase_calls"]["evaluation_test_served"] == 2
    # the samples asked for, on the three test evaluations alike
    assert run["evaluation"]["valid"]["users"] == 300 and run["evaluation"]["test"]["users"] == 500
    assert {run["test"][k]["n_users"] for k in ("trained", "compressed", "exact")} == {500}
    version = Path(run["path"])
    assert run["artifact_bytes"] == sum(p.stat().st_size for p in version.iterdir() if p.name != "manifest.json")
    serve = size["serve"]
    assert serve["unknown_user_is_none"] is True
    assert 0 < serve["recommend_p50_ms"] <= serve["recommend_p99_ms"]
    assert serve["load_seconds"] > 0 and serve["rss_loaded_mb"] > 0
    table = (tmp_path / "scale.md").read_text()
    assert "| 2000 |" in table and "recommend p50 ms" in table
    assert table.strip() in capsys.readouterr().out
    _check_merge(tmp_path, report)


@pytest.mark.timeout(600)
def test_torchrun_only_records_each_ranks_memory_and_epoch(tmp_path: Path) -> None:
    params = json.dumps({"dim": 16, "m_c": 16, "batch_size": 2048, "valid_users": 300, "test_users": 300})
    code = bench.main(
        ["--users", "1500", "--per-user", "10", "--methods", "legcf", "--epochs", "1", "--torchrun", "2"]
        + ["--torchrun-only", "--params", params, "--out", str(tmp_path)]
    )
    assert code == 0
    (size,) = json.loads((tmp_path / "scale.json").read_text())["results"]
    assert size["train"] == [] and "serve" not in size  # no single-process run
    tr = size["torchrun"]
    assert tr["nproc"] == 2 and tr["single_peak_rss_mb"] is None
    assert sorted(r["rank"] for r in tr["ranks"]) == [0, 1]
    assert all(r["peak_rss_mb"] > 0 and r["total"] > 0 for r in tr["ranks"])
    assert tr["ranks"][0]["epoch"] > 0  # rank 0 publishes and has the timings
    assert "single process not run" in (tmp_path / "scale.md").read_text()
    with pytest.raises(SystemExit):
        bench.main(["--users", "1500", "--torchrun-only", "--out", str(tmp_path)])


def _check_merge(tmp_path: Path, report: dict) -> None:
    """--merge: sizes of two reports in one table, with growth exponents; a later run of a size replaces it."""
    (size,) = report["results"]
    bigger = json.loads(json.dumps(size))
    bigger["n_users"] = 4000
    for run in bigger["train"]:
        run["n_users"], run["n_interactions"] = 4000, run["n_interactions"] * 2
        run["total_seconds"] *= 2
        run["peak_rss_mb"] *= 1.5
    bigger["serve"]["n_interactions"] = size["n_interactions"] * 2
    bigger["n_interactions"] = size["n_interactions"] * 2
    rerun = json.loads(json.dumps(size))
    rerun["train"][0]["total_seconds"] = size["train"][0]["total_seconds"] / 2
    for name, sizes in (("a.json", [bigger, size]), ("b.json", [rerun])):
        (tmp_path / name).write_text(json.dumps({**report, "results": sizes}))
    out = tmp_path / "merged"
    assert bench.main(["--out", str(out), "--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    merged = json.loads((out / "scale.json").read_text())
    assert [s["n_users"] for s in merged["results"]] == [2000, 4000]
    assert merged["results"][0]["train"][0]["total_seconds"] == rerun["train"][0]["total_seconds"]
    assert "legcf total time" in merged["exponents"] and "legcf peak RSS 0.58" in merged["exponents"]
