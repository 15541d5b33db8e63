"""benchmarks/foldin.py: one tiny end-to-end point (held-out users folded in) and its report; no quality figure is
asserted beyond "better than nothing" (the study's figures live in BENCHMARKS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import benchmarks.foldin as bench
from c2f.trainer.synthetic import planted_communities, write_lightgcn_dir

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--param=dim=8", "--param=layers=1", "--param=epochs=3", "--param=batch_size=512", "--param=patience=1"]


def test_metrics_follow_lightgcns_definitions() -> None:
    ranked = np.array([["a", "b"] + [""] * 18])
    recall, ndcg = bench.metrics(ranked, [{"b", "z"}])
    assert recall[0] == 0.5
    assert ndcg[0] == (1 / np.log2(3)) / (1 + 1 / np.log2(3))


def test_one_point_holds_users_and_items_out_and_folds_them_in(tmp_path: Path) -> None:
    users, items, _, _ = planted_communities(n_users=300, n_items=200)
    data = write_lightgcn_dir(tmp_path / "data", users, items)
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "foldin.py"), "--out", str(out), "--datasets", str(data)]
    cmd += ["--seeds", "7", "--items", *TINY]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = (out / "results").glob("*.json")
    result = json.loads(path.read_text())
    train_users = {line.split()[0] for line in (data / "train.txt").read_text().splitlines()}
    assert result["heldout_users"] == round(0.1 * len(train_users))
    kept = {line.split()[0] for line in next((out / "data").iterdir()).joinpath("train.txt").read_text().splitlines()}
    assert len(kept) == len(train_users) - result["heldout_users"]  # they were not trained
    rows = result["rows"]
    assert set(rows) >= {"foldin_least_squares+map", "trained", "popularity", "full_model_foldin_least_squares+map"}
    # planted communities: folding in from a user's items beats the popularity list by far
    assert rows["foldin_least_squares+map"]["recall@20"] > rows["popularity"]["recall@20"] + 0.05
    # items held out: without fold-in they can never be recommended; folded in, some of their test interactions hit
    items = result["items"]["rows"]
    assert items["items_absent"]["new_item_recall"] == 0.0
    assert items["items_folded_in"]["new_item_recall"] > 0.05
    b = result["bytes"]
    assert 0 < b["items_only_bytes"] < b["served_bytes"]
    assert "foldin_least_squares+map" in bench.render([path]) and "served by fold-in instead" in bench.render([path])
