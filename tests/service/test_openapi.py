"""The OpenAPI schema is complete and the service keeps it (issue 11, defect 11).

Schemathesis runs every check (``--checks all``) against the app served on loopback from this process, with a
bounded number of examples and a fixed seed (deterministic generation): any response the schema does not
document (status, headers, body), any 5xx and any schema-invalid request that is accepted fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from c2f.service.main import create_app
from c2f.service.settings import Settings
from tests.fixtures import build_artifact, make_manifest, tiny_known_arrays
from tests.live import live_server
from tests.service.test_jobs import REDIS_URL, delete_queue_keys, redis_or_skip

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 10


def test_openapi_documents_errors_bounds_and_job_models(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client(max_n=50, max_batch_users=7, max_exclude=30) as client:
        schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"401", "404"} <= set(paths["/jobs/{job_id}"]["delete"]["responses"])
    assert "404" in paths["/jobs/{job_id}"]["get"]["responses"]
    for path, method in (("/jobs", "get"), ("/jobs/{job_id}", "get"), ("/jobs/{job_id}", "delete"), ("/train", "post")):
        ok = next(code for code in paths[path][method]["responses"] if code.startswith("2"))
        assert "$ref" in str(paths[path][method]["responses"][ok]["content"]), (path, method)
    n = next(p for p in paths["/recommend/{user_id}"]["get"]["parameters"] if p["name"] == "n")
    assert n["schema"]["maximum"] == 50
    batch = schema["components"]["schemas"]["BatchRecommendRequest"]["properties"]
    assert batch["n"]["maximum"] == 50 and batch["user_ids"]["maxItems"] == 7 and batch["exclude"]["maxItems"] == 30


@pytest.mark.redis
def test_schemathesis_all_checks_pass(artifact_root: Path, tmp_path: Path) -> None:
    redis = redis_or_skip()
    build_artifact(artifact_root, "legcf", arrays=tiny_known_arrays(), manifest=make_manifest("legcf"))
    queue = f"c2f-test-{uuid.uuid4().hex[:12]}"
    settings = Settings(
        artifact_root=str(artifact_root),
        reload_seconds=0,
        api_key="schemathesis",
        redis_url=REDIS_URL,
        queue_name=queue,
        catalog_name=queue,  # the items it hides stay in its own namespace (removed below)
        events_namespace=queue,  # the events schemathesis records go to streams of their own, deleted below
        data_root=tmp_path / "data",
        access_log=False,
    )
    (tmp_path / "data").mkdir()
    st = Path(sys.executable).with_name("st")
    try:
        with live_server(create_app(settings)) as base:
            result = subprocess.run(
                [str(st), "--config-file", str(CONFIG), "run", f"{base}/openapi.json", "--checks", "all",
                 "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic", "--request-timeout", "10",
                 "--header", "Authorization: Bearer schemathesis", "--no-color", "--workers", "1"],
                capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            )  # fmt: skip
    finally:
        delete_queue_keys(redis, queue)
        for key in redis.scan_iter(f"c2f:catalog:{queue}:*"):
            redis.delete(key)
        streams = list(redis.scan_iter(f"c2f:events:{queue}:*"))
        if streams:
            redis.delete(*streams)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
