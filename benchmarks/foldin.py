"""Fold-in quality: users (and items) held out of training entirely, folded in from their training interactions.

    python benchmarks/foldin.py --datasets lastfm,ml-1m --seeds 2024,2025,2026 --out /tmp/foldin
    python benchmarks/foldin.py --render /tmp/foldin/results/*.json
    python benchmarks/foldin.py --latency --out /tmp/foldin-latency   # per-request cost at Gowalla's size

For each (dataset, seed): 10% of the users that have training and test interactions (seeded) are removed from every
split, and the default method (``c2f.train(DIR, seed=...)``, exactly what ``c2f train DIR`` trains) is trained on
what is left ("held-out model") and, for comparison, on the whole dataset ("full model"). The held-out users are
then ranked by the held-out model from a vector folded in from their training items (``Model.recommend_from_items``,
each fold-in estimator), with their training and validation items masked, and their test items scored (R@20 and
N@20, LightGCN's definitions: recall over all test items). Against: (a) the same users as trained by the full model
(``Model.recommend``), (b) popularity of the held-out model's training data, masked the same way. The full model's
own users folded in from their training items (instead of their trained vectors) are a fourth row: what serving
users without storing their vectors would give.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as `python benchmarks/NAME.py`: see benchmarks/_as_script.py
    import _as_script  # noqa: F401

from benchmarks.common import DATA, machine, paired_t

HOLDOUT_FRACTION = 0.1
K = 20
ESTIMATORS = ("least_squares+map", "propagate+map", "least_squares", "propagate")
REFERENCE_DIM = 128  # bytes as % of the float32 N × 128 table, as benchmarks/quality.py counts them
# the stored arrays with one row per entity (users then items) that each served form reads (Footprint.served_form;
# None: ud's stored table): a model serving its users by fold-in keeps only their item rows (pq_item_scale and
# item_bias have item rows only already)
PER_ENTITY_ARRAYS = {
    None: ("H_full",),
    "sparse": ("S_c_idx_served", "S_c_w_served"),
    "pq": ("pq_codes",),
    "sparse+pq": ("S_c_idx_served", "S_c_w_served", "pq_codes"),
}


def read_split(path: Path) -> dict[str, list[str]]:
    """A LightGCN text file (``user item item ...``) as {user: [items]}; {} when the file is absent."""
    out: dict[str, list[str]] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts:
            out.setdefault(parts[0], []).extend(parts[1:])
    return out


def write_split(path: Path, split: dict[str, list[str]], drop: set[str]) -> None:
    lines = [" ".join([u, *items]) for u, items in split.items() if u not in drop and items]
    path.write_text("\n".join(lines) + "\n")


class OriginalIds:
    """A model trained on a LightGCN directory with ``user_list.txt`` / ``item_list.txt`` (Gowalla) names users and
    items by their original ids, while the split files (and a model trained on the held-out copy, which has no lists)
    use the 0-based ones: this wraps such a model so that it is asked and answers in the 0-based ids."""

    def __init__(self, model: Any, source: Path) -> None:
        self.model = model
        self._user = _list_map(source / "user_list.txt")
        self._item = _list_map(source / "item_list.txt")
        self._item_back = {v: k for k, v in self._item.items()}

    def _items(self, ids: Any) -> list[str]:
        return [self._item.get(i, i) for i in ids]

    def _back(self, ids: np.ndarray) -> np.ndarray:
        return np.vectorize(lambda i: self._item_back.get(i, i), otypes=[object])(ids) if ids.size else ids

    def recommend(self, users: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = self.model.recommend([self._user.get(u, u) for u in users], n=n)
        return self._back(ids), scores

    def recommend_from_items(self, items: list[str], **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if "exclude" in kwargs:
            kwargs["exclude"] = self._items(kwargs["exclude"])
        ids, scores = self.model.recommend_from_items(self._items(items), **kwargs)
        return self._back(ids), scores

    def footprint(self) -> Any:
        return self.model.footprint()


def _list_map(path: Path) -> dict[str, str]:
    """0-based id -> original id of a LightGCN ``*_list.txt`` (header ``org_id remap_id``); {} when absent."""
    if not path.exists():
        return {}
    rows = (line.split() for line in path.read_text().splitlines()[1:])
    return {remap: org for org, remap in (r for r in rows if len(r) == 2)}


def metrics(ranked: np.ndarray, tests: list[set[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-user recall@K and ndcg@K of ranked item ids (B, K) against test item sets."""
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    recall = np.zeros(len(tests))
    ndcg = np.zeros(len(tests))
    for row, test in enumerate(tests):
        hits = np.fromiter((item in test for item in ranked[row]), dtype=bool, count=ranked.shape[1])
        recall[row] = hits.sum() / len(test)
        ndcg[row] = (hits * discounts[: hits.size]).sum() / discounts[: min(len(test), K)].sum()
    return recall, ndcg


ITEM_EVAL_USERS = 3000  # users (seeded sample) the item experiment ranks for


def item_rows(
    splits: dict[str, dict[str, list[str]]], held_items: list[str], folded: Any, full: Any, seed: int
) -> dict[str, dict[str, float]]:
    """Items held out of training, folded in from their training users (``Recommender.fold_in_items``) and ranked
    with the model's own items. R@20 / N@20 of a sample of test users over all their test items, and recall over
    the test interactions with held-out items only (``new_item_recall``), for: the model with the folded-in items,
    the same model without them (they can never be recommended), and the full model (trained with them)."""
    rec = folded.recommender
    held = set(held_items)
    histories, kept = [], []
    for item in held_items:
        users = [rec.user_index(u) for u, items in splits["train"].items() if item in items]
        users = [u for u in users if u is not None]
        if users:
            histories.append(np.asarray(users))
            kept.append(item)
    vectors, biases = rec.fold_in_items(histories)
    candidates = [u for u, t in splits["test"].items() if t and rec.user_index(u) is not None]
    rng = np.random.default_rng(seed)
    users = sorted(rng.choice(candidates, size=min(ITEM_EVAL_USERS, len(candidates)), replace=False).tolist())
    tests = [set(splits["test"][u]) for u in users]
    all_ids = np.concatenate([folded.item_ids.astype(str), np.array(kept, dtype=str)])
    position = {item: i for i, item in enumerate(all_ids.tolist())}
    uidx = np.array([rec.user_index(u) for u in users])
    scores = np.hstack(
        [rec.user_scores(uidx), rec.user_embeddings(uidx) @ vectors.T + (0 if biases is None else biases)]
    )
    for row, user in enumerate(users):
        seen = [position[i] for i in (*splits["train"][user], *splits["valid"].get(user, [])) if i in position]
        scores[row, seen] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :K]
    ranked = {
        "items_folded_in": all_ids[top],
        "items_absent": np.array([folded.recommend(u, n=K)[0] for u in users], dtype=object),
        "items_trained": full.recommend(users, n=K)[0],
    }
    rows: dict[str, dict[str, float]] = {}
    new_tests = [t & held for t in tests]
    with_new = [i for i, t in enumerate(new_tests) if t]
    for label, ids in ranked.items():
        recall, ndcg = metrics(np.asarray(ids), tests)
        new_recall, _ = metrics(np.asarray(ids)[with_new], [new_tests[i] for i in with_new])
        rows[label] = {
            "recall@20": float(recall.mean()),
            "ndcg@20": float(ndcg.mean()),
            "new_item_recall": float(new_recall.mean()),
        }
    return rows


def served_bytes(model: Any) -> dict[str, float]:
    """What compressed serving holds (the footprint's serving bytes), and what it would hold serving every user by
    fold-in: the item rows of the per-entity arrays, the shared arrays, and the fold-in's (d, d) map and offset
    (float32); both also as % of the float32 N × 128 table."""
    footprint = model.footprint()
    served = int(footprint.serving_memory_bytes)
    user_share = footprint.n_users / footprint.n_entities
    per_entity = PER_ENTITY_ARRAYS[footprint.served_form]
    user_rows = sum(footprint.arrays.get(name, 0) for name in per_entity) * user_share
    items_only = served - user_rows + (footprint.d + 1) * footprint.d * 4
    table = footprint.n_entities * REFERENCE_DIM * 4
    return {
        "served_bytes": served,
        "served_pct": 100 * served / table,
        "items_only_bytes": items_only,
        "items_only_pct": 100 * items_only / table,
    }


def run_one(
    dataset: str,
    seed: int,
    out: Path,
    method: str,
    params: dict[str, Any],
    label: str | None = None,
    items: bool = False,
    reuse: bool = False,
) -> dict[str, Any]:
    """Train the held-out and the full model of one (dataset, seed) and evaluate every row; the result as a dict."""
    import c2f

    source = Path(dataset) if Path(dataset).exists() else DATA / dataset
    splits = {name: read_split(source / f"{name}.txt") for name in ("train", "valid", "test")}
    eligible = sorted(u for u in splits["train"] if splits["test"].get(u))
    rng = np.random.default_rng(seed)
    held = sorted(rng.choice(eligible, size=max(1, round(HOLDOUT_FRACTION * len(eligible))), replace=False).tolist())
    reduced = out / "data" / f"{source.name}-seed{seed}"
    reduced.mkdir(parents=True, exist_ok=True)
    for name, split in splits.items():
        if split:
            write_split(reduced / f"{name}.txt", split, set(held))

    timings: dict[str, float] = {}
    models = {}
    tag = label or method

    def trained(data: Path, root: Path) -> tuple[Any, float]:
        """The model trained on ``data`` into ``root``, or the one published there already (``--reuse``)."""
        if reuse and (root / "LATEST").exists():
            return c2f.load(root), float("nan")
        start = time.perf_counter()
        model = c2f.train(str(data), method=method, out=root, progress=False, seed=seed, **params)
        return model, time.perf_counter() - start

    for kind, data in (("heldout", reduced), ("full", source)):
        models[kind], timings[f"train_{kind}_s"] = trained(
            data, out / "models" / f"{source.name}-{tag}-{kind}-seed{seed}"
        )

    histories = [splits["train"][u] for u in held]
    masks = [[*splits["train"][u], *splits["valid"].get(u, [])] for u in held]
    tests = [set(splits["test"][u]) for u in held]
    rows: dict[str, dict[str, float]] = {}

    def record(label: str, ranked: np.ndarray) -> None:
        recall, ndcg = metrics(ranked, tests)
        rows[label] = {"recall@20": float(recall.mean()), "ndcg@20": float(ndcg.mean())}

    held_model, full_model = models["heldout"], OriginalIds(models["full"], source)
    for estimator in ESTIMATORS:
        start = time.perf_counter()
        ranked_ids = np.full((len(held), K), "", dtype=object)
        for row, (history, mask) in enumerate(zip(histories, masks, strict=True)):
            # the history folds in; the validation items are masked too, as for a trained user
            ids, _ = held_model.recommend_from_items(history, n=K, exclude=mask, estimator=estimator)
            ranked_ids[row, : ids.size] = ids
        timings[f"foldin_{estimator}_ms_per_user"] = 1000 * (time.perf_counter() - start) / len(held)
        record(f"foldin_{estimator}", ranked_ids)
    trained_ids, _ = full_model.recommend(held, n=K)
    record("trained", trained_ids)
    for estimator in ESTIMATORS:
        ranked_ids = np.full((len(held), K), "", dtype=object)
        for row, (history, mask) in enumerate(zip(histories, masks, strict=True)):
            ids, _ = full_model.recommend_from_items(history, n=K, exclude=mask, estimator=estimator)
            ranked_ids[row, : ids.size] = ids
        record(f"full_model_foldin_{estimator}", ranked_ids)
    record("popularity", _popular(held_model, masks))
    item_results: dict[str, Any] = {}
    if items:  # 10% of the training items (seeded) removed from train and validation; test untouched
        trained_items = sorted({i for row in splits["train"].values() for i in row})
        held_items = sorted(
            rng.choice(trained_items, size=round(HOLDOUT_FRACTION * len(trained_items)), replace=False).tolist()
        )
        drop = set(held_items)
        item_data = out / "data" / f"{source.name}-items-seed{seed}"
        item_data.mkdir(parents=True, exist_ok=True)
        for name, split in splits.items():
            if split:
                kept = split if name == "test" else {u: [i for i in v if i not in drop] for u, v in split.items()}
                write_split(item_data / f"{name}.txt", kept, set())
        item_root = out / "models" / f"{source.name}-{tag}-items-seed{seed}"
        item_model, timings["train_items_s"] = trained(item_data, item_root)
        item_results = {
            "heldout_items": len(held_items),
            "rows": item_rows(splits, held_items, item_model, full_model, seed),
        }
    return {
        "items": item_results,
        "label": label or method,
        "bytes": served_bytes(full_model),
        "dataset": source.name,
        "seed": seed,
        "method": method,
        "params": params,
        "heldout_users": len(held),
        "users": len(eligible),
        "rows": rows,
        "timings": timings,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _popular(model: Any, masks: list[list[str]]) -> np.ndarray:
    """Top-K by training popularity of ``model`` for each mask."""
    rec = model.recommender
    out = np.full((len(masks), K), "", dtype=object)
    for row, mask in enumerate(masks):
        idx, _ = rec.popular(K, exclude=[i for i in (rec.item_index(m) for m in mask) if i is not None])
        out[row, : idx.size] = model.item_ids[idx]
    return out


def latency(out: Path, n_users: int, n_items: int, history: int, requests: int, seed: int = 0) -> dict[str, Any]:
    """Per-request cost of a visitor folded in from ``history`` items then ranked (``Model.recommend_from_items``,
    n = 20) in process, on a random c2f model of the given size (d = 128, m_c = 300, t_c = 4: Gowalla's default
    shape; random weights cost what trained ones do). Also the fold-in alone and the load (which fits the map)."""
    import c2f
    from benchmarks.artifacts import build_artifact, make_manifest

    version = build_artifact(
        out / "latency-model", "c2f", manifest=make_manifest("c2f"), n_users=n_users, n_items=n_items, d=128,
        m_c=300, t_c=4, m_r=300, t_r=2, seen_per_user=20, seed=seed,
    )  # fmt: skip
    start = time.perf_counter()
    model = c2f.load(out / "latency-model", version)
    load_s = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    histories = [model.item_ids[rng.choice(n_items, size=history, replace=False)].tolist() for _ in range(requests)]
    for items in histories[:50]:  # warm-up
        model.recommend_from_items(items, n=20)
    stages: dict[str, list[float]] = {"fold_in_us": [], "fold_in_and_top20_us": []}
    for items in histories:
        t0 = time.perf_counter()
        model.fold_in(items)
        t1 = time.perf_counter()
        model.recommend_from_items(items, n=20)
        t2 = time.perf_counter()
        stages["fold_in_us"].append(1e6 * (t1 - t0))
        stages["fold_in_and_top20_us"].append(1e6 * (t2 - t1))
    summary = {
        name: {q: float(np.percentile(v, p)) for q, p in (("p50", 50), ("p99", 99), ("max", 100))}
        for name, v in stages.items()
    }
    result = {"n_users": n_users, "n_items": n_items, "history": history, "requests": requests, "load_s": load_s}
    return {**result, **summary}


def http_latency(out: Path, history: int, rate: float, seconds: float, seed: int = 0) -> dict[str, Any]:
    """``POST /recommend`` with ``history`` items (n = 20) against ``c2f serve`` on :func:`latency`'s model, by wrk:
    a paced run at ``rate`` req/s (32 connections) and a closed loop (4 connections), ``seconds`` each."""
    import c2f
    from benchmarks.serve_bench import run_server, wrk_run

    model = c2f.load(out / "latency-model")
    rng = np.random.default_rng(seed)
    bodies = [
        json.dumps({"items": model.item_ids[rng.choice(model.item_ids.size, size=history, replace=False)].tolist()})
        for _ in range(500)
    ]
    paths = ["/recommend"] * len(bodies)
    with run_server(out / "latency-model") as (_, base):
        wrk_run(base, paths, connections=4, duration=2, bodies=bodies)  # warm-up
        paced = wrk_run(base, paths, connections=32, duration=seconds, rate=rate, bodies=bodies)
        closed = wrk_run(base, paths, connections=4, duration=seconds, bodies=bodies)
    return {"paced": paced, "closed_loop": closed}


def render(paths: list[Path]) -> str:
    """Per dataset: each row's R@20 / N@20 over seeds (mean ± std), and as % of the trained users' R@20."""
    results = [json.loads(p.read_text()) for p in paths]
    lines = []
    groups = sorted({(r["dataset"], r.get("label", r["method"])) for r in results})
    for dataset, label in groups:
        runs = [r for r in results if r["dataset"] == dataset and r.get("label", r["method"]) == label]
        runs.sort(key=lambda r: r["seed"])
        seeds = " ".join(str(r["seed"]) for r in runs)
        lines += [f"### {dataset}, {label} (seeds {seeds}; {runs[0]['heldout_users']} held-out users a seed)", ""]
        if "bytes" in runs[0]:
            b = runs[0]["bytes"]
            lines += [
                f"Served bytes {b['served_bytes']:,.0f} ({b['served_pct']:.2f}% of the float32 d = 128 table); "
                f"users served by fold-in instead: {b['items_only_bytes']:,.0f} ({b['items_only_pct']:.2f}%).",
                "",
            ]
        lines += ["| row | R@20 | N@20 | % of trained R@20 |", "|---|---|---|---|"]
        trained = np.array([r["rows"]["trained"]["recall@20"] for r in runs])
        for label in runs[0]["rows"]:
            rec = np.array([r["rows"][label]["recall@20"] for r in runs])
            ndcg = np.array([r["rows"][label]["ndcg@20"] for r in runs])
            pct = 100 * rec.mean() / trained.mean()
            cell = f"{rec.mean():.4f} ± {rec.std(ddof=1) if len(rec) > 1 else 0:.4f}"
            lines.append(f"| {label} | {cell} | {ndcg.mean():.4f} | {pct:.1f}% |")
        if runs[0].get("items"):
            lines += [
                "",
                f"Items held out ({runs[0]['items']['heldout_items']} a seed), folded in from their users:",
                "",
            ]
            lines += ["| row | R@20 | N@20 | recall of held-out items' test interactions |", "|---|---|---|---|"]
            for label in runs[0]["items"]["rows"]:
                cells = [
                    np.mean([r["items"]["rows"][label][k] for r in runs])
                    for k in ("recall@20", "ndcg@20", "new_item_recall")
                ]
                lines.append(f"| {label} | {cells[0]:.4f} | {cells[1]:.4f} | {cells[2]:.4f} |")
        if len(runs) > 1:
            first = f"foldin_{ESTIMATORS[0]}"
            base = np.array([r["rows"][first]["recall@20"] for r in runs])
            for other in [f"foldin_{e}" for e in ESTIMATORS[1:]] + ["trained"]:
                diff, p = paired_t(base, np.array([r["rows"][other]["recall@20"] for r in runs]))
                lines.append(f"\n{first} − {other}: {diff:+.4f} R@20 (paired t, p = {p:.3f})")
            served = np.array([r["rows"][f"full_model_{first}"]["recall@20"] for r in runs])
            diff, p = paired_t(served, np.array([r["rows"]["trained"]["recall@20"] for r in runs]))
            lines.append(f"\nfull_model_{first} − trained: {diff:+.4f} R@20 (paired t, p = {p:.4f})")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="lastfm,ml-1m")
    parser.add_argument("--seeds", default="2024,2025,2026")
    parser.add_argument("--method", default=None, help="default: TrainConfig's default method")
    parser.add_argument("--param", action="append", default=[], help="key=JSON value, passed to c2f.train")
    parser.add_argument("--label", help="names the result files (default: the method)")
    parser.add_argument("--items", action="store_true", help="also hold 10%% of the items out and fold them in")
    parser.add_argument("--reuse", action="store_true", help="load the models an earlier run published in --out")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--render", type=Path, nargs="*")
    parser.add_argument("--latency", action="store_true", help="time fold-in requests on a Gowalla-sized model")
    parser.add_argument("--latency-size", default="29858,40981", help="users,items of --latency's model")
    parser.add_argument("--history", type=int, default=50, help="items a --latency request folds in from")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--http", action="store_true", help="with --latency: also POST /recommend over HTTP (wrk)")
    parser.add_argument("--rate", type=float, default=100.0, help="--http's paced rate, requests/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="--http's duration of each run")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # dataset:seed, run in this process
    args = parser.parse_args()
    if args.render:
        print(render(args.render))
        return
    params = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
    if args.out is None:
        parser.error("--out is required to run")
    if args.latency:
        n_users, n_items = (int(v) for v in args.latency_size.split(","))
        result = latency(args.out, n_users, n_items, args.history, args.requests)
        if args.http:
            result["http"] = http_latency(args.out, args.history, args.rate, args.seconds)
        result["machine"] = machine().describe()
        print(json.dumps(result, indent=1))
        return
    method = args.method or "c2f"
    if args.one:
        dataset, seed = args.one.rsplit(":", 1)
        result = run_one(dataset, int(seed), args.out, method, params, args.label, args.items, args.reuse)
        result["machine"] = machine().describe()
        path = args.out / "results" / f"{result['dataset']}-{result['label']}-seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
        print(json.dumps(result["rows"], indent=1))
        return
    paths = []
    for dataset in args.datasets.split(","):
        for seed in args.seeds.split(","):
            print(f"== {dataset} seed {seed}", flush=True)
            cmd = [sys.executable, __file__, "--out", str(args.out), "--one", f"{dataset}:{seed}", "--method", method]
            cmd += [f"--param={p}" for p in args.param] + ([f"--label={args.label}"] if args.label else [])
            cmd += ["--items"] if args.items else []
            cmd += ["--reuse"] if args.reuse else []
            subprocess.run(cmd, check=True, env={**os.environ})
            paths.append(args.out / "results" / f"{Path(dataset).name}-{args.label or method}-seed{seed}.json")
    print(render(paths))


if __name__ == "__main__":
    main()
