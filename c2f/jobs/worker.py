"""Training worker: an RQ worker on ``settings.queue_name`` (``c2f worker``; ``python -m jobs.worker``).

Each job runs in its own forked work-horse process (RQ's fork-per-job worker); this parent process never
imports ``trainer`` or torch, so every training run starts from a clean, torch-free fork and frees all its
memory when it ends. On top of RQ:

* the work horse dies with its worker (Linux ``PR_SET_PDEATHSIG``), so a worker killed with SIGKILL does not
  leave an orphan training process that could publish after its job was declared failed;
* the horse records who runs the job (host, pid namespace, worker pid) in ``job.meta["worker"]``; on start-up
  and at every maintenance pass the worker fails jobs whose worker process on this machine is gone (instead of
  waiting for RQ's heartbeat expiry), through RQ's own abandoned-job path (``StartedJobRegistry.cleanup``);
  jobs of workers on other machines are left to RQ's heartbeat expiry;
* the worker's settings are exported to ``C2F_*`` environment variables, so the job's ``Settings()`` (used by
  ``c2f.jobs.train.train_job`` to re-check the dataset URI) matches the worker's;
* on SIGTERM or SIGINT (``docker stop``, a Kubernetes pod deletion, Ctrl+C) the running job gets
  ``C2FWorker.imminent_shutdown_delay`` seconds to finish, then fails with a readable reason and the worker exits
  (RQ's ``HerokuWorker``), well inside the grace period before those platforms send SIGKILL. A plain RQ worker
  would wait for the job and be killed with it, leaving the job "started".

Job timeout, result TTL and failure TTL are set per job at enqueue time (``c2f.service.jobs.enqueue_training``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.worker import HerokuWorker

from c2f.service.jobs import SERIALIZER
from c2f.service.settings import Settings

log = logging.getLogger("c2f.worker")

MAINTENANCE_INTERVAL_SECONDS = 60
_PR_SET_PDEATHSIG = 1


def settings_to_env(settings: Settings) -> dict[str, str | None]:
    """``C2F_*`` variables that make ``Settings()`` equal ``settings`` (None: unset the variable)."""
    env: dict[str, str | None] = {}
    for name, value in settings.model_dump().items():
        key = "C2F_" + name.upper()
        if value is None:
            env[key] = None
        elif isinstance(value, bool):
            env[key] = "true" if value else "false"
        elif isinstance(value, list | dict):
            env[key] = json.dumps(value)
        else:
            env[key] = str(value)
    return env


def apply_env(env: dict[str, str | None], target: Any = None) -> None:
    """Set (or, for None, remove) each variable of ``env`` in ``target`` (default ``os.environ``)."""
    target = os.environ if target is None else target
    for key, value in env.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()  # loaded up front: die_with_parent also runs between fork and exec


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent (thread) dies; exit now if the parent is gone."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def exit_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> threading.Thread:
    """Daemon thread: SIGKILL this process once ``parent_pid`` is no longer its parent (the horse follows)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        log.error("parent process %d is gone; exiting", parent_pid)
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="c2f-parent-watch", daemon=True)
    thread.start()
    return thread


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _read_link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def process_identity(pid: int | None = None) -> dict[str, Any]:
    """Enough to decide later, from another process on the same machine, whether ``pid`` still runs."""
    pid = os.getpid() if pid is None else pid
    return {
        "host": socket.gethostname(),
        "boot_id": _read_text("/proc/sys/kernel/random/boot_id"),
        "pid_ns": _read_link("/proc/self/ns/pid"),
        "pid": pid,
        "start_time": _process_start_time(pid),
    }


def _process_start_time(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # noqa: BLE001 - psutil missing or process gone
        return None


def _is_dead_here(identity: dict[str, Any]) -> bool:
    """True only if ``identity`` names a process on this machine (host, boot, pid namespace) that is gone."""
    if not isinstance(identity, dict):
        return False
    here = process_identity()
    if not identity.get("pid_ns") or not identity.get("boot_id"):
        return False
    if any(identity.get(k) != here[k] for k in ("host", "boot_id", "pid_ns")):
        return False
    pid = identity.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    started = _process_start_time(pid)
    recorded = identity.get("start_time")
    # the pid was reused by a newer process
    return started is not None and recorded is not None and started > float(recorded) + 1.0


def reap_abandoned_jobs(connection: Redis, queue_name: str) -> list[str]:
    """Fail the started jobs whose worker process on this machine is gone; return their ids.

    Marks their StartedJobRegistry entries as expired and lets RQ's ``cleanup`` do the rest (failure
    callbacks, retries, FailedJobRegistry), exactly as it would after the heartbeat expiry.
    """
    registry = StartedJobRegistry(queue_name, connection=connection, serializer=SERIALIZER)
    reaped: list[str] = []
    entries: list[Any] = connection.zrange(registry.key, 0, -1)  # type: ignore[assignment]  # sync client
    for raw in entries:
        entry = raw.decode() if isinstance(raw, bytes) else str(raw)
        job_id = registry.parse_job_id(entry)
        try:
            job = Job.fetch(job_id, connection=connection, serializer=SERIALIZER)
        except NoSuchJobError:
            continue
        if job.get_status(refresh=False) != JobStatus.STARTED:
            continue
        if _is_dead_here((job.meta or {}).get("worker", {})):
            connection.zadd(registry.key, {entry: 1}, xx=True)
            reaped.append(job_id)
    if reaped:
        log.warning("failing %d job(s) whose worker died: %s", len(reaped), ", ".join(reaped))
        registry.cleanup()
    return reaped


class WorkerStopped(BaseException):
    """Raised in the work horse when its worker is stopped mid-job (a BaseException: no ``except Exception`` in
    the training code may swallow it)."""


class C2FWorker(HerokuWorker):
    """RQ's fork-per-job worker; the horse dies with its worker and records who runs the job; SIGTERM fails the
    running job after ``imminent_shutdown_delay`` seconds (module docstring).

    It renews its job's heartbeat every ``job_monitoring_interval`` seconds (``settings.job_heartbeat_seconds``)
    for ``abandon_seconds`` more (``settings.job_abandon_seconds``; RQ's default is a fixed 60 s on top of a 30 s
    interval), so the API can tell an abandoned job (``c2f.service.jobs.fail_abandoned``) within about
    heartbeat + abandon seconds of its worker's death.
    """

    abandon_seconds = 30
    imminent_shutdown_delay = 3  # below `c2f serve`'s WORKER_STOP_GRACE and Docker's default 10 s stop timeout

    def request_force_stop_sigrtmin(self, signum: int, frame: Any) -> None:
        raise WorkerStopped("the worker was stopped before the job finished; submit the job again")

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        if job.timeout and job.timeout > 0:
            remaining = job.timeout - working_time
            return int(max(1, min(remaining, self.job_monitoring_interval))) + self.abandon_seconds
        return int(self.job_monitoring_interval) + self.abandon_seconds

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        die_with_parent(self.pid or os.getppid())
        with contextlib.suppress(Exception):
            job.meta["worker"] = {**process_identity(self.pid), "name": self.name}
            job.save_meta()
        super().main_work_horse(job, queue)

    def run_maintenance_tasks(self) -> None:
        for queue in self.queues:
            try:
                reap_abandoned_jobs(self.connection, queue.name)
            except Exception:  # noqa: BLE001 - maintenance must not kill the worker
                log.exception("reaping abandoned jobs failed")
        super().run_maintenance_tasks()


def run_worker(
    settings: Settings | None = None,
    *,
    burst: bool = False,
    max_jobs: int | None = None,
    name: str | None = None,
    logging_level: str = "INFO",
) -> bool:
    """Run an RQ worker on ``settings.queue_name`` until stopped (SIGTERM/SIGINT: the current job gets a few
    seconds to finish, then fails, and the worker exits; a second signal: kill the job at once). ``burst``: exit
    when the queue is empty. Returns whether any job ran. Needs ``settings.redis_url``.
    """
    settings = settings or Settings()
    if not settings.redis_url:
        raise ValueError("run_worker needs a Redis URL: set C2F_REDIS_URL (or use `c2f serve`, which embeds one)")
    apply_env(settings_to_env(settings))
    connection = Redis.from_url(settings.redis_url)
    reap_abandoned_jobs(connection, settings.queue_name)
    worker = C2FWorker(
        [settings.queue_name],
        connection=connection,
        name=name or f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}",
        serializer=SERIALIZER,
        default_result_ttl=settings.job_result_ttl_seconds,
        maintenance_interval=MAINTENANCE_INTERVAL_SECONDS,
        job_monitoring_interval=settings.job_heartbeat_seconds,
    )
    worker.abandon_seconds = settings.job_abandon_seconds
    return worker.work(burst=burst, max_jobs=max_jobs, logging_level=logging_level)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.worker", description="c2f training worker")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.add_argument("--max-jobs", type=int, default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--redis-url", default=None, help="overrides C2F_REDIS_URL")
    parser.add_argument("--exit-with-parent", type=int, default=None, metavar="PID", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.exit_with_parent is not None:
        exit_with_parent(args.exit_with_parent)
    settings = Settings()
    if args.redis_url:
        settings = settings.model_copy(update={"redis_url": args.redis_url})
    started = time.time()
    try:
        run_worker(
            settings,
            burst=args.burst,
            max_jobs=args.max_jobs,
            name=args.name,
            logging_level=settings.log_level.upper(),
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    log.info("worker exited after %.1f s", time.time() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
