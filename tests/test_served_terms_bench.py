"""benchmarks/served_terms.py: one tiny run on planted data through every kind of row (sparse, sparse + codes,
a full table with and without codes). No quality figure is asserted: those live in BENCHMARKS.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_rows_for_each_form() -> None:
    command = [sys.executable, "benchmarks/served_terms.py", "--methods", "legcf,ud", "--terms", "2"]
    command += ["--dtypes", "float16", "--pq", "0,4", "--item-norms", "auto,off", "-p", "epochs=2"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| legcf") or line.startswith("| ud")]
    cells = {(r[0].strip(), r[2].strip(), r[3].strip()): [c.strip() for c in r] for r in rows}
    # auto: item norms on for a table served from codes alone, off on the sparse form (legcf's two rows with codes
    # are both "off"); rows without codes are printed once
    assert [(r[0].strip(), r[2].strip(), r[3].strip()) for r in rows] == [
        ("legcf", "0", "off"), ("legcf", "4", "off"), ("legcf", "4", "off"),
        ("ud", "0", "off"), ("ud", "4", "on"), ("ud", "4", "off"),
    ]  # fmt: skip
    serving = {key: int(row[9].replace(",", "")) for key, row in cells.items()}
    # 1,000 planted entities: 4 codes are 4,000 bytes plus 4 × 256 × 8 float16 codebook values
    assert serving[("legcf", "4", "off")] - serving[("legcf", "0", "off")] == 1000 * 4 + 4 * 256 * 8 * 2
    assert serving[("ud", "4", "on")] == 1000 * 4 + 4 * 256 * 8 * 2 + 400 * 2  # and the 400 items' float16 scales
    assert serving[("ud", "4", "off")] == 1000 * 4 + 4 * 256 * 8 * 2
    assert serving[("ud", "0", "off")] == 1000 * 32 * 2  # ud without codes: its float16 table
    assert cells[("ud", "0", "off")][1] == "-"  # no sparse terms for a full table


def test_summarize_pairs_item_norms_over_runs(tmp_path: Path) -> None:
    header = "| method | served terms | pq codes | item norms | store dtype | trained R@20 | served R@20 | x |"
    tables = []
    for k, (on, off) in enumerate([(0.14, 0.12), (0.15, 0.125), (0.145, 0.13)]):
        rows = [
            f"| ud | - | 8 | {n} | float16 | 0.1500 | {r:.4f} | x | 0.15 | 1 | 1 | 1 | 1 |"
            for n, r in (("on", on), ("off", off))
        ]
        path = tmp_path / f"seed{k}.md"
        path.write_text("\n".join([header, *rows]) + "\n")
        tables.append(str(path))
    command = [sys.executable, "benchmarks/served_terms.py", "--summarize", *tables]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "| ud | - | 8 | on | float16 | 3 | 0.1450 ± 0.0050 | 96.7% ± 3.3% |" in out
    assert "| ud | - | 8 | off | float16 | 3 | 0.1250 ± 0.0050 |" in out
    # differences 0.02, 0.025, 0.015: mean +0.02, t = 0.02 / (0.005 / √3) = 6.93, two-sided p = 0.0202 (2 dof)
    assert "ud pq 8 (float16): served R@20 item norms on − off = +0.0200 over 3 runs (paired t-test p = 0.0202)" in out
