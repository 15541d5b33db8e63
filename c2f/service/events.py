"""Interaction events: recorded durably in Redis, applied at once, read back by every API process.

The log is one Redis stream per dataset, ``c2f:events:<namespace>:<content hash>`` (:func:`stream_key`: the served
model's ``manifest.dataset.content_hash``, so every model trained on the same bytes shares it, whatever URI or
version name it came under; a dataset whose bytes change starts a new stream). One entry per event, fields
``u`` (user id), ``i`` (item id), ``t`` (seconds since the epoch): external ids, so the log outlives model versions.

Writing (``POST /interactions``, :meth:`EventLog.record`): each event is checked against the served model (unknown
item, malformed timestamp, the bounds of :mod:`service.live`), the accepted ones are appended with one XADD each by
one Lua script call (atomic: all of them or none; one command to send and parse instead of a MULTI/EXEC pipeline of
one per event, which cost 2.5 times as much client time per 100 events), and only once Redis confirmed are they
applied to this process's
:class:`~service.live.LiveHistories` and acknowledged with their stream ids. Redis unset, down, slow or full: a 503
within a few ``redis_timeout_seconds`` and nothing applied. A 503 after Redis executed the batch but before its
reply arrived is possible (the batch is then recorded); sending it again is safe, since applying an event twice
changes nothing.

Reading: every process runs one daemon thread that tails the stream of the model it serves (XREAD BLOCK, at most
:data:`BLOCK_SECONDS`, from the last entry it read), so events recorded by any process (``--workers N``, replicas on
one Redis) reach it as soon as Redis hands them over, well within 2 s. Serving reads only the process-local overlay
and never waits on Redis; when Redis cannot be read the overlay stays as it is and :meth:`EventLog.status` says it
is stale.

Model swaps: the registry calls :meth:`EventLog.prepare` on every model it loads, before swapping it in; it replays
the stream into that model's own overlay. A model whose training included the events (``POST /train`` with
``include_events``, :func:`read_recorded`) records the last included entry in ``manifest.info["events"]``, and the
replay starts after it, so nothing is applied twice (once as training data, once as an overlay).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from redis import Redis
from redis.exceptions import RedisError

from c2f.contract.manifest import Manifest
from c2f.service.errors import INVALID_TIMESTAMP, UNKNOWN_ITEM
from c2f.service.live import LiveHistories, stream_position
from c2f.service.offload import BoundedExecutor
from c2f.service.settings import Settings

if TYPE_CHECKING:
    from c2f.service.registry import LoadedModel

logger = logging.getLogger("c2f.service")

KEY_PREFIX = "c2f:events"
BLOCK_SECONDS = 0.5  # longest XREAD wait: how long a stop or a model swap waits for the reader at most
READ_COUNT = 10_000  # stream entries per read
MAX_TIMESTAMP = 253_402_300_800.0  # 10000-01-01: later "seconds" are milliseconds or garbage
INFO_KEY = "events"  # manifest.info[INFO_KEY]: what a training run included (read_recorded's summary)

# KEYS: the stream. ARGV: user id, item id, ts for each event. Returns the entry ids, in order.
_APPEND = """
local ids = {}
for k = 1, #ARGV, 3 do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'u', ARGV[k], 'i', ARGV[k + 1], 't', ARGV[k + 2])
end
return ids
"""

_MESSAGES = {
    "folded_users_full": "the service folds in at most {max_users} users the model never trained "
    "(C2F_MAX_FOLDED_USERS); events of users it already knows are still recorded",
    "user_history_full": "events already added {max_items} items to this user (C2F_MAX_HISTORY_ITEMS)",
}


class EventsUnavailable(RuntimeError):
    """Redis (the event log) is not configured, cannot be reached in time, or refused the write."""


def stream_key(namespace: str, content_hash: str | None, uri: str | None = None) -> str:
    """The stream of a dataset: by its content hash, else by a hash of its URI (manifests that lack the hash)."""
    tag = content_hash or hashlib.sha256((uri or "").encode()).hexdigest()
    return f"{KEY_PREFIX}:{namespace}:{tag}"


def model_stream(settings: Settings, manifest: Manifest) -> str:
    return stream_key(settings.events_namespace, manifest.dataset.content_hash, manifest.dataset.uri)


def included_until(manifest: Manifest, stream: str) -> str | None:
    """The last entry of ``stream`` the model's training included (``manifest.info["events"]``), or None."""
    info = manifest.info.get(INFO_KEY)
    if not isinstance(info, dict) or info.get("stream") != stream or not isinstance(info.get("last_id"), str):
        return None
    try:
        stream_position(info["last_id"])
    except ValueError:
        return None
    return str(info["last_id"])


def parse_timestamp(value: float | str | None, now: float) -> float | None:
    """Seconds since the epoch of an event's ``ts`` (a number of seconds, or an ISO 8601 string, UTC when it names no
    zone; absent: ``now``), or None when it is not one."""
    if value is None:
        return now
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds = parsed.timestamp()
    else:
        seconds = float(value)
    return seconds if math.isfinite(seconds) and 0.0 <= seconds < MAX_TIMESTAMP else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _refused(code: str, message: str) -> dict[str, Any]:
    return {"id": None, "error": {"code": code, "message": message, "details": None}}


@dataclass(frozen=True)
class Recorded:
    """What a training run reads of a stream: the events' external ids, in stream order, and the last entry."""

    stream: str
    user_ids: list[str]
    item_ids: list[str]
    last_id: str | None

    def info(self) -> dict[str, Any]:
        return {"stream": self.stream, "last_id": self.last_id, "events": len(self.user_ids)}


def read_recorded(client: Redis, stream: str, count: int = READ_COUNT) -> Recorded:
    """Every event of ``stream`` recorded so far (XRANGE, ``count`` entries at a time)."""
    users: list[str] = []
    items: list[str] = []
    start, last = "-", None
    while True:
        entries = cast(list[Any], client.xrange(stream, min=start, max="+", count=count))
        for entry_id, fields in entries:
            user, item = fields.get(b"u"), fields.get(b"i")
            if user is not None and item is not None:
                users.append(_text(user))
                items.append(_text(item))
            last = _text(entry_id)
        if len(entries) < count:
            return Recorded(stream, users, items, last)
        start = f"({last}"


class EventLog:
    """One process's side of the event log: recording, the reader thread and the overlays of the models it loads."""

    def __init__(self, settings: Settings, current: Callable[[], LoadedModel | None]) -> None:
        self.settings = settings
        self.configured = bool(settings.redis_url)
        self._current = current
        # Redis calls of POST /interactions run here (never on the event loop or the serving thread pool)
        self.pool = BoundedExecutor(settings.redis_threads, settings.redis_queue, name="c2f-events")
        self._client: Redis | None = None
        self._append: Any = None  # the _APPEND script on self._client
        self._reader: Redis | None = None
        self._reader_id: int | None = None  # the reader connection's CLIENT ID
        self._client_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_read_at: str | None = None
        self._last_ok: float | None = None
        self.last_error: str | None = None
        self.last_error_at: str | None = None

    # ---------------------------------------------------------------------------------------------- Redis
    def _connect(self, extra_timeout: float = 0.0, single: bool = False) -> Redis:
        if not self.configured:
            raise EventsUnavailable(
                "interaction events are recorded in Redis and none is configured: set C2F_REDIS_URL, or start the "
                "service with `c2f serve` (embedded Redis)"
            )
        timeout = self.settings.redis_timeout_seconds
        try:
            return Redis.from_url(
                str(self.settings.redis_url),
                socket_connect_timeout=timeout,
                socket_timeout=timeout + extra_timeout,
                health_check_interval=30,
                single_connection_client=single,
            )
        except ValueError as err:
            raise EventsUnavailable(f"invalid redis_url: {err}") from None

    def _redis(self) -> Redis:
        """The client of writes and replays: every command times out after ``redis_timeout_seconds``."""
        with self._client_lock:
            if self._client is None:
                self._client = self._connect()
                self._append = self._client.register_script(_APPEND)
            return self._client

    def _reading(self) -> Redis:
        """The reader thread's client: one connection (its id lets :meth:`stop` end a blocking XREAD at once), whose
        socket waits out a blocking XREAD too."""
        with self._client_lock:
            if self._reader is None:
                self._reader = self._connect(BLOCK_SECONDS, single=True)
            reader = self._reader
        if self._reader_id is None:
            self._reader_id = int(cast(int, reader.client_id()))
        return reader

    # ---------------------------------------------------------------------------------------------- recording
    def record(self, model: LoadedModel, events: Sequence[Any]) -> list[dict[str, Any]]:
        """Record ``events`` (``user_id``, ``item_id``, ``ts`` attributes) for the served ``model``: one result per
        event, ``{"id": <stream id>, "error": None}`` or ``{"id": None, "error": {code, message}}``.

        Blocking (Redis): run it on :attr:`pool`. EventsUnavailable when nothing could be recorded."""
        live = model.live
        if not self.configured or live is None or live.stream is None:
            self._connect()  # EventsUnavailable naming what to configure
            raise EventsUnavailable("the served model has no event log attached")
        rec = model.recommender
        now = time.time()
        results: list[dict[str, Any] | None] = [None] * len(events)
        candidates: list[tuple[int, str, int, str, float]] = []  # (position, user id, item index, item id, ts)
        for k, event in enumerate(events):
            item = rec.item_index(event.item_id)
            ts = parse_timestamp(event.ts, now)
            if item is None:
                results[k] = _refused(UNKNOWN_ITEM, f"unknown item id {event.item_id!r} (not in the served model)")
            elif ts is None:
                results[k] = _refused(
                    INVALID_TIMESTAMP,
                    f"ts {event.ts!r} is not seconds since the epoch (0 to {MAX_TIMESTAMP:.0f}) or an ISO 8601 time",
                )
            else:
                candidates.append((k, event.user_id, item, event.item_id, ts))
        with live.lock:  # the bounds checked, the batch written and applied in one step of this process
            codes = live.admit([(user, item) for _, user, item, _, _ in candidates])
            accepted = []
            for candidate, code in zip(candidates, codes, strict=True):
                if code is None:
                    accepted.append(candidate)
                else:
                    message = _MESSAGES[code].format(max_users=live.max_users, max_items=live.max_items)
                    results[candidate[0]] = _refused(code, message)
            if accepted:
                try:
                    self._redis()
                    args = [value for _, user, _, item_id, ts in accepted for value in (user, item_id, repr(ts))]
                    ids = self._append(keys=[live.stream], args=args)
                except RedisError as err:
                    raise EventsUnavailable(
                        f"events not recorded: Redis did not take them ({type(err).__name__}: {err})"
                    ) from None
                live.apply([(user, item) for _, user, item, _, _ in accepted])
                for (k, *_), entry_id in zip(accepted, ids, strict=True):
                    results[k] = {"id": _text(entry_id), "error": None}
                    live.recorded_here.add(_text(entry_id))
        return [r for r in results if r is not None]

    # ---------------------------------------------------------------------------------------------- reading
    def prepare(self, model: LoadedModel) -> LoadedModel:
        """``model`` with its overlay, the stream replayed into it (after what its training included); the registry
        calls it on every model it loads, before the swap. Redis unreachable: the overlay starts empty and the
        reader thread replays it once Redis answers."""
        if not self.configured:
            return model
        manifest = model.artifact.manifest
        live = LiveHistories(
            model.recommender,
            max_users=self.settings.max_folded_users,
            max_items=self.settings.max_history_items,
            stream=model_stream(self.settings, manifest),
        )
        model = dataclasses.replace(model, live=live)
        try:
            self._replay(model)
        except (RedisError, OSError, EventsUnavailable) as err:
            self._failed(err)
        except Exception:  # noqa: BLE001 - the model loads without its events rather than not at all
            logger.exception("replaying the recorded events failed; the reader thread retries")
        return model

    def _replay(self, model: LoadedModel) -> None:
        live = model.live
        assert live is not None and live.stream is not None
        client = self._redis()
        last = included_until(model.artifact.manifest, live.stream)
        start = "-" if last is None else f"({last}"
        while True:
            entries = cast(list[Any], client.xrange(live.stream, min=start, max="+", count=READ_COUNT))
            if entries:
                self._apply(live, entries)
                last = _text(entries[-1][0])
                start = f"({last}"
            if len(entries) < READ_COUNT:
                break
        with live.lock:
            if live.position is None:
                live.position = last or "0-0"
        self._ok()

    def _apply(self, live: LiveHistories, entries: list[tuple[Any, dict[bytes, bytes]]]) -> None:
        rec = live.rec
        pairs: list[tuple[str, int]] = []
        skipped = 0
        with live.lock:
            own = live.recorded_here
            for entry_id, fields in entries:
                if own and _text(entry_id) in own:
                    own.discard(_text(entry_id))  # applied when this process recorded it (again: no change)
                    continue
                user, item_id = fields.get(b"u"), fields.get(b"i")
                item = rec.item_index(_text(item_id)) if item_id is not None else None
                if user is None or item is None:
                    skipped += 1  # an item this model does not know (recorded against another version)
                    continue
                pairs.append((_text(user), item))
            live.skipped += skipped
            live.apply(pairs, position=_text(entries[-1][0]))

    def read_once(self) -> bool:
        """One step of the reader: replay the served model's stream when its overlay was never read, else read
        what was recorded since (waiting up to BLOCK_SECONDS). False when no model is served or Redis failed."""
        model = self._current()
        live = model.live if model is not None else None
        if model is None or live is None or live.stream is None:
            return False
        try:
            if live.position is None:
                self._replay(model)
                return True
            block = int(BLOCK_SECONDS * 1000)
            reply = cast(list[Any], self._reading().xread({live.stream: live.position}, count=READ_COUNT, block=block))
            for _, entries in reply or []:
                if entries:
                    self._apply(live, entries)
        except (RedisError, OSError, EventsUnavailable) as err:
            self._reader_id = None  # a reconnect gets a new id
            self._failed(err)
            return False
        self._ok()
        return True

    def _ok(self) -> None:
        if self.last_error is not None:
            logger.info("interaction events: Redis readable again")
        self.last_error = None
        self.last_read_at = _now()
        self._last_ok = time.monotonic()

    def _failed(self, err: BaseException) -> None:
        if self.last_error is None:
            logger.warning("interaction events: cannot read Redis; serving the events read so far (%s)", err)
        self.last_error = f"{type(err).__name__}: {err}"
        self.last_error_at = _now()

    def start(self) -> None:
        """Start the reader thread (nothing without Redis)."""
        if not self.configured or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="c2f-events-reader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            reader_id = self._reader_id
            if reader_id is not None and self._client is not None:
                with contextlib.suppress(RedisError, OSError):
                    self._client.client_unblock(reader_id)  # its XREAD returns now, not after BLOCK_SECONDS
            limit = 2 * self.settings.redis_timeout_seconds + BLOCK_SECONDS + 0.5  # a connect and a blocked read
            self._thread.join(timeout if timeout is not None else limit)
            self._thread = None
        self.pool.shutdown()
        with self._client_lock:
            for client in (self._client, self._reader):
                if client is not None:
                    client.close()
            self._client = self._reader = self._append = None

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                ok = self.read_once()
            except Exception:  # noqa: BLE001 - the reader must never die
                logger.exception("interaction events: reader iteration failed")
                ok = False
            if ok:
                backoff = 0.1
            else:
                self._stop.wait(backoff)
                backoff = min(2 * backoff, 2.0)

    # ---------------------------------------------------------------------------------------------- reporting
    @property
    def stale(self) -> bool:
        """True when Redis is configured and was not read successfully lately."""
        if not self.configured:
            return False
        if self.last_error is not None or self._last_ok is None:
            return True
        return time.monotonic() - self._last_ok > 3 * BLOCK_SECONDS + 2 * self.settings.redis_timeout_seconds

    def status(self, model: LoadedModel | None) -> dict[str, Any]:
        """What the served model's overlay holds and how the reader fares (GET /footprint, the status page)."""
        live = model.live if model is not None else None
        counts = (
            live.status()
            if live is not None
            else {
                "folded_users": 0,
                "max_folded_users": self.settings.max_folded_users,
                "users_with_events": 0,
                "event_items": 0,
                "max_items_per_user": self.settings.max_history_items,
                "bytes": 0,
                "position": None,
                "refused": 0,
                "skipped": 0,
            }
        )
        return {
            "configured": self.configured,
            "stream": live.stream if live is not None else None,
            **counts,
            "stale": self.stale,
            "last_read_at": self.last_read_at,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }
