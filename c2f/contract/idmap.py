"""External string id -> 0-based index without a Python object per id: the id array itself plus a sort permutation.

A ``dict`` of one million string ids costs roughly 100-150 bytes per id in Python objects (the key string, the int,
the hash slot); here the ids stay in the one numpy fixed-width unicode array they were loaded as (4 bytes per
character of the longest id), plus an int32 sort permutation (none when the ids are already sorted, as the trainer
stores table ids), and a lookup is a binary search (``np.searchsorted`` with ``sorter``, O(log n) string compares).
"""

from __future__ import annotations

import numpy as np


class IdMap:
    """Immutable map from the ids in ``ids`` (n,) to their positions 0..n-1.

    ``ids`` must be unique (artifacts guarantee it); lookups of ids not in the map give None / -1.
    """

    def __init__(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids)
        if ids.dtype.kind != "U":
            ids = ids.astype(str)
        self.ids = ids
        self._order: np.ndarray | None = None  # None: ``ids`` is sorted already
        if not np.all(ids[1:] > ids[:-1]):
            self._order = np.argsort(ids, kind="stable").astype(np.int32 if ids.size < 2**31 else np.int64)

    def __len__(self) -> int:
        return int(self.ids.size)

    def get(self, key: str) -> int | None:
        """The index of ``key``, or None when it is not a known id."""
        # One scalar binary search (half the time of lookup() on a one-element array: the per-request path).
        if self.ids.size == 0:
            return None
        pos = int(self.ids.searchsorted(key, sorter=self._order))
        if pos >= self.ids.size:
            return None
        found = pos if self._order is None else int(self._order[pos])
        # numpy's unicode arrays drop trailing NULs: "a\x00" would otherwise match "a"
        return found if str(self.ids[found]) == key else None

    def lookup(self, keys: np.ndarray | list[str]) -> np.ndarray:
        """Indices (len(keys),) int64 of many ids at once; -1 where an id is unknown.

        A list of strings is converted at the width of the longest known id: a fixed-width array as wide as the
        longest key would cost len(keys) × its length × 4 bytes (one 1 MB id among 1000 in a request body: 4 GB).
        A longer key, or one ending in NUL (numpy would drop it and match the id without), is unknown, as in
        :meth:`get`."""
        if isinstance(keys, np.ndarray):
            query = keys if keys.dtype.kind == "U" else keys.astype(str)
            usable = None
        else:
            keys = [str(k) for k in keys]
            width = self.ids.dtype.itemsize // 4
            usable = np.fromiter((len(k) <= width and not k.endswith("\x00") for k in keys), bool, len(keys))
            query = np.array([k if ok else "" for k, ok in zip(keys, usable, strict=True)], dtype=f"<U{max(1, width)}")
        if self.ids.size == 0:
            return np.full(query.shape, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.ids, query, sorter=self._order), self.ids.size - 1)
        index = pos if self._order is None else self._order[pos]
        found = self.ids[index] == query
        if usable is not None:
            found &= usable
        return np.where(found, index, -1).astype(np.int64)

    def nbytes(self) -> int:
        """Bytes held on top of ``ids``: the sort permutation (0 when the ids were sorted)."""
        return 0 if self._order is None else int(self._order.nbytes)
