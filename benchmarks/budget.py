"""Equal-memory table: every method sized by ``--budget`` to the same bytes, served R@20 / N@20 against served bytes.

    python benchmarks/budget.py --out /tmp/budget                                   # Gowalla, the full grid
    python benchmarks/budget.py --dataset DIR --budgets 2,5 --methods ud,hash --out /tmp/b   # a subset
    python benchmarks/budget.py --render /tmp/budget/results/*.json --png budget.png  # table + Pareto plot again
    python benchmarks/budget.py --counts served --methods ud+pq,legcf --out /tmp/served   # what serving holds

For each budget (percent of the float32 full table N·d·4 at d = 128) and each method, one run (three at the budget
of ``--seeds-at``, default 2%): one ``c2f train --budget`` process (benchmarks/common.py's ``train_cli``: its peak RSS
is that run's, its wall time includes interpreter start and imports), the figures read from the published version
through ``c2f.load``. A method that cannot meet a budget (legcf/c2f below ~3.1% at d = 128: their per-entity index
and weight alone cost that much) is recorded as "does not fit" with the reason ``c2f train`` gives, not trained.

Each point: x = the published embedding bytes (what the service holds to score, at the stored dtypes; the manifest's
``budget.achieved_bytes``), y = served Recall@20 and NDCG@20 in the compressed serving mode (test.txt, full ranking).
The table marks the Pareto-optimal points (no other point has fewer bytes and a higher served R@20); the PNG plots
them on a log byte axis with the full table's R@20 (``--ceiling``, or a ``ud`` run at 100%) as the ceiling.

``--methods popularity`` (or ``--run popularity``) writes a reference result instead of a point: items ranked by
train counts on the seed's split, which needs no embeddings; the table prints it below the rows and the PNG draws it
as the floor a method must clear. It reads the data with the trainer's own loader and split (the one use of a c2f
layer here: no public call ranks by popularity; its own subprocess keeps torch out of this one).

``--counts served`` sizes every point by what compressed serving holds instead (``TrainConfig.budget_counts``:
the served form, hash/qr's rebuilt float32 table; not exact mode's layer-0 arrays, which the service frees), and
the method ``ud+pq`` (or ``hash+pq``, ``qr+pq``) is that method served from product-quantized codes, the budget
choosing their number. Points counted differently get separate Pareto fronts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as `python benchmarks/NAME.py`: see benchmarks/_as_script.py
    import _as_script  # noqa: F401

import c2f
from benchmarks.common import paired_t, train_cli
from benchmarks.train_gowalla import GOWALLA, mean_std

BUDGETS = (0.5, 1.0, 2.0, 5.0, 10.0)
METHODS = ("ud", "hash", "qr", "legcf", "c2f")
SEEDS = (2024, 2025, 2026)
POPULARITY = "popularity"  # a reference result, not a point: items ranked by train counts, drawn as the floor
# what every run shares: the paper's d = 128 (the reference the percentages refer to) and our protocol
BASE: dict[str, Any] = {"dim": 128, "store_dtype": "float16"}


def method_values(label: str) -> dict[str, Any]:
    """TrainConfig values of a method label: ``ud`` -> ud; ``ud+pq`` -> ud served from product-quantized codes (a
    served budget sets their number; 8 divides d = 128 and only marks the form). A tag after ``@`` (``legcf@cap``)
    only names the variant in the table and in ``--paired``; what differs is set by ``--param``."""
    method, _, form = label.partition("@")[0].partition("+")
    if form not in ("", "pq"):
        raise SystemExit(f"unknown served form {form!r} in {label!r} (expected METHOD or METHOD+pq)")
    return {"method": method, **({"pq_subspaces": 8} if form else {})}


# how `c2f train` words a budget no size of the method meets (c2f/contract/budget.py's BudgetError)
DOES_NOT_FIT = re.compile(r"a budget of .+ is below ")


def run_one(label: str, budget: float, seed: int, dataset: str, out: str, extra: dict[str, Any], path: str) -> None:
    """Train one (method label, budget, seed) point with ``c2f train`` and write its figures as JSON."""
    values = {**BASE, **extra, **method_values(label), "budget": budget, "seed": seed}
    counts = values.get("budget_counts", "stored")
    result: dict[str, Any] = {"method": label, "budget": budget, "seed": seed, "counts": counts, "config": values}
    run = train_cli(dataset, out, values)
    if run.returncode == 2 and run.error and DOES_NOT_FIT.match(run.error):
        result["fits"] = False
        result["reason"] = run.error
    else:
        model = c2f.load(out, run.check())
        manifest = model.manifest.model_dump()
        report = manifest.get("budget") or {}
        result.update(
            fits=True,
            version=model.version,
            sizes=report.get("sizes", {}),
            budget_bytes=report.get("budget_bytes"),
            bytes=report.get("achieved_bytes") or manifest["footprint"]["embedding_bytes"],
            embedding_bytes=manifest["footprint"]["embedding_bytes"],
            serving_memory_bytes=manifest["footprint"].get("serving_memory_bytes"),
            full_table_bytes=report.get("full_table_bytes"),
            trained=manifest["metrics"]["trained"]["test"],
            served=manifest["metrics"]["served"]["compressed"]["test"],
            epochs=stage_epochs(manifest["metrics"]["history"]),
        )
    result["wall_seconds"] = run.wall_seconds
    result["peak_rss_mb"] = run.peak_rss_mb
    Path(path).write_text(json.dumps(result, indent=2, default=float))


def run_popularity(seed: int, dataset: str, extra: dict[str, Any], path: str) -> None:
    """The floor every method should clear: items ranked by train counts, on the split a trained run of ``seed``
    uses (the validation carve-out of its TrainConfig), test figures written as a reference result (not a point)."""
    from c2f.contract.config import TrainConfig
    from c2f.trainer.data import load_dataset
    from c2f.trainer.synthetic import popularity_metrics

    config = TrainConfig.from_dict({**BASE, **extra, "seed": seed})
    data = load_dataset(dataset, seed=seed, valid_fraction=config.valid_fraction, valid_from=config.valid_from)
    figures = popularity_metrics(data, (20,))
    result = {"method": POPULARITY, "reference": True, "seed": seed, "served": figures, "trained": figures}
    Path(path).write_text(json.dumps(result, indent=2, default=float))


def stage_epochs(history: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per training stage of a manifest's history: epochs run and mean seconds an epoch (says whether a run met the
    ``--max-epochs`` cap, and what an epoch costs at that size)."""
    stages: dict[str, list[float]] = {}
    for record in history:
        stages.setdefault(record["stage"], []).append(float(record["seconds"]))
    return {stage: {"epochs": len(s), "seconds_per_epoch": float(np.mean(s))} for stage, s in stages.items()}


def pareto(points: list[tuple[float, float]]) -> set[int]:
    """Indices of the points (bytes, recall) that no other point beats with fewer or equal bytes and higher
    recall."""
    keep = set()
    best = -np.inf
    for i in sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1])):
        if points[i][1] > best:
            keep.add(i)
            best = points[i][1]
    return keep


def _order(label: str) -> int:
    """Where a label's method comes in METHODS (a tagged variant beside its method; unknown labels last)."""
    method = label.partition("@")[0]
    return METHODS.index(method) if method in METHODS else len(METHODS)


def _mean(runs: list[dict[str, Any]], where: str, key: str) -> float:
    return float(np.mean([r[where][key] for r in runs]))


def _cell(runs: list[dict[str, Any]], where: str, key: str) -> str:
    return mean_std([float(r[where][key]) for r in runs])


def _counts(result: dict[str, Any]) -> str:
    """What a point's bytes count: "stored" (every stored embedding array) or "served" (what serving holds)."""
    return str(result.get("counts", "stored"))


def _epochs(runs: list[dict[str, Any]]) -> str:
    """Epochs per stage over the runs ("coarse 30, fine 9"; a range when seeds differ); blank for result files
    written before epochs were recorded."""
    stages: dict[str, list[int]] = {}
    for r in runs:
        for stage, figures in r.get("epochs", {}).items():
            stages.setdefault(stage, []).append(int(figures["epochs"]))
    spans = {k: f"{min(v)}" if min(v) == max(v) else f"{min(v)}-{max(v)}" for k, v in stages.items()}
    return ", ".join(f"{stage} {span}" for stage, span in spans.items())


def table(results: list[dict[str, Any]]) -> str:
    """One row per (budget, method): served figures mean ± std over seeds, bytes, Pareto mark."""
    references = [r for r in results if r.get("reference")]
    results = [r for r in results if not r.get("reference")]
    groups: dict[tuple[float, str, str], list[dict[str, Any]]] = {}
    for r in results:  # a method counted both ways is two rows
        groups.setdefault((float(r["budget"]), r["method"], _counts(r)), []).append(r)
    keys = sorted(groups, key=lambda k: (k[0], k[2] != "stored", _order(k[1]), k[1]))
    front = set()
    for counts in {_counts(runs[0]) for runs in groups.values()}:  # one front per way of counting bytes
        fitted = [k for k in keys if groups[k][0].get("fits") and _counts(groups[k][0]) == counts]
        points = [(float(groups[k][0]["bytes"]), _mean(groups[k], "served", "recall@20")) for k in fitted]
        front |= {fitted[i] for i in pareto(points)}
    lines = [
        "| budget | method | seeds | sizes | bytes counted | bytes | % of full table | served R@20 | served N@20 "
        "| trained R@20 | Pareto | epochs | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        runs = sorted(groups[key], key=lambda r: r["seed"])
        budget, method, _ = key
        seeds = ",".join(str(r["seed"]) for r in runs)
        if not runs[0].get("fits"):
            lines.append(f"| {budget:g}% | {method} | {seeds} | does not fit | {_counts(runs[0])} | | | | | | | | |")
            continue
        first = runs[0]
        sizes = ", ".join(f"{k}={v}" for k, v in first.get("sizes", {}).items())
        share = 100.0 * first["bytes"] / first["full_table_bytes"] if first.get("full_table_bytes") else float("nan")
        lines.append(
            f"| {budget:g}% | {method} | {seeds} | {sizes} | {_counts(first)} | {first['bytes']:,} | {share:.2f}% | "
            f"{_cell(runs, 'served', 'recall@20')} | {_cell(runs, 'served', 'ndcg@20')} | "
            f"{_cell(runs, 'trained', 'recall@20')} | {'yes' if key in front else ''} | {_epochs(runs)} | "
            f"{np.mean([r['wall_seconds'] for r in runs]):.0f} |"
        )
    for r in references:
        lines.append(
            f"\n{r['method']} (items by train count, no embeddings; seed {r['seed']}'s split): "
            f"R@20 {r['served']['recall@20']:.4f}, N@20 {r['served']['ndcg@20']:.4f}"
        )
    return "\n".join(lines)


def paired(results: list[dict[str, Any]], first: str, second: str) -> list[str]:
    """Per budget where both methods ran on the same seeds (≥ 2): served R@20 of ``first`` minus ``second``, mean
    over seeds, and the paired t-test's p-value (scipy's ttest_rel), as Table 4 of the paper reports."""
    lines = []
    results = [r for r in results if not r.get("reference")]
    for budget in sorted({float(r["budget"]) for r in results}):
        runs = {
            (r["method"], r["seed"]): float(r["served"]["recall@20"])
            for r in results
            if r.get("fits") and float(r["budget"]) == budget
        }
        seeds = sorted(s for m, s in runs if m == first and (second, s) in runs)
        if len(seeds) < 2:
            continue
        diff, p = paired_t([runs[(first, s)] for s in seeds], [runs[(second, s)] for s in seeds])
        lines.append(
            f"{budget:g}%: served R@20 {first} − {second} = {diff:+.4f} over seeds "
            f"{','.join(map(str, seeds))} (paired t-test p = {p:.3g})"
        )
    return lines


def byte_tick(value: float, _position: object = None) -> str:
    """Label for a log-scale byte axis: "200 kB", "1 MB", "5 MB" at 1, 2 and 5 × a power of ten, "" elsewhere
    (matplotlib's default labels every minor tick of a short log axis, and 3×10^5 ran into 4×10^5)."""
    if value <= 0:
        return ""
    exponent = int(np.floor(np.log10(value) + 1e-9))
    mantissa = value / 10.0**exponent
    if not any(abs(mantissa - m) < 1e-6 for m in (1.0, 2.0, 5.0)):
        return ""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:g} {unit}"
    return f"{value:g} B"


def plot(results: list[dict[str, Any]], png: str, ceiling: float | None, ceiling_label: str = "full table") -> None:
    """Served R@20 against embedding bytes (log x), one series per method, the Pareto front as a line, the ceiling
    and the popularity floor (a reference result) as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floors = [r for r in results if r.get("reference")]
    fitted = [r for r in results if r.get("fits") and not r.get("reference")]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    series = sorted(
        {(r["method"], _counts(r)) for r in fitted},
        key=lambda k: (k[1], _order(k[0]), k[0]),
    )
    for method, counts in series:
        mine = [r for r in fitted if r["method"] == method and _counts(r) == counts]
        label = method if counts == "stored" else f"{method} (served bytes)"
        ax.scatter([r["bytes"] for r in mine], [r["served"]["recall@20"] for r in mine], label=label, s=24)
    for counts, style in (("stored", "-"), ("served", ":")):  # one front per way of counting bytes
        points = [(float(r["bytes"]), float(r["served"]["recall@20"])) for r in fitted if _counts(r) == counts]
        front = sorted((points[i] for i in pareto(points)), key=lambda p: p[0])
        if front:
            xs, ys = [p[0] for p in front], [p[1] for p in front]
            ax.step(xs, ys, where="post", color="grey", ls=style, lw=1, label=f"Pareto front ({counts} bytes)")
    if ceiling is not None:
        ax.axhline(ceiling, color="black", ls="--", lw=1, label=f"{ceiling_label} R@20 {ceiling:.4f}")
    if floors:
        floor = float(np.mean([r["served"]["recall@20"] for r in floors]))
        ax.axhline(floor, color="black", ls=":", lw=1, label=f"{floors[0]['method']} R@20 {floor:.4f}")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(byte_tick)
    ax.xaxis.set_minor_formatter(byte_tick)
    ax.set_xlabel("embedding bytes at stored dtypes (stored arrays, or what serving holds)")
    ax.set_ylabel("served Recall@20 (compressed mode)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the ceiling runs across the top
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=str(GOWALLA))
    parser.add_argument("--budgets", default=",".join(f"{b:g}" for b in BUDGETS), help="percent of the full table")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds-at", default="2", help="budgets (percent) that run all three seeds")
    parser.add_argument("--max-epochs", type=int, default=300, help="cap per phase (early stopping decides below)")
    parser.add_argument("--param", action="append", default=[], help="extra TrainConfig key=JSON for every run")
    parser.add_argument(
        "--counts", choices=("stored", "served"), default="stored", help="what a budget counts (budget_counts)"
    )
    parser.add_argument("--out", help="artifact root; results go to OUT/results")
    parser.add_argument("--render", nargs="+", help="only build the table (and --png) from these result files")
    parser.add_argument("--png", help="write the Pareto plot here")
    parser.add_argument("--ceiling", type=float, help="the full table's R@20, drawn as the ceiling")
    parser.add_argument(
        "--ceiling-from",
        nargs="+",
        help="result files whose trained R@20 (mean) is the ceiling: runs that trained the full table (e.g. ud+pq)",
    )
    parser.add_argument("--ceiling-label", default="full table", help="what the ceiling is, for the plot's legend")
    parser.add_argument("--paired", help="A,B: served R@20 of method A against B over their common seeds")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    extra = {k: json.loads(v) for k, _, v in (p.partition("=") for p in args.param)}
    extra["budget_counts"] = args.counts
    if args.run == POPULARITY:
        run_popularity(args.seed, args.dataset, extra, args.result)
        return
    extra["epochs"] = args.max_epochs
    if args.run:
        run_one(args.run, args.budget, args.seed, args.dataset, args.out, extra, args.result)
        return
    if args.render:
        results = [json.loads(Path(p).read_text()) for p in args.render]
    else:
        if not args.out:
            raise SystemExit("--out is required to train")
        results_dir = Path(args.out) / "results"
        results_dir.mkdir(parents=True, exist_ok=True)
        all_seeds = {float(b) for b in args.seeds_at.split(",") if b}
        results = []
        done: set[Path] = set()
        for budget in (float(b) for b in args.budgets.split(",")):
            for method in args.methods.split(","):
                for seed in SEEDS if budget in all_seeds else SEEDS[:1]:
                    suffix = "-served" if args.counts == "served" else ""
                    point = "" if method == POPULARITY else f"-{budget:g}pct"  # the floor is one result a seed
                    path = results_dir / f"{method}{point}-seed{seed}{suffix}.json"
                    if path in done:
                        continue
                    done.add(path)
                    print(f"== {method} at {budget:g}% seed {seed} -> {path}", flush=True)
                    if method == POPULARITY:  # its own process: the trainer's loader imports torch
                        command = [sys.executable, __file__, "--run", method, "--seed", str(seed)]
                        command += ["--result", str(path), "--dataset", args.dataset, "--counts", args.counts]
                        command += [f"--param={p}" for p in args.param]
                        subprocess.run(command, check=True, env={**os.environ, "TQDM_DISABLE": "1"})
                    else:
                        run_one(method, budget, seed, args.dataset, args.out, extra, str(path))
                    results.append(json.loads(path.read_text()))
    ceiling = args.ceiling
    if ceiling is None and args.ceiling_from:
        full_tables = [json.loads(Path(p).read_text()) for p in args.ceiling_from]
        untrained = [
            p for p, r in zip(args.ceiling_from, full_tables, strict=True) if "recall@20" not in r.get("trained", {})
        ]
        if untrained:
            raise SystemExit(f"--ceiling-from: no trained R@20 in {', '.join(untrained)} (a run that did not fit?)")
        ceiling = float(np.mean([r["trained"]["recall@20"] for r in full_tables]))
        print(f"ceiling: trained R@20 {ceiling:.4f}, the mean of {len(full_tables)} result files")
    if ceiling is None:
        full = [r for r in results if r.get("fits") and r["method"] == "ud" and float(r.get("budget", 0)) >= 100]
        ceiling = float(np.mean([r["served"]["recall@20"] for r in full])) if full else None
    print(table(results))
    if args.paired:
        first, _, second = args.paired.partition(",")
        print("\n".join(paired(results, first, second)))
    if args.png:
        plot(results, args.png, ceiling, args.ceiling_label)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
