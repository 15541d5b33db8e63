"""A Redis that stops answering (issue 11, defect 2) delays only the job routes, never serving or the probes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from c2f.service.main import create_app
from c2f.service.settings import Settings
from tests.fake_redis import frozen_redis
from tests.fixtures import build_artifact
from tests.live import live_server


def test_hung_job_calls_do_not_stall_serving(artifact_root: Path) -> None:
    build_artifact(artifact_root, "c2f")
    with frozen_redis() as url:
        settings = Settings(
            artifact_root=str(artifact_root), reload_seconds=0, redis_url=url, redis_timeout_seconds=0.5
        )
        with live_server(create_app(settings)) as base, ThreadPoolExecutor(64) as pool:
            hung = [pool.submit(httpx.get, f"{base}/jobs", timeout=30) for _ in range(45)]
            hung += [pool.submit(httpx.get, f"{base}/jobs/abc", timeout=30) for _ in range(10)]
            time.sleep(0.5)  # every job call is now waiting on the frozen Redis (or refused as busy)
            with httpx.Client(base_url=base, timeout=30) as client:
                for path in ("/health/live", "/health/ready", "/recommend/u0?n=3", "/footprint", "/models", "/"):
                    start = time.monotonic()
                    r = client.get(path)
                    took = time.monotonic() - start
                    assert r.status_code == 200, (path, r.text)
                    # the status page waits up to 2 Redis timeouts (1 s) for its jobs table, by design
                    bound = 3.0 if path == "/" else 1.5
                    assert took < bound, f"{path} took {took:.2f} s while Redis hangs"
            answers = [f.result() for f in hung]
    # the job calls themselves fail fast and clearly: 503 queue_unavailable, within a few Redis timeouts
    assert {a.status_code for a in answers} == {503}
    assert {a.json()["error"]["code"] for a in answers} == {"queue_unavailable"}
    assert max(a.elapsed.total_seconds() for a in answers) < 15
