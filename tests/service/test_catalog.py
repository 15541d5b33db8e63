"""c2f/service/catalog.py: the hidden items' local copy, its O(1) refresh, the writes and their guarantees.

Real Redis at 127.0.0.1:6379, database 15 (skipped when unreachable); every test uses a catalog name of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from c2f.contract.artifact import load_artifact, version_path
from c2f.service.catalog import HiddenItems, HiddenItemsFull, HiddenSnapshot
from c2f.service.scoring import Recommender
from c2f.service.settings import Settings
from tests.fixtures import build_artifact
from tests.service.test_jobs import REDIS_URL, redis_or_skip

pytestmark = pytest.mark.redis


@pytest.fixture
def settings() -> Iterator[Settings]:
    client = redis_or_skip()
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield Settings(redis_url=REDIS_URL, catalog_name=name, hidden_refresh_seconds=0.1, max_hidden_items=3)
    for key in client.scan_iter(f"c2f:catalog:{name}:*"):
        client.delete(key)


def _count_fetches(catalog: HiddenItems, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    fetch = catalog._fetch

    def counting(client: Any) -> HiddenSnapshot:
        calls.append(1)
        return fetch(client)

    monkeypatch.setattr(catalog, "_fetch", counting)
    return calls


def test_refresh_reads_the_set_only_when_it_changed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    here, there = HiddenItems(settings), HiddenItems(settings)
    fetches = _count_fetches(here, monkeypatch)
    assert here.refresh() is True and here.snapshot.ids == frozenset() and fetches == [1]  # the first read
    for _ in range(5):
        assert here.refresh() is False  # version unchanged: one HMGET, no SMEMBERS
    assert fetches == [1]
    changed, snap = there.change("i1", True)
    assert changed and snap.ids == {"i1"} and snap.version == 1  # applied at once where it was made
    assert here.snapshot.ids == frozenset()  # elsewhere: at the next refresh
    assert here.refresh() is True and here.snapshot.ids == {"i1"} and fetches == [1, 1]
    assert there.change("i1", True) == (False, there.snapshot)  # no change, no version bump
    assert here.refresh() is False and here.snapshot.version == 1
    assert there.change("i1", False)[0] and here.refresh() and here.snapshot.ids == frozenset()


def test_a_writer_that_missed_changes_reads_the_whole_set(settings: Settings) -> None:
    a, b = HiddenItems(settings), HiddenItems(settings)
    a.refresh()
    b.change("i1", True)
    b.change("i2", True)
    changed, snap = a.change("i3", True)  # a is two versions behind: it must not miss i1 and i2
    assert changed and snap.ids == {"i1", "i2", "i3"} and snap.version == 3
    with pytest.raises(HiddenItemsFull):
        a.change("i4", True)  # max_hidden_items=3
    assert a.change("i3", True)[0] is False  # already hidden: allowed at the cap


def test_lost_redis_data_starts_a_new_epoch(settings: Settings) -> None:
    """A Redis that lost its data (flushed, restarted without persistence) is not mistaken for the old state even
    once its version counter has caught up again."""
    a, b = HiddenItems(settings), HiddenItems(settings)
    b.change("i1", True)
    a.refresh()
    assert a.snapshot.ids == {"i1"}
    client = redis_or_skip()
    for key in client.scan_iter(f"c2f:catalog:{settings.catalog_name}:*"):
        client.delete(key)
    b2 = HiddenItems(settings)
    b2.change("i2", True)  # version 1 again, in a new epoch
    assert a.refresh() is True and a.snapshot.ids == {"i2"}


def test_an_older_snapshot_never_replaces_a_newer_one(settings: Settings) -> None:
    catalog = HiddenItems(settings)
    catalog._install(HiddenSnapshot(frozenset({"a", "b"}), 5, "e"))
    catalog._install(HiddenSnapshot(frozenset({"a"}), 4, "e"))
    assert catalog.snapshot.ids == {"a", "b"}
    catalog._install(HiddenSnapshot(frozenset({"c"}), 1, "other"))  # another epoch: Redis's word goes
    assert catalog.snapshot.ids == {"c"}


def test_indices_per_model_are_cached(settings: Settings, artifact_root: Path) -> None:
    rec = Recommender(load_artifact(version_path(artifact_root, build_artifact(artifact_root, "legcf"))))
    catalog = HiddenItems(settings)
    assert catalog.indices(rec).size == 0
    catalog._install(HiddenSnapshot(frozenset({"i3", "i7", "not-an-item"}), 1, "e"))
    first = catalog.indices(rec)
    assert first.tolist() == [3, 7] and catalog.indices(rec) is first  # one lookup per (model, snapshot)
    assert not first.flags.writeable
    status = catalog.status()
    assert status["count"] == 3 and status["bytes"] >= first.nbytes + 3 * 40 and status["version"] == 1


def test_unreadable_redis_is_stale_and_keeps_the_copy() -> None:
    catalog = HiddenItems(Settings(redis_url="redis://127.0.0.1:1/0", redis_timeout_seconds=0.2))
    catalog._install(HiddenSnapshot(frozenset({"i1"}), 2, "e"))
    assert catalog.refresh() is False
    status = catalog.status()
    assert status["stale"] is True and status["last_error"] and status["count"] == 1
    assert np.asarray(sorted(catalog.snapshot.ids)).tolist() == ["i1"]
    unconfigured = HiddenItems(Settings(redis_url=None))
    assert unconfigured.refresh() is False and unconfigured.status()["stale"] is False
