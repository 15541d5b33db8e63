"""Quality per byte on every dataset: variants × datasets × seeds, the full table as the yardstick.

    python benchmarks/quality.py --datasets lastfm,ml-1m --variants default,legcf,ud64,ud128 --seeds 2024,2025,2026 \
        --out /tmp/quality                       # train every (dataset, variant, seed) point, then report
    python benchmarks/quality.py --render /tmp/quality/results/*/*/*.json --csv benchmarks/results/quality_per_byte.csv

Each point is one ``c2f train DATASET --out OUT -p key=value ...`` process (benchmarks/common.py's ``train_cli``):
``peak train MB`` is that process's peak RSS (training and publishing) and ``s a run`` its wall time, interpreter
start and imports included (a few seconds that the in-process figures of results before 2026-12-07 did not count).
The other figures are read from the published version through ``c2f.load`` (``Model.manifest``). ``default`` is
exactly what ``c2f train DATA`` and ``POST /train`` with only a dataset train (no method: the default recipe,
``contract.config.DEFAULT_RECIPE``; tests/test_quality_bench.py checks it). Result files land in
``OUT/results/DATASET/LABEL/``.

The report: one table per dataset (served bytes, as % of that dataset's float32 d = 128 table; served and trained
R@20/N@20; each row's served R@20 as % of the better converged full table of d = 64 and d = 128 (``ud64``,
``ud128``); peak training memory), a cross-dataset summary (per variant: % of the full table on each dataset, and on
how many datasets nothing with as few bytes serves better), paired t-tests (``--paired A,B``) and the CSV.
A dataset is a directory of ``../shared/data`` by name, or a path.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as `python benchmarks/NAME.py`: see benchmarks/_as_script.py
    import _as_script  # noqa: F401

import c2f
from benchmarks.common import DATA, paired_t, train_cli

SEEDS = (2024, 2025, 2026)
FULL_TABLES = ("ud64", "ud128")  # the yardstick: the better of the two on each dataset
REFERENCE_DIM = 128  # bytes_pct is served bytes over the float32 N × 128 table

# label -> TrainConfig values. Each label pins what it measures, so that it keeps its meaning when defaults change,
# except "default", which is whatever `c2f train DATA` trains at the commit that ran it (the default recipe since
# 2026-12-08; C2F at TrainConfig's defaults before, now the "c2f" row).
FULL = {"method": "ud", "biases": False}
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},  # no method: the default recipe (contract.config.DEFAULT_RECIPE)
    "c2f": {"method": "c2f"},  # the paper's method at TrainConfig's defaults (the default before the recipe)
    "c2f+rescaled": {"method": "c2f", "fine_bias_start": "rescaled"},  # its fine stage's biases rescaled
    "legcf": {"method": "legcf"},
    "ud64": {**FULL, "dim": 64},
    "ud128": {**FULL, "dim": 128},
    # the full table served from trained product-quantized codes, sized by a budget on what serving holds
    "ud+pq@2%": {**FULL, "dim": 128, "pq_subspaces": 8, "budget": 2.0, "budget_counts": "served"},
    "ud+pq@5%": {**FULL, "dim": 128, "pq_subspaces": 8, "budget": 5.0, "budget_counts": "served"},
    "ud64+pq16": {**FULL, "dim": 64, "pq_subspaces": 16},
    # the items' codes alone, every user folded in from its items (served_users="fold_in"); a budget's percent is of
    # the method's own float32 table, here d = 64: 10% and 4% are 5% and 2% of the d = 128 reference
    "ud64+pq+fold@5%": {
        **FULL,
        "dim": 64,
        "pq_subspaces": 8,
        "budget": 10.0,
        "budget_counts": "served",
        "served_users": "fold_in",
    },
    "ud64+pq+fold@2%": {
        **FULL,
        "dim": 64,
        "pq_subspaces": 8,
        "budget": 4.0,
        "budget_counts": "served",
        "served_users": "fold_in",
    },
    "c2f+fold": {"method": "c2f", "served_users": "fold_in"},
    "ud64+pq16+fold": {**FULL, "dim": 64, "pq_subspaces": 16, "served_users": "fold_in"},
    "ud32+pq8+fold": {**FULL, "dim": 32, "pq_subspaces": 8, "served_users": "fold_in"},
}
CSV_COLUMNS = (
    "dataset",
    "method",
    "budget",
    "seeds",
    "served_bytes",
    "bytes_pct",
    "served_r20",
    "served_r20_std",
    "served_n20",
    "trained_r20",
    "pct_of_full",
    "train_peak_mb",
)


def dataset_path(name: str) -> str:
    """A dataset by name (a folder of ../shared/data) or by path."""
    path = Path(name)
    return str(path if path.exists() else DATA / name)


def run_one(label: str, dataset: str, seed: int, out: str, extra: dict[str, Any], path: str) -> None:
    """Train one (dataset, variant, seed) point with ``c2f train`` and write its figures as JSON."""
    values = {**VARIANTS[label], **extra, "seed": seed}
    run = train_cli(dataset_path(dataset), out, values)
    model = c2f.load(out, run.check())
    manifest = model.manifest.model_dump()
    footprint, metrics = manifest["footprint"], manifest["metrics"]
    result = {
        "dataset": Path(dataset).name,
        "label": label,
        "seed": seed,
        "config": values,
        "method": manifest["method"],
        "version": model.version,
        "n_entities": footprint["n_entities"],
        "serving_memory_bytes": footprint["serving_memory_bytes"],
        "embedding_bytes": footprint["embedding_bytes"],
        "trained": metrics["trained"]["test"],
        "served_compressed": metrics["served"]["compressed"]["test"],
        "epochs": len(metrics["history"]),
        "stage_kept": manifest["info"].get("stage_kept"),
        "fine_forward": manifest["info"].get("fine_forward"),
        "wall_seconds": run.wall_seconds,
        "peak_rss_mb": run.peak_rss_mb,
    }
    Path(path).write_text(json.dumps(result, indent=2, default=float))


def load(path: Path) -> dict[str, Any]:
    """One result file as a point: dataset, label, seed, served bytes and N, served/trained test figures, peak MB.

    Reads this script's results and benchmarks/train_gowalla.py's (which name neither the dataset nor the label:
    they come from the folders ``DATASET/LABEL/file.json``, and bytes and N from the artifact's manifest)."""
    r = json.loads(path.read_text())
    point = {
        "dataset": r.get("dataset") or path.parent.parent.name,
        "label": r.get("label") or path.parent.name,
        "seed": r["seed"],
        "trained": r["trained"],
        "served": r.get("served_compressed") or r["served"],
        "peak_mb": r.get("peak_rss_mb"),
        "serving_bytes": r.get("serving_memory_bytes"),
        "n_entities": r.get("n_entities"),
        "wall_seconds": r.get("wall_seconds"),
    }
    if point["serving_bytes"] is None or point["n_entities"] is None:
        footprint = json.loads((Path(r["path"]) / "manifest.json").read_text())["footprint"]
        point["serving_bytes"] = footprint["serving_memory_bytes"]
        point["n_entities"] = footprint["n_entities"]
    return point


def collect(paths: list[Path], into: Path, rename: dict[str, str]) -> list[Path]:
    """Copy result files into ``into/DATASET/LABEL/`` as self-contained points (dataset, label, bytes and N written
    in, read from the artifact's manifest where the file lacks them), so that a report can be rebuilt from the
    copies alone; ``rename`` maps folder labels to the labels the report uses."""
    written = []
    for path in paths:
        point = load(path)
        point["label"] = rename.get(point["label"], point["label"])
        result = json.loads(path.read_text())
        result.update(
            dataset=point["dataset"],
            label=point["label"],
            serving_memory_bytes=point["serving_bytes"],
            n_entities=point["n_entities"],
        )
        target = into / point["dataset"] / point["label"] / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(result, indent=2, default=float))
        written.append(target)
    return written


def summarise(
    points: list[dict[str, Any]], full_tables: tuple[str, ...] = FULL_TABLES
) -> dict[str, dict[str, dict[str, Any]]]:
    """dataset -> label -> seeds, mean/std figures, bytes, % of the d = 128 table and of the full table (the best
    mean trained R@20 among the labels ``full_tables``)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault((p["dataset"], p["label"]), []).append(p)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (dataset, label), runs in sorted(groups.items()):
        runs.sort(key=lambda p: p["seed"])
        served = np.array([p["served"]["recall@20"] for p in runs])
        table_bytes = runs[0]["n_entities"] * REFERENCE_DIM * 4
        served_bytes = int(np.mean([p["serving_bytes"] for p in runs]))
        out.setdefault(dataset, {})[label] = {
            "seeds": [p["seed"] for p in runs],
            "served_bytes": served_bytes,
            "bytes_pct": 100.0 * served_bytes / table_bytes,
            "served_r20": float(served.mean()),
            "served_r20_std": float(served.std(ddof=1)) if len(runs) > 1 else 0.0,
            "served_r20_each": served.tolist(),
            "served_n20": float(np.mean([p["served"]["ndcg@20"] for p in runs])),
            "trained_r20": float(np.mean([p["trained"]["recall@20"] for p in runs])),
            "train_peak_mb": max(p["peak_mb"] or 0.0 for p in runs),
            "wall_seconds": float(np.mean([p["wall_seconds"] or 0.0 for p in runs])),
        }
    for rows in out.values():
        full = max((rows[f]["trained_r20"] for f in full_tables if f in rows), default=None)
        for row in rows.values():
            row["pct_of_full"] = None if full is None else 100.0 * row["served_r20"] / full
            # nothing with at most this many served bytes serves a higher mean R@20
            row["wins"] = not any(
                o["served_bytes"] <= row["served_bytes"] and o["served_r20"] > row["served_r20"] for o in rows.values()
            )
    return out


def _pm(row: dict[str, Any], key: str = "served_r20") -> str:
    std = row.get(f"{key}_std")
    return f"{row[key]:.4f}" + (f" ± {std:.4f}" if std and len(row["seeds"]) > 1 else "")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def dataset_table(dataset: str, rows: dict[str, dict[str, Any]]) -> str:
    """One dataset's rows, fewest served bytes first."""
    lines = [
        f"**{dataset}** (bytes: what compressed serving holds; % of full table: of the best converged full table)\n",
        "| variant | seeds | served bytes | % of d=128 table | served R@20 | served N@20 | trained R@20 "
        "| % of full table | nothing smaller serves better | peak train MB | s a run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, row in sorted(rows.items(), key=lambda kv: kv[1]["served_bytes"]):
        lines.append(
            f"| {label} | {','.join(map(str, row['seeds']))} | {row['served_bytes']:,} | {row['bytes_pct']:.2f}% | "
            f"{_pm(row)} | {row['served_n20']:.4f} | {row['trained_r20']:.4f} | {_pct(row['pct_of_full'])} | "
            f"{'yes' if row['wins'] else ''} | {row['train_peak_mb']:.0f} | {row['wall_seconds']:.0f} |"
        )
    return "\n".join(lines)


def summary_table(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Per variant: bytes and % of the full table on each dataset, and on how many datasets it is on the front."""
    datasets = sorted(summary)
    labels = sorted({label for rows in summary.values() for label in rows})
    lines = [
        "| variant | "
        + " | ".join(f"{d}: % of table bytes / % of full R@20" for d in datasets)
        + " | datasets where nothing smaller serves better |",
        "|---|" + "---|" * len(datasets) + "---|",
    ]
    for label in labels:
        cells, wins, present = [], 0, 0
        for d in datasets:
            row = summary[d].get(label)
            if row is None:
                cells.append("-")
                continue
            present += 1
            wins += row["wins"]
            cells.append(f"{row['bytes_pct']:.2f}% / {_pct(row['pct_of_full'])}")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {wins} of {present} |")
    return "\n".join(lines)


def paired(points: list[dict[str, Any]], first: str, second: str) -> list[str]:
    """Served R@20 of ``first`` against ``second`` on each dataset, over the seeds both ran (paired t-test)."""
    lines = []
    for dataset in sorted({p["dataset"] for p in points}):
        a = {p["seed"]: p["served"]["recall@20"] for p in points if p["dataset"] == dataset and p["label"] == first}
        b = {p["seed"]: p["served"]["recall@20"] for p in points if p["dataset"] == dataset and p["label"] == second}
        seeds = sorted(set(a) & set(b))
        if len(seeds) < 2:
            continue
        diff, p = paired_t([a[s] for s in seeds], [b[s] for s in seeds])
        lines.append(
            f"{dataset}: served R@20 {first} − {second} = {diff:+.4f} over seeds "
            f"{','.join(map(str, seeds))} (paired t-test p = {p:.3g})"
        )
    return lines


def write_csv(summary: dict[str, dict[str, dict[str, Any]]], path: str) -> None:
    """One row per (dataset, variant): the columns of CSV_COLUMNS (seeds space-separated, percentages as numbers)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for dataset, rows in sorted(summary.items()):
            for label, row in sorted(rows.items(), key=lambda kv: kv[1]["served_bytes"]):
                # the budget as % of the d = 128 reference, which the label names ("ud+pq@5%"; the config's own
                # percent is of the method's table, which differs at d = 64)
                budget = label.rpartition("@")[2] if "@" in label else ""
                writer.writerow(
                    [
                        dataset,
                        label,
                        budget,
                        " ".join(map(str, row["seeds"])),
                        row["served_bytes"],
                        f"{row['bytes_pct']:.3f}",
                        f"{row['served_r20']:.4f}",
                        f"{row['served_r20_std']:.4f}",
                        f"{row['served_n20']:.4f}",
                        f"{row['trained_r20']:.4f}",
                        "" if row["pct_of_full"] is None else f"{row['pct_of_full']:.1f}",
                        f"{row['train_peak_mb']:.0f}",
                    ]
                )


def report(
    points: list[dict[str, Any]], pairs: list[str], csv_path: str | None, full_tables: tuple[str, ...] = FULL_TABLES
) -> str:
    summary = summarise(points, full_tables)
    parts = [dataset_table(d, rows) for d, rows in summary.items()]
    parts.append("**Across datasets**\n\n" + summary_table(summary))
    for pair in pairs:
        first, _, second = pair.partition(",")
        parts.append("\n".join(paired(points, first, second)))
    if csv_path:
        write_csv(summary, csv_path)
    return "\n\n".join(p for p in parts if p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="lastfm,ml-1m,gowalla", help="names under ../shared/data, or paths")
    parser.add_argument(
        "--variants", default="default,legcf,ud64,ud128", help="of: " + ", ".join(VARIANTS).replace("%", "%%")
    )
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--param", action="append", default=[], help="TrainConfig key=JSON for every run")
    parser.add_argument("--out", help="artifact root; results go to OUT/results/DATASET/LABEL/")
    parser.add_argument("--render", nargs="+", help="only report on these result files")
    parser.add_argument("--paired", action="append", default=[], help="A,B: served R@20 of A against B")
    parser.add_argument("--csv", help="write the per-(dataset, variant) summary here")
    parser.add_argument("--collect", help="with --render: copy the files, self-contained, into DIR/DATASET/LABEL/")
    parser.add_argument("--rename", action="append", default=[], help="with --collect: OLD=NEW label")
    parser.add_argument("--full", default=",".join(FULL_TABLES), help="labels of the converged full tables")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    extra = {k: json.loads(v) for k, _, v in (p.partition("=") for p in args.param)}
    if args.run:
        run_one(args.run, args.dataset, args.seed, args.out, extra, args.result)
        return
    if args.render and args.collect:
        rename = dict(r.split("=", 1) for r in args.rename)
        for path in collect([Path(p) for p in args.render], Path(args.collect), rename):
            print(path)
        return
    if args.render:
        print(report([load(Path(p)) for p in args.render], args.paired, args.csv, tuple(args.full.split(","))))
        return
    if not args.out:
        parser.error("give --out (artifact root) to train, or --render FILES")
    labels = args.variants.split(",")
    unknown = [label for label in labels if label not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    files = []
    for dataset in args.datasets.split(","):
        for label in labels:
            for seed in (int(s) for s in args.seeds.split(",")):
                folder = Path(args.out) / "results" / Path(dataset).name / label
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{label}-seed{seed}.json"
                print(f"== {dataset} {label} seed {seed} -> {path}", flush=True)
                run_one(label, dataset, seed, args.out, extra, str(path))
                files.append(path)
    print(report([load(p) for p in files], args.paired, args.csv, tuple(args.full.split(","))))


if __name__ == "__main__":
    main()
