"""`c2f serve` (jobs.server): the embedded Redis + worker default, end to end over real HTTP, and a clean
shutdown that leaves no process behind."""

from __future__ import annotations

import functools
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from redis import Redis
from rq import Queue
from rq.job import Job

from c2f.jobs.server import EmbeddedRedis, WorkerProcess, embedded_queue
from c2f.service import jobs
from c2f.service.settings import Settings
from tests.jobs.test_worker import QUICK, gone
from tests.service import test_jobs as shared
from tests.service.test_jobs import REDIS_URL, REPO, TINY_PARAMS, wait_for, worker_env

pytestmark = [pytest.mark.redis, pytest.mark.slow]

# fixtures shared with test_jobs.py
redis_db = shared.redis_db
queue_name = shared.queue_name
data_root = shared.data_root


def _enqueue_quick(url: str, settings: Settings) -> Job:
    queue = Queue(settings.queue_name, connection=Redis.from_url(url), serializer=jobs.SERIALIZER)
    return queue.enqueue_call(func=QUICK, timeout=60, result_ttl=600, failure_ttl=600)


def _status(url: str, job_id: str) -> str:
    return Job.fetch(job_id, connection=Redis.from_url(url), serializer=jobs.SERIALIZER).get_status().value


def test_embedded_redis_is_private_and_removed_on_stop() -> None:
    redis = EmbeddedRedis()
    url = redis.start()
    try:
        assert url.startswith("unix://") and url.endswith("?db=0")
        assert stat.S_IMODE(os.stat(redis.directory).st_mode) == 0o700
        assert Redis.from_url(url).ping()
        assert redis.proc is not None
        pid = redis.proc.pid
    finally:
        redis.stop()
    assert gone(pid)
    assert not redis.directory.exists()


def test_embedded_redis_in_a_directory_keeps_its_data_across_restarts(tmp_path: Path) -> None:
    """C2F_EMBEDDED_REDIS_DIR: jobs and hidden items outlive a restart (Redis saves on SIGTERM and loads on start)."""
    redis = EmbeddedRedis(tmp_path / "redis")
    try:
        client = Redis.from_url(redis.start())
        assert client.config_get("save")["save"] == "60 1"
        client.sadd("kept", "a")
        client.close()
        redis.stop()
        client = Redis.from_url(redis.start())
        assert client.smembers("kept") == {b"a"}
        client.close()
    finally:
        redis.stop()


def test_embedded_queue_runs_jobs_and_shuts_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the worker imports this test package's job functions
    settings = Settings(redis_url=None, artifact_root=str(tmp_path / "artifacts"), data_root=tmp_path)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with embedded_queue(settings) as embedded:
        url = embedded.redis_url
        assert url and url.startswith("unix://")
        children = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        names = " ".join(" ".join(p.cmdline()) for p in children)
        assert "redis-server" in names and "c2f.jobs.worker" in names
        job = _enqueue_quick(url, settings)
        wait_for(lambda: _status(url, job.id) == "finished", 30, "job on the embedded worker")
    for child in children:
        wait_for(functools.partial(gone, child.pid), 15, f"{child.pid} to exit")


def test_worker_process_is_restarted_when_it_dies(queue_name: str, tmp_path: Path) -> None:
    settings = Settings(redis_url=REDIS_URL, artifact_root=str(tmp_path), queue_name=queue_name)
    worker = WorkerProcess(settings)
    worker.start()
    try:
        assert worker.proc is not None
        first = worker.proc.pid
        worker.proc.send_signal(signal.SIGKILL)
        wait_for(lambda: worker.proc is not None and worker.proc.pid != first, 15, "worker restart")
        assert worker.restarts == 1
    finally:
        worker.stop()
    assert worker.proc is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    code = (
        "import sys\n"
        "from c2f.jobs.server import serve\n"
        "from c2f.service.settings import Settings\n"
        f"serve('127.0.0.1', {port}, Settings())\n"
    )
    env = worker_env(settings)
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _live(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health/live", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _shutdown(proc: subprocess.Popen[bytes], children: list[psutil.Process]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise
    for child in children:
        wait_for(functools.partial(gone, child.pid), 15, f"child {child.pid} to exit")


def test_serve_embedded_end_to_end(data_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    settings = Settings(
        redis_url=None, artifact_root=str(tmp_path / "artifacts"), data_root=data_root, reload_seconds=0.2
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(settings, port)
    children: list[psutil.Process] = []
    try:
        wait_for(lambda: _live(base) or proc.poll() is not None, 30, "the server to start")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        children = psutil.Process(proc.pid).children(recursive=True)
        response = httpx.post(
            f"{base}/train", json={"dataset_uri": "ds", "method": "ud", "params": TINY_PARAMS}, timeout=10
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]

        def finished() -> dict[str, Any] | None:
            status = httpx.get(f"{base}/jobs/{job_id}", timeout=5).json()
            assert status["status"] in ("queued", "started", "finished"), status
            return status if status["status"] == "finished" else None

        version = wait_for(finished, 90, "the training job", interval=0.2)["model_version"]

        def serving() -> bool:
            rec = httpx.get(f"{base}/recommend/0", params={"n": 3}, timeout=5)
            return rec.status_code == 200 and rec.json()["model_version"] == version

        wait_for(serving, 20, "the new version to be served", interval=0.2)
    finally:
        if proc.poll() is None:
            _shutdown(proc, children)
    assert proc.returncode == 0, proc.stderr.read().decode()[-3000:] if proc.stderr else ""


def test_serve_with_external_redis_runs_no_children(queue_name: str, tmp_path: Path) -> None:
    settings = Settings(
        redis_url=REDIS_URL, queue_name=queue_name, artifact_root=str(tmp_path / "artifacts"), data_root=tmp_path
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(settings, port)
    try:
        wait_for(lambda: _live(base) or proc.poll() is not None, 30, "the server to start")
        assert proc.poll() is None
        assert psutil.Process(proc.pid).children(recursive=True) == []
        assert httpx.get(f"{base}/jobs", timeout=5).json() == {"jobs": []}
    finally:
        if proc.poll() is None:
            _shutdown(proc, [])
    assert proc.returncode == 0
