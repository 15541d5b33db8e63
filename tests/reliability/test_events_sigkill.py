"""No acknowledged interaction event is lost when an API process is SIGKILLed under event load (issue 35).

``c2f serve`` runs as a subprocess on the test Redis (db 15) while client threads post batches of events, each of
a user the model never trained (one item each); the server is SIGKILLed mid-load and started again while the
clients keep posting. Afterwards every event that was acknowledged (a 200 with its stream id) must be in the
Redis stream as sent, and the restarted process must serve every such user folded in from its item.
The harness is benchmarks/events.py's (which prints events/s with ``--kill-after``).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from redis import Redis

from benchmarks.events import EventLoad, EventServer, missing_from_stream, publish_model
from c2f.service.events import stream_key
from tests.service.test_jobs import REDIS_URL, redis_or_skip

pytestmark = [pytest.mark.redis, pytest.mark.slow]

USERS, ITEMS = 400, 300
SECONDS_BEFORE, SECONDS_AFTER = 1.5, 1.5


def test_no_acknowledged_event_is_lost_across_a_sigkill(tmp_path: Path) -> None:
    redis_or_skip()
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    root = tmp_path / "artifacts"
    stream = stream_key(namespace, publish_model(root, USERS, ITEMS))
    redis = Redis.from_url(REDIS_URL)
    server = EventServer(root, REDIS_URL, namespace)
    load = EventLoad(server.base, USERS, ITEMS, batch=50, new_users=1.0)
    try:
        server.start()
        load.start(3)
        time.sleep(SECONDS_BEFORE)
        acked_before_kill = len(load.acked)
        server.kill()
        server.start()  # the clients keep posting: refused connections until it listens again
        time.sleep(SECONDS_AFTER)
        load.stop()
        acked = list(load.acked)
        assert acked_before_kill > 0 and len(acked) > acked_before_kill, (acked_before_kill, len(acked))

        assert missing_from_stream(redis, stream, acked) == []  # every acknowledged event is in Redis, as sent

        users = [user for _, user, _ in acked]
        item_of = {user: item for _, user, item in acked}
        with httpx.Client(base_url=server.base, timeout=30) as http:
            footprint = http.get("/footprint").json()["events"]
            assert footprint["folded_users"] == int(redis.xlen(stream)) >= len(acked)  # type: ignore[arg-type]
            for start in range(0, len(users), 256):
                chunk = users[start : start + 256]
                r = http.post("/recommend/batch", json={"user_ids": chunk, "n": 3})
                assert r.status_code == 200, r.text
                for entry in r.json()["results"]:
                    assert entry["strategy"] == "fold_in", entry  # served by the restarted process
                    assert item_of[entry["user_id"]] not in {it["item_id"] for it in entry["items"]}
    finally:
        load.stop()
        server.stop()
        redis.delete(stream)
        redis.close()
