"""The worker (jobs.worker) in real subprocesses against Redis db 15: a real training job end to end, cancelling
a running job, and a worker killed with SIGKILL mid-job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from redis import Redis

from benchmarks.jobs import SLEEPY
from c2f.service.settings import Settings
from tests.service import test_jobs as shared
from tests.service.test_jobs import (
    API_KEY,
    AUTH,
    REDIS_URL,
    REPO,
    TINY_PARAMS,
    enqueue,
    settings_kwargs,
    start_worker,
    stop_process,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

# fixtures shared with test_jobs.py
redis_db = shared.redis_db
queue_name = shared.queue_name
data_root = shared.data_root
job_settings = shared.job_settings

QUICK = "tests.jobs.test_worker.quick_job"


# ---------------------------------------------------------------- job functions run by the test workers


def quick_job() -> dict[str, Any]:
    return {"model_version": "quick", "metrics": {"pid": os.getpid()}}


# ---------------------------------------------------------------- helpers


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def status_of(client: Any, job_id: str) -> dict[str, Any]:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def horse_pid(client: Any, job_id: str) -> int | None:
    from rq.job import Job

    from c2f.service.jobs import SERIALIZER

    job = Job.fetch(job_id, connection=Redis.from_url(REDIS_URL), serializer=SERIALIZER)
    return job.get_meta(refresh=True).get("horse_pid")  # type: ignore[no-any-return]


# ---------------------------------------------------------------- tests


WORKER_SCRIPT = """
import json, sys
from c2f.jobs.worker import run_worker
run_worker(burst=True)
loaded = [m for m in sys.modules if m.split(".")[0] == "torch" or m.startswith("c2f.trainer")]
print("MODULES=" + json.dumps(sorted(loaded)))
"""


def test_train_end_to_end_and_worker_parent_stays_torch_free(make_client: Any, job_settings: Settings) -> None:
    pytest.importorskip("torch")
    with make_client(**settings_kwargs(job_settings)) as client:
        body = {"dataset_uri": "ds", "method": "ud", "params": TINY_PARAMS}
        response = client.post("/train", json=body, headers=AUTH)
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]

        out = subprocess.run(
            [sys.executable, "-c", WORKER_SCRIPT],
            cwd=REPO,
            env=worker_env(job_settings),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        modules = [line for line in out.stdout.splitlines() if line.startswith("MODULES=")]
        assert json.loads(modules[-1][len("MODULES=") :]) == [], "the worker parent imported c2f/trainer/torch"

        status = status_of(client, job_id)
        assert status["status"] == "finished", status
        version = status["model_version"]
        assert version and version.endswith("-ud")
        assert status["metrics"]["trained"]
        assert status["epoch"] >= 1 and isinstance(status["loss"], float)
        assert "ndcg@20" in status["valid"]
        assert status["stage"] in ("export", "loading", "coarse", "fine", "ud")
        assert status["elapsed_seconds"] > 0 and status["error"] is None
        assert (Path(job_settings.artifact_root) / "versions" / version).is_dir()

        # the service picks the new version up and answers from it
        reload = client.post("/models/reload", headers={"Authorization": f"Bearer {API_KEY}"})
        assert reload.status_code == 200, reload.text
        assert reload.json()["model_version"] == version
        rec = client.get("/recommend/0", params={"n": 5})
        assert rec.status_code == 200, rec.text
        assert rec.json()["model_version"] == version and len(rec.json()["items"]) == 5
        assert [j["status"] for j in client.get("/jobs").json()["jobs"]] == ["finished"]


def test_failed_training_reports_readable_error(make_client: Any, job_settings: Settings) -> None:
    (job_settings.data_root / "broken").mkdir()
    (job_settings.data_root / "broken" / "train.txt").write_text("0 1 2\nnot numbers here\n")
    with make_client(**settings_kwargs(job_settings)) as client:
        body = {"dataset_uri": "broken", "method": "ud", "params": TINY_PARAMS}
        job_id = client.post("/train", json=body, headers=AUTH).json()["job_id"]
        worker = start_worker(job_settings, "--burst")
        try:
            worker.wait(120)
        finally:
            stop_process(worker)
        status = status_of(client, job_id)
    assert status["status"] == "failed", status
    assert "Traceback" not in status["error"] and "\n" not in status["error"]
    assert "train.txt" in status["error"], status["error"]
    assert not list(Path(job_settings.artifact_root).glob("versions/*"))  # nothing half-published


def test_cancel_running_job(make_client: Any, job_settings: Settings) -> None:
    worker = start_worker(job_settings)
    try:
        with make_client(**settings_kwargs(job_settings)) as client:
            job = enqueue(job_settings, SLEEPY, seconds=60)
            wait_for(lambda: status_of(client, job.id)["status"] == "started", 20, "job start")
            pid = wait_for(lambda: horse_pid(client, job.id), 10, "horse pid")
            listed = client.get("/jobs", params={"status": "started"}).json()["jobs"]
            assert [(j["job_id"], j["stage"], j["epoch"]) for j in listed] == [(job.id, "coarse", 1)]

            response = client.delete(f"/jobs/{job.id}", headers=AUTH)
            assert response.status_code == 202, response.text
            assert response.json()["status"] in ("canceling", "canceled")
            wait_for(lambda: status_of(client, job.id)["status"] == "canceled", 15, "job canceled")
            wait_for(lambda: gone(pid), 10, "work horse to exit")
            assert status_of(client, job.id)["error"] == "canceled by user"
            assert client.delete(f"/jobs/{job.id}", headers=AUTH).status_code == 409

            # the worker carries on with the next job
            nxt = enqueue(job_settings, QUICK)
            wait_for(lambda: status_of(client, nxt.id)["status"] == "finished", 20, "next job")
            assert status_of(client, nxt.id)["model_version"] == "quick"
    finally:
        stop_process(worker)
    assert worker.returncode == 0


def test_sigkilled_worker_fails_its_job_and_the_next_job_runs(make_client: Any, job_settings: Settings) -> None:
    first = start_worker(job_settings)
    second = None
    try:
        with make_client(**settings_kwargs(job_settings)) as client:
            job = enqueue(job_settings, SLEEPY, seconds=60)
            wait_for(lambda: status_of(client, job.id)["status"] == "started", 20, "job start")
            pid = wait_for(lambda: horse_pid(client, job.id), 10, "horse pid")

            first.send_signal(signal.SIGKILL)
            first.wait(5)
            wait_for(lambda: gone(pid), 10, "the work horse to die with its worker")
            assert status_of(client, job.id)["status"] == "started"  # nobody has noticed yet

            nxt = enqueue(job_settings, QUICK)
            second = start_worker(job_settings, "--burst")
            second.wait(60)
            assert second.returncode == 0, second.stderr.read().decode() if second.stderr else ""

            failed = status_of(client, job.id)
            assert failed["status"] == "failed", failed
            assert "stopped unexpectedly" in failed["error"]
            done = status_of(client, nxt.id)
            assert done["status"] == "finished" and done["model_version"] == "quick"
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)


def test_sigterm_fails_the_running_job_and_the_worker_exits(make_client: Any, job_settings: Settings) -> None:
    """`docker stop` / a pod deletion: one SIGTERM, SIGKILL some seconds later. The job must not be left "started"."""
    from c2f.jobs.worker import C2FWorker

    worker = start_worker(job_settings)
    try:
        with make_client(**settings_kwargs(job_settings)) as client:
            job = enqueue(job_settings, SLEEPY, seconds=60)
            wait_for(lambda: status_of(client, job.id)["status"] == "started", 20, "job start")
            pid = wait_for(lambda: horse_pid(client, job.id), 10, "horse pid")

            stopped_at = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            worker.wait(C2FWorker.imminent_shutdown_delay + 5)
            assert time.monotonic() - stopped_at < 10, "Docker's default stop timeout would have killed it"
            assert worker.returncode == 0, worker.stderr.read().decode() if worker.stderr else ""
            assert gone(pid)
            failed = status_of(client, job.id)
            assert failed["status"] == "failed", failed
            assert failed["error"] == (
                "WorkerStopped: the worker was stopped before the job finished; submit the job again"
            )
    finally:
        stop_process(worker)


def test_run_worker_requires_redis_url() -> None:
    from c2f.jobs.worker import run_worker

    with pytest.raises(ValueError, match="needs a Redis URL"):
        run_worker(Settings(redis_url=None))


def test_api_fails_an_abandoned_job_by_itself(make_client: Any, job_settings: Settings) -> None:
    """No new worker needed: the job's heartbeat expires and GET /jobs/{id} says failed, with an end time."""
    settings = job_settings.model_copy(update={"job_heartbeat_seconds": 1, "job_abandon_seconds": 3})
    worker = start_worker(settings)
    try:
        with make_client(**settings_kwargs(settings)) as client:
            job = enqueue(settings, SLEEPY, seconds=120)
            wait_for(lambda: status_of(client, job.id)["status"] == "started", 20, "job start")
            killed_at = time.monotonic()
            worker.send_signal(signal.SIGKILL)
            worker.wait(5)
            failed = wait_for(
                lambda: (s := status_of(client, job.id))["status"] == "failed" and s, 30, "the API to notice"
            )
            detected = time.monotonic() - killed_at
            assert "stopped unexpectedly" in failed["error"], failed
            assert failed["ended_at"] is not None
            time.sleep(1.1)
            again = status_of(client, job.id)
            assert again["elapsed_seconds"] == failed["elapsed_seconds"]  # frozen once it ended
            assert detected < 1 + 3 + 10, detected
            assert any(j["job_id"] == job.id and j["status"] == "failed" for j in client.get("/jobs").json()["jobs"])
    finally:
        stop_process(worker)
