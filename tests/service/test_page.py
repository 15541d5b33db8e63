"""GET / (status page) and GET /models/{version}/curve.png; plus a headless-Chromium screenshot of the page.

The artifact is built by hand with ``service.artifact.publish`` (numpy only, no trainer), so these tests are fast.
"""

from __future__ import annotations

import html
import io
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from c2f.contract.artifact import publish, version_path
from c2f.service.main import create_app
from c2f.service.settings import Settings

TRAINED = {"recall@20": 0.3125, "ndcg@20": 0.2011, "recall@10": 0.2222, "ndcg@10": 0.1733}
SERVED = {"recall@20": 0.3100, "ndcg@20": 0.1998, "recall@10": 0.2201, "ndcg@10": 0.1712}


def _png_bytes(width: int = 120, height: int = 60) -> bytes:
    pil = pytest.importorskip("PIL.Image")
    img = pil.new("RGB", (width, height), (255, 255, 255))
    for x in range(width):
        img.putpixel((x, height - 1 - (x * (height - 1)) // width), (47, 111, 222))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_c2f_artifact(
    root: Path,
    *,
    n_users: int = 30,
    n_items: int = 40,
    d: int = 16,
    m_c: int = 6,
    t_c: int = 2,
    m_r: int = 3,
    t_r: int = 2,
    curve: bool = True,
    seed: int = 0,
) -> str:
    """Publish a small, valid c2f artifact with random arrays under ``root``; return its version."""
    rng = np.random.default_rng(seed)
    n = n_users + n_items
    dense = rng.random((n_users, n_items)) < 0.15
    dense[np.arange(n_users), np.arange(n_users) % n_items] = True
    indptr = np.concatenate([[0], np.cumsum(dense.sum(1))]).astype(np.int64)
    indices = np.nonzero(dense)[1].astype(np.int32)
    e_r = rng.standard_normal((m_r, d)).astype(np.float32)
    e_r[np.abs(e_r) < 0.7] = 0
    e_r_indptr = np.concatenate([[0], np.cumsum((e_r != 0).sum(1))]).astype(np.int64)
    e_r_indices = np.nonzero(e_r)[1].astype(np.int32)
    s_c_w = rng.random((n, t_c)).astype(np.float32)
    arrays = {
        "user_ids": np.array([f"u{u}" for u in range(n_users)]),
        "item_ids": np.array([f"item-{i:03d}" for i in range(n_items)]),
        "graph_indptr": indptr,
        "graph_indices": indices,
        "heldout_indptr": np.zeros(n_users + 1, dtype=np.int64),
        "heldout_indices": np.zeros(0, dtype=np.int32),
        "S_c_idx": np.stack([rng.choice(m_c, size=t_c, replace=False) for _ in range(n)]).astype(np.int32),
        "S_c_w": s_c_w,
        "S_c_idx_served": np.stack([rng.choice(m_c, size=t_c, replace=False) for _ in range(n)]).astype(np.int32),
        "S_c_w_served": s_c_w.copy(),
        "H_meta": rng.standard_normal((m_c, d)).astype(np.float32),
        "E_c": rng.standard_normal((m_c, d)).astype(np.float32),
        "S_r_idx": np.stack([rng.choice(m_r, size=t_r, replace=False) for _ in range(m_c)]).astype(np.int32),
        "S_r_w": rng.random((m_c, t_r)).astype(np.float32),
        "E_r_indptr": e_r_indptr,
        "E_r_indices": e_r_indices,
        "E_r_data": e_r[e_r != 0].astype(np.float32),
    }
    manifest = {
        "method": "c2f",
        "dataset": {"uri": "synthetic://page-test", "content_hash": "0" * 64, "stats": {"n_users": n_users}},
        "config": {"method": "c2f", "dim": d, "layers": 2},
        "shape": {"layers": 2},
        "w_cr": 0.5,
        "soft_lambda": 0.1,
        "metrics": {
            "trained": {"valid": dict(TRAINED), "test": dict(TRAINED)},
            "served": {"compressed": {"test": dict(SERVED)}, "exact": {"test": dict(TRAINED)}},
            "history": [],
            "timings": {},
        },
    }
    extra = {"curve.png": _png_bytes()} if curve else None
    return publish(root, arrays, manifest, extra_files=extra)


@pytest.fixture()
def artifact_root(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "artifacts"
    return root, make_c2f_artifact(root)


def _settings(root: Path, **kw) -> Settings:
    return Settings(artifact_root=str(root), reload_seconds=0, redis_url=None, data_root=root.parent, **kw)


def _bar_bytes(page: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-key="(\w+)" data-bytes="(\d+)"', page)}


def test_page_renders_model_footprint_metrics(artifact_root):
    root, version = artifact_root
    with TestClient(create_app(_settings(root))) as client:
        resp = client.get("/")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/html")
        page = resp.text
        fp = client.get("/footprint").json()
    assert version in page
    bars = _bar_bytes(page)
    assert bars == {
        "full": fp["full_table_bytes"],
        "embedding": fp["embedding_bytes"],
        "serving": fp["serving_memory_bytes"],
    }
    for name, size in fp["components"].items():
        assert f'data-component="{name}">{size}<' in page
    assert f'data-component="total">{fp["total_bytes"]}<' in page
    assert f"{fp['params_paper']:,}" in page
    assert "<svg" in page and "bar-model" in page
    # served-vs-trained table: every number of the manifest, formatted as shown
    for key in TRAINED:
        assert f"<td>{key}</td>" in page
        assert f"{TRAINED[key]:.4f}" in page and f"{SERVED[key]:.4f}" in page
    assert fp["metrics"]["served"]["compressed"]["test"]["recall@20"] == SERVED["recall@20"]
    assert f'src="/models/{version}/curve.png"' in page
    assert 'id="rec-form"' in page and "fetch(" in page
    # no Redis configured: the jobs part says so and the page still renders
    assert 'id="jobs-unavailable"' in page


def _budget_run(directory: Path, method: str, budget: float, nbytes: int, recall: float, fits: bool = True) -> None:
    run = {"method": method, "budget": budget, "seed": 2024, "fits": fits}
    if fits:
        run.update(bytes=nbytes, served={"recall@20": recall, "ndcg@20": recall / 2})
    (directory / f"{method}-{budget:g}pct-seed2024.json").write_text(__import__("json").dumps(run))


def test_page_plots_the_budget_benchmark_with_the_served_model(artifact_root, tmp_path):
    root, version = artifact_root
    results = tmp_path / "budget-results"
    results.mkdir()
    _budget_run(results, "ud", 2, 20_000, 0.10)
    _budget_run(results, "hash", 2, 19_000, 0.05)
    _budget_run(results, "legcf", 2, 0, 0.0, fits=False)  # "does not fit": no point
    (results / "garbage.json").write_text("{not json")  # skipped, never an error
    with TestClient(create_app(_settings(root))) as client:
        assert 'id="budget"' not in client.get("/").text  # not configured: no section
    with TestClient(create_app(_settings(root, budget_results=results))) as client:
        page = client.get("/").text
        fp = client.get("/footprint").json()
    assert page.count('class="budget-point"') == 2
    served = re.search(r'<circle id="budget-served" cx="([\d.]+)" cy="([\d.]+)"', page)
    assert served, "the served model's point is drawn"
    assert f"served {version}: R@20 {SERVED['recall@20']:.4f}" in page
    # x is log bytes: the served model (its embedding bytes) sits left or right of the ud point accordingly
    ud_x = float(re.search(r'cx="([\d.]+)" cy="[\d.]+" r="4" fill="#4e79a7"', page).group(1))
    assert (float(served.group(1)) > ud_x) == (fp["embedding_bytes"] > 20_000)
    with TestClient(create_app(_settings(root, budget_results=tmp_path / "missing"))) as client:
        assert "No budget benchmark results found." in client.get("/").text


def test_served_counted_results_place_the_model_at_what_serving_holds(artifact_root, tmp_path):
    root, _ = artifact_root
    with TestClient(create_app(_settings(root))) as client:
        fp = client.get("/footprint").json()
    assert fp["serving_memory_bytes"] < fp["embedding_bytes"]
    middle = (fp["serving_memory_bytes"] + fp["embedding_bytes"]) // 2  # a point between the two countings
    for counts, left_of_it in (("stored", False), ("served", True)):
        results = tmp_path / counts
        results.mkdir()
        _budget_run(results, "ud", 2, middle, 0.10)
        _budget_run(results, "hash", 2, 10, 0.05)
        for path in results.glob("*.json"):
            path.write_text(path.read_text()[:-1] + f', "counts": "{counts}"}}')
        with TestClient(create_app(_settings(root, budget_results=results))) as client:
            page = client.get("/").text
        served = re.search(r'<circle id="budget-served" cx="([\d.]+)"', page)
        ud_x = float(re.search(r'cx="([\d.]+)" cy="[\d.]+" r="4" fill="#4e79a7"', page).group(1))
        assert served is not None and (float(served.group(1)) < ud_x) == left_of_it, counts


def test_page_without_model(tmp_path):
    root = tmp_path / "empty"
    with TestClient(create_app(_settings(root))) as client:
        resp = client.get("/")
        assert client.get("/health/ready").status_code == 503
    assert resp.status_code == 200
    assert 'id="no-model"' in resp.text
    assert "data-bytes" not in resp.text


def test_page_when_redis_is_down(artifact_root):
    root, version = artifact_root
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(
        artifact_root=str(root), reload_seconds=0, redis_url=f"redis://127.0.0.1:{port}/0", data_root=root.parent
    )
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        resp = client.get("/")
        elapsed = time.monotonic() - started
    assert resp.status_code == 200
    assert version in resp.text
    assert 'id="jobs-unavailable"' in resp.text
    assert elapsed < 10


def test_page_escapes_untrusted_text(tmp_path):
    root = tmp_path / "artifacts"
    make_c2f_artifact(root)
    settings = _settings(root)
    app = create_app(settings)
    with TestClient(app) as client:
        model = app.state.registry.current
        model.artifact.manifest.dataset.uri = "<script>alert(1)</script>"
        page = client.get("/").text
    assert "<script>alert(1)</script>" not in page
    assert html.escape("<script>alert(1)</script>") in page or "&lt;script&gt;" in page


def test_page_lists_recent_jobs(artifact_root, monkeypatch):
    jobs_module = pytest.importorskip("c2f.service.jobs")
    root, version = artifact_root
    served = {"recall@20": 0.4321, "ndcg@20": 0.1234}
    fake = [
        {"job_id": "aaaaaaaa-started", "status": "started", "method": "c2f", "stage": "fine", "epoch": 7,
         "loss": 0.25, "valid": {"ndcg@20": 0.3}, "enqueued_at": "2026-01-02T03:04:05.000001Z",
         "elapsed_seconds": 12.0, "model_version": None},
        {"job_id": "bbbbbbbb-finished", "status": "finished", "method": "c2f", "stage": "export", "epoch": 0,
         "enqueued_at": "2026-01-02T03:00:00Z", "elapsed_seconds": 30.0, "model_version": version,
         "metrics": {"served": {"compressed": {"test": served}}}},
        {"job_id": "cccccccc-failed", "status": "failed", "method": "ud", "stage": "loading",
         "error": "DatasetError: train.txt:2: non-integer id '<x>'", "enqueued_at": None,
         "elapsed_seconds": None, "model_version": None},
        {"job_id": "dddddddd-queued", "status": "queued", "method": "legcf", "position": 0,
         "enqueued_at": "2026-01-02T03:05:00Z", "model_version": None},
    ]  # fmt: skip
    monkeypatch.setattr(jobs_module, "list_jobs", lambda settings, limit=10: fake)
    with TestClient(create_app(_settings(root))) as client:
        page = client.get("/").text
    assert 'id="jobs-unavailable"' not in page
    for job in fake:
        assert f'href="/jobs/{job["job_id"]}"' in page
        assert f'class="pill {job["status"]}"' in page
    assert "fine · epoch 7 · loss 0.2500 · valid ndcg@20 0.3000" in page
    assert "served test recall@20 0.4321, ndcg@20 0.1234" in page
    assert f'<a href="/models/{version}/curve.png">curve.png</a>' in page
    assert "non-integer id &#39;&lt;x&gt;&#39;" in page  # escaped
    assert "queued (position 0)" in page
    assert "01-02 03:04:05" in page


def test_metrics_table_keeps_ranking_metrics_only():
    from c2f.contract.manifest import Manifest
    from c2f.service.routes.page import metrics_table

    test = {"recall@20": 0.5, "ndcg@5": 0.2, "recall@5": 0.3, "n_users": 300}
    table = metrics_table(Manifest.model_validate({"method": "c2f", "metrics": {"trained": {"test": test}}}))
    assert [row["name"] for row in table["rows"]] == ["ndcg@5", "recall@5", "recall@20"]
    assert table["columns"] == [("trained", "trained (test)")]
    assert metrics_table(Manifest(method="c2f"))["rows"] == []


def test_curve_route(artifact_root):
    root, version = artifact_root
    with TestClient(create_app(_settings(root))) as client:
        ok = client.get(f"/models/{version}/curve.png")
        assert ok.status_code == 200
        assert ok.headers["content-type"] == "image/png"
        assert ok.content.startswith(b"\x89PNG")
        assert ok.content == (version_path(root, version) / "curve.png").read_bytes()
        for bad in ("..", "latest", "20240101T000000000000Z-evil", "..%2F..%2Fetc"):
            resp = client.get(f"/models/{bad}/curve.png")
            assert resp.status_code == 404, bad
            assert resp.json()["error"]["code"] == "not_found"
        other = make_c2f_artifact(root, curve=False, seed=1)
        missing = client.get(f"/models/{other}/curve.png")
        assert missing.status_code == 404


# ---------------------------------------------------------------------------------------------------------------
# Headless Chromium: the page as a browser draws it.


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed")
def test_page_screenshot_in_headless_chromium(artifact_root, tmp_path):
    uvicorn = pytest.importorskip("uvicorn")
    image_mod = pytest.importorskip("PIL.Image")
    root, version = artifact_root
    browser = _chromium()
    assert browser is not None
    port = _free_port()
    config = uvicorn.Config(create_app(_settings(root)), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert thread.is_alive(), "uvicorn exited"
            time.sleep(0.05)
        png = tmp_path / "status.png"
        # ?user=u0 makes the page's script submit the recommendation form, i.e. fetch() /recommend/u0.
        url = f"http://127.0.0.1:{port}/?user=u0&n=5"
        base = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,900",
            "--virtual-time-budget=10000",
        ]
        shot = [*base, f"--user-data-dir={tmp_path / 'profile-shot'}", f"--screenshot={png}", url]
        proc = subprocess.run(shot, capture_output=True, text=True, timeout=120, check=False)
        assert png.is_file(), f"no screenshot (rc {proc.returncode}): {proc.stderr[-2000:]}"
        dump = [*base, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom", url]
        dom = subprocess.run(dump, capture_output=True, text=True, timeout=120, check=False).stdout
    finally:
        server.should_exit = True
        thread.join(15)
    # the screenshot stays in tmp_path (pytest keeps the last runs' directories) for a person to look at
    # the form's fetch() ran in the browser and listed the items /recommend returned
    with TestClient(create_app(_settings(root))) as client:
        expected = [x["item_id"] for x in client.get("/recommend/u0", params={"n": 5}).json()["items"]]
    listed = re.search(r'<ol id="rec-items">(.*?)</ol>', dom, flags=re.DOTALL)
    assert listed, f"no recommendation list in the rendered DOM: {dom[-1500:]}"
    assert re.findall(r"<li>([^<]+)<span", listed.group(1)) == expected
    with image_mod.open(png) as img:
        rgb = img.convert("RGB")
        assert rgb.size == (1200, 900)
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 20, f"the screenshot looks blank ({len(colours)} colours)"
        # the footprint chart's bar colours are on screen
        present = {c for _, c in colours}
        assert (47, 111, 222) in present, "the model bar (#2f6fde) is not drawn"
        assert (184, 192, 204) in present, "the full-table bar (#b8c0cc) is not drawn"
