"""The served model: one reference to an immutable (Artifact, Recommender) pair, swapped atomically on reload.

Loading (checksums, shapes, building the recommender, a smoke query) happens off the request path, in the poller
thread or in the thread that handles ``POST /models/reload``; only a successful load replaces the reference.
A request reads :attr:`ModelRegistry.current` once and uses that snapshot throughout, so it never mixes versions.
A failed load keeps the old model and is recorded (``last_error``, ``failed_version``) for ``GET /models``.
``prepare`` (the app's :meth:`service.events.EventLog.prepare`) finishes a loaded model before it is swapped in: it
attaches the recorded events (:mod:`service.live`), so a new version serves them from its first request.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from c2f.contract.artifact import (
    VERSIONS_DIR,
    Artifact,
    ArtifactError,
    latest_version,
    list_versions,
    load_artifact,
    version_path,
)
from c2f.service.live import LiveHistories
from c2f.service.scoring import Recommender

logger = logging.getLogger("c2f.service")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class LoadedModel:
    """What one request works with: the artifact, its recommender, when it was loaded and the users recorded
    events added to it (None without an event log)."""

    artifact: Artifact
    recommender: Recommender
    loaded_at: str
    load_seconds: float
    live: LiveHistories | None = None

    @property
    def version(self) -> str:
        return self.artifact.version


@dataclass(frozen=True)
class ReloadResult:
    """Outcome of :meth:`ModelRegistry.reload`."""

    ok: bool
    changed: bool
    version: str | None  # the version served after the call
    previous_version: str | None
    attempted_version: str | None
    error: str | None = None


class ModelRegistry:
    """Holds the current model for one app and reloads ``LATEST`` from ``root``."""

    def __init__(
        self,
        root: str | Path,
        mode: str = "compressed",
        *,
        reload_seconds: float = 5.0,
        on_swap: Callable[[LoadedModel], None] | None = None,
        on_failure: Callable[[str | None, str], None] | None = None,
        prepare: Callable[[LoadedModel], LoadedModel] | None = None,
    ) -> None:
        self.root = Path(root)
        self.mode = mode
        self.reload_seconds = reload_seconds
        self._on_swap = on_swap
        self._on_failure = on_failure
        self._prepare = prepare
        self._current: LoadedModel | None = None
        self._load_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.failed_version: str | None = None
        self._failed_signature: tuple[tuple[str, int, int], ...] | None = None
        self.last_error_at: str | None = None
        self.last_reload_at: str | None = None
        self.reload_failures = 0

    # ----------------------------------------------------------------------------------------------------------
    @property
    def current(self) -> LoadedModel | None:
        """The served model (a single reference read: take it once per request)."""
        return self._current

    def _load(self, version: str) -> LoadedModel:
        start = time.perf_counter()
        artifact = load_artifact(version_path(self.root, version), verify=True)
        if artifact.version != version:
            raise ArtifactError(f"manifest model_version {artifact.version!r} does not match directory {version!r}")
        recommender = Recommender(artifact, self.mode)
        recommender.smoke_test()
        model = LoadedModel(  # the recommender's artifact: only the arrays serving reads stay referenced
            artifact=recommender.artifact,
            recommender=recommender,
            loaded_at=_now(),
            load_seconds=time.perf_counter() - start,
        )
        return model if self._prepare is None else self._prepare(model)

    def _signature(self, version: str) -> tuple[tuple[str, int, int], ...]:
        """(name, size, mtime_ns) of every file in the version directory: changes when a file is repaired."""
        try:
            entries = sorted(os.scandir(version_path(self.root, version)), key=lambda e: e.name)
            return tuple((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file())
        except (OSError, ArtifactError):
            return ()

    def _record_failure(
        self, version: str | None, exc: BaseException, signature: tuple[tuple[str, int, int], ...] | None = None
    ) -> str:
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ArtifactError) else str(exc)
        self.last_error = message
        self.failed_version = version
        self._failed_signature = signature
        self.last_error_at = _now()
        self.reload_failures += 1
        kept = self._current.version if self._current else None
        logger.error(
            "loading model version %s failed (still serving %s): %s",
            version,
            kept,
            message,
            extra={"fields": {"event": "model_load_failed", "version": version, "kept_version": kept}},
        )
        if self._on_failure is not None:
            self._on_failure(version, message)
        return message

    def _clear_failure(self) -> None:
        self.last_error = None
        self.failed_version = None
        self._failed_signature = None

    def _swap(self, model: LoadedModel) -> None:
        previous = self._current.version if self._current else None
        self._current = model
        self.last_reload_at = model.loaded_at
        self._clear_failure()
        # The objects a load builds (id maps: one str per user and item) live as long as the model: move them out
        # of the collector's generations so that no request pays for scanning them.  No gc.unfreeze() first: the
        # old model's objects hold no reference cycles, so reference counting frees them while frozen, and a
        # collection over everything frozen would write to the header of every object a `c2f serve --workers`
        # process shares with its parent (copy-on-write: each process would end up with its own copy).
        gc.collect()
        gc.freeze()
        logger.info(
            "serving model version %s (%s mode, loaded in %.2fs)",
            model.version,
            self.mode,
            model.load_seconds,
            extra={
                "fields": {
                    "event": "model_swap",
                    "version": model.version,
                    "previous_version": previous,
                    "load_seconds": round(model.load_seconds, 3),
                }
            },
        )
        if self._on_swap is not None:
            self._on_swap(model)

    def reload(self, *, force: bool = False) -> ReloadResult:
        """Load the version ``LATEST`` names and swap it in when it verifies.

        Nothing happens when that version is already served (and an earlier failure is cleared: the pointer names
        what is served).  Without ``force`` a version that already failed is retried only once its files change
        (size or mtime: repaired in place), so the poller does not re-verify a broken artifact every period;
        ``force`` (``POST /models/reload``) always retries it.
        """
        with self._load_lock:
            previous = self._current.version if self._current else None
            try:
                target = latest_version(self.root)
            except ArtifactError as exc:
                repeated = str(exc) == self.last_error and self.failed_version is None and not force
                msg = str(exc) if repeated else self._record_failure(None, exc)  # a repeat is already recorded
                return ReloadResult(
                    ok=False,
                    changed=False,
                    version=previous,
                    previous_version=previous,
                    attempted_version=None,
                    error=msg,
                )
            if target is None:
                return ReloadResult(
                    ok=True, changed=False, version=previous, previous_version=previous, attempted_version=None
                )
            if target == previous:
                if self.last_error is not None:
                    logger.info("LATEST names the served version %s again; clearing the last load error", target)
                    self._clear_failure()
                return ReloadResult(
                    ok=True, changed=False, version=previous, previous_version=previous, attempted_version=target
                )
            signature = self._signature(target)
            if target == self.failed_version and not force and signature == self._failed_signature:
                return ReloadResult(
                    ok=False,
                    changed=False,
                    version=previous,
                    previous_version=previous,
                    attempted_version=target,
                    error=self.last_error,
                )
            try:
                model = self._load(target)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the old model
                msg = self._record_failure(target, exc, signature)
                return ReloadResult(
                    ok=False,
                    changed=False,
                    version=previous,
                    previous_version=previous,
                    attempted_version=target,
                    error=msg,
                )
            self._swap(model)
            return ReloadResult(
                ok=True, changed=target != previous, version=target, previous_version=previous, attempted_version=target
            )

    def load_initial(self) -> ReloadResult:
        """Startup load: LATEST, or when it fails, the newest older version that loads (error kept visible)."""
        result = self.reload(force=True)
        if result.ok or self._current is not None:
            return result
        with self._load_lock:
            error, failed, failed_at = self.last_error, self.failed_version, self.last_error_at
            failed_signature = self._failed_signature
            for version in reversed(list_versions(self.root)):
                if version == failed:
                    continue
                try:
                    model = self._load(version)
                except Exception as exc:  # noqa: BLE001
                    logger.warning("fallback version %s does not load either: %s", version, exc)
                    continue
                self._swap(model)
                # Keep LATEST's failure visible: it is still not served.
                self.last_error, self.failed_version, self.last_error_at = error, failed, failed_at
                self._failed_signature = failed_signature
                return ReloadResult(
                    ok=True, changed=True, version=version, previous_version=None, attempted_version=failed, error=error
                )
        return result

    # ----------------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background poller (no-op when ``reload_seconds`` is 0 or it already runs)."""
        if self.reload_seconds <= 0 or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="c2f-model-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            try:
                self.reload()
            except Exception:  # noqa: BLE001 - the poller must never die
                logger.exception("model poller iteration failed")

    # ----------------------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Loaded version, available versions, LATEST and the last reload error (for GET /models).

        Paths are relative to the artifact root; messages may still name files (scrub them before answering).
        """
        current = self._current
        try:
            latest: str | None = latest_version(self.root)
        except ArtifactError as exc:
            latest = None
            pointer_error: str | None = str(exc)
        else:
            pointer_error = None
        loaded = None
        if current is not None:
            loaded = {
                "version": current.version,
                "method": current.artifact.method,
                "serving_mode": self.mode,
                "scoring": current.recommender.scoring,
                "n_users": current.artifact.n_users,
                "n_items": current.artifact.n_items,
                "d": current.artifact.d,
                "created_at": current.artifact.manifest.created_at,
                "loaded_at": current.loaded_at,
                "load_seconds": round(current.load_seconds, 4),
                "path": f"{VERSIONS_DIR}/{current.version}",  # relative to the artifact root
            }
        return {
            "loaded": loaded,
            "latest": latest,
            "available": list_versions(self.root),
            "serving_mode": self.mode,
            "last_error": self.last_error or pointer_error,
            "failed_version": self.failed_version,
            "last_error_at": self.last_error_at,
            "last_reload_at": self.last_reload_at,
            "reload_failures": self.reload_failures,
            "polling_seconds": self.reload_seconds,
        }
