"""service.events: stream keys, timestamps, reading a stream back, and an EventLog's record / replay / read on a real
Redis (127.0.0.1:6379 db 15, skipped when unreachable; each test uses an events namespace of its own and deletes
its keys afterwards). The HTTP side is tests/service/test_interactions.py; these fixtures are shared with it."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from redis import Redis

from c2f.contract.artifact import load_artifact, version_path
from c2f.service.events import (
    EventLog,
    EventsUnavailable,
    included_until,
    model_stream,
    parse_timestamp,
    read_recorded,
    stream_key,
)
from c2f.service.registry import LoadedModel
from c2f.service.scoring import Recommender
from c2f.service.settings import Settings
from tests.fixtures import build_artifact, make_manifest, planted_ud_arrays
from tests.service.test_jobs import REDIS_URL, redis_or_skip

pytestmark = pytest.mark.redis


@pytest.fixture
def events_namespace() -> Iterator[str]:
    """An events namespace of this test's own on the test Redis; its streams are deleted afterwards."""
    client = redis_or_skip()
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    try:
        yield namespace
    finally:
        keys = list(client.scan_iter(f"c2f:events:{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def planted_root(artifact_root: Path) -> Path:
    """The planted-community ud model (tests.fixtures.planted_ud_arrays) published in the artifact root."""
    arrays, _ = planted_ud_arrays()
    build_artifact(artifact_root, "ud", arrays=arrays, manifest=make_manifest("ud"))
    return artifact_root


def event_settings(artifact_root: Path, namespace: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "artifact_root": str(artifact_root),
        "reload_seconds": 0,
        "redis_url": REDIS_URL,
        "events_namespace": namespace,
        "access_log": False,
    }
    values.update(overrides)
    return Settings(**values)


def _model(root: Path) -> LoadedModel:
    from c2f.contract.artifact import latest_version

    version = latest_version(root)
    assert version is not None
    artifact = load_artifact(version_path(root, version))
    return LoadedModel(artifact, Recommender(artifact), "now", 0.0)


def _event(user: str, item: str, ts: float | str | None = None) -> SimpleNamespace:
    return SimpleNamespace(user_id=user, item_id=item, ts=ts)


# ---------------------------------------------------------------- pure helpers


def test_parse_timestamp() -> None:
    assert parse_timestamp(None, 123.0) == 123.0
    assert parse_timestamp(1_700_000_000, 0) == 1_700_000_000.0
    assert parse_timestamp("2025-01-01T12:00:00Z", 0) == 1_735_732_800.0
    assert parse_timestamp("2025-01-01T12:00:00", 0) == 1_735_732_800.0  # no zone: UTC
    assert parse_timestamp("2025-01-01T13:00:00+01:00", 0) == 1_735_732_800.0
    for bad in ("yesterday", "", "2025-13-01", -1, float("inf"), float("nan"), 1_700_000_000_000):
        assert parse_timestamp(bad, 0) is None, bad  # type: ignore[arg-type]


def test_stream_keys_follow_the_dataset_content() -> None:
    assert stream_key("ns", "ab" * 32) == f"c2f:events:ns:{'ab' * 32}"
    by_uri = stream_key("ns", None, "file:///data/x")
    assert by_uri.startswith("c2f:events:ns:") and by_uri != stream_key("ns", None, "file:///data/y")
    settings = Settings(events_namespace="n1")
    manifest = load_manifest_like({"dataset": {"uri": "u", "content_hash": "f" * 64}})
    assert model_stream(settings, manifest) == f"c2f:events:n1:{'f' * 64}"


def load_manifest_like(extra: dict[str, Any]) -> Any:
    from c2f.contract.manifest import Manifest

    return Manifest.model_validate({"method": "ud", **extra})


def test_included_until_reads_only_this_streams_mark() -> None:
    manifest = load_manifest_like({"info": {"events": {"stream": "s", "last_id": "12-3", "events": 4}}})
    assert included_until(manifest, "s") == "12-3"
    assert included_until(manifest, "other") is None
    assert included_until(load_manifest_like({}), "s") is None
    assert included_until(load_manifest_like({"info": {"events": {"stream": "s", "last_id": "x"}}}), "s") is None


# ---------------------------------------------------------------- with Redis


def test_read_recorded_reads_every_event_in_order(events_namespace: str) -> None:
    client = Redis.from_url(REDIS_URL)
    stream = stream_key(events_namespace, "c" * 64)
    ids = [client.xadd(stream, {"u": f"user{k}", "i": f"i{k % 3}", "t": "1.0"}).decode() for k in range(25)]
    recorded = read_recorded(client, stream, count=7)  # several pages
    assert recorded.user_ids == [f"user{k}" for k in range(25)]
    assert recorded.item_ids == [f"i{k % 3}" for k in range(25)]
    assert recorded.last_id == ids[-1]
    assert recorded.info() == {"stream": stream, "last_id": ids[-1], "events": 25}
    assert read_recorded(client, stream_key(events_namespace, "d" * 64)).last_id is None


def test_record_then_prepare_replays_into_a_new_model(planted_root: Path, events_namespace: str) -> None:
    settings = event_settings(planted_root, events_namespace)
    log = EventLog(settings, lambda: None)
    try:
        model = log.prepare(_model(planted_root))
        assert model.live is not None and model.live.position == "0-0"  # an empty stream was read
        results = log.record(
            model, [_event("new", "i1"), _event("u0", "i3"), _event("new", "zzz"), _event("u0", "i2", "never")]
        )
        assert [r["error"] is None for r in results] == [True, True, False, False]
        assert [r["error"]["code"] for r in results[2:]] == ["unknown_item", "invalid_timestamp"]
        assert model.live.get("new") is not None  # applied at once, before any read
        # a model loaded later (a restart, another process) replays the same events
        again = log.prepare(_model(planted_root))
        assert again.live is not None and again.live.position == results[1]["id"]
        for user in ("new", "u0"):
            a, b = model.live.get(user), again.live.get(user)
            assert a is not None and b is not None and a.items.tolist() == b.items.tolist()
            np.testing.assert_allclose(a.vector, b.vector, rtol=1e-6)
    finally:
        log.stop()


def test_a_model_trained_on_the_events_skips_them(planted_root: Path, events_namespace: str) -> None:
    settings = event_settings(planted_root, events_namespace)
    log = EventLog(settings, lambda: None)
    try:
        first = log.prepare(_model(planted_root))
        ids = [r["id"] for r in log.record(first, [_event("a", "i1"), _event("b", "i2")])]
        model = _model(planted_root)
        manifest = model.artifact.manifest
        stream = model_stream(settings, manifest)
        info = {**manifest.info, "events": {"stream": stream, "last_id": ids[0], "events": 1}}
        artifact = dataclasses.replace(model.artifact, manifest=manifest.model_copy(update={"info": info}))
        trained = log.prepare(dataclasses.replace(model, artifact=artifact))
        assert trained.live is not None
        assert trained.live.get("a") is None and trained.live.get("b") is not None
    finally:
        log.stop()


def test_the_reader_follows_events_recorded_elsewhere(planted_root: Path, events_namespace: str) -> None:
    settings = event_settings(planted_root, events_namespace)
    writer_holder: dict[str, LoadedModel] = {}
    writer = EventLog(settings, lambda: writer_holder.get("model"))
    writer_model = writer_holder["model"] = writer.prepare(_model(planted_root))
    holder: dict[str, LoadedModel] = {}
    reader = EventLog(settings, lambda: holder.get("model"))
    try:
        holder["model"] = reader.prepare(_model(planted_root))
        writer.record(writer_model, [_event("far", "i7")])
        assert reader.read_once()  # one XREAD picks it up
        live = holder["model"].live
        assert live is not None and live.get("far") is not None
        assert reader.status(holder["model"])["folded_users"] == 1 and not reader.stale
        # the writer's own reader skips what it applied when it recorded it, and moves on past it
        assert writer_model.live is not None and len(writer_model.live.recorded_here) == 1
        entry = writer_model.live.get("far")
        assert writer.read_once()
        assert writer_model.live.recorded_here == set() and writer_model.live.get("far") is entry
        assert writer_model.live.position == live.position
    finally:
        writer.stop()
        reader.stop()


def test_without_redis_nothing_is_attached_and_recording_says_why(planted_root: Path) -> None:
    log = EventLog(Settings(artifact_root=str(planted_root)), lambda: None)
    model = log.prepare(_model(planted_root))
    assert model.live is None
    with pytest.raises(EventsUnavailable, match="C2F_REDIS_URL"):
        log.record(model, [_event("a", "i1")])
    assert log.status(model)["configured"] is False and not log.stale
    log.start()  # no thread without Redis
    log.stop()


def test_an_unreachable_redis_leaves_the_overlay_unread_until_it_answers(planted_root: Path) -> None:
    settings = event_settings(planted_root, "x", redis_url="redis://127.0.0.1:1/0", redis_timeout_seconds=0.3)
    log = EventLog(settings, lambda: None)
    try:
        model = log.prepare(_model(planted_root))
        assert model.live is not None and model.live.position is None
        assert log.stale and log.last_error is not None
        with pytest.raises(EventsUnavailable, match="not recorded"):
            log.record(model, [_event("a", "i1")])
        assert model.live.get("a") is None  # nothing applied
    finally:
        log.stop()
