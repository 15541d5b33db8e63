"""Training jobs on an RQ queue: request schema, enqueue, status, listing and cancellation.

The service side of the job queue. It enqueues :data:`contract.jobspec.JOB_FUNC` by dotted path, so the service
process never imports ``trainer``, ``jobs`` or torch; ``c2f.jobs.train.train_job`` runs in a worker's work-horse process
(see ``c2f.jobs.worker``). Jobs are stored with RQ's JSON serializer: nothing the service reads back from Redis
is unpickled.

Status vocabulary exposed by the API: ``queued``, ``started``, ``finished``, ``failed``, ``canceled`` (RQ's
deferred/scheduled count as queued, its "stopped" as canceled). Progress lives in ``job.meta``, written by the
job: ``stage`` (loading, coarse, fine, export), ``epoch``, ``loss``, ``valid``, ``elapsed``.

Every function that talks to Redis raises :class:`QueueUnavailable` when Redis cannot be reached, so that the
HTTP layer answers 503 while the serving endpoints keep working.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.results import Result
from rq.serializers import JSONSerializer

from c2f.contract.budget import check_possible
from c2f.contract.config import TrainConfig
from c2f.contract.jobspec import CANCEL_KEY, JOB_FUNC, TrainParams
from c2f.contract.methods import METHODS, get_spec
from c2f.service.redact import relative_to, scrub
from c2f.service.settings import Settings

SERIALIZER = JSONSerializer

LIST_SCAN = 1000
_JOB_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")

P = ParamSpec("P")
R = TypeVar("R")


class QueueUnavailable(RuntimeError):
    """Redis (the job queue) is not configured or cannot be reached."""


class JobNotFound(LookupError):
    """No job with that id (never existed, or its result/failure TTL expired)."""


class JobConflict(RuntimeError):
    """The operation does not apply to the job in its current state (e.g. cancelling a finished job)."""


# ---------------------------------------------------------------- request schema


class TrainRequest(BaseModel):
    """Body of ``POST /train``."""

    model_config = ConfigDict(extra="forbid")

    dataset_uri: str = Field(..., min_length=1, max_length=4096)
    # no method: the default recipe `c2f train DATA` trains, so the two entry points give the same model
    method: str | None = Field(
        default=None,
        description=f"One of: {', '.join(METHODS)}; none: the default recipe (a d = 64 table served from the items' "
        "product-quantized codes, users folded in; docs/training.md).",
        json_schema_extra={"enum": list(METHODS)},
    )
    params: TrainParams = Field(default_factory=lambda: TrainParams.model_validate({}))  # type: ignore[valid-type]
    include_events: bool = Field(
        True,
        description="Train on the interaction events recorded for this dataset (POST /interactions) as well as on "
        "its file, so nothing a user did since it was written is lost; false: the file alone.",
    )

    @field_validator("method")
    @classmethod
    def _registered(cls, value: str | None) -> str | None:
        if value is not None:
            get_spec(value)
        return value

    @model_validator(mode="after")
    def _budget_possible(self) -> TrainRequest:
        """A memory budget the method cannot meet on any dataset is refused here (422), before a worker loads the
        data; one that does not fit the actual dataset fails the job with the same kind of message."""
        params = self.job_params()
        if params.get("budget") is not None or params.get("budget_bytes") is not None:
            check_possible(TrainConfig.from_dict({**params, "method": self.method}))
        return self

    def job_params(self) -> dict[str, Any]:
        """The parameters the client set explicitly (JSON-able); TrainConfig supplies the rest."""
        return self.params.model_dump(mode="json", exclude_unset=True)  # type: ignore[attr-defined, no-any-return]


# ---------------------------------------------------------------- Redis


_clients: dict[str, Redis] = {}
_clients_lock = threading.Lock()


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def redis_connection(settings: Settings) -> Redis:
    """A (cached, lazily connecting) Redis client for ``settings.redis_url``; no I/O happens here.

    Connecting and every command time out after ``settings.redis_timeout_seconds`` (a frozen Redis costs a
    caller that long, then QueueUnavailable).
    """
    url = settings.redis_url
    if not url:
        raise QueueUnavailable(
            "no job queue is configured: set C2F_REDIS_URL, or start the service with `c2f serve`, "
            "which runs an embedded Redis and worker"
        )
    timeout = settings.redis_timeout_seconds
    key = f"{timeout}|{url}"
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                client = Redis.from_url(
                    url, socket_connect_timeout=timeout, socket_timeout=timeout, health_check_interval=30
                )
            except ValueError as err:
                raise QueueUnavailable(f"invalid redis_url {redact_url(url)}: {err}") from None
            _clients[key] = client
        return client


def _guard(settings_arg: int = 0) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Translate Redis connection failures into QueueUnavailable naming the (redacted) URL."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except (RedisConnectionError, RedisTimeoutError) as err:
                settings = args[settings_arg] if len(args) > settings_arg else kwargs.get("settings")
                url = getattr(settings, "redis_url", None) or "?"
                raise QueueUnavailable(
                    f"job queue unavailable: cannot reach Redis at {redact_url(url)} ({err})"
                ) from None

        return wrapper

    return decorate


def _queue(settings: Settings, connection: Redis | None = None) -> Queue:
    return Queue(settings.queue_name, connection=connection or redis_connection(settings), serializer=SERIALIZER)


def _fetch(settings: Settings, job_id: str) -> Job:
    if not _JOB_ID_RE.fullmatch(job_id):
        raise JobNotFound(job_id)
    try:
        return Job.fetch(job_id, connection=redis_connection(settings), serializer=SERIALIZER)
    except NoSuchJobError:
        raise JobNotFound(job_id) from None


# ---------------------------------------------------------------- operations


@_guard()
def enqueue_training(settings: Settings, request: TrainRequest, dataset_uri: str) -> str:
    """Queue one training job for an already-checked ``dataset_uri``; return the job id.

    The artifact root is made absolute here so that the worker publishes where this service reads.
    """
    artifact_root = str(Path(settings.artifact_root).expanduser().resolve())
    queue = _queue(settings)
    job = queue.enqueue_call(
        func=JOB_FUNC,
        kwargs={
            "dataset_uri": dataset_uri,
            "method": request.method,
            "params": request.job_params(),
            "artifact_root": artifact_root,
            "include_events": request.include_events,
        },
        timeout=settings.job_timeout_seconds,
        result_ttl=settings.job_result_ttl_seconds,
        failure_ttl=settings.job_failure_ttl_seconds,
        description=f"train {request.method or 'the default recipe'} on {dataset_uri}",
        meta={"method": request.method, "dataset_uri": dataset_uri, "stage": None},
    )
    return job.id


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


def readable_error(exc_string: str | None, *, timeout_seconds: float | None = None) -> str | None:
    """One readable line from an RQ failure string (a traceback or a worker's note), never the traceback."""
    if not exc_string:
        return None
    text = exc_string.strip()
    if "AbandonedJobError" in text:
        return "the worker running this job stopped unexpectedly (killed or crashed) before the job finished"
    if "Work-horse terminated unexpectedly" in text:
        m = re.search(r"\(signal (\d+)\)", text)
        sig = f" by signal {m.group(1)}" if m else ""
        hint = " (out of memory?)" if m and m.group(1) == "9" else ""
        return f"the training process was killed{sig}{hint}"
    if "Job stopped by user" in text:
        return "canceled by user"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else text
    if "JobTimeoutException" in last:
        limit = f" of {timeout_seconds:g} s" if timeout_seconds else ""
        return f"training exceeded the job timeout{limit} (job_timeout_seconds)"
    # "pkg.module.DatasetError: message" -> "DatasetError: message"
    m = re.match(r"^([A-Za-z_][\w.]*\.)([A-Za-z_]\w*)(:.*)?$", last)
    if m:
        last = m.group(2) + (m.group(3) or "")
    return last[:2000]


def _api_status(job: Job, status: JobStatus | None, cancel_requested: bool) -> str:
    if status is None:
        return "failed"
    value = status.value if isinstance(status, JobStatus) else str(status)
    if value in ("queued", "deferred", "scheduled", "created"):
        return "queued"
    if value in ("stopped", "canceled"):
        return "canceled"
    if value == "failed" and cancel_requested:
        return "canceled"
    return value


def describe_job(settings: Settings, job: Job) -> dict[str, Any]:
    """The API view of one job (see module docstring)."""
    connection = job.connection
    status = job.get_status(refresh=False)
    cancel_requested = bool(connection.exists(CANCEL_KEY.format(job_id=job.id)))
    api_status = _api_status(job, status, cancel_requested)
    meta = job.meta or {}
    kwargs: dict[str, Any] = {}
    try:
        kwargs = dict(job.kwargs)
    except Exception:  # noqa: BLE001 - a job enqueued by something else; describe what we can
        kwargs = {}
    result = job.latest_result() if api_status in ("finished", "failed", "canceled") else None
    started, ended = job.started_at, job.ended_at
    if ended is None and result is not None:
        ended = result.created_at  # a job failed by registry cleanup (abandoned) has no ended_at of its own
    elapsed: float | None = None
    if started is not None:
        end = ended if ended is not None else datetime.now(UTC).replace(tzinfo=None)
        elapsed = max(0.0, (end.replace(tzinfo=None) - started.replace(tzinfo=None)).total_seconds())
    elif meta.get("elapsed") is not None:
        elapsed = float(meta["elapsed"])

    info: dict[str, Any] = {
        "job_id": job.id,
        "status": api_status,
        "method": meta.get("method", kwargs.get("method")),
        "dataset_uri": public_dataset_uri(meta.get("dataset_uri", kwargs.get("dataset_uri")), settings),
        "params": kwargs.get("params"),
        "stage": meta.get("stage"),
        "epoch": meta.get("epoch"),
        "loss": meta.get("loss"),
        "valid": meta.get("valid"),
        "elapsed_seconds": round(elapsed, 3) if elapsed is not None else None,
        "enqueued_at": _iso(job.enqueued_at),
        "started_at": _iso(started),
        "ended_at": _iso(ended),
        "model_version": None,
        "metrics": None,
        "error": None,
    }
    if api_status == "queued":
        info["position"] = job.get_position()
    if result is not None and result.type == Result.Type.SUCCESSFUL and isinstance(result.return_value, dict):
        info["model_version"] = result.return_value.get("model_version")
        info["metrics"] = result.return_value.get("metrics")
    elif api_status == "failed":
        exc = result.exc_string if result is not None else None
        error = readable_error(exc, timeout_seconds=job.timeout) or "failed (no error recorded)"
        info["error"] = scrub(error, settings)
    elif api_status == "canceled":
        info["error"] = "canceled by user"
    return info


def public_dataset_uri(uri: str | None, settings: Settings) -> str | None:
    """A job's dataset URI as answers show it: a local path relative to the data root (absolute paths hidden)."""
    if not uri or _SCHEME_RE.match(uri):
        return uri
    inside = relative_to(uri, settings.data_root)
    return inside if inside is not None else scrub(uri, settings)


def fail_abandoned(settings: Settings, connection: Redis | None = None) -> None:
    """Fail the started jobs whose worker stopped heartbeating (killed, crashed, partitioned away).

    A worker renews its job's entry in RQ's StartedJobRegistry every ``job_heartbeat_seconds`` for
    ``job_abandon_seconds`` more (jobs.worker); an entry past its expiry means nobody runs the job any more, and
    RQ's cleanup moves it to the failed registry (AbandonedJobError, shown as a readable reason).
    """
    StartedJobRegistry(queue=_queue(settings, connection)).cleanup()


@_guard()
def job_status(settings: Settings, job_id: str) -> dict[str, Any]:
    """The API view of job ``job_id``; raises JobNotFound."""
    job = _fetch(settings, job_id)
    if job.get_status(refresh=False) == JobStatus.STARTED:
        fail_abandoned(settings, job.connection)
        job.refresh()
    return describe_job(settings, job)


@_guard()
def list_jobs(settings: Settings, *, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
    """Recent jobs from the queue and RQ's registries, newest first (read-only: no registry cleanup)."""
    connection = redis_connection(settings)
    fail_abandoned(settings, connection)
    queue = _queue(settings, connection)
    kw: dict[str, Any] = {"queue": queue}
    # the newest LIST_SCAN entries of each source bound the work however many records the TTLs keep
    ids: list[str] = list(queue.get_job_ids(offset=-LIST_SCAN))
    for registry_cls in (
        DeferredJobRegistry,
        ScheduledJobRegistry,
        StartedJobRegistry,
        FinishedJobRegistry,
        FailedJobRegistry,
        CanceledJobRegistry,
    ):
        registry = registry_cls(**kw)
        ids.extend(registry.get_job_ids(0, LIST_SCAN - 1, desc=True, cleanup=False))
    unique = list(dict.fromkeys(ids))
    jobs = [j for j in Job.fetch_many(unique, connection=connection, serializer=SERIALIZER) if j is not None]
    epoch = datetime(1970, 1, 1)
    jobs.sort(key=lambda j: (j.enqueued_at or j.created_at or epoch).replace(tzinfo=None), reverse=True)
    out: list[dict[str, Any]] = []
    for job in jobs:
        info = describe_job(settings, job)
        if status is None or info["status"] == status:
            out.append(info)
        if len(out) >= limit:
            break
    return out


@_guard()
def cancel_job(settings: Settings, job_id: str) -> dict[str, Any]:
    """Cancel a queued job, or ask the worker to stop a running one.

    Returns ``{"job_id", "status"}`` with status ``canceled`` (it never ran / is gone) or ``canceling`` (the
    worker was told to stop it; GET /jobs/{id} turns ``canceled`` once it has). Raises JobNotFound, or
    JobConflict when the job already ended.
    """
    job = _fetch(settings, job_id)
    connection = job.connection
    status = job.get_status()
    api_status = _api_status(job, status, bool(connection.exists(CANCEL_KEY.format(job_id=job.id))))
    if api_status in ("finished", "failed", "canceled"):
        raise JobConflict(f"job {job_id} already ended ({api_status})")
    # Flag first: the job's progress callback honours it even if the dequeue races with us below.
    connection.set(CANCEL_KEY.format(job_id=job.id), "1", ex=settings.job_failure_ttl_seconds)
    if api_status == "queued":
        with contextlib.suppress(InvalidJobOperation):
            job.cancel()
        if job.get_status() != JobStatus.STARTED:
            return {"job_id": job.id, "status": "canceled"}
    # not on a worker yet (or any more): the cancel flag stops it at its next progress report
    with contextlib.suppress(InvalidJobOperation):
        send_stop_job_command(connection, job.id, serializer=SERIALIZER)
    return {"job_id": job.id, "status": "canceling"}


@_guard()
def ping(settings: Settings) -> bool:
    """True when the queue's Redis answers."""
    return bool(redis_connection(settings).ping())
