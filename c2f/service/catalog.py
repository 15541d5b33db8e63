"""The live catalog: items hidden from every answer (out of stock, withdrawn), shared by every process through Redis.

State lives in Redis, under ``settings.catalog_name`` (external item ids, so it outlives model versions)::

    c2f:catalog:<name>:hidden       SET of hidden item ids
    c2f:catalog:<name>:meta         HASH  version: bumped by every change;  epoch: a random token set by the first
                                    change (a Redis that lost its data starts a new epoch, so no version repeats)

A change (``PUT``/``DELETE /items/{id}/hidden``) is one Lua script: the cap check, SADD/SREM and the version bump
happen atomically, and the version moves only when the set does. Every process keeps a local immutable
:class:`HiddenSnapshot` that serving reads (never Redis): a daemon thread re-reads the version every
``settings.hidden_refresh_seconds`` (one HMGET, O(1)) and the whole set only when (version, epoch) changed (SMEMBERS
and HMGET in one MULTI). The process that made a change applies it at once. When Redis cannot be read the last
snapshot stays in force and :meth:`HiddenItems.status` says it is stale; changes then fail (503) within
``settings.redis_timeout_seconds`` per command.
"""

from __future__ import annotations

import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from redis import Redis
from redis.exceptions import RedisError

from c2f.service.settings import Settings

if TYPE_CHECKING:
    from c2f.service.registry import LoadedModel
    from c2f.service.scoring import Recommender

logger = logging.getLogger("c2f.service")

KEY_PREFIX = "c2f:catalog"

# KEYS: set, meta. ARGV: op ("hide" | "unhide"), item id, cap, a fresh epoch token.
# Returns {changed (1, 0; -1: the set is full), version, epoch, count}.
_CHANGE = """
local changed = 0
if ARGV[1] == 'hide' then
  if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 0 then
    if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[3]) then
      changed = -1
    else
      redis.call('SADD', KEYS[1], ARGV[2])
      changed = 1
    end
  end
else
  changed = redis.call('SREM', KEYS[1], ARGV[2])
end
if changed == 1 then
  redis.call('HSETNX', KEYS[2], 'epoch', ARGV[4])
  redis.call('HINCRBY', KEYS[2], 'version', 1)
end
local meta = redis.call('HMGET', KEYS[2], 'version', 'epoch')
return {changed, tonumber(meta[1] or '0'), meta[2] or '', redis.call('SCARD', KEYS[1])}
"""


class CatalogUnavailable(RuntimeError):
    """Redis is not configured or cannot be reached (in time)."""


class HiddenItemsFull(RuntimeError):
    """Hiding one more item would pass ``settings.max_hidden_items``."""


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class HiddenSnapshot:
    """The hidden item ids at one (version, epoch) of the Redis state; ``version`` None: never read."""

    ids: frozenset[str]
    version: int | None
    epoch: str

    @property
    def key(self) -> tuple[int | None, str]:
        return self.version, self.epoch

    def nbytes(self) -> int:
        """Bytes of the set and its strings in this process."""
        return sys.getsizeof(self.ids) + sum(sys.getsizeof(item) for item in self.ids)


_EMPTY = HiddenSnapshot(frozenset(), None, "")


class HiddenItems:
    """One process's view of the hidden items: the snapshot serving reads, its refresher thread and the writes."""

    def __init__(self, settings: Settings, current: Callable[[], LoadedModel | None] | None = None) -> None:
        """``current``: the served model, whose item indices of the hidden ids a change computes at once (so that
        no request pays for it)."""
        self.settings = settings
        self._current = current
        self.configured = bool(settings.redis_url)
        name = settings.catalog_name
        self._set_key = f"{KEY_PREFIX}:{name}:hidden"
        self._meta_key = f"{KEY_PREFIX}:{name}:meta"
        self._snapshot = _EMPTY
        self._lock = threading.Lock()  # orders snapshot replacements (never held by serving)
        self._client: Redis | None = None
        self._script: Any = None
        self._client_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bytes = 0
        # (recommender, snapshot, indices): the hidden items as item indices of one model, for the last pair asked
        self._indices: tuple[Any, HiddenSnapshot, np.ndarray] | None = None
        self.last_refresh_at: str | None = None  # last successful read of Redis
        self._last_ok: float | None = None  # its time.monotonic()
        self.last_error: str | None = None  # the last read's failure (None once a read succeeds)
        self.last_error_at: str | None = None

    # ---------------------------------------------------------------------------------------------- what serving reads
    @property
    def snapshot(self) -> HiddenSnapshot:
        return self._snapshot

    def indices(self, rec: Recommender) -> np.ndarray:
        """The hidden items as (sorted) item indices of ``rec``'s model (ids it does not know are left out); cached
        for the last (model, snapshot) pair, so a request pays one tuple read."""
        snap, cached = self._snapshot, self._indices
        if cached is not None and cached[0] is rec and cached[1] is snap:
            return cached[2]
        if snap.ids:
            found = rec.item_indices(np.asarray(sorted(snap.ids), dtype=str))
            out = np.sort(found[found >= 0])
        else:
            out = np.empty(0, np.int64)
        out.setflags(write=False)
        self._indices = (rec, snap, out)
        return out

    @property
    def stale(self) -> bool:
        """True when Redis is configured and its last read failed or is older than a few refresh periods."""
        if not self.configured:
            return False
        if self.last_error is not None or self._last_ok is None:
            return True
        limit = 3 * self.settings.hidden_refresh_seconds + self.settings.redis_timeout_seconds
        return time.monotonic() - self._last_ok > limit

    def status(self) -> dict[str, Any]:
        """Count, version, bytes, staleness and the last refresh (for /health/ready, /items/hidden, the page)."""
        snap = self._snapshot
        cached = self._indices
        index_bytes = int(cached[2].nbytes) if cached is not None and cached[1] is snap else 0
        age = None if self._last_ok is None else round(time.monotonic() - self._last_ok, 3)
        return {
            "count": len(snap.ids),
            "version": snap.version,
            "bytes": self._bytes + index_bytes,
            "configured": self.configured,
            "stale": self.stale,
            "last_refresh_at": self.last_refresh_at,
            "refresh_age_seconds": age,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "refresh_seconds": self.settings.hidden_refresh_seconds,
            "max_hidden_items": self.settings.max_hidden_items,
        }

    # ---------------------------------------------------------------------------------------------- Redis
    def _redis(self) -> Redis:
        if not self.configured:
            raise CatalogUnavailable(
                "hidden items live in Redis and none is configured: set C2F_REDIS_URL, or start the service with "
                "`c2f serve` (embedded Redis)"
            )
        with self._client_lock:
            return self._client if self._client is not None else self._connect()

    def _connect(self) -> Redis:
        """A lazily connecting client (no I/O here) with the Redis timeouts, and the change script on it."""
        timeout = self.settings.redis_timeout_seconds
        try:
            client = Redis.from_url(
                str(self.settings.redis_url),
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                health_check_interval=30,
            )
        except ValueError as err:
            raise CatalogUnavailable(f"invalid redis_url: {err}") from None
        self._script = client.register_script(_CHANGE)
        self._client = client
        return client

    def _install(self, snap: HiddenSnapshot) -> None:
        """Make ``snap`` the served snapshot unless a newer one of the same epoch already is."""
        with self._lock:
            current = self._snapshot
            if (
                current.version is not None
                and snap.version is not None
                and current.epoch == snap.epoch
                and current.version >= snap.version
            ):
                return
            self._snapshot = snap
            self._bytes = snap.nbytes()
        model = self._current() if self._current is not None else None
        if model is not None:
            self.indices(model.recommender)

    def _fetch(self, client: Redis) -> HiddenSnapshot:
        pipe = client.pipeline(transaction=True)
        pipe.smembers(self._set_key)
        pipe.hmget(self._meta_key, ["version", "epoch"])
        members, (version, epoch) = pipe.execute()
        return HiddenSnapshot(
            frozenset(_text(m) for m in members), int(version or 0), _text(epoch) if epoch is not None else ""
        )

    def refresh(self) -> bool:
        """Re-read Redis: the version (O(1)), and the set when the version moved. True when the snapshot changed;
        False when nothing changed or Redis could not be read (the last snapshot stays, :attr:`stale`)."""
        if not self.configured:
            return False
        try:
            client = self._redis()
            version, epoch = cast(list[Any], client.hmget(self._meta_key, ["version", "epoch"]))
            key = (int(version or 0), _text(epoch) if epoch is not None else "")
            changed = key != self._snapshot.key
            if changed:
                self._install(self._fetch(client))
        except (RedisError, OSError, CatalogUnavailable, ValueError) as err:
            if self.last_error is None:
                logger.warning("hidden items: cannot read Redis; serving the last known set (%s)", err)
            self.last_error = f"{type(err).__name__}: {err}"
            self.last_error_at = _now()
            return False
        if self.last_error is not None:
            logger.info("hidden items: Redis readable again (%d hidden)", len(self._snapshot.ids))
        self.last_error = None
        self.last_refresh_at = _now()
        self._last_ok = time.monotonic()
        return changed

    def change(self, item_id: str, hidden: bool) -> tuple[bool, HiddenSnapshot]:
        """Hide or unhide ``item_id`` in Redis and apply it here at once: (changed, the snapshot now served).

        CatalogUnavailable when Redis cannot be reached, HiddenItemsFull at the cap. Blocking: call it off the
        serving path (the job-queue pool)."""
        try:
            self._redis()
            result = self._script(
                keys=[self._set_key, self._meta_key],
                args=["hide" if hidden else "unhide", item_id, self.settings.max_hidden_items, secrets.token_hex(8)],
            )
            changed, version, epoch = int(result[0]), int(result[1]), _text(result[2])
            if changed < 0:
                raise HiddenItemsFull(
                    f"{self.settings.max_hidden_items} items are hidden already (C2F_MAX_HIDDEN_ITEMS); "
                    "unhide some first"
                )
            current = self._snapshot
            if changed and current.key == (version - 1, epoch):  # nobody else changed it meanwhile: apply here
                ids = current.ids | {item_id} if hidden else current.ids - {item_id}
                self._install(HiddenSnapshot(frozenset(ids), version, epoch))
            elif current.key != (version, epoch):
                self._install(self._fetch(self._redis()))
        except RedisError as err:
            raise CatalogUnavailable(f"hidden items unavailable: cannot reach Redis ({err})") from None
        return bool(changed), self._snapshot

    # ---------------------------------------------------------------------------------------------- the refresher
    def start(self) -> None:
        """Read Redis once (bounded by its timeout), then refresh every ``hidden_refresh_seconds`` in a daemon
        thread. Nothing without Redis."""
        if not self.configured or (self._thread is not None and self._thread.is_alive()):
            return
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="c2f-hidden-items", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _run(self) -> None:
        while not self._stop.wait(self.settings.hidden_refresh_seconds):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the refresher must never die
                logger.exception("hidden items refresh failed")
