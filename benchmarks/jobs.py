"""RQ workers and jobs for benchmarks/chaos.py and the job tests (tests/service/test_jobs.py, tests/jobs): a worker
subprocess (``python -m c2f.jobs.worker``) configured from :class:`~c2f.service.settings.Settings`, a job enqueued
exactly as the service enqueues one, and a job that only sleeps."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from redis import Redis
from rq import Queue, get_current_job
from rq.job import Job

from benchmarks.common import ROOT
from c2f.jobs.worker import apply_env, settings_to_env
from c2f.service import jobs
from c2f.service.settings import Settings

SLEEPY = "benchmarks.jobs.sleepy_job"


def sleepy_job(seconds: float) -> dict[str, Any]:
    """A job that reports a pid, stage and epoch in its meta, then sleeps ``seconds``."""
    job = get_current_job()
    assert job is not None
    job.meta.update({"horse_pid": os.getpid(), "stage": "coarse", "epoch": 1})
    job.save_meta()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return {"model_version": "sleepy"}


def worker_env(settings: Settings) -> dict[str, str]:
    """This process's environment with ``settings`` as C2F_* variables and the repository on PYTHONPATH (the
    worker imports job functions of benchmarks/ and tests/ by name)."""
    env = dict(os.environ)
    apply_env(settings_to_env(settings), env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_worker(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    """``python -m c2f.jobs.worker ARGS`` on the Redis and queue of ``settings``."""
    return subprocess.Popen(
        [sys.executable, "-m", "c2f.jobs.worker", *args],
        cwd=ROOT,
        env=worker_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def enqueue(settings: Settings, func: str, **kwargs: Any) -> Job:
    """Enqueue any job function exactly as the service does (same serializer, TTLs and timeout), on the Redis and
    queue of ``settings``."""
    if not settings.redis_url:
        raise ValueError("settings.redis_url is not set")
    queue = Queue(settings.queue_name, connection=Redis.from_url(settings.redis_url), serializer=jobs.SERIALIZER)
    return queue.enqueue_call(
        func=func,
        kwargs=kwargs,
        timeout=settings.job_timeout_seconds,
        result_ttl=settings.job_result_ttl_seconds,
        failure_ttl=settings.job_failure_ttl_seconds,
    )
