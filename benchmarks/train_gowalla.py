"""Gowalla training benchmark: UD, LEGCF at several budgets, C2F and its ablations, side by side.

    python benchmarks/train_gowalla.py                      # every variant, default epoch caps
    python benchmarks/train_gowalla.py --variants legcf,c2f --max-epochs 20 --append

Each variant runs in its own subprocess (so peak RSS is per variant) through the same `train_and_publish` that
`c2f train` uses, publishing into --out. The table (R@{10,20}, N@{10,20}, #param, bytes, served-vs-trained, time)
is printed and, with --append, added to BENCHMARKS.md with the command, machine and date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOWALLA = ROOT.parent / "shared" / "data" / "gowalla"

# name -> TrainConfig overrides. The paper's Gowalla settings: d=128, L=3, m_c=300, t_c=2, m_r=100.
VARIANTS: dict[str, dict[str, Any]] = {
    "ud64": {"method": "ud", "dim": 64, "batch_size": 32768, "lr": 1e-2},
    "ud128": {"method": "ud", "dim": 128, "batch_size": 32768, "lr": 1e-2},
    "legcf": {"method": "legcf", "m_c": 300},
    "legcf400": {"method": "legcf", "m_c": 400},
    "legcf500": {"method": "legcf", "m_c": 500},
    # reference-like optimisation: the released code's coarse lr with our sampler (for time-to-quality)
    "legcf-ref-lr": {"method": "legcf", "m_c": 300, "lr": 1e-3},
    # Eq. 11 as printed (projected weights kept raw) instead of rows normalised to sum 1
    "legcf-raw-eq11": {"method": "legcf", "m_c": 300, "raw_assignment": True},
    "c2f": {"method": "c2f"},
    "c2f-released": {"method": "c2f", "w_cr": 0.2, "t_r": 4, "soft_lambda": None, "target_nonzero": 0.25},
    "c2f-random-rows": {"method": "c2f", "fine_rows": "random"},
    "c2f-reconstruction": {"method": "c2f", "fine_init": "reconstruction"},
    "c2f-A": {"method": "c2f", "ablation": "A"},
    "c2f-B": {"method": "c2f", "ablation": "B"},
    "c2f-C": {"method": "c2f", "ablation": "C"},
    "c2f-D": {"method": "c2f", "ablation": "D"},
}
DEFAULT_VARIANTS = (
    "legcf,c2f,c2f-random-rows,c2f-reconstruction,c2f-released,c2f-A,c2f-B,c2f-C,c2f-D,"
    "legcf400,legcf500,legcf-raw-eq11,legcf-ref-lr,ud64"
)


def run_one(name: str, dataset: str, out_root: str, max_epochs: int, extra: dict[str, Any], result_path: str) -> None:
    """Train one variant in this process and write its figures as JSON."""
    from contract.config import TrainConfig
    from trainer.pipeline import train_and_publish

    values = {**VARIANTS[name], **extra}
    values["epochs"] = max_epochs
    config = TrainConfig.from_dict(values)
    start = time.perf_counter()
    published = train_and_publish(dataset, config, out_root)
    manifest = published.manifest.model_dump()  # plain dicts: the result file is JSON
    metrics = manifest["metrics"]
    result = {
        "variant": name,
        "version": published.version,
        "path": str(published.path),
        "config": values,
        "trained": metrics["trained"]["test"],
        "served_compressed": metrics["served"]["compressed"]["test"],
        "served_exact": metrics["served"]["exact"]["test"],
        "coarse_test": metrics["trained"].get("coarse_test"),
        "params_paper": manifest["footprint"]["params_paper"],
        "bytes": manifest["footprint"]["total_bytes"],
        "model_bytes": manifest["footprint"].get("model_bytes"),
        "timings": metrics["timings"],
        "epochs": len(metrics["history"]),
        "soft_lambda": manifest.get("soft_lambda"),
        "fine_nonzero": manifest["info"].get("fine_nonzero_final"),
        "wall_seconds": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    Path(result_path).write_text(json.dumps(result, indent=2, default=float))


def fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def table(results: list[dict[str, Any]]) -> str:
    header = (
        "| variant | R@10 | R@20 | N@10 | N@20 | served R@20 (compressed / exact) | #param (paper) | artifact bytes "
        "| epochs | s/epoch (per stage run) | s/update (coarse, fine) | total s | peak RSS MB |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        t, sc, se = r["trained"], r["served_compressed"], r["served_exact"]
        tm = r["timings"]
        per_epoch = ", ".join(
            fmt(tm.get(f"{s}_seconds_per_epoch"), 1)
            for s in ("ud", "coarse", "fine")
            if tm.get(f"{s}_seconds_per_epoch")
        )
        per_update = ", ".join(
            fmt(tm.get(f"{s}_seconds_per_update"), 2) for s in ("coarse", "fine") if tm.get(f"{s}_seconds_per_update")
        )
        ratio = sc["recall@20"] / t["recall@20"] if t["recall@20"] else 0.0
        lines.append(
            f"| {r['variant']} | {fmt(t['recall@10'])} | {fmt(t['recall@20'])} | {fmt(t['ndcg@10'])} | "
            f"{fmt(t['ndcg@20'])} | {fmt(sc['recall@20'])} ({ratio:.1%}) / {fmt(se['recall@20'])} | "
            f"{r['params_paper']:,} | {r['bytes']:,} | {r['epochs']} | {per_epoch or '-'} | {per_update or '-'} | "
            f"{r['wall_seconds']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=str(GOWALLA))
    parser.add_argument("--variants", default=DEFAULT_VARIANTS)
    parser.add_argument("--max-epochs", type=int, default=300, help="cap per phase (early stopping decides below)")
    parser.add_argument("--param", action="append", default=[], help="extra TrainConfig key=JSON for every variant")
    parser.add_argument("--out", default=None, help="artifact root (default: a temporary directory)")
    parser.add_argument("--coarse-from", help="published legcf version dir the c2f variants start from")
    parser.add_argument("--no-reuse", action="store_true", help="c2f variants train their own coarse stage")
    parser.add_argument("--append", action="store_true", help="append the table to BENCHMARKS.md")
    parser.add_argument("--render", nargs="+", help="only build the table from these per-variant result JSON files")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    extra = {k: json.loads(v) for k, _, v in (p.partition("=") for p in args.param)}
    out_root = args.out or tempfile.mkdtemp(prefix="c2f-bench-")
    if args.run:
        run_one(args.run, args.dataset, out_root, args.max_epochs, extra, args.result)
        return
    if args.render:
        report([json.loads(Path(p).read_text()) for p in args.render], args.append)
        return
    results = []
    coarse_from: str | None = args.coarse_from
    for name in args.variants.split(","):
        result_path = Path(tempfile.mkdtemp()) / "result.json"
        command = [
            sys.executable,
            __file__,
            "--run",
            name,
            "--result",
            str(result_path),
            "--dataset",
            args.dataset,
            "--max-epochs",
            str(args.max_epochs),
            "--out",
            out_root,
        ]
        for p in args.param:
            command += ["--param", p]
        if coarse_from and VARIANTS[name]["method"] == "c2f" and not args.no_reuse:
            # The fine stage starts from the LEGCF run above (same m_c, t_c, d): its coarse stage is not retrained.
            command += ["--param", f"coarse_from={json.dumps(coarse_from)}"]
        print(f"== {name} -> {result_path}", flush=True)
        subprocess.run(command, check=True)
        result = json.loads(result_path.read_text())
        results.append(result)
        if name == "legcf":
            coarse_from = result["path"]
        print(
            json.dumps(
                {k: result[k] for k in ("variant", "trained", "served_compressed", "wall_seconds")}, default=float
            ),
            flush=True,
        )
    report(results, args.append)


def report(results: list[dict[str, Any]], append: bool) -> None:
    """Print the side-by-side table; with ``append``, add it to BENCHMARKS.md with command, machine and date."""
    text = table(results)
    print(text)
    if not append:
        return
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    try:
        import torch

        if torch.cuda.is_available():
            machine += f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    command = "python benchmarks/train_gowalla.py " + " ".join(sys.argv[1:])
    with open(ROOT / "BENCHMARKS.md", "a") as f:
        f.write(f"\n### Gowalla training, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n")
        f.write(f"Command: `{command}`  \nMachine: {machine}, load average at the end {os.getloadavg()[0]:.1f}  \n")
        f.write(
            "Protocol: LightGCN split; validation = 10% of each user's train items; test = test.txt untouched; "
            "full ranking, train+valid items masked.\n\n"
        )
        f.write(text + "\n")


if __name__ == "__main__":
    main()
