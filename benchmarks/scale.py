"""Scale benchmark: synthetic interaction tables of a given size, trained (LEGCF, C2F) and served, phase by phase.

    python benchmarks/scale.py --users 20000,50000 --per-user 13.3 --out /tmp/scale     # sizes by user count
    python benchmarks/scale.py --users 2000 --epochs 1 --methods legcf --out /tmp/s       # plumbing only
    python benchmarks/scale.py --users 20000 --torchrun 2 --out /tmp/s                   # + 2 CPU ranks' memory
    python benchmarks/scale.py --users 20000 --torchrun 2 --torchrun-only --out /tmp/s    # only the 2 ranks

For every size it

1. writes a Parquet table (string ids ``u…``/``i…``, planted communities, Zipf item popularity, a heavy-tailed
   number of items per user; vectorised: a few seconds per ten million rows) with :func:`write_table`;
2. trains each method in its own subprocess through ``train_and_publish`` (what ``c2f train`` runs; in process, not
   through the CLI, because the phases are timed by wrapping trainer functions), so that peak RSS is that run's, and
   records per phase: dataset load, METIS, propagation precompute, seconds per epoch, per assignment update, per
   validation pass, the final test evaluations, export (which includes the served ones); the high-water RSS after
   each phase; artifact bytes;
3. loads the last artifact as the service does (``c2f.load``, compressed mode, in its own subprocess): load
   seconds, RSS, and ``recommend(n=20)`` latency p50/p99 over random users on ``Model.recommender``;
4. with ``--torchrun K``: the same training under ``torchrun --nproc-per-node=K`` on CPU processes, each rank's
   peak RSS and seconds (rank 0: per epoch too) (``--torchrun-only``: this alone, without steps 2 and 3).

Results: ``OUT/scale.json`` (every figure) and a markdown table on stdout (``OUT/scale.md``), with the growth
exponents (log-log least-squares slope vs interactions) when there are at least two sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as `python benchmarks/NAME.py`: see benchmarks/_as_script.py
    import _as_script  # noqa: F401

import c2f
from benchmarks.common import machine

# ------------------------------------------------------------------------------------------------------------------
# memory
# ------------------------------------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's high-water resident set (MiB), from /proc's VmHWM: ru_maxrss, the fallback where /proc is
    absent, carries the parent's peak over fork and exec (a worker forked by a parent that peaked at 218 MB reported
    218 MB with a VmHWM of 13 MB), which would hide a worker's own peak below the parent's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """This process's resident set now (MiB), from /proc; the peak where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mb()


# ------------------------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------------------------


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values by sort-and-compare: numpy 2.4's hash-based ``np.unique`` was ~70x slower than this on
    int64 pair keys here."""
    values = np.sort(values)
    keep = np.ones(values.size, dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def synthetic_interactions(
    n_users: int,
    n_items: int,
    n_interactions: int,
    n_communities: int = 50,
    zipf: float = 0.9,
    p_in: float = 0.8,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Unique (user, item) index pairs, about ``n_interactions`` of them (duplicates drawn are dropped).

    Users and items belong to ``n_communities`` communities; a user's items come from its community with probability
    ``p_in`` (else from all items), by Zipf popularity (weight (rank + 1)^-zipf over a random ranking of the items).
    Items per user are heavy-tailed (Pareto, shape 2), at least 2, averaging n_interactions / n_users. O(n_interactions)
    memory and time: no (users x items) array.
    """
    rng = np.random.default_rng(seed)
    community_of_user = rng.integers(0, n_communities, size=n_users)
    community_of_item = rng.permutation(np.arange(n_items) % n_communities)
    weight = (np.arange(n_items) + 1.0) ** -zipf
    weight = weight[rng.permutation(n_items)]  # popularity independent of the item's index and community
    # items grouped by community, with each group's popularity CDF on one global axis
    by_comm = np.argsort(community_of_item, kind="stable")
    cdf_comm = np.cumsum(weight[by_comm])
    counts = np.bincount(community_of_item, minlength=n_communities)
    ends = np.cumsum(counts)
    lo = np.concatenate([[0.0], cdf_comm[ends[:-1] - 1]])  # cumulative weight before each community
    hi = cdf_comm[ends - 1]
    cdf_all = np.cumsum(weight)

    mean = n_interactions / n_users
    per_user = 2 + np.floor((rng.pareto(2.0, n_users) + 1.0) * max(mean - 2.0, 0.0) / 2.0).astype(np.int64)
    per_user = np.minimum(per_user, n_items // 2)

    def draw(users: np.ndarray) -> np.ndarray:
        inside = rng.random(users.size) < p_in
        items = np.empty(users.size, dtype=np.int64)
        c = community_of_user[users[inside]]
        r = lo[c] + rng.random(c.size) * (hi[c] - lo[c])
        items[inside] = by_comm[np.minimum(np.searchsorted(cdf_comm, r, side="right"), n_items - 1)]
        r_all = rng.random(int((~inside).sum())) * cdf_all[-1]
        items[~inside] = np.minimum(np.searchsorted(cdf_all, r_all, side="right"), n_items - 1)
        return users * n_items + items

    key = _unique(draw(np.repeat(np.arange(n_users, dtype=np.int64), per_user)))
    # popular items are drawn twice by the same user: top the table up (users by their activity) to the target
    activity = per_user / per_user.sum()
    for _ in range(8):
        deficit = n_interactions - key.size
        if deficit <= 0.005 * n_interactions:
            break
        extra = rng.choice(n_users, size=int(deficit * 1.2), p=activity)
        key = _unique(np.concatenate([key, draw(extra)]))
    return key // n_items, key % n_items


def write_table(path: Path, n_users: int, n_items: int, n_interactions: int, seed: int = 0, **kwargs: Any) -> int:
    """Write a Parquet interaction table with string ids (``u<k>``, ``i<k>`` over shuffled k) to ``path``; returns
    the number of rows. The id columns are Arrow dictionary arrays: one Python string per distinct id, none per row.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    users, items = synthetic_interactions(n_users, n_items, n_interactions, seed=seed, **kwargs)
    rng = np.random.default_rng(seed + 1)
    order = rng.permutation(users.size)  # rows in no particular order, as an event log would be
    users, items = users[order], items[order]

    def ids(prefix: str, n: int) -> pa.Array:
        return pa.array([f"{prefix}{k}" for k in rng.permutation(n).tolist()], type=pa.string())

    table = pa.table(
        {
            "user": pa.DictionaryArray.from_arrays(pa.array(users.astype(np.int32)), ids("u", n_users)),
            "item": pa.DictionaryArray.from_arrays(pa.array(items.astype(np.int32)), ids("i", n_items)),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return int(users.size)


# ------------------------------------------------------------------------------------------------------------------
# workers (subprocesses): train, serve
# ------------------------------------------------------------------------------------------------------------------


class PhaseClock:
    """Wraps trainer functions to time the phases the pipeline does not time itself (METIS, propagation precompute,
    each evaluate() call) and records the high-water RSS when each phase ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.peak_after: dict[str, float] = {}

    def wrap(self, module: Any, name: str, label: str | Any) -> None:
        original = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            key = label(*args, **kwargs) if callable(label) else label
            t0 = time.perf_counter()
            out = original(*args, **kwargs)
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t0
            self.calls[key] = self.calls.get(key, 0) + 1
            self.peak_after[key] = peak_rss_mb()
            return out

        setattr(module, name, timed)


def train_worker(args: argparse.Namespace) -> dict[str, Any]:
    """One training run (this process); returns its figures."""
    import c2f.trainer.export
    import c2f.trainer.fit
    import c2f.trainer.methods
    import c2f.trainer.models
    from c2f.contract.config import TrainConfig
    from c2f.trainer.distributed import shutdown
    from c2f.trainer.pipeline import train_and_publish

    clock = PhaseClock()
    clock.wrap(c2f.trainer.methods, "metis_parts", "metis")
    clock.wrap(c2f.trainer.models, "propagate_columns", "propagation_precompute")
    clock.wrap(c2f.trainer.methods, "served_assignment", "export_served_fit")

    def eval_label(*a: Any, **k: Any) -> str:
        progress = k.get("progress") or ""
        return "evaluation_test" if "test" in progress else "evaluation_valid"

    clock.wrap(c2f.trainer.fit, "evaluate", eval_label)
    clock.wrap(c2f.trainer.export, "evaluate", "evaluation_test_served")
    params = json.loads(args.params)
    config = TrainConfig.from_dict({"method": args.method, **params})
    started = time.perf_counter()
    try:
        published = train_and_publish(args.dataset, config, args.artifacts)
    except BaseException:
        shutdown(failed=True)
        raise
    # Leave the torchrun process group as the CLI does: a group left to interpreter exit aborted one rank with
    # SIGABRT (CI, 2026-12-04: tests/test_scale_bench.py, after both ranks had printed their figures).
    total = time.perf_counter() - started
    shutdown()
    if os.environ.get("RANK", "0") != "0":
        return {"rank": int(os.environ["RANK"]), "peak_rss_mb": peak_rss_mb(), "total_seconds": total}
    m = published.manifest
    timings = dict(m.metrics.timings)
    stats = m.dataset.stats
    files = {name: entry.bytes for name, entry in m.files.items()}
    return {
        "method": args.method,
        "version": published.version,
        "path": str(published.path),
        "n_users": stats.get("n_users"),
        "n_items": stats.get("n_items"),
        "n_interactions": stats.get("n_rows"),
        "n_train": stats.get("n_train"),
        "total_seconds": total,
        "timings": timings,
        "phase_seconds": clock.seconds,
        "phase_calls": clock.calls,
        "peak_rss_after_mb": clock.peak_after,
        "peak_rss_mb": peak_rss_mb(),
        "artifact_bytes": sum(files.values()),
        "model_npz_bytes": files.get("model.npz"),
        "test": {k: m.metrics.test(k) for k in ("trained", "compressed", "exact")},
        "evaluation": {k: v.model_dump() for k, v in m.metrics.evaluation.items()},
        "epochs": len(m.metrics.history),
    }


def serve_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Load a version as the service does (``c2f.load``: sizes and sha256 verified, arrays checked, a smoke query;
    compressed mode) and time ``recommend(n=20)`` on its scorer (``Model.recommender``, by index)."""
    load = c2f.load  # imports the API (numpy, the service's scorer) before the RSS baseline
    rss_before = current_rss_mb()
    t0 = time.perf_counter()
    recommender = load(args.version_dir).recommender
    load_seconds = time.perf_counter() - t0
    rss_loaded = current_rss_mb()
    rng = np.random.default_rng(0)
    users = rng.integers(0, recommender.n_users, size=args.requests)
    ids = recommender.user_ids[users]
    latencies = np.empty(args.requests)
    for k, user_id in enumerate(ids.tolist()):
        t = time.perf_counter()
        index = recommender.user_index(user_id)  # the route's work: id lookup, then top-n
        assert index is not None
        recommender.recommend(index, 20)
        latencies[k] = time.perf_counter() - t
    unknown = recommender.user_index("no-such-user")
    return {
        "load_seconds": load_seconds,
        "rss_before_mb": rss_before,
        "rss_loaded_mb": rss_loaded,
        "rss_model_mb": rss_loaded - rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "requests": int(args.requests),
        "recommend_p50_ms": float(np.percentile(latencies, 50) * 1e3),
        "recommend_p99_ms": float(np.percentile(latencies, 99) * 1e3),
        "unknown_user_is_none": unknown is None,
        "derived_bytes": recommender.memory_bytes(),
    }


def _run_json(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a worker subprocess; its last stdout line is its JSON result."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def torchrun_ranks(dataset: str, method: str, params: str, artifacts: Path, nproc: int, out: Path) -> dict[str, Any]:
    """Train under ``torchrun --nproc-per-node=nproc`` (CPU processes, gloo); each rank's peak RSS."""
    env = {**os.environ, "C2F_SCALE_RANK_DIR": str(out)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        str(Path(__file__).resolve()),
        "_train",
        "--dataset",
        dataset,
        "--method",
        method,
        "--params",
        params,
        "--artifacts",
        str(artifacts),
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - t0
    ranks = [json.loads(p.read_text()) for p in sorted(out.glob("rank-*.json"))]
    return {"nproc": nproc, "seconds": seconds, "ranks": ranks}


# ------------------------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------------------------


def slope(x: list[float], y: list[float]) -> float | None:
    """Least-squares slope of log y against log x (the growth exponent); None with fewer than two points."""
    pts = [(a, b) for a, b in zip(x, y, strict=True) if a and b and a > 0 and b > 0]
    if len(pts) < 2:
        return None
    lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(lx, ly, 1)[0])


ROW_FIGURES: list[tuple[str, str]] = [
    ("load s", "load"),
    ("METIS s", "metis"),
    ("precompute s", "precompute"),
    ("s/epoch", "epoch"),
    ("s/update", "update"),
    ("valid pass s", "valid"),
    ("test evals s", "test"),
    ("export s", "export"),
    ("total s", "total"),
    ("peak RSS MB", "rss"),
    ("artifact MB", "artifact"),
]


def run_figures(run: dict[str, Any]) -> dict[str, float]:
    """The table's figures of one training run."""
    t, p = run["timings"], run["phase_seconds"]
    calls = run["phase_calls"]
    stage = "fine" if run["method"] == "c2f" else "coarse"
    return {
        "load": t.get("load_seconds", 0.0),
        "metis": p.get("metis", 0.0),
        "precompute": p.get("propagation_precompute", 0.0),
        "epoch": t.get(f"{stage}_seconds_per_epoch", 0.0),
        "update": t.get(f"{stage}_seconds_per_update", 0.0),
        "valid": p.get("evaluation_valid", 0.0) / max(calls.get("evaluation_valid", 1), 1),
        "test": p.get("evaluation_test", 0.0) + p.get("evaluation_test_served", 0.0),
        "export": t.get("export_seconds", 0.0),
        "total": run["total_seconds"],
        "rss": run["peak_rss_mb"],
        "artifact": run["artifact_bytes"] / 2**20,
    }


def markdown(results: list[dict[str, Any]]) -> str:
    """The results as markdown tables (training per method and size; serving; growth exponents)."""
    lines = [
        "| users | items | interactions | method | " + " | ".join(h for h, _ in ROW_FIGURES) + " | R@20 trained ± se |",
        "| ---: | ---: | ---: | --- | " + " | ".join("---:" for _ in ROW_FIGURES) + " | ---: |",
    ]
    for size in results:
        for run in size["train"]:
            f = run_figures(run)
            test = run["test"]["trained"]
            lines.append(
                f"| {run['n_users']} | {run['n_items']} | {run['n_interactions']} | {run['method']} | "
                + " | ".join(f"{f[key]:.2f}" if key != "rss" else f"{f[key]:.0f}" for _, key in ROW_FIGURES)
                + f" | {test.get('recall@20', 0):.4f} ± {test.get('recall@20_se', 0):.4f} |"
            )
    lines += [
        "",
        "| users | served artifact | load s | RSS after load MB | model RSS MB | recommend p50 ms | p99 ms |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in results:
        s = size.get("serve")
        if s:
            lines.append(
                f"| {size['n_users']} | {s['method']} | {s['load_seconds']:.2f} | {s['rss_loaded_mb']:.0f} | "
                f"{s['rss_model_mb']:.0f} | {s['recommend_p50_ms']:.2f} | {s['recommend_p99_ms']:.2f} |"
            )
    for size in results:
        tr = size.get("torchrun")
        if tr:
            ranks = ", ".join(f"rank {r['rank']} {r['peak_rss_mb']:.0f} MB" for r in tr["ranks"])
            epochs = ", ".join(f"rank {r['rank']} {r['epoch']:.1f} s" for r in tr["ranks"] if "epoch" in r)
            single = tr["single_peak_rss_mb"]
            lines.append("")
            lines.append(
                f"torchrun {tr['nproc']} CPU processes at {size['n_users']} users ({tr['method']}): peak RSS {ranks}; "
                + (f"single process {single:.0f} MB; " if single is not None else "single process not run; ")
                + (f"s/epoch {epochs}; " if epochs else "")
                + f"{tr['seconds']:.1f} s wall"
            )
    exps = exponents(results)
    if exps:
        lines += ["", "Growth exponents (log-log slope vs interactions): " + exps]
    return "\n".join(lines)


def exponents(results: list[dict[str, Any]]) -> str:
    if len(results) < 2:
        return ""
    parts = []
    methods = sorted({r["method"] for size in results for r in size["train"]})
    for method in methods:
        runs = [r for size in results for r in size["train"] if r["method"] == method]
        x = [float(r["n_interactions"]) for r in runs]
        figs = [run_figures(r) for r in runs]
        for label, key in (("total time", "total"), ("s/epoch", "epoch"), ("peak RSS", "rss")):
            value = slope(x, [f[key] for f in figs])
            if value is not None:
                parts.append(f"{method} {label} {value:.2f}")
    serve = [s for s in results if s.get("serve")]
    if len(serve) >= 2:
        x = [float(s["n_interactions"]) for s in serve]
        for label, key in (("serve p50", "recommend_p50_ms"), ("serve model RSS", "rss_model_mb")):
            value = slope(x, [s["serve"][key] for s in serve])
            if value is not None:
                parts.append(f"{label} {value:.2f}")
    return "; ".join(parts)


# ------------------------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------------------------


def run_size(args: argparse.Namespace, n_users: int) -> dict[str, Any]:
    out = Path(args.out)
    n_items = max(100, int(round(n_users * args.items_per_user)))
    n_interactions = int(round(n_users * args.per_user))
    data = out / f"data-{n_users}.parquet"
    t0 = time.perf_counter()
    rows = write_table(data, n_users, n_items, n_interactions, seed=args.seed, n_communities=args.communities)
    write_seconds = time.perf_counter() - t0
    print(f"[{n_users} users] wrote {rows} rows in {write_seconds:.1f} s", file=sys.stderr, flush=True)
    params = json.dumps({"epochs": args.epochs, "seed": args.seed, "device": "cpu", **json.loads(args.params)})
    size: dict[str, Any] = {
        "n_users": n_users,
        "n_items": n_items,
        "n_interactions": rows,
        "write_seconds": write_seconds,
        "data_bytes": data.stat().st_size,
        "train": [],
    }
    script = str(Path(__file__).resolve())
    if args.torchrun_only:
        size["torchrun"] = torchrun_size(args, data, params, None, out, n_users)
        return size
    for method in args.methods.split(","):
        cmd = [sys.executable, script, "_train", "--dataset", str(data), "--method", method, "--params", params]
        cmd += ["--artifacts", str(out / f"artifacts-{n_users}")]
        run = _run_json(cmd)
        f = run_figures(run)
        print(
            f"[{n_users} users] {method}: {f['total']:.1f} s, peak RSS {f['rss']:.0f} MB, "
            f"R@20 {run['test']['trained'].get('recall@20', 0):.4f}",
            file=sys.stderr,
            flush=True,
        )
        size["train"].append(run)
    last = size["train"][-1]
    serve = _run_json(
        [sys.executable, script, "_serve", "--version-dir", last["path"], "--requests", str(args.requests)]
    )
    serve["method"] = last["method"]
    size["serve"] = serve
    print(
        f"[{n_users} users] serve {last['method']}: load {serve['load_seconds']:.2f} s, "
        f"p50 {serve['recommend_p50_ms']:.2f} ms",
        file=sys.stderr,
        flush=True,
    )
    if args.torchrun > 1:
        method = args.methods.split(",")[0]
        single = next(r["peak_rss_mb"] for r in size["train"] if r["method"] == method)
        size["torchrun"] = torchrun_size(args, data, params, single, out, n_users)
    return size


def torchrun_size(
    args: argparse.Namespace, data: Path, params: str, single_peak_rss_mb: float | None, out: Path, n_users: int
) -> dict[str, Any]:
    """The first method trained under ``torchrun --nproc-per-node=args.torchrun``: each rank's figures."""
    method = args.methods.split(",")[0]
    rank_dir = out / f"ranks-{n_users}"
    rank_dir.mkdir(parents=True, exist_ok=True)
    for old in rank_dir.glob("rank-*.json"):
        old.unlink()
    tr = torchrun_ranks(str(data), method, params, out / f"artifacts-tr-{n_users}", args.torchrun, rank_dir)
    tr["method"] = method
    tr["single_peak_rss_mb"] = single_peak_rss_mb
    return tr


def merge_reports(paths: list[Path], out: Path) -> int:
    """OUT/scale.json and OUT/scale.md from the sizes of several reports, in order of users."""
    sizes: dict[int, dict[str, Any]] = {}
    commands = []
    for path in paths:
        report = json.loads(path.read_text())
        commands.append(f"{report['command']}  # {report['date']}")
        for size in report["results"]:
            merged = sizes.setdefault(size["n_users"], {**size, "train": []})
            runs = {run["method"]: run for run in merged["train"]}
            runs.update({run["method"]: run for run in size["train"]})
            merged.update({k: v for k, v in size.items() if k != "train"})
            merged["train"] = list(runs.values())
    results = [sizes[n] for n in sorted(sizes)]
    report = {
        "commands": commands,
        "machine": machine().describe(),
        "results": results,
        "exponents": exponents(results),
    }
    (out / "scale.json").write_text(json.dumps(report, indent=2, default=float))
    table = markdown(results)
    (out / "scale.md").write_text(table + "\n")
    print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("_train", "_serve"):
        worker = argparse.ArgumentParser()
        worker.add_argument("--dataset")
        worker.add_argument("--method")
        worker.add_argument("--params", default="{}")
        worker.add_argument("--artifacts")
        worker.add_argument("--version-dir")
        worker.add_argument("--requests", type=int, default=200)
        wargs = worker.parse_args(argv[1:])
        result = train_worker(wargs) if argv[0] == "_train" else serve_worker(wargs)
        rank_dir = os.environ.get("C2F_SCALE_RANK_DIR")
        if argv[0] == "_train" and rank_dir:
            rank = int(os.environ.get("RANK", "0"))
            result.setdefault("rank", rank)
            result["peak_rss_mb"] = peak_rss_mb()
            rank_figures = {"rank": rank, "peak_rss_mb": result["peak_rss_mb"], "total": result["total_seconds"]}
            if "timings" in result:  # rank 0 publishes, so only it has the manifest's timings
                rank_figures["epoch"] = run_figures(result)["epoch"]
            Path(rank_dir, f"rank-{rank}.json").write_text(json.dumps(rank_figures))
        print(json.dumps(result, default=float))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="20000,50000", help="comma-separated user counts, one size each")
    parser.add_argument("--per-user", type=float, default=13.3, help="mean interactions per user")
    parser.add_argument("--items-per-user", type=float, default=0.3, help="items = this x users")
    parser.add_argument("--communities", type=int, default=50)
    parser.add_argument("--methods", default="legcf,c2f")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per phase (per-epoch costs are the figures)")
    parser.add_argument("--params", default="{}", help="extra TrainConfig fields as a JSON object")
    parser.add_argument("--requests", type=int, default=200, help="recommend() calls timed per size")
    parser.add_argument("--torchrun", type=int, default=0, help="also train under torchrun with K CPU ranks")
    parser.add_argument(
        "--torchrun-only",
        action="store_true",
        help="with --torchrun: train only under torchrun (no single-process run, no serving)",
    )
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", required=True, help="directory for data, artifacts and results")
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="SCALE_JSON",
        help="run nothing: one table and the growth exponents from the sizes of several earlier scale.json files "
        "(a later file's run of the same size and method replaces an earlier one)",
    )
    args = parser.parse_args(argv)
    if args.torchrun_only and args.torchrun < 2:
        parser.error("--torchrun-only needs --torchrun K with K >= 2")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        return merge_reports([Path(p) for p in args.merge], out)
    results: list[dict[str, Any]] = []
    table = ""
    for users in args.users.split(","):
        # Written after every size, so that a long run's smaller sizes survive if a larger one is stopped.
        results.append(run_size(args, int(users)))
        report = {
            "command": "python benchmarks/scale.py " + " ".join(argv),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine().describe(),
            "results": results,
            "exponents": exponents(results),
        }
        (out / "scale.json").write_text(json.dumps(report, indent=2, default=float))
        table = markdown(results)
        (out / "scale.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
