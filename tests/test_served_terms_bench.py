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
