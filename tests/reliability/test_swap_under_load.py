"""Hot swaps and corrupt publishes while clients keep asking (issue 11's reliability suite, loopback only).

A few client threads send ``GET /recommend`` for a bounded time while good versions and broken ones (every kind in
:mod:`benchmarks.faults`: flipped bytes, a truncated model, a manifest that is not JSON, a wrong shape or a
NaN with a valid sha256, LATEST with ``../`` or naming a missing directory) are published and the poller reloads
every 0.1 s. Every answer must be a 200 from a good version; the broken ones are never served.
Longer runs with more fault kinds: ``benchmarks/chaos.py``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from benchmarks.faults import FAULTS, publish_faulty
from c2f.service.main import create_app
from c2f.service.settings import Settings
from tests.fixtures import build_artifact
from tests.live import live_server

SECONDS = 4.0
CLIENTS = 3


@pytest.mark.slow
def test_swaps_and_corrupt_publishes_under_load(artifact_root: Path) -> None:
    good = {build_artifact(artifact_root, "c2f", seed=0)}
    bad: set[str] = set()
    settings = Settings(artifact_root=str(artifact_root), reload_seconds=0.1, access_log=False)
    statuses: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    stop = threading.Event()

    def client(base: str) -> None:
        with httpx.Client(base_url=base, timeout=10) as http:
            while not stop.is_set():
                r = http.get("/recommend/u1", params={"n": 5})
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    versions[r.json()["model_version"]] += 1

    with live_server(create_app(settings)) as base:
        threads = [threading.Thread(target=client, args=(base,), daemon=True) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + SECONDS
        i = 0
        while time.monotonic() < deadline:
            version = publish_faulty(artifact_root, FAULTS[i % len(FAULTS)], seed=i)
            i += 1
            if version is not None:
                bad.add(version)
            time.sleep(0.3)
            good.add(build_artifact(artifact_root, "c2f", seed=1000 + i))
            time.sleep(0.3)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(15)
        final = httpx.get(f"{base}/models").json()
    assert set(statuses) == {200}, statuses
    assert sum(statuses.values()) > 50
    assert not set(versions) & bad, set(versions) & bad
    assert set(versions) <= good and len(versions) >= 2  # it did swap, only ever to good versions
    assert final["loaded"]["version"] == max(good)
