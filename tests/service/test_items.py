"""Hidden items over HTTP (c2f/service/routes/items.py): a hidden item never appears in any answer of any process
sharing the Redis, within 2 s, without a new model version; hiding is undone, survives restarts and outlives Redis
outages on the serving side.

Real Redis at 127.0.0.1:6379, database 15 (skipped when unreachable); every test uses a catalog name of its own.
The model is tests/fixtures.py's tiny hand-computable one: alice's top items (seen items excluded) are i0, i4, i1.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from benchmarks.jobs import worker_env
from c2f.jobs.server import EmbeddedRedis
from c2f.service.main import create_app
from c2f.service.settings import Settings
from tests.fake_redis import frozen_redis
from tests.fixtures import assert_error, build_artifact, make_manifest, tiny_known_arrays
from tests.live import free_port
from tests.service.test_jobs import REDIS_URL, REPO, redis_or_skip, wait_for

pytestmark = pytest.mark.redis

KEY = "catalog-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def catalog_name() -> Iterator[str]:
    """A catalog of the test's own in Redis db 15, removed afterwards."""
    client = redis_or_skip()
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    for pattern in (f"c2f:catalog:{name}:*", f"c2f:events:{name}:*"):
        for key in client.scan_iter(pattern):
            client.delete(key)


@pytest.fixture
def tiny_root(artifact_root: Path) -> Path:
    build_artifact(artifact_root, "legcf", arrays=tiny_known_arrays(), manifest=make_manifest("legcf"))
    return artifact_root


def settings_for(root: Path, catalog_name: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "artifact_root": str(root),
        "reload_seconds": 0,
        "redis_url": REDIS_URL,
        "catalog_name": catalog_name,
        "events_namespace": catalog_name,
        "api_key": KEY,
        "hidden_refresh_seconds": 0.2,
        "access_log": False,
    }
    values.update(overrides)
    return Settings(**values)


def every_answer(client: TestClient | httpx.Client) -> dict[str, list[str]]:
    """Item ids of every route that answers items (GET /recommend by both parsers, with an allow-list and the popular
    fallback, similar items, POST /recommend folded in and its popular fallback, the batch route, a user known only
    from recorded events when there is one), for requests under which i0 would be answered."""
    out: dict[str, list[str]] = {}

    def ids(response: httpx.Response, key: str = "items") -> list[str]:
        assert response.status_code == 200, response.text
        return [it["item_id"] for it in response.json()[key]]

    out["recommend"] = ids(client.get("/recommend/alice?n=5"))  # the hand-parsed path
    out["recommend_fastapi"] = ids(client.get("/recommend/alice?n=5&n=5"))  # FastAPI's parameter solving
    out["recommend_allow"] = ids(client.get("/recommend/alice?n=5&items=i0,i1"))
    out["popular"] = ids(client.get("/recommend/nobody?n=5&fallback=popular&exclude_seen=false"))
    out["similar"] = ids(client.get("/similar-items/i4?n=5"))
    out["fold_in"] = ids(client.post("/recommend", json={"items": ["i2", "i3"], "n": 5, "exclude_seen": False}))
    out["fold_in_popular"] = ids(client.post("/recommend", json={"items": ["nope"], "n": 5}))
    carol = client.get("/recommend/carol?n=5&exclude_seen=false")  # a user only recorded events made known
    if carol.status_code == 200:
        assert carol.json()["strategy"] == "fold_in"
        out["events_user"] = ids(carol)
    batch = client.post("/recommend/batch", json={"user_ids": ["alice", "nobody"], "n": 5, "fallback": "popular"})
    assert batch.status_code == 200, batch.text
    for entry in batch.json()["results"]:
        out[f"batch_{entry['user_id']}"] = [it["item_id"] for it in entry["items"]]
    return out


def anywhere(answers: dict[str, list[str]], item_id: str) -> list[str]:
    return [route for route, ids in answers.items() if item_id in ids]


def test_hidden_item_never_appears_in_any_route_of_any_instance(tiny_root: Path, catalog_name: str) -> None:
    settings = settings_for(tiny_root, catalog_name)
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        events = [{"user_id": "carol", "item_id": item} for item in ("i2", "i3")]
        assert a.post("/interactions", json={"events": events}, headers=AUTH).status_code == 200
        wait_for(lambda: "events_user" in every_answer(b), 5.0, "instance b to read carol's events")
        assert set(anywhere(every_answer(a), "i0")) == set(every_answer(a))  # i0 is in every answer before
        version = a.get("/models").json()["loaded"]["version"]

        r = a.put("/items/i0/hidden", headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "item_id": "i0",
            "hidden": True,
            "changed": True,
            "count": 1,
            "version": r.json()["version"],
        }
        assert anywhere(every_answer(a), "i0") == []  # the process that changed it: at once
        started = time.monotonic()
        wait_for(lambda: not anywhere(every_answer(b), "i0"), 2.0, "instance b to stop answering i0", interval=0.05)
        print(f"\nhidden in the other instance after {time.monotonic() - started:.2f} s")
        assert anywhere(every_answer(b), "i0") == []
        assert every_answer(a)["recommend"] == ["i4", "i1"]  # alice's next items, order kept (i2, i3 are seen)
        assert every_answer(a)["recommend_allow"] == ["i1"]
        # no new model version was needed
        assert a.get("/models").json()["loaded"]["version"] == b.get("/models").json()["loaded"]["version"] == version

        listing = b.get("/items/hidden").json()
        assert listing["items"] == ["i0"] and listing["count"] == 1 and listing["stale"] is False
        assert a.put("/items/i0/hidden", headers=AUTH).json()["changed"] is False  # idempotent

        r = a.delete("/items/i0/hidden", headers=AUTH)
        assert r.status_code == 200 and r.json()["hidden"] is False and r.json()["changed"] is True
        assert every_answer(a)["recommend"] == ["i0", "i4", "i1"]  # restored at once here
        wait_for(lambda: "i0" in every_answer(b)["recommend"], 2.0, "instance b to answer i0 again", interval=0.05)
        assert a.delete("/items/i0/hidden", headers=AUTH).json()["changed"] is False


def test_hidden_items_survive_a_restart(tiny_root: Path, catalog_name: str) -> None:
    settings = settings_for(tiny_root, catalog_name)
    with TestClient(create_app(settings)) as client:
        assert client.put("/items/i4/hidden", headers=AUTH).status_code == 200
    with TestClient(create_app(settings)) as client:  # a new process: its first answer already hides i4
        assert anywhere(every_answer(client), "i4") == []
        assert client.get("/items/hidden").json()["items"] == ["i4"]
        assert client.get("/health/ready").json()["hidden_items"]["count"] == 1


def test_changes_need_the_key_a_known_item_and_room(tiny_root: Path, catalog_name: str) -> None:
    with TestClient(create_app(settings_for(tiny_root, catalog_name, max_hidden_items=1))) as client:
        assert_error(client.put("/items/i0/hidden"), 401, "unauthorized")
        assert_error(client.delete("/items/i0/hidden", headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
        err = assert_error(client.put("/items/nope/hidden", headers=AUTH), 404, "unknown_item")
        assert "nope" in err["message"]
        assert_error(client.delete("/items/nope/hidden", headers=AUTH), 404, "unknown_item")
        assert client.put("/items/i0/hidden", headers=AUTH).status_code == 200
        err = assert_error(client.put("/items/i1/hidden", headers=AUTH), 409, "hidden_items_full")
        assert "C2F_MAX_HIDDEN_ITEMS" in err["message"]
        assert client.put("/items/i0/hidden", headers=AUTH).status_code == 200  # already hidden: no room needed
        assert client.get("/items/hidden").json()["items"] == ["i0"]


def test_without_redis_nothing_can_be_hidden(tiny_root: Path) -> None:
    with TestClient(create_app(settings_for(tiny_root, "unused", redis_url=None))) as client:
        err = assert_error(client.put("/items/i0/hidden", headers=AUTH), 503, "catalog_unavailable")
        assert "C2F_REDIS_URL" in err["message"]
        listing = client.get("/items/hidden").json()
        assert listing["items"] == [] and listing["configured"] is False and listing["stale"] is False
        assert every_answer(client)["recommend"] == ["i0", "i4", "i1"]


def test_redis_down_keeps_the_last_set_and_refuses_changes(tiny_root: Path, tmp_path: Path) -> None:
    redis = EmbeddedRedis(tmp_path / "redis")  # a Redis of the test's own, stopped and started again below
    url = redis.start()
    settings = settings_for(tiny_root, "outage", redis_url=url, redis_timeout_seconds=0.5)
    try:
        with TestClient(create_app(settings)) as client:
            assert client.put("/items/i0/hidden", headers=AUTH).status_code == 200
            redis.stop()
            wait_for(lambda: client.get("/health/ready").json()["hidden_items"]["stale"], 5, "the copy to be stale")
            status = client.get("/health/ready").json()["hidden_items"]
            assert status["count"] == 1 and status["last_error"]
            assert anywhere(every_answer(client), "i0") == []  # still hidden: the last known set applies
            assert "stale" in client.get("/").text
            started = time.monotonic()
            err = assert_error(client.put("/items/i1/hidden", headers=AUTH), 503, "catalog_unavailable")
            assert time.monotonic() - started < 3 * 0.5 + 1 and "Redis" in err["message"]
            assert_error(client.delete("/items/i0/hidden", headers=AUTH), 503, "catalog_unavailable")

            redis.start()  # back, with its data (saved on shutdown)
            wait_for(lambda: not client.get("/items/hidden").json()["stale"], 5, "the copy to be fresh again")
            assert client.get("/items/hidden").json()["items"] == ["i0"]
            assert client.delete("/items/i0/hidden", headers=AUTH).status_code == 200
    finally:
        redis.stop()


def test_a_frozen_redis_delays_only_the_changes(tiny_root: Path) -> None:
    with frozen_redis() as url:
        settings = settings_for(tiny_root, "frozen", redis_url=url, redis_timeout_seconds=0.3)
        with TestClient(create_app(settings)) as client:
            started = time.monotonic()
            assert client.get("/recommend/alice?n=3").status_code == 200
            assert client.get("/items/hidden").json()["stale"] is True
            assert time.monotonic() - started < 0.5
            started = time.monotonic()
            assert_error(client.put("/items/i0/hidden", headers=AUTH), 503, "catalog_unavailable")
            assert time.monotonic() - started < 3 * 0.3 + 1


def _uvicorn(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "c2f.service.main:app", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(command, cwd=REPO, env=worker_env(settings), stderr=subprocess.PIPE)


@pytest.mark.slow
def test_two_server_processes_share_the_hidden_items(tiny_root: Path, catalog_name: str) -> None:
    """Two uvicorn processes (not two apps of one process) on one Redis: a change made through one is in force in
    the other within 2 s."""
    settings = settings_for(tiny_root, catalog_name, hidden_refresh_seconds=0.5)
    ports = [free_port(), free_port()]
    procs = [_uvicorn(settings, port) for port in ports]
    try:
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) for port in ports]

        def up(client: httpx.Client) -> bool:
            try:
                return client.get("/health/ready").status_code == 200
            except httpx.HTTPError:
                return False

        for client, proc in zip(clients, procs, strict=True):
            wait_for(lambda c=client, p=proc: up(c) or p.poll() is not None, 60, "a server process to start")
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        first, second = clients
        assert "i0" in every_answer(second)["recommend"]
        assert first.put("/items/i0/hidden", headers=AUTH).status_code == 200
        started = time.monotonic()
        wait_for(lambda: not anywhere(every_answer(second), "i0"), 2.0, "the other process to stop answering i0")
        print(f"\nhidden in the other process after {time.monotonic() - started:.2f} s")
        assert second.delete("/items/i0/hidden", headers=AUTH).status_code == 200
        wait_for(lambda: "i0" in every_answer(first)["recommend"], 2.0, "the first process to answer i0 again")
        for client in clients:
            client.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
