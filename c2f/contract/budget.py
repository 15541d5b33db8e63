"""Memory budgets: size a method so that its published embedding bytes fit, without training.

A budget is a number of bytes (``TrainConfig.budget_bytes``) or a percentage of the float32 full table N·d·4 at the
requested d (``TrainConfig.budget``). What must fit is :attr:`contract.manifest.Footprint.embedding_bytes` (every
stored array except the id maps and the seen-items graph, at its stored dtype: what the service holds to score),
computed before training by :func:`contract.footprint.planned_embedding_bytes` from the spec's array shapes and
itemsizes, the same grouping the published footprint uses. Each method names the size the budget sets (its
``budget_knob``: ud d, legcf m_c, c2f m_c with m_r in the configured ratio, hash B, qr m); bytes never decrease
with it, so a binary search finds the largest value that fits. legcf and c2f's m_c stops at N //
``budget_entities_per_row`` even when the budget allows more (the plan's ``knob_max``).

``TrainConfig.budget_counts="served"`` counts instead what compressed serving holds to score
(:attr:`contract.manifest.Footprint.serving_memory_bytes`, planned by
:func:`contract.footprint.planned_serving_bytes`): the served form, not exact mode's layer-0 arrays, which the
service frees. legcf and c2f keep their knob; ud, hash and qr are sized by d, or by their number of
product-quantized codes when ``pq_subspaces`` > 0 (their compressed form is then the codes alone).

Pure functions over a TrainConfig and the entity counts; used by the trainer (sizing after the data is loaded), by
the CLI and by ``POST /train`` (:func:`check_possible`: refuse, before the data is known, a budget that no dataset
could meet).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from c2f.contract.config import TrainConfig
from c2f.contract.footprint import human_bytes, planned_embedding_bytes, planned_serving_bytes
from c2f.contract.manifest import BudgetReport
from c2f.contract.methods import MAX_PLANNED_DIM, REGISTRY, get_spec

LARGEST_PLANNED_N = 2**40
"""Entities of the largest dataset :func:`check_possible` allows for (a percentage is easiest to meet there)."""

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})
_BYTES_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")


class BudgetError(ValueError):
    """A budget no size of the method can meet, or a malformed budget."""


def parse_percent(text: str) -> float:
    """``"2%"`` or ``"2"`` -> 2.0 (percent of the full table); BudgetError unless a positive finite number."""
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise BudgetError(f"a percentage budget looks like 2% or 0.5%, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise BudgetError(f"a percentage budget must be positive, got {text!r}")
    return value


def parse_bytes(text: str) -> int:
    """``"2MB"`` -> 2_000_000, ``"2MiB"`` -> 2_097_152, ``"512"`` -> 512 (B, kB, MB, GB, TB decimal; KiB, MiB,
    GiB, TiB binary; case-insensitive); BudgetError unless it gives at least one byte."""
    match = _BYTES_RE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise BudgetError(f"a byte budget looks like 2MB, 1.5MiB or 500000, got {text!r}")
    value = int(float(match.group(1)) * _UNITS[unit])
    if value < 1:
        raise BudgetError(f"a byte budget must be at least 1 byte, got {text!r}")
    return value


def full_table_bytes(config: TrainConfig, n_entities: int) -> int:
    """N·d·4: the float32 full table at ``budget_reference_dim``, else the requested d (what a percentage budget
    refers to)."""
    return n_entities * int(config.budget_reference_dim or config.dim) * 4


def budget_bytes_for(config: TrainConfig, n_entities: int) -> int | None:
    """The budget in bytes on N entities (a percentage rounded down), None without a budget."""
    if config.budget_bytes is not None:
        return int(config.budget_bytes)
    if config.budget is not None:
        return math.floor(full_table_bytes(config, n_entities) * float(config.budget) / 100.0)
    return None


def _counts_served_codes(config: TrainConfig) -> bool:
    """A served budget on a method whose compressed form is its product-quantized codes alone (ud, hash, qr)."""
    return config.budget_counts == "served" and not get_spec(config.method).compressed


def knob_of(config: TrainConfig) -> str:
    """The TrainConfig field a budget on ``config`` sets: the method's own knob, except under a served budget for
    methods without a sparse form, where what serving holds depends only on d (ud's H_full, the (N, d) table hash
    and qr rebuild) or, with codes, on their number (``pq_subspaces``)."""
    if _counts_served_codes(config):
        return "pq_subspaces" if config.pq_subspaces else "dim"
    return get_spec(config.method).budget_knob


def knob_values(config: TrainConfig, n_entities: int) -> Sequence[int]:
    """The values of :func:`knob_of` worth trying on N entities, increasing; bytes never decrease along them."""
    if _counts_served_codes(config):
        if config.pq_subspaces:  # codes must split d evenly
            return [m for m in range(1, int(config.dim) + 1) if int(config.dim) % m == 0]
        return range(1, MAX_PLANNED_DIM + 1)
    low, high = get_spec(config.method).knob_range(config, n_entities)
    return range(low, high + 1)


def sized(config: TrainConfig, value: int) -> dict[str, Any]:
    """The TrainConfig fields a budget sets for knob value ``value``."""
    if _counts_served_codes(config):
        return {knob_of(config): value}
    return get_spec(config.method).sized(config, value)


def bytes_at(config: TrainConfig, value: int, n_users: int, n_items: int) -> int:
    """Planned bytes of ``config.method`` with its budget knob at ``value``: every stored embedding array, or what
    compressed serving holds (``budget_counts``)."""
    planned = planned_serving_bytes if config.budget_counts == "served" else planned_embedding_bytes
    return planned(config.method, dataclasses.replace(config, **sized(config, value)), n_users, n_items)


@dataclass(frozen=True)
class Plan:
    """The sizes a budget chose: ``sizes`` (TrainConfig fields) with the knob at ``value``; ``planned_bytes`` fit
    ``budget_bytes`` and ``next_planned_bytes`` (the next value tried; None at the top of the range, ``knob_max``)
    do not."""

    method: str
    knob: str
    value: int
    sizes: dict[str, int]
    planned_bytes: int
    next_planned_bytes: int | None
    knob_max: int
    budget_bytes: int
    budget_percent: float | None
    full_table_bytes: int
    counts: str  # TrainConfig.budget_counts

    def report(self, achieved_bytes: int | None = None) -> BudgetReport:
        """The manifest's record of this plan and the bytes the published arrays have."""
        return BudgetReport(
            budget_bytes=self.budget_bytes,
            budget_percent=self.budget_percent,
            full_table_bytes=self.full_table_bytes,
            knob=self.knob,
            value=self.value,
            sizes=dict(self.sizes),
            planned_bytes=self.planned_bytes,
            next_planned_bytes=self.next_planned_bytes,
            knob_max=self.knob_max,
            achieved_bytes=achieved_bytes,
            counts=self.counts,
        )


def smallest_bytes(config: TrainConfig, n_users: int, n_items: int) -> int:
    """Planned bytes of ``config.method`` at the bottom of its knob's range."""
    return bytes_at(config, knob_values(config, n_users + n_items)[0], n_users, n_items)


def _describe(config: TrainConfig, budget: int, full: int) -> str:
    share = f" ({config.budget:g}% of the float32 full table, {human_bytes(full)})" if config.budget is not None else ""
    return f"a budget of {budget} bytes ({human_bytes(budget)}){share}"


def _alternatives(config: TrainConfig, budget: int, n_users: int, n_items: int) -> str:
    """Which other methods have a size that fits, for the error message."""
    fits = []
    for name in REGISTRY:
        if name == config.method:
            continue
        other = dataclasses.replace(config, method=name)
        if smallest_bytes(other, n_users, n_items) <= budget:
            fits.append(name)
    return f"methods with a size that fits: {', '.join(fits)}" if fits else "no method has a size that fits"


def plan(config: TrainConfig, n_users: int, n_items: int) -> Plan | None:
    """The largest sizes of ``config.method`` whose planned embedding bytes fit the budget on these entity
    counts; None without a budget. BudgetError (naming the smallest size's bytes and the methods that would fit)
    when even the smallest size does not fit."""
    budget = budget_bytes_for(config, n_users + n_items)
    if budget is None:
        return None
    full = full_table_bytes(config, n_users + n_items)
    values = knob_values(config, n_users + n_items)
    smallest = bytes_at(config, values[0], n_users, n_items)
    knob, counted = knob_of(config), "served" if config.budget_counts == "served" else "stored embedding"
    if smallest > budget:
        raise BudgetError(
            f"{_describe(config, budget, full)} is below the smallest {config.method} model on "
            f"{n_users} users and {n_items} items: {smallest} {counted} bytes ({human_bytes(smallest)}) at "
            f"{knob}={values[0]}, d={config.dim}; {_alternatives(config, budget, n_users, n_items)}"
        )
    low, high = 0, len(values) - 1
    while low < high:  # invariant: values[low] fits; find the largest value that fits
        mid = (low + high + 1) // 2
        if bytes_at(config, values[mid], n_users, n_items) <= budget:
            low = mid
        else:
            high = mid - 1
    value = values[low]
    return Plan(
        method=config.method,
        knob=knob,
        value=value,
        sizes=sized(config, value),
        planned_bytes=bytes_at(config, value, n_users, n_items),
        next_planned_bytes=bytes_at(config, values[low + 1], n_users, n_items) if low + 1 < len(values) else None,
        knob_max=values[-1],
        budget_bytes=budget,
        budget_percent=config.budget,
        full_table_bytes=full,
        counts=config.budget_counts,
    )


def size_for_budget(config: TrainConfig, n_users: int, n_items: int) -> tuple[TrainConfig, Plan | None]:
    """``config`` with the sizes its budget chose (unchanged without a budget), and the plan."""
    chosen = plan(config, n_users, n_items)
    if chosen is None:
        return config, None
    sizes: dict[str, Any] = dict(chosen.sizes)
    return dataclasses.replace(config, **sizes), chosen


def check_possible(config: TrainConfig) -> None:
    """Refuse, before the data is known, a budget that ``config.method`` cannot meet on any dataset: a byte budget
    below its smallest model on one user and one item, or a percentage below the share its smallest model needs
    even on 2^40 entities (the share falls as N grows: indices and weights per entity stay, shared tables
    amortise). BudgetError naming the bound; nothing without a budget."""
    if config.budget_bytes is not None:
        smallest = smallest_bytes(config, 1, 1)
        if config.budget_bytes < smallest:
            raise BudgetError(
                f"a budget of {config.budget_bytes} bytes is below the smallest {config.method} model at d="
                f"{config.dim} on any dataset ({smallest} bytes on one user and one item)"
            )
    elif config.budget is not None:
        half = LARGEST_PLANNED_N // 2
        share = 100.0 * smallest_bytes(config, half, half) / full_table_bytes(config, LARGEST_PLANNED_N)
        if config.budget < share:
            raise BudgetError(
                f"a budget of {config.budget:g}% of the full table is below what the smallest {config.method} model "
                f"at d={config.dim} needs on any dataset ({share:.4g}%)"
            )
