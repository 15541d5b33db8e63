"""Hostile and malformed requests (issue 11): each answers a JSON error, bounded in size and time, and leaks
nothing. The slow-body, malformed-request-line and long-URL cases run against a real uvicorn server on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from c2f.service.main import create_app
from c2f.service.settings import Settings
from tests.fixtures import assert_error, build_artifact, make_manifest, tiny_known_arrays
from tests.live import live_server, raw_request


@pytest.fixture
def tiny_root(artifact_root: Path) -> Path:
    build_artifact(artifact_root, "legcf", arrays=tiny_known_arrays(), manifest=make_manifest("legcf"))
    return artifact_root


# ---------------------------------------------------------------- defect 1: lone surrogates


@pytest.mark.parametrize(
    "body",
    [
        {"user_ids": ["\ud800"]},
        {"user_ids": ["\ud800"], "fallback": "popular"},
        {"user_ids": ["alice"], "exclude": ["\udfff", "i0"]},
        {"user_ids": ["\ud800x"], "n": 0},  # a validation error that names the input
        {"user_ids": ["alice"], "\ud800": 1},
    ],
)
def test_lone_surrogates_never_give_500(tiny_root: Path, make_client: Any, body: dict[str, Any]) -> None:
    raw = json.dumps(body)  # ensure_ascii: the surrogate travels as the escape \\ud800, as an attacker sends it
    with make_client() as client:
        r = client.post("/recommend/batch", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (200, 422), r.text
    parsed = json.loads(r.content)  # valid JSON, with the surrogate escaped
    assert isinstance(parsed, dict)


def test_lone_surrogate_is_echoed_back_escaped(tiny_root: Path, make_client: Any) -> None:
    raw = json.dumps({"user_ids": ["\ud800"], "fallback": "popular", "n": 1})
    with make_client() as client:
        r = client.post("/recommend/batch", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 200
    assert json.loads(r.content)["results"][0]["user_id"] == "\ud800"


# ---------------------------------------------------------------- defect 4: unbounded work


def test_exclude_list_is_bounded(tiny_root: Path, make_client: Any) -> None:
    with make_client(max_exclude=100) as client:
        many = ",".join(f"x{i}" for i in range(101))
        assert_error(client.get(f"/recommend/alice?exclude={many}"), 422, "validation_error")
        body = {"user_ids": ["alice"], "exclude": [f"x{i}" for i in range(101)]}
        assert_error(client.post("/recommend/batch", json=body), 422, "validation_error")
        ok = client.get("/recommend/alice", params={"exclude": ",".join(f"x{i}" for i in range(100))})
        assert ok.status_code == 200 and len(ok.json()["ignored_exclude"]) == 100


def test_body_over_the_limit_is_413(tiny_root: Path, make_client: Any) -> None:
    with make_client(max_body_bytes=10_000) as client:
        big = json.dumps({"user_ids": ["alice"], "exclude": ["x" * 50] * 400})
        assert_error(
            client.post("/recommend/batch", content=big, headers={"content-type": "application/json"}),
            413,
            "payload_too_large",
        )

        def chunks() -> Any:  # no Content-Length: counted while read
            for _ in range(20):
                yield b" " * 1000

        r = client.post("/recommend/batch", content=chunks(), headers={"content-type": "application/json"})
        assert_error(r, 413, "payload_too_large")


def test_slow_body_is_cut_off_with_408(tiny_root: Path) -> None:
    app = create_app(Settings(artifact_root=str(tiny_root), reload_seconds=0, body_read_seconds=1.0))
    with live_server(app) as base:
        start = time.monotonic()
        head = (
            b"POST /recommend/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n"
        )
        answer = raw_request(base, head + b'{"user_ids": ["alice"], "n"', timeout=15)
        elapsed = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"request_timeout"' in answer
    assert elapsed < 10, elapsed  # the connection is let go, not held for the client's lifetime


# ---------------------------------------------------------------- defect 5: metrics cardinality


def test_arbitrary_methods_do_not_grow_metrics(tiny_root: Path, make_client: Any) -> None:
    with make_client() as client:
        client.get("/recommend/alice")
        before = client.get("/metrics").text
        for i in range(50):
            client.request(f"X{i}", "/recommend/alice")
            client.request(f"Y{i}", f"/no/such/path/{i}")
            client.get(f"/no/such/path/{i}")
        after = client.get("/metrics").text
    assert "X1" not in after and "/no/such" not in after
    series = [line for line in after.splitlines() if line.startswith("c2f_http_request_duration_seconds_count")]
    assert len(series) <= 8, series  # a handful of (route, method, status) combinations, not 150
    assert len(after) < len(before) + 20_000


# ---------------------------------------------------------------- defect 6: no path leaks


def test_dataset_path_probes_get_one_answer_and_no_paths(tmp_path: Path, make_client: Any) -> None:
    data = tmp_path / "data"
    (data / "ds").mkdir(parents=True)
    (data / "ds" / "train.txt").write_text("0 1\n")
    secret = tmp_path / "outside"
    secret.mkdir()
    messages = set()
    with make_client(data_root=str(data), redis_url=None) as client:
        for uri in (
            str(secret),  # exists, outside
            str(tmp_path / "nope"),  # does not exist, outside
            "missing",  # does not exist, inside
            "../outside",
            f"file://{data}/%2e%2e/outside",
            "ds/%2e%2e/%2e%2e/outside",
        ):
            r = client.post("/train", json={"dataset_uri": uri, "method": "ud"})
            err = assert_error(r, 422, "unsafe_dataset_uri")
            messages.add(err["message"])
            assert str(tmp_path) not in r.text
    assert len(messages) == 1, messages


def test_models_and_errors_show_no_absolute_paths(tiny_root: Path, make_client: Any) -> None:
    with make_client() as client:
        models = client.get("/models")
        version = models.json()["loaded"]["version"]
        assert models.json()["loaded"]["path"] == f"versions/{version}"
        (tiny_root / "LATEST").write_text("20990101T000000000000Z-c2f\n")
        reload = client.post("/models/reload")
        assert reload.status_code == 409
        for r in (models, reload, client.get("/models"), client.get("/")):
            assert str(tiny_root) not in r.text, r.text
            assert str(tiny_root.parent) not in r.text


# ---------------------------------------------------------------- defect 9: every error is JSON


def test_parser_errors_and_long_urls_are_json(tiny_root: Path) -> None:
    app = create_app(Settings(artifact_root=str(tiny_root), reload_seconds=0))
    with live_server(app) as base:
        malformed = raw_request(base, b"GARBAGE\r\n\r\n")
        assert malformed.startswith(b"HTTP/1.1 400"), malformed[:200]
        head, _, body = malformed.partition(b"\r\n\r\n")
        assert b"application/json" in head.lower()
        assert json.loads(body)["error"]["code"] == "bad_request"

        # 690 KB: over what the parser buffers or what the app allows; either way a JSON error
        long_url = raw_request(
            base, b"GET /recommend/alice?exclude=" + b"x" * 690_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        status_line, _, rest = long_url.partition(b"\r\n")
        assert status_line in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 414 Request-URI Too Long"), long_url[:200]
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] in ("bad_request", "uri_too_long")

        over_limit = httpx.get(f"{base}/recommend/alice?exclude={'x' * 9000}", timeout=30)
        assert_error(over_limit, 414, "uri_too_long")
        big_headers = httpx.get(f"{base}/health/live", headers={"x-big": "y" * 200_000}, timeout=30)
        assert_error(big_headers, 431, "headers_too_large")


# ---------------------------------------------------------------- defect 11: the Allow header on 405


def test_405_allow_header_names_every_method_of_the_path(tiny_root: Path, make_client: Any) -> None:
    with make_client() as client:
        r = client.patch("/jobs/some-id")
        assert_error(r, 405, "method_not_allowed")
        assert r.headers["allow"] == "GET, DELETE"
        r = client.delete("/recommend/alice")
        assert r.headers["allow"] == "GET"
