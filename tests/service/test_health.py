from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from c2f.service.main import create_app
from c2f.service.settings import Settings
from tests.fixtures import assert_error, build_artifact


def test_live_and_ready_without_model(make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        assert client.get("/health/live").json() == {"status": "ok"}
        assert_error(client.get("/health/ready"), 503, "no_model")


def test_ready_once_a_model_is_loaded(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        assert client.get("/health/ready").status_code == 503
        version = build_artifact(artifact_root, "ud")
        assert client.post("/models/reload").status_code == 200
        r = client.get("/health/ready")
        assert r.status_code == 200 and r.json()["status"] == "ready" and r.json()["model_version"] == version
        # no Redis configured: nothing can be hidden, and nothing is stale
        hidden = r.json()["hidden_items"]
        assert hidden["configured"] is False and hidden["count"] == 0 and hidden["stale"] is False


def test_unknown_route_and_method_are_json(make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        assert_error(client.get("/does-not-exist"), 404, "not_found")
        assert_error(client.delete("/health/live"), 405, "method_not_allowed")


def test_metrics(artifact_root: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    version = build_artifact(artifact_root, "c2f")
    with make_client() as client:
        client.get("/recommend/u0")
        client.get("/recommend/nobody")
        client.get("/nothing-here")
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'c2f_http_request_duration_seconds_count{method="GET",route="/recommend/{user_id}",status="200"} 1.0' in text
    assert 'route="/recommend/{user_id}",status="404"' in text
    assert 'route="unmatched",status="404"' in text
    assert f'c2f_model_info{{method="c2f",serving_mode="compressed",version="{version}"}} 1.0' in text
    assert 'c2f_model_footprint_bytes{component="S_c"}' in text
    assert "c2f_model_params_paper " in text
    assert "c2f_model_reload_failures_total 0.0" in text
    assert "c2f_model_loaded 1.0" in text


def test_two_apps_in_one_process_do_not_clash(artifact_root: Path, tmp_path: Path) -> None:
    build_artifact(artifact_root, "legcf")
    a = create_app(Settings(artifact_root=str(artifact_root), reload_seconds=0))
    b = create_app(Settings(artifact_root=str(tmp_path / "empty"), reload_seconds=0))
    with TestClient(a) as ca, TestClient(b) as cb:
        ca.get("/health/ready")
        assert "c2f_model_loaded 1.0" in ca.get("/metrics").text
        assert "c2f_model_loaded 0.0" in cb.get("/metrics").text
        assert 'route="/health/ready"' not in cb.get("/metrics").text


def test_openapi_documents_routes_and_errors(make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/recommend/{user_id}",
        "/recommend/batch",
        "/similar-items/{item_id}",
        "/footprint",
        "/health/live",
        "/health/ready",
        "/models",
        "/models/reload",
        "/metrics",
    ):
        assert path in paths, path
    assert "404" in paths["/recommend/{user_id}"]["get"]["responses"]
    schemas = spec["components"]["schemas"]
    assert "example" in schemas["RecommendResponse"] and "ErrorResponse" in schemas
