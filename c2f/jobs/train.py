"""The RQ job function: one training run, enqueued by the service as ``contract.jobspec.JOB_FUNC``
(``"c2f.jobs.train.train_job"``).

Runs in a worker's work-horse process (``c2f.jobs.worker``). Progress goes to ``job.meta`` (stage, epoch, loss,
valid metrics, elapsed) for ``GET /jobs/{id}``; the return value carries the published model version. Failures
raise with a readable message (the API shows the exception's last line). Nothing is half-published:
``train_and_publish`` publishes atomically at the very end, so a failed, canceled or killed job leaves no
version behind.

With ``include_events`` (the default) the run also trains on every interaction event the service recorded for the
dataset (its Redis stream, :mod:`service.events`): :func:`recorded_events` reads them once the dataset is loaded
(the stream is keyed by its content hash), the pipeline merges them into the training split
(:mod:`trainer.data.extra`), and the manifest records the last stream entry included, so that the service does
not apply those events again on top of the new model. A stream that cannot be read fails the job (nothing is
trained without the events it was asked to include).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.exceptions import RedisError

from c2f.contract.artifact import version_path
from c2f.contract.config import TrainConfig
from c2f.contract.jobspec import CANCEL_KEY
from c2f.contract.methods import get_spec
from c2f.service.events import read_recorded, stream_key
from c2f.service.settings import Settings
from c2f.service.uri import check_dataset_uri

if TYPE_CHECKING:
    from c2f.trainer.data import InteractionData
    from c2f.trainer.data.extra import ExtraInteractions

SAVE_EVERY_SECONDS = 0.5


class JobCanceled(RuntimeError):
    """The job was canceled through the API while it ran."""


def _pipeline() -> Callable[..., Any]:
    """``trainer.pipeline.train_and_publish`` (a function so that tests can substitute it)."""
    from c2f.trainer.pipeline import train_and_publish

    return train_and_publish


def _plain(value: Any) -> Any:
    """JSON-able copy of a metric value (numpy / torch scalars, nested dicts and lists; NaN/inf -> None)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return None
    is_integer = isinstance(value, int) or getattr(getattr(value, "dtype", None), "kind", "") in ("i", "u")
    return int(number) if is_integer else number


class ProgressReporter:
    """The pipeline's ``progress`` callback: mirrors each event into ``job.meta`` and honours cancellation.

    Saves at most every SAVE_EVERY_SECONDS, except that stage changes and validation results always save.
    Without an RQ job (a direct call) it only records the last event.
    """

    def __init__(self, job: Any | None) -> None:
        self.job = job
        self.last: dict[str, Any] = {}
        self._last_save = 0.0
        self._stage: str | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        # The latest epoch, loss and validation metrics stay visible through events that do not carry them
        # (a stage marker such as {"stage": "export", "epoch": 0, "loss": None, "valid": None}).
        update = dict(self.last)
        update["stage"] = event.get("stage")
        update["elapsed"] = _plain(event.get("elapsed"))
        if event.get("loss") is not None or event.get("epoch"):
            update["epoch"] = _plain(event.get("epoch"))
        for key in ("loss", "valid", "phase"):
            if event.get(key) is not None:
                update[key] = _plain(event[key])
        update.setdefault("epoch", 0)
        self.last = update
        if self.job is None:
            return
        now = time.monotonic()
        important = update["stage"] != self._stage or event.get("valid") is not None
        self._stage = update["stage"]
        if important or now - self._last_save >= SAVE_EVERY_SECONDS:
            self.flush()
            self._last_save = now
        if self.job.connection.exists(CANCEL_KEY.format(job_id=self.job.id)):
            raise JobCanceled("canceled by user")

    def flush(self) -> None:
        if self.job is None or not self.last:
            return
        self.job.meta.update(self.last)
        self.job.meta["updated_at"] = time.time()
        self.job.save_meta()


class EventsUnreadable(RuntimeError):
    """The dataset's recorded events could not be read (the job trains nothing without them)."""


def recorded_events(settings: Settings) -> Callable[[InteractionData], ExtraInteractions | None]:
    """The pipeline's ``extra_interactions``: every event recorded for the loaded dataset (None when none were)."""

    def read(data: InteractionData) -> ExtraInteractions | None:
        from c2f.trainer.data.extra import ExtraInteractions

        if not settings.redis_url:
            return None  # no event log: nothing can have been recorded
        stream = stream_key(settings.events_namespace, data.content_hash, data.uri)
        timeout = settings.redis_timeout_seconds
        client = Redis.from_url(settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            recorded = read_recorded(client, stream)
        except RedisError as err:
            raise EventsUnreadable(
                f"cannot read the recorded interaction events ({type(err).__name__}: {err}); retry, or train "
                "with include_events=false"
            ) from None
        finally:
            client.close()
        if not recorded.user_ids:
            return None
        return ExtraInteractions(recorded.user_ids, recorded.item_ids, recorded.info())

    return read


def train_job(
    dataset_uri: str, method: str | None, params: dict[str, Any], artifact_root: str, include_events: bool = True
) -> dict[str, Any]:
    """Train ``method`` (None: the default recipe) on ``dataset_uri`` with ``params`` (TrainConfig fields), publish
    in ``artifact_root``; with ``include_events``, on the events recorded for the dataset too.

    Returns ``{"model_version", "path", "metrics"}`` (metrics: the manifest's trained/served metrics).
    """
    from rq import get_current_job

    if method is not None:
        get_spec(method)  # ValueError naming the registered methods
    settings = Settings()
    uri = check_dataset_uri(dataset_uri, settings)  # defence in depth: the worker's own settings decide too
    values = {**(params or {}), "method": method}
    if values.get("coarse_from"):
        # over the API coarse_from is a version name in the artifact root, never a path (version_path checks it)
        values["coarse_from"] = str(version_path(artifact_root, str(values["coarse_from"])))
    config = TrainConfig.from_dict(values)
    job = get_current_job()
    progress = ProgressReporter(job)
    progress({"stage": "loading", "epoch": 0, "loss": None, "valid": None, "elapsed": 0.0})
    extra = recorded_events(settings) if include_events else None
    published = _pipeline()(uri, config, artifact_root, progress=progress, extra_interactions=extra)
    progress.flush()
    metrics = {k: v for k, v in published.manifest.metrics.as_reported().items() if v is not None}
    return {
        "model_version": str(published.version),
        "path": str(published.path),
        "metrics": _plain(metrics),
    }
