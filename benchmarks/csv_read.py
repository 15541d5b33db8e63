"""CSV reading: the pyarrow path against the pandas reference path, seconds and peak RSS on one synthetic table.

    python benchmarks/csv_read.py --rows 3000000

Each path runs in its own subprocess (peak RSS is that path's, above the process's RSS once the file's bytes are
in memory). Ids are strings ``u…``/``i…`` drawn uniformly (users = rows / 15, items = rows / 50).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as `python benchmarks/NAME.py`: see benchmarks/_as_script.py
    import _as_script  # noqa: F401


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    users = np.char.add("u", rng.integers(0, max(rows // 15, 1), rows).astype(str))
    items = np.char.add("i", rng.integers(0, max(rows // 50, 1), rows).astype(str))
    lines = np.char.add(np.char.add(users, ","), items)
    path.write_text("user,item\n" + "\n".join(lines.tolist()) + "\n")


def measure(path: str, reader: str) -> dict[str, float]:
    import c2f.trainer.data.readers as readers
    from benchmarks.scale import peak_rss_mb  # VmHWM: a subprocess's own peak, not its parent's

    data = Path(path).read_bytes()
    base = peak_rss_mb()
    start = time.perf_counter()
    table = getattr(readers, reader)(data, Path(path).name, "csv")
    seconds = time.perf_counter() - start
    peak = peak_rss_mb() - base
    return {"seconds": seconds, "peak_rss_above_bytes_mb": peak, "rows": float(len(table.users))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--_measure", nargs=2, metavar=("PATH", "READER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        print(json.dumps(measure(*args._measure)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.csv"
        write_csv(path, args.rows)
        print(f"{args.rows} rows, {path.stat().st_size / 1e6:.1f} MB")
        print("| reader | seconds | peak RSS above the file's bytes (MB) |\n|---|---|---|")
        for reader in ("read_csv_arrow", "read_csv_pandas"):
            out = subprocess.run(
                [sys.executable, __file__, "--_measure", str(path), reader], capture_output=True, text=True, check=True
            )
            r = json.loads(out.stdout)
            print(f"| {reader} | {r['seconds']:.2f} | {r['peak_rss_above_bytes_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
