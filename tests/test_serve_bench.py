"""Smoke test of benchmarks/serve_bench.py on a tiny synthetic artifact: every function runs and the report renders."""

from __future__ import annotations

import gc
import importlib.util
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import benchmarks.serve_bench as bench
from c2f.contract.artifact import load_artifact
from c2f.contract.config import TrainConfig
from c2f.service.scoring import Recommender
from c2f.trainer.pipeline import train_and_publish
from c2f.trainer.synthetic import planted_communities, write_lightgcn_dir

ROOT = Path(__file__).resolve().parents[1]
TINY: dict[str, Any] = dict(method="c2f", dim=16, m_c=16, m_r=4, t_r=2, d_r=8, epochs=2, batch_size=1024, seed=3)


@pytest.fixture(scope="module")
def artifact_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    users, items, _, _ = planted_communities(n_users=200, n_items=150, n_communities=4, seed=5)
    data_dir = write_lightgcn_dir(tmp_path_factory.mktemp("bench_data"), users, items)
    root = tmp_path_factory.mktemp("bench_artifacts")
    train_and_publish(str(data_dir), TrainConfig.from_dict(TINY), root)
    return root


FAISS = pytest.param(
    "faiss",
    marks=pytest.mark.skipif(
        importlib.util.find_spec("faiss") is None, reason="faiss is not installed: FaissBaseline is not checked"
    ),
)


@pytest.mark.parametrize("baseline", ["dense", FAISS])
def test_baselines_agree_with_exact_mode(artifact_root, baseline):
    """DenseBaseline and FaissBaseline recommend exact mode's top items, none of them already seen."""
    _, vdir = bench.resolve_artifact(artifact_root)
    art = load_artifact(vdir)
    seen = bench.seen_csr(art.arrays, art.n_users)
    exact = Recommender(art, "exact")
    table = exact.user_embeddings(np.arange(art.n_users))
    items = exact.item_embeddings(np.arange(art.n_items))
    bias = art.arrays.get("item_bias")  # the service scores h_u·h_i + b_i: fold b_i in as [h_u, 1]·[h_i, b_i]
    if bias is not None:
        table = np.hstack([table, np.ones((len(table), 1), np.float32)])
        items = np.hstack([items, np.asarray(bias, np.float32)[:, None]])
    vectors = np.vstack([table, items])
    if baseline == "dense":
        model = bench.DenseBaseline(vectors, art.n_users, seen)
    else:
        model = bench.FaissBaseline(vectors, art.n_users, seen, threads=1)
    for u in (0, 3, 7, 42):
        assert set(model.recommend(u, 5).tolist()) == set(exact.recommend(u, 5)[0].tolist())
        assert not np.isin(model.recommend(u, 5), exact.seen_items(u)).any()


def test_inprocess_bench_and_report(artifact_root, tmp_path):
    _, vdir = bench.resolve_artifact(artifact_root)
    art = load_artifact(vdir)
    result = bench.inprocess_bench(art, n_users=30, ns=(5, 10), warmup=3)
    methods = {r["method"] for r in result.rows}
    assert any(m.startswith("Recommender compressed") for m in methods)
    assert any(m.startswith("numpy dense") for m in methods)
    assert all(r["count"] == 30 and r["p50"] > 0 and r["p99"] >= r["p50"] for r in result.rows)
    assert set(result.stages) == {"compressed", "exact"}
    assert bench.speedup(result.rows, 5, "Recommender compressed", "numpy dense") is not None

    text = bench.render_markdown(
        command="python benchmarks/serve_bench.py --x",
        machine=bench.machine_info(),
        artifact=art,
        trained_epochs=2,
        inproc=result,
        http=None,
        threads=1,
    )
    assert "| path | n | p50 µs |" in text and "Target compressed" in text
    out = tmp_path / "B.md"
    bench.append_markdown(text, out)
    bench.append_markdown(text, out)
    body = out.read_text()
    assert body.startswith("# ") and body.count("### Serving benchmark") == 2


WRK = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")


def test_wrk_summary_is_parsed():
    sample = (
        "Running 1s test @ http://127.0.0.1:1/\n  1 threads and 8 connections\n"
        'C2F_WRK {"requests": 13400, "duration_us": 10000000, "bytes": 9000000, "connect": 0, "read": 1, "write": 0, '
        '"status": 2, "timeout": 3, "mean_us": 6020.5, "max_us": 30510, "p50_us": 5900, "p90_us": 7000, '
        '"p99_us": 850}\n'
        "Requests/sec:   1339.50\n"
    )
    r = bench.parse_wrk_summary(sample)
    assert r["p50_ms"] == pytest.approx(5.9) and r["p99_ms"] == pytest.approx(0.85) and r["max_ms"] == 30.51
    assert r["achieved_rps"] == pytest.approx(1340.0) and r["sent"] == 13400 and r["ok"] == 13398
    assert r["errors"] == 6 and r["error_kinds"] == {"HTTP >= 400": 2, "read": 1, "timeout": 3}
    with pytest.raises(ValueError, match="no C2F_WRK line"):
        bench.parse_wrk_summary("Running 1s test\n")


def test_the_wrk_script_cycles_the_paths_and_paces_only_when_asked():
    paced = bench.wrk_script(['/recommend/a"b?n=20', "/recommend/c?n=20"], pace_ms=64.0)
    assert 'local paths = {"/recommend/a\\"b?n=20","/recommend/c?n=20"}' in paced
    assert "local pace_ms = 64.0" in paced and "delay = function()" in paced and "C2F_WRK " in paced
    assert "local pace_ms = 0.0" in bench.wrk_script(["/x"])  # delay() is only defined when pace_ms > 0


def test_without_wrk_the_http_part_says_how_to_install_it_and_is_skipped(artifact_root, monkeypatch, capsys):
    monkeypatch.setattr(bench.shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(FileNotFoundError, match="apt-get install wrk"):
        bench.http_bench(artifact_root, ["u0"])
    try:
        assert bench.main(["--artifact", str(artifact_root), "--skip-inprocess"]) == 0
    finally:
        gc.unfreeze()
    captured = capsys.readouterr()
    assert "HTTP: wrk is not installed, so the HTTP part is skipped" in captured.out
    assert "apt-get install wrk" in captured.err


@WRK
def test_http_bench_against_c2f_serve(artifact_root):
    art = load_artifact(bench.resolve_artifact(artifact_root)[1])
    user_ids = [str(u) for u in art.arrays["user_ids"][:20]] + ["nobody"]
    http = bench.http_bench(
        artifact_root, user_ids, rate=100, duration=1, closed_duration=1, concurrency=2, paced_connections=4
    )
    paced, closed = http["paced"], http["closed"]
    assert paced["client"] == closed["client"] == "wrk -t1" and paced["connections"] == 4
    assert paced["offered_rps"] == 100 and 20 < paced["sent"] < 200 and paced["achieved_rps"] > 20
    assert paced["errors"] > 0 and paced["error_kinds"] == {"HTTP >= 400": paced["errors"]}  # "nobody": HTTP 404
    assert paced["ok"] == paced["sent"] - paced["errors"]
    assert paced["p99_ms"] >= paced["p50_ms"] > 0 and paced["server_cpu_ms_per_req"] > 0
    assert closed["ok"] > 0 and closed["achieved_rps"] > 0 and closed["offered_rps"] is None
    assert http["rss_ready_mb"] > 10 and http["rss_after_mb"] > 10
    gc_paced = paced["server_gc"]  # read from the server's /metrics around the paced run
    assert gc_paced["count"] >= 0 and gc_paced["over_10ms"] <= gc_paced["count"]
    assert gc_paced["max_seconds_since_start"] > 0  # the load's gc.collect() at least
    text = bench.render_markdown(
        command="x",
        machine=bench.machine_info(),
        artifact=art,
        trained_epochs=None,
        inproc=None,
        http=http,
        threads=1,
    )
    assert "| paced 1 s | wrk -t1 | 4 | 100 |" in text and "| closed loop" in text and "RSS ≤ 200 MB" in text
    assert "coordinated omission" in text


def test_the_wrk_script_posts_one_body_per_path_when_given():
    script = bench.wrk_script(["/recommend", "/recommend"], bodies=['{"items": ["a"]}', '{"items": ["b\\"c"]}'])
    assert (
        'local bodies = {"{\\"items\\": [\\"a\\"]}"' in script
        and 'wrk.format("POST", paths[k], json, bodies[k])' in script
    )
    assert "local bodies = {}" in bench.wrk_script(["/x"])  # GETs without bodies
