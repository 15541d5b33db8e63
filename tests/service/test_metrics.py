"""c2f/service/metrics.py: the garbage collector's pauses are measured once per process and exposed by every app."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from c2f.service.metrics import GC_PAUSES, GcPauses, ServiceMetrics


@pytest.fixture
def pauses() -> Iterator[GcPauses]:
    recorder = GcPauses(buckets=(1e-9, 10.0))
    recorder.install()
    yield recorder
    gc.callbacks.remove(recorder._hook)


def test_collections_are_counted_by_generation_with_their_duration(pauses: GcPauses) -> None:
    gc.collect(0)
    gc.collect(2)
    assert sum(pauses.counts[0]) >= 1 and sum(pauses.counts[2]) >= 1
    assert pauses.max_seconds > 0 and pauses.sums[2] > 0
    assert pauses.counts[2][0] == 0  # no full collection takes a nanosecond: it lands in a later bucket


def test_the_histogram_is_cumulative_and_ends_in_inf(pauses: GcPauses) -> None:
    gc.collect(1)
    registry = CollectorRegistry()
    registry.register(pauses)
    text = generate_latest(registry).decode()
    count = sum(pauses.counts[1])
    assert f'c2f_python_gc_pause_seconds_bucket{{generation="1",le="+Inf"}} {float(count)}' in text
    assert f'c2f_python_gc_pause_seconds_count{{generation="1"}} {float(count)}' in text
    assert "c2f_python_gc_pause_max_seconds" in text


def test_many_apps_share_one_hook() -> None:
    ServiceMetrics()
    ServiceMetrics()
    assert gc.callbacks.count(GC_PAUSES._hook) == 1
    gc.collect()
    body = ServiceMetrics().render()[0].decode()
    assert 'c2f_python_gc_pause_seconds_count{generation="2"}' in body
