"""benchmarks/chaos.py's plumbing for a few seconds: its scenarios against an in-process server (a Redis of its own
on a loopback port), their summaries, and the CLI's checks. The full run (`c2f serve` and a worker in
subprocesses) is the benchmark itself; its figures are in BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

import pytest

import benchmarks.chaos as chaos
from c2f.service.main import create_app
from c2f.service.settings import Settings
from tests.fixtures import build_artifact
from tests.live import live_server

pytestmark = pytest.mark.slow


def test_scenarios_run_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chaos, "FAULTS", ("flipped_bytes", "dotdot_latest"))  # one version and one pointer fault
    root = tmp_path / "artifacts"
    build_artifact(root, "c2f", seed=0, **chaos.SIZES)
    redis = chaos.LoopbackRedis(tmp_path)
    redis.start()
    try:
        settings = Settings(artifact_root=str(root), reload_seconds=0.1, redis_url=redis.url, redis_timeout_seconds=0.5)
        with live_server(create_app(settings)) as base:
            load = chaos.Load(base)
            load.start()
            ctx = chaos.Context(base=base, root=root, load=load, redis=redis, settings=settings, worker=None)
            try:
                results = {name: chaos.RUNNERS[name](ctx, 1.0) for name in chaos.SCENARIOS}
            finally:
                load.stop()
    finally:
        redis.stop()
    for name in ("hot_swap", "corrupt_publish", "hostile", "redis_frozen", "redis_stopped"):
        r = results[name]
        assert r["ok"], (name, r)
        assert r["requests"] > 0 and r["errors"] == 0, (name, r)
        assert r["p99_ms"] is not None
    # every kind is published once, then more while the scenario's second lasts: how many depends on the machine's
    # speed, but every broken publish is detected
    detect = results["corrupt_publish"]["detect"]
    assert detect["detected"] == detect["events"] >= 2
    assert set(results["corrupt_publish"]["detect_by_kind"]) == {"flipped_bytes", "dotdot_latest"}
    assert results["hostile"]["hostile_requests"] > 0
    for name in ("redis_frozen", "redis_stopped"):
        assert results[name]["detect"]["detected"] == 1 and results[name]["recover_s"] is not None
    assert not results["worker_sigkill"]["ok"]  # no worker here: reported, not hidden
    table = chaos.render({"scenarios": {k: {**v, "seconds": 1.0} for k, v in results.items()}})
    assert table.count("\n") == len(chaos.SCENARIOS) + 1


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(SystemExit):
        chaos.main(["--scenarios", "hot_swap,nope"])
