"""benchmarks/train_gowalla.py: the paired comparisons over seeds (no quality figure is asserted here: the Gowalla
figures live in BENCHMARKS.md)."""

from __future__ import annotations

import benchmarks.train_gowalla as bench


def _run(variant: str, seed: int, recall: float) -> dict:
    return {
        "variant": variant,
        "seed": seed,
        "trained": {"recall@20": recall, "ndcg@20": recall / 2},
        "params_total": 10,
    }


def test_paired_compares_the_listed_variant_pairs_over_common_seeds() -> None:
    results = [_run("c2f-auto", s, r) for s, r in ((1, 0.15), (2, 0.16), (3, 0.14))]
    results += [_run("legcf", s, r) for s, r in ((1, 0.13), (2, 0.13), (3, 0.13))]
    text = bench.paired(results)
    (row,) = [line for line in text.splitlines() if line.startswith("| c2f-auto vs legcf ")]
    assert row.startswith("| c2f-auto vs legcf | 3 | +0.0200 | ")
    assert bench.paired(results[:1] + results[3:4]) == ""  # one common seed: no test


def test_paired_against_pairs_each_variant_with_its_baseline_runs() -> None:
    changed = [_run("legcf", s, r) for s, r in ((1, 0.130), (2, 0.132), (3, 0.131))]
    changed.append(_run("c2f-auto", 1, 0.15))  # no baseline seeds in common beyond one: left out
    baseline = [_run("legcf", s, r) for s, r in ((1, 0.131), (2, 0.134), (3, 0.131), (4, 0.2))]
    baseline.append(_run("c2f-auto", 1, 0.14))
    rows = bench.paired_against(changed, baseline).splitlines()[2:]
    assert len(rows) == 1
    assert rows[0].startswith("| legcf vs legcf (baseline) | 3 | -0.0010 | ")


def test_against_without_render_is_refused_with_a_clear_error(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "train_gowalla.py"
    done = subprocess.run(
        [sys.executable, str(script), "--against", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "--against pairs rendered results" in done.stderr
