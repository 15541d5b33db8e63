"""benchmarks/budget.py: the Pareto marking, the table, the plot, and one tiny end-to-end point (no quality figure is
asserted here: the budget study's figures live in BENCHMARKS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import benchmarks.budget as bench

ROOT = Path(__file__).resolve().parents[1]


def _point(method: str, budget: float, seed: int, nbytes: int, recall: float) -> dict:
    metrics = {"recall@20": recall, "ndcg@20": recall / 2}
    return {
        "method": method,
        "budget": budget,
        "seed": seed,
        "fits": True,
        "sizes": {"dim": 4},
        "bytes": nbytes,
        "full_table_bytes": 100_000,
        "trained": metrics,
        "served": metrics,
        "wall_seconds": 1.0,
    }


def test_pareto_keeps_the_points_nothing_beats_with_fewer_bytes() -> None:
    points = [(100, 0.10), (200, 0.09), (200, 0.12), (50, 0.05), (400, 0.12), (300, 0.15)]
    assert bench.pareto(points) == {3, 0, 2, 5}


def test_table_marks_the_front_averages_seeds_and_lists_what_does_not_fit() -> None:
    results = [
        _point("ud", 2, 2024, 2_000, 0.10),
        _point("ud", 2, 2025, 2_000, 0.12),
        _point("hash", 2, 2024, 1_900, 0.05),
        _point("hash", 5, 2024, 4_900, 0.08),  # more bytes than ud at 2% and worse: not on the front
        {"method": "legcf", "budget": 2, "seed": 2024, "fits": False, "reason": "no"},
    ]
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in bench.table(results).splitlines()[2:]}
    assert "0.1100 ± 0.0141" in rows[("2%", "ud")] and rows[("2%", "ud")].rstrip(" |").split("|")[-3].strip() == "yes"
    assert "| yes |" in rows[("2%", "hash")]
    assert "| yes |" not in rows[("5%", "hash")]
    assert "does not fit" in rows[("2%", "legcf")]


def test_the_epochs_column_spans_the_seeds_per_stage() -> None:
    runs = [
        {**_point("c2f", 2, seed, 1_000, 0.1), "epochs": {"coarse": {"epochs": 30}, "fine": {"epochs": fine}}}
        for seed, fine in ((1, 9), (2, 12))
    ]
    assert bench._epochs(runs) == "coarse 30, fine 9-12"
    assert bench._epochs([_point("ud", 2, 1, 1_000, 0.1)]) == ""  # result files from before epochs were recorded


def test_the_byte_axis_labels_one_two_and_five_times_a_power_of_ten() -> None:
    values = (2e5, 3e5, 4e5, 5e5, 1e6, 2e6, 3e6, 5e6, 500.0, 0.0)
    labels = ["200 kB", "", "", "500 kB", "1 MB", "2 MB", "", "5 MB", "500 B", ""]
    assert [bench.byte_tick(v) for v in values] == labels


def test_plot_writes_a_png(tmp_path: Path) -> None:
    png = tmp_path / "pareto.png"
    bench.plot([_point("ud", 2, 2024, 2_000, 0.1), _point("hash", 2, 2024, 1_000, 0.05)], str(png), ceiling=0.2)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_point_end_to_end_records_bytes_within_the_budget(tmp_path: Path, synthetic_lightgcn_dir: Path) -> None:
    out = tmp_path / "art"
    command = [sys.executable, str(ROOT / "benchmarks" / "budget.py"), "--dataset", str(synthetic_lightgcn_dir)]
    command += ["--budgets", "20,30", "--methods", "ud,popularity", "--seeds-at", "", "--max-epochs", "2"]
    command += ["--out", str(out), "--param", "dim=16", "--param", "batch_size=1024"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    # one floor for both budgets
    assert sorted(p.name for p in (out / "results").glob("popularity*.json")) == ["popularity-seed2024.json"]
    assert "popularity (items by train count" in done.stdout
    (result_file,) = (out / "results").glob("ud-20pct-*.json")
    result = json.loads(result_file.read_text())
    assert result["fits"] and result["method"] == "ud" and result["seed"] == 2024
    assert 0 < result["bytes"] <= result["budget_bytes"] == int(0.2 * result["full_table_bytes"])
    assert 0.0 <= result["served"]["recall@20"] <= 1.0
    assert result["epochs"]["ud"]["epochs"] <= 2 and result["epochs"]["ud"]["seconds_per_epoch"] > 0
    assert "| 20% | ud | 2024 |" in done.stdout
    assert f"| ud {result['epochs']['ud']['epochs']} |" in done.stdout


def test_a_budget_the_method_cannot_meet_is_recorded_not_trained(tmp_path: Path, synthetic_lightgcn_dir: Path) -> None:
    """`c2f train` refuses legcf at 0.5% of the d = 128 table on any dataset: the point says so, with its reason."""
    path = tmp_path / "legcf.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "budget.py"), "--run", "legcf", "--budget", "0.5"]
    command += ["--seed", "2024", "--result", str(path), "--dataset", str(synthetic_lightgcn_dir)]
    command += ["--out", str(tmp_path / "art")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(path.read_text())
    assert result["fits"] is False and result["method"] == "legcf" and result["peak_rss_mb"] > 0
    assert result["reason"].startswith("a budget of 0.5% of the full table is below what the smallest legcf model")
    assert not (tmp_path / "art").exists()  # nothing was trained or published
    assert "| 0.5% | legcf | 2024 | does not fit | stored |" in bench.table([result])


def test_points_counted_differently_get_separate_fronts() -> None:
    served = {**_point("ud+pq", 2, 2024, 5_000, 0.09), "counts": "served"}
    results = [_point("ud", 2, 2024, 2_000, 0.10), _point("hash", 5, 2024, 4_900, 0.08), served]
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in bench.table(results).splitlines()[2:]}
    # worse and larger than the stored ud point, but the only served point: on its own front
    assert "| served | 5,000 |" in rows[("2%", "ud+pq")] and "| yes |" in rows[("2%", "ud+pq")]
    assert "| stored | 2,000 |" in rows[("2%", "ud")] and "| yes |" not in rows[("5%", "hash")]
    assert bench.method_values("ud+pq") == {"method": "ud", "pq_subspaces": 8}
    assert bench.method_values("legcf") == {"method": "legcf"}
    both = bench.table([_point("ud", 2, 2024, 2_000, 0.10), {**_point("ud", 2, 2024, 1_000, 0.09), "counts": "served"}])
    assert len(both.splitlines()) == 4  # the same method counted both ways: two rows


def test_a_served_point_end_to_end_sizes_the_codes(tmp_path: Path, synthetic_lightgcn_dir: Path) -> None:
    out = tmp_path / "art"
    command = [sys.executable, str(ROOT / "benchmarks" / "budget.py"), "--dataset", str(synthetic_lightgcn_dir)]
    command += ["--budgets", "30", "--methods", "ud+pq", "--seeds-at", "", "--max-epochs", "2", "--out", str(out)]
    command += ["--param", "dim=16", "--param", "batch_size=1024", "--counts", "served"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    (result_file,) = (out / "results").glob("*-served.json")
    result = json.loads(result_file.read_text())
    # 1000 entities, d = 16: 19,200 bytes hold 1000·M codes + 8,192 of float16 codebooks + 1,600 of item biases
    # + 800 of the 400 items' float16 norm scales (pq_item_norms, on for a table served from codes)
    assert result["fits"] and result["counts"] == "served" and result["sizes"] == {"pq_subspaces": 8}
    assert result["bytes"] == result["serving_memory_bytes"] == 8_000 + 8_192 + 1_600 + 800 < result["embedding_bytes"]
    assert "| 30% | ud+pq | 2024 | pq_subspaces=8 | served |" in done.stdout


def test_paired_compares_two_methods_over_their_common_seeds() -> None:
    results = [_point("legcf", 2, seed, 1_000, r) for seed, r in ((1, 0.13), (2, 0.14), (3, 0.135))]
    results += [_point("ud+pq", 2, seed, 1_000, r) for seed, r in ((1, 0.10), (2, 0.12), (3, 0.11), (4, 0.2))]
    (line,) = bench.paired(results, "legcf", "ud+pq")
    assert line.startswith("2%: served R@20 legcf − ud+pq = +0.0250 over seeds 1,2,3 (paired t-test p = ")
    assert bench.paired(results[:1] + results[3:], "legcf", "ud+pq") == []  # one common seed: no test


def test_a_tagged_label_is_its_method_and_its_own_row() -> None:
    assert bench.method_values("legcf@cap") == {"method": "legcf"}
    assert bench.method_values("ud+pq@x") == {"method": "ud", "pq_subspaces": 8}
    results = [_point("legcf@cap", 10, 1, 1_000, 0.14), _point("legcf", 10, 1, 4_000, 0.13)]
    results.append(_point("ud", 10, 1, 900, 0.1))
    rows = [line.split(" | ")[1] for line in bench.table(results).splitlines()[2:]]
    assert rows == ["ud", "legcf", "legcf@cap"]  # METHODS order, a variant after its method
    results += [_point("legcf@cap", 10, 2, 1_000, 0.15), _point("legcf", 10, 2, 4_000, 0.13)]
    (line,) = bench.paired(results, "legcf@cap", "legcf")
    assert line.startswith("10%: served R@20 legcf@cap − legcf = +0.0150 over seeds 1,2")


def test_the_popularity_floor_is_a_reference_not_a_point(tmp_path: Path, synthetic_lightgcn_dir: Path) -> None:
    path = tmp_path / "popularity.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "budget.py"), "--run", "popularity", "--budget", "0"]
    command += ["--seed", "2024", "--result", str(path), "--dataset", str(synthetic_lightgcn_dir), "--out", "unused"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    floor = json.loads(path.read_text())
    from c2f.trainer.data import load_dataset
    from c2f.trainer.synthetic import popularity_recall

    # the split a trained run of that seed uses (TrainConfig's validation carve-out, the default here)
    expected = popularity_recall(load_dataset(str(synthetic_lightgcn_dir)))
    assert floor["reference"] and floor["served"]["recall@20"] == expected
    results = [_point("ud", 2, 2024, 2_000, 0.10), _point("ud", 2, 2025, 2_000, 0.12), floor]
    text = bench.table(results)
    assert len([line for line in text.splitlines() if line.startswith("| 2% ")]) == 1  # the floor is no row
    assert f"popularity (items by train count, no embeddings; seed 2024's split): R@20 {expected:.4f}" in text
    assert bench.paired(results, "ud", "popularity") == []
    png = tmp_path / "pareto.png"
    bench.plot(results, str(png), ceiling=0.2, ceiling_label="d = 128 table")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_ceiling_can_come_from_runs_that_trained_the_full_table(tmp_path: Path) -> None:
    files = []
    for seed, recall in ((1, 0.14), (2, 0.16)):
        path = tmp_path / f"full-{seed}.json"
        path.write_text(json.dumps({**_point("ud+pq", 2, seed, 1_000, 0.1), "trained": {"recall@20": recall}}))
        files.append(str(path))
    png = tmp_path / "pareto.png"
    command = [sys.executable, str(ROOT / "benchmarks" / "budget.py"), "--render", *files, "--png", str(png)]
    command += ["--ceiling-from", *files, "--ceiling-label", "d = 128 table"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ceiling: trained R@20 0.1500, the mean of 2 result files" in done.stdout and png.exists()
    refused = tmp_path / "refused.json"
    refused.write_text(json.dumps({"method": "legcf", "budget": 2, "seed": 1, "fits": False, "reason": "no"}))
    command = [sys.executable, str(ROOT / "benchmarks" / "budget.py"), "--render", *files]
    done = subprocess.run([*command, "--ceiling-from", str(refused)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode != 0 and f"--ceiling-from: no trained R@20 in {refused}" in done.stderr
