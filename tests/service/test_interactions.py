"""POST /interactions over HTTP (service.routes.interactions) on the planted-community model: events count at once,
reach a second app on the same Redis, survive a restart, are refused per event, bounded, and Redis trouble never
touches serving. Real Redis (127.0.0.1:6379 db 15; skipped when unreachable)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from c2f.service.main import create_app
from tests.fake_redis import frozen_redis
from tests.fixtures import assert_error, planted_ud_arrays
from tests.service import test_events as shared
from tests.service.test_events import event_settings
from tests.service.test_jobs import wait_for

pytestmark = pytest.mark.redis

_, ITEM_COMM = planted_ud_arrays()
COMMUNITY = {f"i{i}": int(c) for i, c in enumerate(ITEM_COMM)}

# fixtures shared with test_events.py
events_namespace = shared.events_namespace
planted_root = shared.planted_root


def community_items(c: int, k: int, skip: int = 0) -> list[str]:
    return [f"i{i}" for i in np.flatnonzero(np.equal(ITEM_COMM, c))[skip : skip + k]]


@contextmanager
def app_client(root: Path, namespace: str, **overrides: Any) -> Iterator[TestClient]:
    with TestClient(create_app(event_settings(root, namespace, **overrides))) as client:
        yield client


def post(client: TestClient, events: list[dict[str, Any]], **kwargs: Any) -> Any:
    return client.post("/interactions", json={"events": events}, **kwargs)


def test_a_new_user_is_folded_in_and_served_like_any_other(planted_root: Path, events_namespace: str) -> None:
    with app_client(planted_root, events_namespace) as client:
        assert_error(client.get("/recommend/newcomer"), 404, "unknown_user")
        history = community_items(2, 3)
        r = post(
            client,
            [{"user_id": "newcomer", "item_id": item, "ts": 1_735_732_800 + k} for k, item in enumerate(history)],
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["recorded"] == 3 and body["refused"] == 0 and all(res["id"] for res in body["results"])
        r = client.get("/recommend/newcomer", params={"n": 5})
        assert r.status_code == 200, r.text
        got = [it["item_id"] for it in r.json()["items"]]
        assert r.json()["strategy"] == "fold_in"
        assert {COMMUNITY[i] for i in got} == {2} and not set(got) & set(history)
        r = client.post("/recommend/batch", json={"user_ids": ["newcomer", "u1", "ghost"], "n": 3})
        newcomer, u1, ghost = r.json()["results"]
        assert newcomer["strategy"] == "fold_in" and {COMMUNITY[it["item_id"]] for it in newcomer["items"]} == {2}
        assert u1["strategy"] == "model" and ghost["error"]["code"] == "unknown_user"
        # exclude_seen=false may return the events' own items
        r = client.get("/recommend/newcomer", params={"n": 12, "exclude_seen": "false"})
        assert set(history) <= {it["item_id"] for it in r.json()["items"]}


def test_a_known_users_new_items_are_excluded_at_once_and_move_it(planted_root: Path, events_namespace: str) -> None:
    with app_client(planted_root, events_namespace) as client:
        before = [it["item_id"] for it in client.get("/recommend/u0", params={"n": 7}).json()["items"]]
        assert {COMMUNITY[i] for i in before} == {0}
        added = [before[0], *community_items(2, 6)]
        r = post(client, [{"user_id": "u0", "item_id": item} for item in added])
        assert r.json()["recorded"] == len(added)
        r = client.get("/recommend/u0", params={"n": 7})
        after = [it["item_id"] for it in r.json()["items"]]
        assert r.json()["strategy"] == "model"
        assert not set(after) & set(added)  # excluded at once
        assert sum(COMMUNITY[i] == 2 for i in after) >= 2  # and reflected: community 2 moved up
        batch = client.post("/recommend/batch", json={"user_ids": ["u0"], "n": 7}).json()["results"][0]
        assert [it["item_id"] for it in batch["items"]] == after
        fp = client.get("/footprint").json()["events"]
        assert fp["users_with_events"] == 1 and fp["folded_users"] == 0 and fp["event_items"] == len(added)
        assert fp["bytes"] > 0 and fp["configured"] and not fp["stale"]
        page = client.get("/").text
        assert 'id="live-events"' in page and 'id="events-moved">1<' in page


def test_a_second_app_on_the_same_redis_sees_events_within_two_seconds(
    planted_root: Path, events_namespace: str
) -> None:
    with app_client(planted_root, events_namespace) as first, app_client(planted_root, events_namespace) as second:
        assert_error(second.get("/recommend/traveller"), 404, "unknown_user")
        post(first, [{"user_id": "traveller", "item_id": item} for item in community_items(3, 2)])
        start = time.monotonic()
        wait_for(lambda: second.get("/recommend/traveller").status_code == 200, 2.0, "the second app to see it")
        r = second.get("/recommend/traveller", params={"n": 4})
        assert r.json()["strategy"] == "fold_in" and {COMMUNITY[it["item_id"]] for it in r.json()["items"]} == {3}
        assert time.monotonic() - start < 2.0


def test_events_survive_a_restart(planted_root: Path, events_namespace: str) -> None:
    with app_client(planted_root, events_namespace) as client:
        post(client, [{"user_id": "stays", "item_id": item} for item in community_items(1, 3)])
        post(client, [{"user_id": "u2", "item_id": item} for item in community_items(1, 2)])
        first = client.get("/recommend/stays", params={"n": 5}).json()
        moved = client.get("/recommend/u2", params={"n": 5}).json()
    with app_client(planted_root, events_namespace) as client:  # a new process: replayed from Redis at start
        assert client.get("/recommend/stays", params={"n": 5}).json() == first
        assert client.get("/recommend/u2", params={"n": 5}).json() == moved


def test_bad_events_are_refused_one_by_one_and_the_rest_is_recorded(planted_root: Path, events_namespace: str) -> None:
    with app_client(planted_root, events_namespace) as client:
        r = post(
            client,
            [
                {"user_id": "mixed", "item_id": "i1"},
                {"user_id": "mixed", "item_id": "no-such-item"},
                {"user_id": "mixed", "item_id": "i5", "ts": "last tuesday"},
                {"user_id": "mixed", "item_id": "i9", "ts": "2025-02-03T04:05:06Z"},
                {"user_id": "mixed", "item_id": "i13", "ts": -5},
            ],
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["recorded"] == 2 and body["refused"] == 3
        codes = [res["error"]["code"] if res["error"] else None for res in body["results"]]
        assert codes == [None, "unknown_item", "invalid_timestamp", None, "invalid_timestamp"]
        assert "no-such-item" in body["results"][1]["error"]["message"]
        seen = {
            it["item_id"]
            for it in client.get("/recommend/mixed", params={"n": 40, "exclude_seen": "false"}).json()["items"]
        }
        unseen = {it["item_id"] for it in client.get("/recommend/mixed", params={"n": 40}).json()["items"]}
        assert {"i1", "i9"} <= seen and not {"i1", "i9"} & unseen and {"i5", "i13"} <= unseen


def test_malformed_or_oversized_batches_record_nothing(planted_root: Path, events_namespace: str) -> None:
    with app_client(planted_root, events_namespace, max_events_per_request=3) as client:
        for body in (
            {"events": []},
            {"events": [{"user_id": "a"}]},
            {"events": [{"user_id": "", "item_id": "i1"}]},
            {"events": [{"user_id": "a", "item_id": "i1", "ts": True}]},
            {"events": "i1"},
            {"events": [{"user_id": "a", "item_id": "i1"}] * 4},
        ):
            assert_error(client.post("/interactions", json=body), 422, "validation_error")
        assert client.get("/footprint").json()["events"]["folded_users"] == 0
        schema = client.get("/openapi.json").json()
        assert schema["components"]["schemas"]["InteractionsRequest"]["properties"]["events"]["maxItems"] == 3


def test_the_caps_refuse_new_users_and_long_histories(planted_root: Path, events_namespace: str) -> None:
    with app_client(planted_root, events_namespace, max_folded_users=2, max_history_items=3) as client:
        r = post(
            client, [{"user_id": f"n{k}", "item_id": "i1"} for k in range(3)] + [{"user_id": "u3", "item_id": "i2"}]
        )
        codes = [res["error"]["code"] if res["error"] else None for res in r.json()["results"]]
        assert codes == [None, None, "folded_users_full", None]  # a trained user is never refused for the cap
        assert "C2F_MAX_FOLDED_USERS" in r.json()["results"][2]["error"]["message"]
        assert_error(client.get("/recommend/n2"), 404, "unknown_user")
        r = post(client, [{"user_id": "n0", "item_id": f"i{k}"} for k in (2, 3, 4, 1)])
        codes = [res["error"]["code"] if res["error"] else None for res in r.json()["results"]]
        assert codes == [None, None, "user_history_full", None]  # i1 it already has: no growth, recorded
        fp = client.get("/footprint").json()["events"]
        assert fp["folded_users"] == 2 and fp["max_folded_users"] == 2 and fp["max_items_per_user"] == 3


def test_the_api_key_guards_recording(planted_root: Path, events_namespace: str) -> None:
    with app_client(planted_root, events_namespace, api_key="k") as client:
        assert_error(post(client, [{"user_id": "a", "item_id": "i1"}]), 401, "unauthorized")
        assert (
            post(client, [{"user_id": "a", "item_id": "i1"}], headers={"Authorization": "Bearer k"}).status_code == 200
        )


def test_redis_down_or_frozen_is_503_and_serving_is_unaffected(planted_root: Path) -> None:
    for url in ("redis://127.0.0.1:1/0", None):
        with app_client(planted_root, "x", redis_url=url, redis_timeout_seconds=0.3) as client:
            err = assert_error(post(client, [{"user_id": "a", "item_id": "i1"}]), 503, "events_unavailable")
            assert ("C2F_REDIS_URL" in err["message"]) == (url is None)
            assert client.get("/recommend/u0").status_code == 200
            events = client.get("/footprint").json()["events"]
            assert events["configured"] == (url is not None) and events["stale"] == (url is not None)
    with frozen_redis() as url, app_client(planted_root, "x", redis_url=url, redis_timeout_seconds=0.3) as client:
        start = time.monotonic()
        assert_error(post(client, [{"user_id": "a", "item_id": "i1"}]), 503, "events_unavailable")
        assert time.monotonic() - start < 3 * 0.3 + 1.0
        start = time.monotonic()
        assert client.get("/recommend/u0").status_code == 200 and time.monotonic() - start < 0.5
        assert_error(client.get("/recommend/a"), 404, "unknown_user")  # nothing half-applied
