"""benchmarks/events.py at its smallest: the whole run (c2f serve in a subprocess, the test Redis) for a second,
its report, and that nothing acknowledged is missing. The figures themselves come from running the benchmark."""

from __future__ import annotations

import json

import pytest

import benchmarks.events as bench
from tests.service.test_jobs import REDIS_URL, redis_or_skip

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_a_short_run_reports_events_per_second_and_loses_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    redis_or_skip()
    args = ["--seconds", "1", "--clients", "2", "--batch", "20", "--users", "300", "--items", "200"]
    assert bench.main([*args, "--redis-url", REDIS_URL]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["acked"] > 0 and report["missing"] == 0 and report["stream_length"] >= report["acked"]
    assert report["events_per_s"] > 0 and report["p99_ms"] >= report["p50_ms"] > 0
    assert report["batch"] == 20 and report["machine"]
