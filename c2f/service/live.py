"""Live histories: what recorded interaction events add to one served model, held by each process (numpy only).

A :class:`LiveHistories` belongs to one loaded model (``LoadedModel.live``; item and user indices are that model's):
external user id -> :class:`LiveUser`, the item indices the user's events added and the vector the user is served
with. Serving reads it with one dict lookup and never waits: entries are immutable and replaced whole, so a request
sees a user's old entry or its new one, never half of one; writers (this process's ``POST /interactions`` and its
stream reader, :mod:`service.events`) take :attr:`LiveHistories.lock`.

Vectors, computed when events arrive (never per request):

* a user the model trained (row u): ``h_u + fold(G_u ∪ E) − fold(G_u)``, G_u its training-graph items, E the items
  its events added, fold the service's fold-in (``Recommender.fold_in``, :mod:`contract.foldin`). The trained vector
  moves by what the fold-in says the new items change: a user without events keeps exactly h_u, and what the
  fold-in gets wrong about u from G_u alone cancels out. ``fold(G_u ∪ E)`` alone was the alternative; it would drop
  the part of h_u (its layer-0 embedding) that no fold-in of its items predicts.
* a user the model never trained: ``fold(E)``, as ``POST /recommend`` folds a visitor in (strategy ``fold_in``).

Applying is idempotent: an event names a (user, item) pair and adding a pair already held changes nothing, so an
event applied twice (at once by the process that recorded it, again when its stream reader reads it back) or sent
again by a client after a 503 has no further effect.

Bounds: at most ``max_users`` users the model never trained and ``max_items`` added items per user; an event past
either is refused with its code (:data:`FOLDED_USERS_FULL`, :data:`USER_HISTORY_FULL`) and nothing grows past them.
Users the model trained are bounded by the model itself (n_users of them, ``max_items`` each).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from c2f.service.errors import FOLDED_USERS_FULL, USER_HISTORY_FULL

if TYPE_CHECKING:
    from c2f.service.scoring import Recommender

_Changes = dict[str, tuple[int | None, set[int]]]  # user id -> (its row or None, item indices it gains)
_DICT_SLOT_BYTES = 48  # one entry of the id -> LiveUser dict (hash table slot and index, with its spare room)


@dataclass(frozen=True, slots=True)
class LiveUser:
    """One user's recorded events as served: ``index`` its trained row (None: folded in from its events alone),
    ``items`` (k,) int64 the sorted item indices its events added (beyond its training graph), ``vector`` (d,)
    float32 the vector it is served with."""

    index: int | None
    items: np.ndarray
    vector: np.ndarray

    def seen(self, rec: Recommender) -> np.ndarray:
        """The items ``exclude_seen`` drops: what the user had in training (a trained user) and its events' items."""
        return self.items if self.index is None else np.concatenate([rec.seen_items(self.index), self.items])

    def nbytes(self, user_id: str) -> int:
        """Bytes this entry holds: its arrays and objects, the id string and its dict slot."""
        return (
            sys.getsizeof(self)
            + sys.getsizeof(self.items)
            + sys.getsizeof(self.vector)
            + sys.getsizeof(user_id)
            + _DICT_SLOT_BYTES
        )


def stream_position(entry_id: str) -> tuple[int, int]:
    """A Redis stream entry id ``"<ms>-<seq>"`` as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class LiveHistories:
    """The users recorded events added to one model, and where in the event stream they were read up to."""

    def __init__(self, rec: Recommender, *, max_users: int, max_items: int, stream: str | None = None) -> None:
        self.rec = rec
        self.max_users = max_users
        self.max_items = max_items
        self.stream = stream  # the Redis stream these events come from (service.events)
        self.position: str | None = None  # the last stream entry read into this overlay (None: not read yet)
        self.lock = threading.RLock()
        self._users: dict[str, LiveUser] = {}
        self.new_users = 0  # entries of users the model never trained
        self.item_count = 0  # item indices held, all entries together
        self.nbytes = 0
        self.recorded_here: set[str] = set()  # stream ids this process applied at once (its reader skips them)
        self.refused = 0  # events read back from the stream that a bound kept out (recorded by another process)
        self.skipped = 0  # events read back whose item this model does not know

    # ---------------------------------------------------------------------------------------------- serving reads
    def get(self, user_id: str) -> LiveUser | None:
        return self._users.get(user_id)

    def __len__(self) -> int:
        return len(self._users)

    # ---------------------------------------------------------------------------------------------- writes
    def _plan(self, pairs: Sequence[tuple[str, int]]) -> tuple[list[str | None], _Changes]:
        """Per pair None (it fits) or the bound it passes, given what is held and the pairs before it; and per user
        its row and the item indices that are new to it."""
        codes: list[str | None] = []
        plans: dict[str, tuple[int | None, set[int], set[int], int]] = {}  # user -> (row, has, added, held)
        new_users = self.new_users
        for user_id, item in pairs:
            plan = plans.get(user_id)
            if plan is None:
                held = self._users.get(user_id)
                index = held.index if held is not None else self.rec.user_index(user_id)
                if held is None and index is None:
                    if new_users >= self.max_users:
                        codes.append(FOLDED_USERS_FULL)
                        continue
                    new_users += 1
                has: set[int] = set() if held is None else set(held.items.tolist())
                if index is not None:
                    has.update(self.rec.graph_items(index).tolist())
                plan = plans[user_id] = (index, has, set(), 0 if held is None else len(held.items))
            index, has, added, held_count = plan
            if item in has or item in added:
                codes.append(None)
            elif held_count + len(added) >= self.max_items:
                codes.append(USER_HISTORY_FULL)
            else:
                added.add(item)
                codes.append(None)
        return codes, {user: (index, added) for user, (index, _, added, _) in plans.items() if added}

    def admit(self, pairs: Sequence[tuple[str, int]]) -> list[str | None]:
        """Per (user id, item index) pair: None when applying it would fit the bounds, else the refusal code.
        Changes nothing; hold :attr:`lock` from here to :meth:`apply` for the answer to stay true."""
        with self.lock:
            return self._plan(pairs)[0]

    def apply(self, pairs: Sequence[tuple[str, int]], position: str | None = None) -> list[str | None]:
        """Add (user id, item index) pairs (those past a bound are left out and counted in :attr:`refused`), fold the
        users they change in again, and move :attr:`position` to the stream entry ``position`` (when later).
        Returns :meth:`admit`'s codes."""
        with self.lock:
            codes, changes = self._plan(pairs)
            if changes:
                self._install(changes)
            self.refused += sum(code is not None for code in codes) if position is not None else 0
            if position is not None and (
                self.position is None or stream_position(position) > stream_position(self.position)
            ):
                self.position = position
            return codes

    def _install(self, changes: _Changes) -> None:
        rec = self.rec
        users: list[tuple[str, int | None, np.ndarray]] = []
        for user_id, (index, added) in changes.items():
            held = self._users.get(user_id)
            merged = added if held is None else added.union(held.items.tolist())
            users.append((user_id, index, np.array(sorted(merged), dtype=np.int64)))
        trained = [(user_id, index, items) for user_id, index, items in users if index is not None]
        folded = [(user_id, items) for user_id, index, items in users if index is None]
        histories: list[np.ndarray] = []
        for _, index, items in trained:
            graph = np.asarray(rec.graph_items(index), dtype=np.int64)
            histories += [np.concatenate([graph, items]), graph]  # disjoint: items never holds a graph item
        histories += [items for _, items in folded]
        vectors = rec.fold_in(histories)
        entries: list[tuple[str, LiveUser]] = []
        if trained:
            rows = np.array([index for _, index, _ in trained], dtype=np.int64)
            moved = rec.user_embeddings(rows) + vectors[0 : 2 * len(trained) : 2] - vectors[1 : 2 * len(trained) : 2]
            for (user_id, index, items), vector in zip(trained, moved, strict=True):
                entries.append((user_id, LiveUser(index, items, np.array(vector, dtype=np.float32))))
        for (user_id, items), vector in zip(folded, vectors[2 * len(trained) :], strict=True):
            entries.append((user_id, LiveUser(None, items, np.array(vector, dtype=np.float32))))
        for user_id, entry in entries:
            old = self._users.get(user_id)
            if old is None:
                self.new_users += entry.index is None
            else:
                self.item_count -= len(old.items)
                self.nbytes -= old.nbytes(user_id)
            self.item_count += len(entry.items)
            self.nbytes += entry.nbytes(user_id)
            self._users[user_id] = entry  # one reference store: readers see the old entry or this one

    # ---------------------------------------------------------------------------------------------- reporting
    def status(self) -> dict[str, Any]:
        return {
            "folded_users": self.new_users,
            "max_folded_users": self.max_users,
            "users_with_events": len(self._users) - self.new_users,
            "event_items": self.item_count,
            "max_items_per_user": self.max_items,
            "bytes": self.nbytes,
            "position": self.position,
            "refused": self.refused,
            "skipped": self.skipped,
        }
