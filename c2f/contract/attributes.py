"""Item attributes: string columns per item (a dataset's optional ``items.csv`` / ``items.parquet``), numpy only.

The trainer encodes the table once, for the model's items (:func:`encode_attributes`); the artifact stores it as four
arrays (all or none; :data:`contract.methods.ATTRIBUTE_ARRAYS`), checksummed with every other array and pickle-free::

    item_attr_names    (n_attrs,)            str     column names, in the table's order
    item_attr_offsets  (n_attrs + 1,)        int64   column c's values are item_attr_values[offsets[c]:offsets[c + 1]]
    item_attr_values   (n_values,)           str     each column's distinct values, sorted (binary-searched)
    item_attr_codes    (n_attrs, n_items)    uint8 | uint16 | uint32: item i's value of column c, as its position
                                                     among column c's values (one contiguous row a column)

An item the table does not list, or an empty cell, has the value ``""``. The service filters on it
(:class:`ItemAttributes`): ``[("genre", ("jazz", "blues")), ("country", ("fr",))]`` keeps the items whose genre is
jazz or blues and whose country is fr, one vectorised gather a column (no Python loop over items).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from c2f.contract.idmap import IdMap
from c2f.contract.methods import ATTRIBUTE_ARRAYS, MethodError

MAX_ATTRIBUTES = 64
"""Most attribute columns a table may have (the trainer refuses more)."""

Clause = tuple[str, tuple[str, ...]]
"""``(column, values)``: the items whose ``column`` is one of ``values``."""


class UnknownAttribute(KeyError):
    """A filter names a column the model's attribute table does not have."""

    def __init__(self, column: str, available: Sequence[str]) -> None:
        super().__init__(column)
        self.column = column
        self.available = list(available)

    def __str__(self) -> str:
        have = ", ".join(self.available) or "none"
        return f"unknown item attribute {self.column!r} (this model has: {have})"


def code_dtype(counts: Sequence[int]) -> np.dtype:
    """The smallest unsigned type that holds a code below every column's number of values."""
    largest = max(counts, default=1)
    for dtype in (np.uint8, np.uint16, np.uint32):
        if largest - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"an attribute column has {largest} distinct values; at most 2**32 are supported")


def encode_attributes(
    item_ids: np.ndarray, table_ids: np.ndarray, columns: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The four arrays for the model's items ``item_ids`` (its order) from a table of unique ids ``table_ids``
    (rows,) and string columns (rows,) each. Rows of ids the model does not have are ignored; items missing from
    the table get ``""``. No columns: no arrays (an empty dict)."""
    if not columns:
        return {}
    row = IdMap(np.asarray(table_ids).astype(str)).lookup(np.asarray(item_ids).astype(str))
    listed = row >= 0
    names: list[str] = []
    values: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    for name, column in columns.items():
        column = np.asarray(column).astype(str)
        per_item = np.full(row.shape, "", dtype=column.dtype if column.size else "<U1")
        per_item[listed] = column[row[listed]]
        distinct, inverse = np.unique(per_item, return_inverse=True)
        names.append(str(name))
        values.append(distinct)
        codes.append(inverse.reshape(-1))
    counts = [len(v) for v in values]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    all_values = np.concatenate(values) if values else np.empty(0, dtype="<U1")
    return {
        "item_attr_names": np.asarray(names, dtype=str),
        "item_attr_offsets": offsets,
        "item_attr_values": all_values.astype(str),
        "item_attr_codes": np.stack(codes).astype(code_dtype(counts)),
    }


def check_attribute_arrays(arrays: Mapping[str, np.ndarray]) -> None:
    """The attribute arrays, when present (dtypes and shapes are the method spec's checks): unique non-empty column
    names, offsets from 0 to len(values), each column's values sorted and distinct, every code below its column's
    number of values. MethodError on the first problem."""
    if "item_attr_names" not in arrays:
        return
    names, offsets = arrays["item_attr_names"], arrays["item_attr_offsets"]
    values, codes = arrays["item_attr_values"], arrays["item_attr_codes"]
    if names.size == 0:
        raise MethodError("item_attr_names is empty (an artifact without attributes stores none of their arrays)")
    if len(set(names.tolist())) != names.size or any(not str(n) or ":" in str(n) for n in names.tolist()):
        raise MethodError("item_attr_names must be distinct, non-empty and without ':'")
    if offsets[0] != 0 or offsets[-1] != values.size or np.any(np.diff(offsets) < 1):
        raise MethodError("item_attr_offsets must rise from 0 to len(item_attr_values), at least one value a column")
    ascending = values[1:] > values[:-1]
    ascending[offsets[1:-1] - 1] = True  # a column's first value need not follow the previous column's last
    if not ascending.all():
        raise MethodError("item_attr_values must hold each column's values sorted and distinct")
    counts = np.diff(offsets)
    if codes.size and np.any(codes.max(axis=1, initial=0) >= counts):
        raise MethodError("item_attr_codes has a code beyond its column's values")


class ItemAttributes:
    """The attribute table of one loaded model: column names, each column's values, masks for filters.

    Immutable; shares the artifact's (read-only) arrays, so it holds nothing beyond them."""

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.names: list[str] = [str(n) for n in arrays["item_attr_names"].tolist()]
        self._offsets = arrays["item_attr_offsets"]
        self._values = arrays["item_attr_values"]
        self._codes = arrays["item_attr_codes"]
        self._column = {name: c for c, name in enumerate(self.names)}
        self.n_items = int(self._codes.shape[1])

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ItemAttributes | None:
        """The table of an artifact's arrays, or None when it stores none."""
        return cls(arrays) if all(name in arrays for name in ATTRIBUTE_ARRAYS) else None

    @property
    def nbytes(self) -> int:
        """Bytes of the four arrays (what the table costs in memory)."""
        return int(self._offsets.nbytes + self._values.nbytes + self._codes.nbytes) + int(
            np.asarray(self.names, dtype=str).nbytes
        )

    def values(self, column: str) -> np.ndarray:
        """Column ``column``'s distinct values, sorted (UnknownAttribute when there is no such column)."""
        c = self._index(column)
        return self._values[self._offsets[c] : self._offsets[c + 1]]

    def value_counts(self) -> dict[str, int]:
        """Distinct values per column."""
        return {name: int(self._offsets[c + 1] - self._offsets[c]) for c, name in enumerate(self.names)}

    def item_values(self, items: np.ndarray) -> dict[str, list[str]]:
        """Each column's value for items ``items`` (0-based indices)."""
        idx = np.asarray(items, dtype=np.int64)
        return {
            name: self._values[self._offsets[c] + self._codes[c, idx].astype(np.int64)].tolist()
            for c, name in enumerate(self.names)
        }

    def _index(self, column: str) -> int:
        c = self._column.get(column)
        if c is None:
            raise UnknownAttribute(column, self.names)
        return c

    def check(self, clauses: Sequence[Clause]) -> None:
        """UnknownAttribute for the first clause whose column the table does not have."""
        for column, _ in clauses:
            self._index(column)

    def mask(self, clauses: Sequence[Clause]) -> np.ndarray:
        """(n_items,) bool: the items matching every clause (AND), a clause matching any of its values (OR).

        A value the column does not have matches no item. Per clause: binary searches of its values among the
        column's (a few), a boolean lookup table over the column's values, one gather over the items' codes."""
        keep = np.ones(self.n_items, dtype=bool)
        for column, wanted in clauses:
            c = self._index(column)
            start, stop = int(self._offsets[c]), int(self._offsets[c + 1])
            values = self._values[start:stop]
            query = np.asarray(list(wanted), dtype=str)
            pos = np.minimum(np.searchsorted(values, query), values.size - 1)
            found = pos[values[pos] == query]
            table = np.zeros(values.size, dtype=bool)
            table[found] = True
            keep &= table[self._codes[c]]
        return keep
