"""service.live: the per-model overlay of recorded events (vectors, idempotence, bounds, bytes), no Redis."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from c2f.contract.artifact import load_artifact, version_path
from c2f.service.errors import FOLDED_USERS_FULL, USER_HISTORY_FULL
from c2f.service.live import LiveHistories, stream_position
from c2f.service.scoring import Recommender
from tests.fixtures import build_artifact, make_manifest, planted_ud_arrays


@pytest.fixture
def planted(artifact_root: Path) -> tuple[Recommender, np.ndarray]:
    arrays, item_comm = planted_ud_arrays()
    version = build_artifact(artifact_root, "ud", arrays=arrays, manifest=make_manifest("ud"))
    return Recommender(load_artifact(version_path(artifact_root, version))), item_comm


def _live(rec: Recommender, max_users: int = 100, max_items: int = 50) -> LiveHistories:
    return LiveHistories(rec, max_users=max_users, max_items=max_items, stream="s")


def test_a_new_user_is_folded_in_from_its_events(planted: tuple[Recommender, np.ndarray]) -> None:
    rec, item_comm = planted
    live = _live(rec)
    items = np.flatnonzero(item_comm == 1)[:3]
    assert live.apply([("visitor", int(i)) for i in items]) == [None, None, None]
    entry = live.get("visitor")
    assert entry is not None and entry.index is None
    assert entry.items.tolist() == sorted(items.tolist())
    np.testing.assert_allclose(entry.vector, rec.fold_in([items])[0], rtol=1e-5, atol=1e-6)
    ((top, _),) = rec.recommend_vectors(entry.vector[None], [entry.seen(rec)], 5)
    assert set(item_comm[top]) == {1} and not set(top) & set(items.tolist())
    assert live.status()["folded_users"] == 1 and live.status()["users_with_events"] == 0


def test_a_trained_user_moves_by_the_fold_in_of_what_changed(planted: tuple[Recommender, np.ndarray]) -> None:
    rec, item_comm = planted
    live = _live(rec)
    u = rec.user_index("u0")
    assert u is not None
    graph = rec.graph_items(u).astype(np.int64)
    added = np.flatnonzero(item_comm == 2)[:6]
    live.apply([("u0", int(i)) for i in added] + [("u0", int(graph[0]))])  # a training item adds nothing
    entry = live.get("u0")
    assert entry is not None and entry.index == u and entry.items.tolist() == sorted(added.tolist())
    folded = rec.fold_in([np.union1d(graph, added), graph])
    expected = rec.user_embeddings(np.array([u]))[0] + folded[0] - folded[1]
    np.testing.assert_allclose(entry.vector, expected, rtol=1e-5, atol=1e-5)
    # the new items are seen, as the training ones are; the ranking leans to community 2 now
    seen = entry.seen(rec)
    assert set(added.tolist()) <= set(seen.tolist()) and set(rec.seen_items(u).tolist()) <= set(seen.tolist())
    before = rec.recommend(u, 7)[0]  # u0 has 7 unseen items of its own community 0: they come first
    ((after, _),) = rec.recommend_vectors(entry.vector[None], [seen], 7)
    assert set(item_comm[before]) == {0} and (item_comm[after] == 2).sum() >= 2, item_comm[after]
    assert live.status()["users_with_events"] == 1 and live.status()["folded_users"] == 0


def test_applying_is_idempotent_and_the_position_only_moves_forward(planted: tuple[Recommender, np.ndarray]) -> None:
    rec, _ = planted
    live = _live(rec)
    live.apply([("v", 3), ("v", 5)], position="10-1")
    entry, held = live.get("v"), live.status()
    live.apply([("v", 5), ("v", 3)], position="9-0")
    assert live.get("v") is entry and live.status() == held and live.position == "10-1"
    live.apply([], position="10-2")
    assert live.position == "10-2"
    assert stream_position("10-2") > stream_position("10-1") > stream_position("9-99")


def test_bounds_refuse_per_event_and_hold(planted: tuple[Recommender, np.ndarray]) -> None:
    rec, _ = planted
    live = _live(rec, max_users=2, max_items=3)
    pairs = [("a", 1), ("b", 1), ("c", 1), ("a", 2), ("a", 3), ("a", 4), ("a", 1), ("u0", 41)]
    expected = [None, None, FOLDED_USERS_FULL, None, None, USER_HISTORY_FULL, None, None]
    assert live.admit(pairs) == expected
    assert len(live) == 0  # admit changes nothing
    assert live.apply(pairs) == expected
    assert live.get("c") is None and live.get("a") is not None and len(live.get("a").items) == 3  # type: ignore[union-attr]
    assert live.get("u0") is not None  # trained users are not counted against max_users
    assert live.refused == 0  # only events read back from the stream count there
    live.apply([("d", 1)], position="1-0")
    assert live.refused == 1 and live.get("d") is None
    status = live.status()
    assert status["folded_users"] == 2 and status["event_items"] == 3 + 1 + 1


def test_bytes_count_what_is_held(planted: tuple[Recommender, np.ndarray]) -> None:
    rec, _ = planted
    live = _live(rec)
    assert live.nbytes == 0
    live.apply([("x", 1)])
    one = live.nbytes
    assert one >= 8 + 4 * rec.artifact.d
    live.apply([("x", 2), ("y", 1)])
    entries = [("x", live.get("x")), ("y", live.get("y"))]
    assert live.nbytes == sum(e.nbytes(uid) for uid, e in entries if e is not None) > one


def test_readers_see_whole_entries_while_a_writer_applies(planted: tuple[Recommender, np.ndarray]) -> None:
    rec, _ = planted
    live = _live(rec, max_items=1000)
    stop = threading.Event()
    bad: list[str] = []

    def read() -> None:
        while not stop.is_set():
            entry = live.get("w")
            if entry is not None and (entry.vector.shape != (rec.artifact.d,) or not np.isfinite(entry.vector).all()):
                bad.append("torn")

    reader = threading.Thread(target=read)
    reader.start()
    for item in range(rec.n_items):
        live.apply([("w", item)])
    stop.set()
    reader.join()
    assert not bad
    assert live.get("w").items.tolist() == list(range(rec.n_items))  # type: ignore[union-attr]
