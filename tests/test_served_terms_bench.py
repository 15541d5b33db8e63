"""benchmarks/served_terms.py: one tiny run on planted data through every kind of row (sparse, sparse + codes,
a full table with and without codes). No quality figure is asserted: those live in BENCHMARKS.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_rows_for_each_form() -> None:
    command = [sys.executable, "benchmarks/served_terms.py", "--methods", "legcf,ud", "--terms", "2"]
    command += ["--dtypes", "float16", "--pq", "0,4", "-p", "epochs=2"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| legcf") or line.startswith("| ud")]
    cells = {(r[0].strip(), r[2].strip()): [c.strip() for c in r] for r in rows}
    assert set(cells) == {("legcf", "0"), ("legcf", "4"), ("ud", "0"), ("ud", "4")}
    serving = {key: int(row[8].replace(",", "")) for key, row in cells.items()}
    # 1,000 planted entities: 4 codes are 4,000 bytes plus 4 × 256 × 8 float16 codebook values
    assert serving[("legcf", "4")] - serving[("legcf", "0")] == 1000 * 4 + 4 * 256 * 8 * 2
    assert serving[("ud", "4")] == 1000 * 4 + 4 * 256 * 8 * 2
    assert serving[("ud", "0")] == 1000 * 32 * 2  # ud without codes: its float16 table
    assert cells[("ud", "0")][1] == "-"  # no sparse terms for a full table
