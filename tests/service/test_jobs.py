"""Training jobs API (service.jobs, service.routes.jobs) and the job function (jobs.train), without workers.

Real Redis at 127.0.0.1:6379, database 15 (skipped when unreachable). Each test uses a queue of its own and
deletes that queue's keys afterwards instead of flushing the database, so that concurrent runs of the suite
(several engineers, one Redis) cannot disturb each other. The helpers and
fixtures at the top are shared with test_worker.py and test_server.py.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue
from rq.job import Job

import benchmarks.jobs as harness
from benchmarks.jobs import start_worker, stop_process, worker_env  # noqa: F401  (tests/jobs import them here)
from c2f.contract.manifest import Manifest
from c2f.jobs.worker import apply_env, settings_to_env
from c2f.service import jobs
from c2f.service.main import create_app
from c2f.service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/15"
API_KEY = "test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TINY_PARAMS = {"dim": 16, "layers": 2, "epochs": 2, "batch_size": 512, "device": "cpu", "patience": 2}

pytestmark = pytest.mark.redis


# ---------------------------------------------------------------- shared helpers


def redis_or_skip() -> Redis:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"no Redis at {REDIS_URL}: {err}")
    return client


@pytest.fixture
def redis_db() -> Iterator[Redis]:
    client = redis_or_skip()
    try:
        yield client
    finally:
        client.close()


def delete_queue_keys(client: Redis, queue_name: str) -> None:
    """Delete every key of ``queue_name``: its queue and registries, its jobs and their results/flags."""
    job_ids = set()
    for key in client.scan_iter("rq:job:*", count=1000):
        if client.type(key) == b"hash" and client.hget(key, "origin") == queue_name.encode():
            job_ids.add(key.decode().split(":", 2)[2])
    keys = set(client.scan_iter(f"*{queue_name}*", count=1000))
    for job_id in job_ids:
        keys.update(client.scan_iter(f"*{job_id}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def queue_name(redis_db: Redis) -> Iterator[str]:
    """A queue of this test's own: tests (and concurrent runs of the suite) never see each other's jobs."""
    name = f"c2f-test-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        delete_queue_keys(redis_db, name)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    from c2f.trainer.synthetic import planted_communities, write_lightgcn_dir

    root = tmp_path / "data"
    users, items, _, _ = planted_communities(n_users=200, n_items=150, n_communities=4, items_per_user=(5, 10))
    write_lightgcn_dir(root / "ds", users, items)
    return root


@pytest.fixture
def job_settings(queue_name: str, data_root: Path, artifact_root: Path) -> Settings:
    """Settings for a job test: Redis db 15, a queue of its own, an API key, the tiny dataset under data_root."""
    return Settings(
        redis_url=REDIS_URL,
        queue_name=queue_name,
        api_key=API_KEY,
        artifact_root=str(artifact_root),
        data_root=data_root,
        reload_seconds=0,
        job_timeout_seconds=120,
        job_result_ttl_seconds=600,
        job_failure_ttl_seconds=600,
    )


def settings_kwargs(settings: Settings) -> dict[str, Any]:
    return settings.model_dump()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def enqueue(settings: Settings, func: str, **kwargs: Any) -> Job:
    """:func:`benchmarks.jobs.enqueue` on the Redis of ``settings`` (the tests' db 15 unless another is set)."""
    if not settings.redis_url:
        settings = settings.model_copy(update={"redis_url": REDIS_URL})
    return harness.enqueue(settings, func, **kwargs)


def queued_count(settings: Settings) -> int:
    return Queue(settings.queue_name, connection=Redis.from_url(REDIS_URL), serializer=jobs.SERIALIZER).count


# ---------------------------------------------------------------- params schema


def test_params_mirror_train_config() -> None:
    from c2f.contract.config import TrainConfig

    config_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    not_exposed = {"method", "extra"}  # method is a top-level request field; extra is not taken from the network
    assert set(jobs.TrainParams.model_fields) == set(config_fields) - not_exposed
    defaults = TrainConfig()
    for name, info in jobs.TrainParams.model_fields.items():
        assert info.default == getattr(defaults, name), name
    # TrainConfig's defaults pass the API's ranges
    payload = {k: v for k, v in defaults.to_dict().items() if k not in not_exposed}
    assert jobs.TrainParams.model_validate(payload).model_dump() == payload


def test_job_params_keep_only_what_the_client_set() -> None:
    request = jobs.TrainRequest.model_validate({"dataset_uri": "ds", "method": "ud", "params": {"dim": 8}})
    assert request.job_params() == {"dim": 8}


# ---------------------------------------------------------------- POST /train validation (nothing queued)


def test_api_key_required(make_client: Any, job_settings: Settings) -> None:
    body = {"dataset_uri": "ds", "method": "ud", "params": TINY_PARAMS}
    with make_client(**settings_kwargs(job_settings)) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_KEY}"}):
            response = client.post("/train", json=body, headers=headers)
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "unauthorized"
            assert client.delete("/jobs/abc", headers=headers).status_code == 401
        assert queued_count(job_settings) == 0
        response = client.post("/train", json=body, headers=AUTH)
        assert response.status_code == 202, response.text
        assert queued_count(job_settings) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"dataset_uri": "ds", "method": "ud", "params": {"bogus": 1}},
        {"dataset_uri": "ds", "method": "ud", "params": {"extra": {"x": 1}}},
        {"dataset_uri": "ds", "method": "ud", "params": {"method": "c2f"}},
        {"dataset_uri": "ds", "method": "ud", "unknown_top_level": 1},
        {"dataset_uri": "ds", "method": "svd"},
        {"method": "ud"},
        {"dataset_uri": "ds", "method": "ud", "params": {"dim": 0}},
        {"dataset_uri": "ds", "method": "ud", "params": {"dim": "16"}},
        {"dataset_uri": "ds", "method": "ud", "params": {"lr": -1.0}},
        {"dataset_uri": "ds", "method": "ud", "params": {"w_cr": 1.5}},
        {"dataset_uri": "ds", "method": "ud", "params": {"refit_codebook": 1}},
        {"dataset_uri": "ds", "method": "ud", "params": {"device": "cuda; rm -rf /"}},
        {"dataset_uri": "ds", "method": "c2f", "params": {"m_c": 2, "t_c": 3}},
        {"dataset_uri": "ds", "method": "ud", "params": []},
    ],
)
def test_invalid_bodies_are_422(make_client: Any, job_settings: Settings, body: dict[str, Any]) -> None:
    with make_client(**settings_kwargs(job_settings)) as client:
        response = client.post("/train", json=body, headers=AUTH)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_error" and error["message"]
    assert queued_count(job_settings) == 0


def test_unknown_param_is_named(make_client: Any, job_settings: Settings) -> None:
    with make_client(**settings_kwargs(job_settings)) as client:
        body = {"dataset_uri": "ds", "method": "ud", "params": {"learning_rate": 0.1}}
        message = client.post("/train", json=body, headers=AUTH).json()["error"]["message"]
    assert "params.learning_rate" in message


def test_non_json_body_is_422(make_client: Any, job_settings: Settings) -> None:
    with make_client(**settings_kwargs(job_settings)) as client:
        response = client.post("/train", content=b"not json", headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("/etc/passwd", "not allowed or does not exist"),
        ("../outside", ""),
        ("ds/../../x", ""),
        ("simplecache::file:///etc/passwd", "chained"),
        ("ftp://example.com/ds", "not allowed"),
        ("http://127.0.0.1:6379/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("missing-dir", "not allowed or does not exist"),
    ],
)
def test_unsafe_dataset_uri_is_422_and_nothing_queued(
    make_client: Any, job_settings: Settings, uri: str, reason: str
) -> None:
    with make_client(**settings_kwargs(job_settings)) as client:
        response = client.post("/train", json={"dataset_uri": uri, "method": "ud"}, headers=AUTH)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "unsafe_dataset_uri"
    assert reason in error["message"]
    assert queued_count(job_settings) == 0


def test_oversized_dataset_is_422(make_client: Any, job_settings: Settings) -> None:
    overrides = {**settings_kwargs(job_settings), "max_dataset_bytes": 100}
    with make_client(**overrides) as client:
        response = client.post("/train", json={"dataset_uri": "ds", "method": "ud"}, headers=AUTH)
    assert response.status_code == 422
    assert "over the limit of 100 bytes" in response.json()["error"]["message"]


# ---------------------------------------------------------------- Redis unavailable


def test_redis_down_is_503_and_serving_still_works(make_client: Any, data_root: Path) -> None:
    with make_client(redis_url="redis://127.0.0.1:1/0", data_root=data_root) as client:  # closed port
        assert client.get("/health/live").status_code == 200
        response = client.post("/train", json={"dataset_uri": "ds", "method": "ud"})
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "queue_unavailable"
        assert "cannot reach Redis at redis://127.0.0.1:1/0" in error["message"]
        for method, path in (("GET", "/jobs"), ("GET", "/jobs/abc"), ("DELETE", "/jobs/abc")):
            assert client.request(method, path).status_code == 503
        assert client.get("/health/live").status_code == 200
        assert client.get("/models").status_code == 200


def test_no_queue_configured_is_503(make_client: Any, data_root: Path) -> None:
    with make_client(redis_url=None, data_root=data_root) as client:
        response = client.post("/train", json={"dataset_uri": "ds", "method": "ud"})
    assert response.status_code == 503
    assert "no job queue is configured" in response.json()["error"]["message"]


def test_redis_password_is_redacted() -> None:
    assert jobs.redact_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert jobs.redact_url("redis://host:6379/0") == "redis://host:6379/0"


# ---------------------------------------------------------------- queueing, status, listing, cancel (no worker)


def test_post_train_with_only_a_dataset_trains_what_c2f_train_trains(
    make_client: Any, job_settings: Settings, data_root: Path
) -> None:
    """No method and no params: the job names no method and sets nothing, so the worker trains the default recipe,
    as `c2f train DATA` does."""
    with make_client(**settings_kwargs(job_settings)) as client:
        response = client.post("/train", json={"dataset_uri": "ds"}, headers=AUTH)
        assert response.status_code == 202, response.text
        job = Job.fetch(response.json()["job_id"], connection=Redis.from_url(REDIS_URL), serializer=jobs.SERIALIZER)
        assert job.kwargs["method"] is None and job.kwargs["params"] == {}


def test_post_train_enqueues_by_dotted_path(make_client: Any, job_settings: Settings, data_root: Path) -> None:
    body = {"dataset_uri": "ds", "method": "ud", "params": {"dim": 16, "epochs": 2}}
    with make_client(**settings_kwargs(job_settings)) as client:
        response = client.post("/train", json=body, headers=AUTH)
        assert response.status_code == 202
        job_id = response.json()["job_id"]

        job = Job.fetch(job_id, connection=Redis.from_url(REDIS_URL), serializer=jobs.SERIALIZER)
        assert job.func_name == "c2f.jobs.train.train_job"
        assert job.timeout == job_settings.job_timeout_seconds
        assert job.result_ttl == job_settings.job_result_ttl_seconds
        assert job.failure_ttl == job_settings.job_failure_ttl_seconds
        assert job.kwargs == {
            "dataset_uri": str((data_root / "ds").resolve()),
            "method": "ud",
            "params": {"dim": 16, "epochs": 2},
            "artifact_root": str(Path(job_settings.artifact_root).resolve()),
            "include_events": True,
        }

        status = client.get(f"/jobs/{job_id}").json()
        assert status["status"] == "queued"
        assert status["position"] == 0
        assert status["method"] == "ud"
        assert status["model_version"] is None and status["error"] is None

        second = client.post("/train", json=body, headers=AUTH).json()["job_id"]
        listed = client.get("/jobs").json()["jobs"]
        assert [j["job_id"] for j in listed] == [second, job_id]
        assert client.get("/jobs", params={"status": "finished"}).json()["jobs"] == []
        assert len(client.get("/jobs", params={"limit": 1}).json()["jobs"]) == 1
        assert client.get("/jobs", params={"status": "bogus"}).status_code == 422
        off = client.post("/train", json={**body, "include_events": False}, headers=AUTH).json()["job_id"]
        assert (
            Job.fetch(off, connection=Redis.from_url(REDIS_URL), serializer=jobs.SERIALIZER).kwargs["include_events"]
            is False
        )


def test_cancel_queued_job(make_client: Any, job_settings: Settings) -> None:
    with make_client(**settings_kwargs(job_settings)) as client:
        job_id = client.post("/train", json={"dataset_uri": "ds", "method": "ud"}, headers=AUTH).json()["job_id"]
        response = client.delete(f"/jobs/{job_id}", headers=AUTH)
        assert response.status_code == 202
        assert response.json() == {"job_id": job_id, "status": "canceled"}
        assert queued_count(job_settings) == 0
        status = client.get(f"/jobs/{job_id}").json()
        assert status["status"] == "canceled"
        assert [j["status"] for j in client.get("/jobs").json()["jobs"]] == ["canceled"]
        again = client.delete(f"/jobs/{job_id}", headers=AUTH)
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "job_ended"


def test_unknown_job_is_404(make_client: Any, job_settings: Settings) -> None:
    with make_client(**settings_kwargs(job_settings)) as client:
        for job_id in ("0123456789abcdef", "bad.id", "x" * 100):
            response = client.get(f"/jobs/{job_id}")
            assert response.status_code == 404, (job_id, response.text)
        assert client.delete("/jobs/nope", headers=AUTH).json()["error"]["code"] == "job_not_found"


def test_readable_errors() -> None:
    traceback = (
        'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
        "trainer.data.readers.DatasetError: ds/train.txt:3: expected integers\n"
    )
    assert jobs.readable_error(traceback) == "DatasetError: ds/train.txt:3: expected integers"
    assert "stopped unexpectedly" in (
        jobs.readable_error("Moved to FailedJobRegistry, due to AbandonedJobError, at 2024") or ""
    )
    killed = jobs.readable_error("Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); ")
    assert killed == "the training process was killed by signal 9 (out of memory?)"
    timeout = "Traceback...\nrq.timeouts.JobTimeoutException: Task exceeded maximum timeout value (60 seconds)"
    assert (
        jobs.readable_error(timeout, timeout_seconds=60)
        == "training exceeded the job timeout of 60 s (job_timeout_seconds)"
    )
    assert jobs.readable_error(None) is None


# ---------------------------------------------------------------- jobs.train.train_job, in process


@dataclasses.dataclass
class FakePublished:
    version: str
    path: Path
    manifest: Manifest


def fake_pipeline(calls: list[dict[str, Any]]) -> Callable[..., FakePublished]:
    def train_and_publish(
        uri: str, config: Any, out_root: str, *, progress: Any = None, extra_interactions: Any = None
    ) -> FakePublished:
        calls.append({"uri": uri, "config": config, "out_root": out_root, "extra_interactions": extra_interactions})
        progress({"stage": "coarse", "epoch": 1, "loss": 0.69, "valid": {"ndcg@20": 0.1}, "elapsed": 0.1})
        progress({"stage": "coarse", "epoch": 2, "loss": 0.5, "valid": None, "elapsed": 0.2})
        progress({"stage": "export", "epoch": 2, "loss": None, "valid": None, "elapsed": 0.3})
        metrics = {"trained": {"test": {"recall@20": 0.3}}, "history": [{}, {}], "served": {}}
        manifest = Manifest.model_validate({"method": "ud", "metrics": metrics})
        return FakePublished("20240101T000000000000Z-ud", Path(out_root) / "v", manifest)

    return train_and_publish


def test_train_job_with_fake_pipeline(
    monkeypatch: pytest.MonkeyPatch, job_settings: Settings, data_root: Path, redis_db: Redis
) -> None:
    import rq

    import c2f.jobs.train as tj

    apply_env(settings_to_env(job_settings), _EnvProxy(monkeypatch))
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(tj, "_pipeline", lambda: fake_pipeline(calls))
    job = enqueue(job_settings, "c2f.jobs.train.train_job")
    monkeypatch.setattr(rq, "get_current_job", lambda: job)

    result = tj.train_job("ds", "ud", {"dim": 16}, "/tmp/out")
    assert result == {
        "model_version": "20240101T000000000000Z-ud",
        "path": "/tmp/out/v",
        "metrics": {"trained": {"test": {"recall@20": 0.3}}, "served": {}},
    }
    assert calls[0]["uri"] == str((data_root / "ds").resolve())
    assert calls[0]["config"].method == "ud" and calls[0]["config"].dim == 16
    meta = Job.fetch(job.id, connection=redis_db, serializer=jobs.SERIALIZER).meta
    assert meta["stage"] == "export" and meta["epoch"] == 2
    assert meta["valid"] == {"ndcg@20": 0.1}  # latest validation metrics stay visible
    json.dumps(result)  # JSON-serialisable (the queue's serializer)


def test_train_job_honours_cancel_flag(
    monkeypatch: pytest.MonkeyPatch, job_settings: Settings, redis_db: Redis
) -> None:
    import rq

    import c2f.jobs.train as tj

    apply_env(settings_to_env(job_settings), _EnvProxy(monkeypatch))
    monkeypatch.setattr(tj, "_pipeline", lambda: fake_pipeline([]))
    job = enqueue(job_settings, "c2f.jobs.train.train_job")
    monkeypatch.setattr(rq, "get_current_job", lambda: job)
    redis_db.set(jobs.CANCEL_KEY.format(job_id=job.id), "1")
    with pytest.raises(tj.JobCanceled):
        tj.train_job("ds", "ud", {}, "/tmp/out")


def test_train_job_revalidates_uri_and_params(monkeypatch: pytest.MonkeyPatch, job_settings: Settings) -> None:
    import c2f.jobs.train as tj
    from c2f.service.uri import UnsafeURIError

    apply_env(settings_to_env(job_settings), _EnvProxy(monkeypatch))
    monkeypatch.setattr(tj, "_pipeline", lambda: pytest.fail("must not train"))
    with pytest.raises(UnsafeURIError, match="not allowed or does not exist"):
        tj.train_job("/etc/passwd", "ud", {}, "/tmp/out")
    with pytest.raises(ValueError, match="unknown training parameters: bogus"):
        tj.train_job("ds", "ud", {"bogus": 1}, "/tmp/out")
    with pytest.raises(ValueError, match="unknown method"):
        tj.train_job("ds", "svd", {}, "/tmp/out")
    with pytest.raises(ValueError, match="invalid version name"):
        tj.train_job("ds", "c2f", {"coarse_from": "../../etc"}, "/tmp/out")


def test_coarse_from_is_a_version_name_resolved_in_the_artifact_root(
    monkeypatch: pytest.MonkeyPatch, job_settings: Settings
) -> None:
    import c2f.jobs.train as tj

    apply_env(settings_to_env(job_settings), _EnvProxy(monkeypatch))
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(tj, "_pipeline", lambda: fake_pipeline(calls))
    version = "20240101T000000000000Z-legcf"
    tj.train_job("ds", "c2f", {"coarse_from": version}, "/srv/artifacts")
    assert calls[0]["config"].coarse_from == f"/srv/artifacts/versions/{version}"
    for bad in ("/etc/passwd", "../x", "20240101T000000000000Z-ud"):
        with pytest.raises(ValueError):
            jobs.TrainParams.model_validate({"coarse_from": bad})


def test_train_job_includes_the_recorded_events(
    monkeypatch: pytest.MonkeyPatch, job_settings: Settings, data_root: Path, artifact_root: Path
) -> None:
    """Events recorded for the dataset are in the trained model's graph (a new user included), the manifest records
    the last entry included, and a service serving that model does not apply them again; include_events=false
    trains on the file alone."""
    import c2f.jobs.train as tj
    from c2f.contract.artifact import load_artifact, version_path
    from c2f.service.events import stream_key
    from c2f.trainer.data import load_dataset

    namespace = f"test-{uuid.uuid4().hex[:12]}"
    settings = job_settings.model_copy(update={"events_namespace": namespace})
    apply_env(settings_to_env(settings), _EnvProxy(monkeypatch))
    data = load_dataset(str(data_root / "ds"))
    user0_items = set(data.train[0].indices.tolist())
    new_item = next(str(i) for i in range(data.n_items) if i not in user0_items)
    stream = stream_key(namespace, data.content_hash)
    client = Redis.from_url(REDIS_URL)
    events = [("newcomer", "3"), ("newcomer", "5"), ("0", new_item), ("0", "no-such-item")]
    try:
        ids = [client.xadd(stream, {"u": u, "i": i, "t": "1.0"}).decode() for u, i in events]
        params = {**TINY_PARAMS, "epochs": 1}
        result = tj.train_job("ds", "ud", params, str(artifact_root))
        artifact = load_artifact(version_path(artifact_root, result["model_version"]))
        user_ids = artifact.arrays["user_ids"].tolist()
        item_ids = artifact.arrays["item_ids"].tolist()
        indptr, indices = artifact.arrays["graph_indptr"], artifact.arrays["graph_indices"]

        def graph_items(user: str) -> set[str]:
            u = user_ids.index(user)
            return {item_ids[i] for i in indices[indptr[u] : indptr[u + 1]]}

        assert {"3", "5"} <= graph_items("newcomer")
        heldout = artifact.arrays["heldout_indices"][
            artifact.arrays["heldout_indptr"][0] : artifact.arrays["heldout_indptr"][1]
        ]
        assert new_item in graph_items("0") and new_item not in {item_ids[i] for i in heldout}
        info = artifact.manifest.info["events"]
        assert info["stream"] == stream and info["last_id"] == ids[-1] and info["events"] == 4
        assert info["new_users"] == 1 and info["unknown_items"] == 1 and info["added_to_train"] == 3

        # served: the included events are not applied on top of the model that learned them; later ones are
        with TestClient(create_app(settings.model_copy(update={"artifact_root": str(artifact_root)}))) as api:
            r = api.get("/recommend/newcomer")
            assert r.status_code == 200 and r.json()["strategy"] == "model"
            assert api.get("/footprint").json()["events"]["folded_users"] == 0
            api.post("/interactions", json={"events": [{"user_id": "later", "item_id": "7"}]}, headers=AUTH)
            assert api.get("/recommend/later").json()["strategy"] == "fold_in"

        plain = tj.train_job("ds", "ud", params, str(artifact_root), include_events=False)
        manifest = load_artifact(version_path(artifact_root, plain["model_version"])).manifest
        assert "events" not in manifest.info and manifest.dataset.stats["n_users"] == data.n_users
    finally:
        client.delete(stream)
        client.close()


def test_train_job_fails_when_the_events_cannot_be_read(
    monkeypatch: pytest.MonkeyPatch, job_settings: Settings
) -> None:
    import c2f.jobs.train as tj

    down = job_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0", "redis_timeout_seconds": 0.3})
    apply_env(settings_to_env(down), _EnvProxy(monkeypatch))
    with pytest.raises(tj.EventsUnreadable, match="include_events=false"):
        tj.train_job("ds", "ud", {**TINY_PARAMS, "epochs": 1}, "/tmp/never")


class _EnvProxy:
    """Lets apply_env write through monkeypatch (restored after the test)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.mp = monkeypatch

    def __setitem__(self, key: str, value: str) -> None:
        self.mp.setenv(key, value)

    def pop(self, key: str, default: Any = None) -> Any:
        self.mp.delenv(key, raising=False)
        return default


# ---------------------------------------------------------------- the service never imports trainer / torch


def test_service_job_modules_do_not_import_trainer_or_torch() -> None:
    code = (
        "import sys, json\n"
        "import c2f.service.jobs, c2f.service.routes.jobs, c2f.jobs.worker, c2f.jobs.server, c2f.service.uri\n"
        "import c2f.service.main\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith('c2f.trainer')]\n"
        "print(json.dumps(sorted(bad)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_settings_round_trip_through_environment(job_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    changed = job_settings.model_copy(update={"allowed_schemes": ["file", "https"], "allow_private_hosts": True})
    apply_env(settings_to_env(changed), _EnvProxy(monkeypatch))
    assert Settings() == changed
