"""Which items an answer may contain: one :class:`ItemFilter` per request, applied by every ranking the service makes.

Four inputs, all optional, combine into it: ``exclude`` (item indices a request drops), ``hidden`` (the live
catalog's hidden items, :mod:`service.catalog`), ``allow`` (an allow-list: the candidate set ``items=``) and
``mask`` (a boolean (n_items,) keep-mask: an attribute filter ``where=``, :mod:`contract.attributes`). An item is
answerable when it is in the allow-list (if any) and the mask (if any), and neither excluded nor hidden.

A filter is built once per request (O(n_items) at most, for a mask), then serves every user of the request. It holds
the answerable items as ``candidates`` (sorted item indices) when they are few (an allow-list, or a mask keeping at
most ``n_items / MATERIALIZE`` items), else as ``keep`` (a mask) or ``blocked`` (the dropped items). The ranking
(:meth:`service.scoring.Recommender.rank`) scores only the candidates, from their gathered vectors, when there are
few enough for its served form to make that cheaper than scoring every item; otherwise it scores every item and
:meth:`ItemFilter.apply` sets the others to -inf.

Parsing the HTTP syntax of ``where`` (``column:value|value``, repeatable) is :func:`parse_where`; a request's
``exclude`` / ``items`` / ``where`` parameters and the hidden items become a filter (and the ids to echo back as
ignored) in :func:`select_items`, which every ranking route calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from c2f.contract.attributes import Clause, UnknownAttribute
from c2f.service.errors import NO_ITEM_ATTRIBUTES, UNKNOWN_ATTRIBUTE, ApiError, invalid

if TYPE_CHECKING:
    from c2f.service.scoring import Recommender

_NEG_INF = np.float32(-np.inf)

MATERIALIZE = 2
"""A mask keeping at most ``n_items / MATERIALIZE`` items also lists them (``candidates``): beyond that no served
form gathers faster than it scores every item (service/scoring.py's gather limits)."""


class WhereSyntaxError(ValueError):
    """A ``where`` value is not ``column:value`` (with ``|`` between alternative values)."""


def parse_where(values: Sequence[str] | None, limit: int) -> list[Clause]:
    """``["genre:jazz|blues", "country:fr"]`` -> ``[("genre", ("jazz", "blues")), ("country", ("fr",))]``.

    The column is what precedes the first ``:``; the values, separated by ``|``, are taken as they are (a value
    may hold ``:``). Two clauses on one column both apply (AND). WhereSyntaxError when a clause has no ``:``, an empty
    column or an empty value, or when the clauses name more than ``limit`` values in all."""
    clauses: list[Clause] = []
    total = 0
    for raw in values or []:
        column, sep, rest = raw.partition(":")
        column = column.strip()
        wanted = tuple(dict.fromkeys(v.strip() for v in rest.split("|")))
        if not sep or not column or not wanted or any(not v for v in wanted):
            raise WhereSyntaxError(f"where={raw!r}: expected column:value, with | between alternative values")
        total += len(wanted)
        if total > limit:
            raise WhereSyntaxError(f"at most {limit} values in where (all clauses together)")
        clauses.append((column, wanted))
    return clauses


def _indices(items: Iterable[int] | np.ndarray | None, n_items: int) -> np.ndarray:
    """Unique in-range item indices (int64, sorted) from any iterable; out-of-range ones are dropped."""
    if items is None:
        return np.empty(0, np.int64)
    arr = items if isinstance(items, np.ndarray) else np.fromiter((int(i) for i in items), dtype=np.int64)
    arr = np.asarray(arr, dtype=np.int64).reshape(-1)
    return np.unique(arr[(arr >= 0) & (arr < n_items)])


def _without(values: np.ndarray, sorted_blocked: np.ndarray) -> np.ndarray:
    """``values`` minus the entries of ``sorted_blocked`` (sorted): a binary search per value, O(c log k)."""
    if not sorted_blocked.size or not values.size:
        return values
    pos = np.minimum(np.searchsorted(sorted_blocked, values), sorted_blocked.size - 1)
    return values[sorted_blocked[pos] != values]


@dataclass(frozen=True)
class ItemFilter:
    """The answerable items of one request (see the module docstring). Build it with :meth:`build`."""

    n_items: int
    blocked: np.ndarray  # (k,) int64 sorted: excluded or hidden
    keep: np.ndarray | None  # (n_items,) bool: the answerable items, when many and not every item is
    candidates: np.ndarray | None  # (c,) int64 sorted: the answerable items, when few

    @classmethod
    def build(
        cls,
        n_items: int,
        *,
        exclude: Iterable[int] | np.ndarray | None = None,
        hidden: np.ndarray | None = None,
        allow: Iterable[int] | np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> ItemFilter:
        """The filter of item indices ``exclude`` and ``hidden`` dropped, ``allow`` (None: no allow-list; an empty
        one allows nothing) and ``mask`` ((n_items,) bool; None: no attribute filter) kept. ``hidden`` is used as
        it is when sorted, unique and in range (:meth:`service.catalog.HiddenItems.indices` is), so that hiding
        many items costs a request no sort."""
        blocked = np.empty(0, np.int64) if hidden is None else np.asarray(hidden, dtype=np.int64)
        if blocked.ndim != 1:
            blocked = blocked.reshape(-1)
        if blocked.size and not (blocked[0] >= 0 and blocked[-1] < n_items and np.all(blocked[1:] > blocked[:-1])):
            blocked = _indices(blocked, n_items)  # not as promised (O(k) to check): made so
        if exclude is not None:
            excluded = _indices(exclude, n_items)
            if excluded.size:
                blocked = np.union1d(blocked, excluded) if blocked.size else excluded
        if allow is None and mask is None:
            return cls(n_items, blocked, None, None)
        if allow is not None:
            candidates = _indices(allow, n_items)
            if mask is not None:
                candidates = candidates[mask[candidates]]
            return cls(n_items, blocked, None, _without(candidates, blocked))
        assert mask is not None
        keep = np.array(mask, dtype=bool, copy=True)
        keep[blocked] = False
        if int(np.count_nonzero(keep)) * MATERIALIZE <= n_items:
            return cls(n_items, blocked, None, np.flatnonzero(keep).astype(np.int64))
        return cls(n_items, blocked, keep, None)

    @classmethod
    def none(cls, n_items: int) -> ItemFilter:
        """Every item answerable."""
        return cls(n_items, np.empty(0, np.int64), None, None)

    def answerable(self) -> np.ndarray:
        """(n_items,) bool: the items this filter lets an answer contain (O(n_items))."""
        if self.candidates is not None:
            out = np.zeros(self.n_items, dtype=bool)
            out[self.candidates] = True
            return out
        out = np.ones(self.n_items, dtype=bool) if self.keep is None else self.keep.copy()
        out[self.blocked] = False
        return out

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` (n_items,) or (B, n_items) over every item, with every item the filter drops set to -inf, in
        place."""
        if self.candidates is not None or self.keep is not None:
            np.copyto(scores, _NEG_INF, where=~self.answerable() if self.keep is None else ~self.keep)
        elif self.blocked.size:
            scores[..., self.blocked] = _NEG_INF
        return scores


# ------------------------------------------------------------------------------------------------------------------
# A request's parameters -> its filter
# ------------------------------------------------------------------------------------------------------------------


def split_ids(values: Sequence[str] | None, limit: int, name: str = "exclude") -> list[str]:
    """Flatten ``["a,b", "c"]`` into ``["a", "b", "c"]`` (blank entries dropped, order kept, duplicates removed);
    422 when more than ``limit`` ids are given in parameter ``name``."""
    out: list[str] = []
    for value in values or []:
        out.extend(part.strip() for part in value.split(",") if part.strip())
        if len(out) > limit:
            raise invalid(f"at most {limit} ids in {name}", details=[{"loc": [name], "max": limit}])
    return list(dict.fromkeys(out))


def resolve_ids(rec: Recommender, ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """(item indices of the known ids, the unknown ids in the given order)."""
    if not ids:
        return np.empty(0, np.int64), []
    found = rec.item_indices(np.asarray(ids, dtype=str))
    return found[found >= 0], [item for item, index in zip(ids, found.tolist(), strict=True) if index < 0]


@dataclass(frozen=True)
class Selection:
    """A request's :class:`ItemFilter` and the ids it ignored (unknown to the model), echoed in the answer."""

    filter: ItemFilter
    ignored_exclude: list[str] = field(default_factory=list)
    ignored_items: list[str] = field(default_factory=list)


def attribute_mask(rec: Recommender, where: Sequence[str] | None, limit: int) -> np.ndarray | None:
    """The (n_items,) keep-mask of ``where=`` clauses on ``rec``'s item attributes; None without clauses.

    422: malformed clauses or too many values (``validation_error``), a model without an attribute table
    (``no_item_attributes``), a column it does not have (``unknown_attribute``, details list the columns)."""
    if not where:
        return None
    try:
        clauses = parse_where(where, limit)
    except WhereSyntaxError as err:
        raise invalid(str(err), details=[{"loc": ["where"], "max": limit}]) from None
    if rec.attributes is None:
        raise ApiError(
            422,
            NO_ITEM_ATTRIBUTES,
            "this model has no item attributes: train it on a dataset with an item attribute table "
            "(items.csv / items.parquet; see docs/training.md) to filter with where=",
        )
    try:
        return rec.attributes.mask(clauses)
    except UnknownAttribute as err:
        raise ApiError(422, UNKNOWN_ATTRIBUTE, str(err), details={"available": err.available}) from None


def select_items(
    rec: Recommender,
    hidden: np.ndarray,
    *,
    exclude: Sequence[str] | None = None,
    items: Sequence[str] | None = None,
    where: Sequence[str] | None = None,
    max_exclude: int,
    max_candidates: int,
    max_where: int,
) -> Selection:
    """The filter of one request: ``exclude`` and the ``hidden`` item indices dropped, the allow-list ``items``
    (None: none; unknown ids are ignored and reported) and the ``where`` clauses kept. 422s: see
    :func:`split_ids` and :func:`attribute_mask`."""
    excluded, ignored_exclude = resolve_ids(rec, split_ids(exclude, max_exclude, "exclude"))
    allow: np.ndarray | None = None
    ignored_items: list[str] = []
    if items is not None:
        allow, ignored_items = resolve_ids(rec, split_ids(items, max_candidates, "items"))
    mask = attribute_mask(rec, where, max_where)
    filt = ItemFilter.build(rec.n_items, exclude=excluded, hidden=hidden, allow=allow, mask=mask)
    return Selection(filt, ignored_exclude, ignored_items)
