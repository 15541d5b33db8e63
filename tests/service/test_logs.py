"""Structured logs (issue 11, defect 10): level and timestamp on every line, JSON lines, swaps and failures
logged, and an access log line per request with its id, the model version and the latency."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from c2f.service.logs import LOGGERS, configure_logging
from tests.fixtures import build_artifact
from tests.service.test_registry import _corrupt


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    yield stream
    for name in LOGGERS:  # back to pytest's capture
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_swaps_failures_and_requests_are_json_lines(
    artifact_root: Path, make_client: Any, json_log: io.StringIO
) -> None:
    v1 = build_artifact(artifact_root, "c2f", seed=1)
    with make_client() as client:
        r = client.get("/recommend/u0", headers={"X-Request-ID": "req-42"})
        assert r.headers["x-request-id"] == "req-42"
        generated = client.get("/health/live").headers["x-request-id"]
        v2 = build_artifact(artifact_root, "c2f", seed=2)
        _corrupt(artifact_root, v2)
        client.post("/models/reload")
    records = lines(json_log)
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    swap = next(r for r in records if r.get("event") == "model_swap")
    assert swap["level"] == "INFO" and swap["version"] == v1 and swap["ts"].endswith("Z")
    failure = next(r for r in records if r.get("event") == "model_load_failed")
    assert failure["level"] == "ERROR" and failure["version"] == v2 and failure["kept_version"] == v1
    access = [r for r in records if r["logger"] == "c2f.access"]
    rec = next(r for r in access if r["request_id"] == "req-42")
    assert rec["route"] == "/recommend/{user_id}" and rec["status"] == 200 and rec["model_version"] == v1
    assert rec["latency_ms"] > 0
    assert any(r["request_id"] == generated and r["route"] == "/health/live" for r in access)


def test_text_format_has_level_and_timestamp(artifact_root: Path, make_client: Any) -> None:
    stream = io.StringIO()
    configure_logging("info", "text", stream=stream)
    try:
        version = build_artifact(artifact_root, "c2f")
        with make_client(access_log=False):
            pass
    finally:
        for name in LOGGERS:
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
    line = next(line for line in stream.getvalue().splitlines() if "serving model version" in line)
    assert line.split(" ")[1] == "INFO" and line[:4].isdigit() and version in line
