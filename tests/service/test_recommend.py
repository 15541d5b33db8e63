from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from c2f.contract.artifact import load_artifact, version_path
from c2f.contract.attributes import encode_attributes
from c2f.service.scoring import Recommender
from tests.fixtures import assert_error, build_artifact, make_arrays, make_manifest, tiny_known_arrays


@pytest.fixture
def tiny_root(artifact_root: Path) -> Path:
    build_artifact(artifact_root, "legcf", arrays=tiny_known_arrays(), manifest=make_manifest("legcf"))
    return artifact_root


def test_recommend_known_user(tiny_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        version = client.get("/models").json()["loaded"]["version"]
        r = client.get("/recommend/alice", params={"n": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["user_id"] == "alice" and body["model_version"] == version and body["strategy"] == "model"
        assert [it["item_id"] for it in body["items"]] == ["i0", "i4", "i1"]
        assert [it["score"] for it in body["items"]] == pytest.approx([1.0, 1.0, 0.5])
        assert body["ignored_exclude"] == []

        # seen items (i2 in the graph, i3 held out) come back only with exclude_seen=false
        r = client.get("/recommend/alice", params={"n": 3, "exclude_seen": "false"})
        assert [it["item_id"] for it in r.json()["items"]] == ["i2", "i3", "i0"]

        # exclude: comma separated and repeated; unknown ids are ignored and reported
        r = client.get("/recommend/alice?n=5&exclude=i0,nope&exclude=i4")
        body = r.json()
        assert [it["item_id"] for it in body["items"]] == ["i1"]
        assert body["ignored_exclude"] == ["nope"]


def test_unknown_user(tiny_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        err = assert_error(client.get("/recommend/nobody"), 404, "unknown_user")
        assert "nobody" in err["message"]
        r = client.get("/recommend/nobody", params={"fallback": "popular", "n": 2, "exclude": "i0"})
        assert r.status_code == 200
        body = r.json()
        assert body["strategy"] == "popular" and [it["item_id"] for it in body["items"]] == ["i2", "i3"]
        assert_error(client.get("/recommend/nobody", params={"fallback": "random"}), 422, "validation_error")


@pytest.mark.parametrize("query", ["n=0", "n=-3", "n=1001", "n=abc", "exclude_seen=maybe"])
def test_invalid_parameters_are_422_json(tiny_root: Path, make_client, query: str) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        assert_error(client.get(f"/recommend/alice?{query}"), 422, "validation_error")


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("alice", "n=3"),
        ("alice", "n=3&exclude_seen=false"),
        ("alice", "n=5&exclude=i0,nope&exclude=i4&unknown=1"),
        ("alice", "n=0"),
        ("alice", "n=1001"),
        ("nobody", "n=2&fallback=popular&exclude=i0"),
        ("nobody", "n=2"),
    ],
)
def test_hand_parsed_requests_answer_as_fastapis_path(tiny_root: Path, make_client, path: str, query: str) -> None:  # type: ignore[no-untyped-def]
    """A repeated `n` is never hand-parsed (FastAPI takes the last value): the same query with its `n` given twice
    runs FastAPI's parameter solving and validation, and must get the same status and body."""
    n = next(part for part in query.split("&") if part.startswith("n="))
    with make_client() as client:
        hand = client.get(f"/recommend/{path}?{query}")
        full = client.get(f"/recommend/{path}?{n}&{query}")
    assert hand.status_code == full.status_code
    assert hand.json() == full.json()


def test_max_n_comes_from_settings(tiny_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client(max_n=2) as client:
        err = assert_error(client.get("/recommend/alice?n=3"), 422, "validation_error")
        assert "between 1 and 2" in err["message"]
        assert len(client.get("/recommend/alice?n=2").json()["items"]) == 2
        assert_error(client.get("/similar-items/i0?n=3"), 422, "validation_error")


def test_no_model_is_503(make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        assert_error(client.get("/recommend/alice"), 503, "no_model")
        assert_error(client.post("/recommend/batch", json={"user_ids": ["a"]}), 503, "no_model")
        assert_error(client.get("/similar-items/i0"), 503, "no_model")
        assert_error(client.get("/footprint"), 503, "no_model")


def test_batch(tiny_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        r = client.post("/recommend/batch", json={"user_ids": ["alice", "ghost", "bob"], "n": 2})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version"] == client.get("/health/ready").json()["model_version"]
        alice, ghost, bob = body["results"]
        assert [it["item_id"] for it in alice["items"]] == ["i0", "i4"] and alice["strategy"] == "model"
        assert ghost["items"] == [] and ghost["error"]["code"] == "unknown_user" and ghost["strategy"] is None
        assert [it["item_id"] for it in bob["items"]] == ["i3", "i1"]

        r = client.post(
            "/recommend/batch",
            json={"user_ids": ["ghost", "alice"], "n": 2, "fallback": "popular", "exclude": ["i0", "zz"]},
        )
        ghost, alice = r.json()["results"]
        assert ghost["strategy"] == "popular" and [it["item_id"] for it in ghost["items"]] == ["i2", "i3"]
        assert [it["item_id"] for it in alice["items"]] == ["i4", "i1"]
        assert r.json()["ignored_exclude"] == ["zz"]


def test_batch_limits(tiny_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client(max_batch_users=2) as client:
        err = assert_error(client.post("/recommend/batch", json={"user_ids": ["a", "b", "c"]}), 422, "validation_error")
        assert "at most 2" in err["message"]
        assert_error(client.post("/recommend/batch", json={"user_ids": []}), 422, "validation_error")
        assert_error(client.post("/recommend/batch", json={"user_ids": ["a"], "n": 0}), 422, "validation_error")
        assert_error(client.post("/recommend/batch", json={"n": 3}), 422, "validation_error")
        assert_error(client.post("/recommend/batch", content=b"not json"), 422, "validation_error")


def test_reload_under_concurrent_requests(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    """Threads hammer /recommend while new versions are published and swapped in (poller + explicit reloads).

    Every response must succeed and its items must be exactly what its model_version ranks (no mixing).
    """
    expected: dict[str, list[tuple[str, float]]] = {}

    def publish(seed: int) -> str:
        version = build_artifact(artifact_root, "c2f", seed=seed, n_users=20, n_items=60, d=8, m_c=10)
        rec = Recommender(load_artifact(version_path(artifact_root, version)), "compressed")
        idx, scores = rec.recommend(rec.user_index("u3"), 5)  # type: ignore[arg-type]
        expected[version] = [(str(rec.item_ids[i]), float(s)) for i, s in zip(idx, scores, strict=True)]
        return version

    publish(0)
    errors: list[str] = []
    responses: list[tuple[str, list[tuple[str, float]]]] = []
    stop = threading.Event()

    with make_client(reload_seconds=0.01) as client:

        def hammer() -> None:
            while not stop.is_set():
                r = client.get("/recommend/u3?n=5")
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text}")
                    continue
                body = r.json()
                responses.append((body["model_version"], [(it["item_id"], it["score"]) for it in body["items"]]))

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for seed in range(1, 7):
                publish(seed)
                if seed % 2:
                    assert client.post("/models/reload").status_code == 200
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        final = client.get("/models").json()["loaded"]["version"]

    assert not errors, errors[:5]
    # checked afterwards: the poller may serve a version before publish() above has recorded its ranking
    for version, got in responses:
        want = expected[version]
        assert [g[0] for g in got] == [w[0] for w in want], (version, got, want)
        assert [g[1] for g in got] == pytest.approx([w[1] for w in want], abs=1e-5)
    assert final == max(expected)
    assert len({v for v, _ in responses}) >= 3
    assert len(responses) > 20
    # the rankings really differ between versions, so a mixed response would have been caught
    assert len({tuple(i for i, _ in v) for v in expected.values()}) > 1


# ---------------------------------------------------------------------------------------------- allow-lists, where=
N_CATALOG = 60


def _genre(i: int) -> str:
    return "jazz" if i % 4 == 0 else ("blues" if i % 4 == 1 else "rock")


@pytest.fixture
def catalog_root(artifact_root: Path) -> Path:
    """60 items with a planted attribute table: genre jazz (i % 4 == 0), blues (i % 4 == 1), rock; country fr for
    even items, else de."""
    arrays = make_arrays("legcf", n_users=8, n_items=N_CATALOG, d=6, seed=3, seen_per_user=5)
    genre = np.array([_genre(i) for i in range(N_CATALOG)])
    country = np.array(["fr" if i % 2 == 0 else "de" for i in range(N_CATALOG)])
    arrays.update(encode_attributes(arrays["item_ids"], arrays["item_ids"], {"genre": genre, "country": country}))
    build_artifact(artifact_root, "legcf", arrays=arrays, manifest=make_manifest("legcf"))
    return artifact_root


def _ids(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    return [it["item_id"] for it in response.json()["items"]]


def test_allow_list_ranks_its_items_as_the_full_ranking(catalog_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        full = _ids(client.get(f"/recommend/u2?n={N_CATALOG}"))
        allow = ["i5", "i17", "i30", "i41", "i52", "i8"]
        r = client.get("/recommend/u2?n=4&items=i5,i17,i30,nope&items=i41&items=i52,i8")
        assert _ids(r) == [i for i in full if i in allow][:4]
        assert r.json()["ignored_items"] == ["nope"] and r.json()["ignored_exclude"] == []
        # with exclude on top, and the same through FastAPI's path (n given twice) and the batch route
        query = "items=i5,i17,i30,i41,i52,i8&exclude=i17"
        expected = [i for i in full if i in allow and i != "i17"]
        assert _ids(client.get(f"/recommend/u2?n=10&{query}")) == expected
        assert _ids(client.get(f"/recommend/u2?n=10&n=10&{query}")) == expected
        body = {"user_ids": ["u2", "ghost"], "n": 10, "items": allow, "exclude": ["i17"], "fallback": "popular"}
        r = client.post("/recommend/batch", json=body)
        assert r.status_code == 200, r.text
        u2, ghost = r.json()["results"]
        assert [it["item_id"] for it in u2["items"]] == expected
        assert {it["item_id"] for it in ghost["items"]} <= set(allow) - {"i17"} and ghost["strategy"] == "popular"
        # an allow-list of unknown ids only: nothing to answer
        assert _ids(client.get("/recommend/u2?items=nope")) == []
        similar = _ids(client.get("/similar-items/i5?n=3&items=i17,i30,i41,i5"))
        assert set(similar) == {"i17", "i30", "i41"}  # the item itself never


def test_where_filters_on_the_planted_attributes(catalog_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        full = _ids(client.get(f"/recommend/u1?n={N_CATALOG}"))
        jazz = _ids(client.get("/recommend/u1?n=100&where=genre:jazz"))
        assert jazz == [i for i in full if _genre(int(i[1:])) == "jazz"] and jazz
        either = _ids(client.get("/recommend/u1?n=100&where=genre:jazz|blues"))
        assert either == [i for i in full if _genre(int(i[1:])) in ("jazz", "blues")]
        both = _ids(client.get("/recommend/u1?n=100&where=genre:jazz|blues&where=country:de"))
        assert both == [i for i in full if _genre(int(i[1:])) == "blues"]  # blues are the odd ones
        assert _ids(client.get("/recommend/u1?n=100&where=genre:polka")) == []  # a value no item has
        assert _ids(client.get("/recommend/u1?n=100&n=100&where=genre:jazz")) == jazz  # FastAPI's path
        r = client.post("/recommend/batch", json={"user_ids": ["u1"], "n": 100, "where": ["genre:jazz"]})
        assert [it["item_id"] for it in r.json()["results"][0]["items"]] == jazz
        # allow-list and where together; popular fallback and similar items filter too
        assert _ids(client.get("/recommend/u1?n=100&where=genre:jazz&items=i0,i1,i4")) == [
            i for i in full if i in ("i0", "i4")
        ]
        visitor = client.post("/recommend", json={"items": ["i1", "i2"], "n": 100, "where": ["genre:jazz"]})
        assert visitor.json()["strategy"] == "fold_in" and _ids(visitor)
        assert all(_genre(int(i[1:])) == "jazz" for i in _ids(visitor))
        popular = _ids(client.get("/recommend/ghost?fallback=popular&n=100&where=country:fr"))
        assert popular and all(int(i[1:]) % 2 == 0 for i in popular)
        similar = _ids(client.get("/similar-items/i3?n=100&where=genre:rock"))
        assert "i3" not in similar and all(_genre(int(i[1:])) == "rock" for i in similar)


@pytest.mark.parametrize(
    ("query", "code", "says"),
    [
        ("where=colour:red", "unknown_attribute", "this model has: genre, country"),
        ("where=genre", "validation_error", "column:value"),
        ("where=genre:", "validation_error", "column:value"),
        ("where=genre:a|b|c", "validation_error", "at most 2 values"),
        ("items=i1,i2,i3,i4", "validation_error", "at most 3 ids in items"),
    ],
)
def test_bad_filters_are_422_json(catalog_root: Path, make_client, query: str, code: str, says: str) -> None:  # type: ignore[no-untyped-def]
    with make_client(max_candidates=3, max_where=2) as client:
        for path in (f"/recommend/u1?{query}", f"/recommend/u1?n=3&n=3&{query}", f"/similar-items/i1?{query}"):
            err = assert_error(client.get(path), 422, code)
            assert says in err["message"], (path, err)
        key, _, value = query.partition("=")
        body = {"user_ids": ["u1"], key: [value]}
        assert says in assert_error(client.post("/recommend/batch", json=body), 422, code)["message"]
    if code == "unknown_attribute":
        assert err["details"] == {"available": ["genre", "country"]}


def test_where_on_a_model_without_attributes_is_422(tiny_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        err = assert_error(client.get("/recommend/alice?where=genre:jazz"), 422, "no_item_attributes")
        assert "this model has no item attributes" in err["message"]
        assert_error(
            client.post("/recommend/batch", json={"user_ids": ["alice"], "where": ["a:b"]}), 422, "no_item_attributes"
        )
        assert client.get("/recommend/alice?items=i0,i1").status_code == 200  # allow-lists need no attributes


def test_filters_are_documented_with_examples(tiny_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client(max_candidates=7, max_where=5) as client:
        schema = client.get("/openapi.json").json()
    params = {p["name"]: p for p in schema["paths"]["/recommend/{user_id}"]["get"]["parameters"]}
    assert "At most 7 ids" in params["items"]["description"] and params["items"]["schema"]["examples"]
    assert "At most 5 values" in params["where"]["description"] and params["where"]["schema"]["examples"]
    similar = {p["name"] for p in schema["paths"]["/similar-items/{item_id}"]["get"]["parameters"]}
    assert {"items", "where", "exclude"} <= similar
    batch = schema["components"]["schemas"]["BatchRecommendRequest"]
    assert any(branch.get("maxItems") == 7 for branch in batch["properties"]["items"]["anyOf"])
    assert any("where" in example for example in batch["examples"])
    for method in ("put", "delete"):
        operation = schema["paths"]["/items/{item_id}/hidden"][method]
        assert {"401", "404", "503"} <= set(operation["responses"])
        assert operation["parameters"][0]["schema"]["examples"] == ["1337"]
    assert "409" in schema["paths"]["/items/{item_id}/hidden"]["put"]["responses"]
    assert "example" in schema["components"]["schemas"]["HiddenItemsResponse"]


@pytest.fixture
def planted_root(artifact_root: Path) -> Path:
    from tests.fixtures import planted_ud_arrays

    arrays, _ = planted_ud_arrays()
    build_artifact(artifact_root, "ud", arrays=arrays, manifest=make_manifest("ud"))
    return artifact_root


def test_post_recommend_folds_a_visitor_in_from_items(planted_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures import planted_ud_arrays

    _, item_comm = planted_ud_arrays()
    community = {f"i{i}": int(c) for i, c in enumerate(item_comm)}
    with make_client() as client:
        history = [f"i{i}" for i in np.flatnonzero(item_comm == 2)[:3]]
        r = client.post("/recommend", json={"items": [*history, "nope"], "n": 5, "exclude": ["zzz"]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["strategy"] == "fold_in" and body["ignored_items"] == ["nope"]
        assert body["ignored_exclude"] == ["zzz"]
        got = [it["item_id"] for it in body["items"]]
        assert len(got) == 5 and {community[i] for i in got} == {2} and not set(got) & set(history)

        # exclude_seen=false may return the history itself; exclude drops ids
        r = client.post("/recommend", json={"items": history, "n": 40, "exclude_seen": False, "exclude": [got[0]]})
        ranked = [it["item_id"] for it in r.json()["items"]]
        assert set(history) <= set(ranked) and got[0] not in ranked

        # nothing known: the popular items answer
        r = client.post("/recommend", json={"items": ["nope"], "n": 3})
        assert r.status_code == 200 and r.json()["strategy"] == "popular" and len(r.json()["items"]) == 3


def test_post_recommend_rejects_bad_bodies(planted_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client(max_history_items=3) as client:
        assert_error(client.post("/recommend", json={"items": []}), 422, "validation_error")
        assert_error(client.post("/recommend", json={"items": ["i1"], "n": 0}), 422, "validation_error")
        assert_error(client.post("/recommend", json={"items": ["i1"], "n": 100000}), 422, "validation_error")
        err = assert_error(client.post("/recommend", json={"items": ["a", "b", "c", "d"]}), 422, "validation_error")
        assert "at most 3" in err["message"]
        assert_error(client.post("/recommend", json={"items": "i1"}), 422, "validation_error")
        r = client.post("/recommend", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code in (400, 422) and "error" in r.json()


def test_known_users_can_be_served_by_fold_in(planted_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures import planted_ud_arrays

    _, item_comm = planted_ud_arrays()
    with make_client(user_vectors="fold_in") as client:
        for user in (0, 5, 10, 15):
            r = client.get(f"/recommend/u{user}", params={"n": 5})
            assert r.status_code == 200, r.text
            assert {int(item_comm[int(it["item_id"][1:])]) for it in r.json()["items"]} == {user % 4}
    with pytest.raises(ValueError, match="user_vectors"):
        from c2f.service.settings import Settings

        Settings(user_vectors="magic")  # type: ignore[arg-type]
