"""Prometheus metrics of one app instance, in its own CollectorRegistry (several apps per process never clash)."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from c2f.contract.manifest import Footprint

# Label values come from closed sets, so that no request can add a time series: methods outside METHODS count as
# "other", paths no route matches as "unmatched", and the route label is a route's template ("/recommend/{user_id}").
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


GC_PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class GcPauses(Collector):
    """How long the garbage collector stops the process, by generation: one ``gc.callbacks`` hook per process (the
    collector is process-wide), read by every app's registry. A latency stall that lines up with a long pause here
    is the collector's; one that does not is elsewhere (the event loop, the machine).

    No lock: the hook runs inside a collection, and a lock held by ``collect()`` while it allocates could be asked
    for again by the collection that allocation starts (a deadlock); a lost increment under a race is harmless."""

    def __init__(self, buckets: tuple[float, ...] = GC_PAUSE_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [[0] * (len(buckets) + 1) for _ in range(3)]  # per generation, per bucket (+Inf last)
        self.sums = [0.0, 0.0, 0.0]
        self.max_seconds = 0.0
        self._started = 0.0
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._hook)
            self._installed = True

    def _hook(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        elapsed = time.perf_counter() - self._started
        generation = min(int(info.get("generation", 2)), 2)
        slot = next((i for i, bound in enumerate(self.buckets) if elapsed <= bound), len(self.buckets))
        self.counts[generation][slot] += 1
        self.sums[generation] += elapsed
        self.max_seconds = max(self.max_seconds, elapsed)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "c2f_python_gc_pause_seconds",
            "Garbage collector pauses of this process, by generation.",
            labels=["generation"],
        )
        for generation in range(3):
            cumulative, buckets = 0, []
            for bound, count in zip((*self.buckets, float("inf")), self.counts[generation], strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family.add_metric([str(generation)], buckets, self.sums[generation])
        yield family
        yield GaugeMetricFamily(
            "c2f_python_gc_pause_max_seconds", "Longest garbage collector pause of this process.", self.max_seconds
        )


GC_PAUSES = GcPauses()  # the one hook of this process; each ServiceMetrics registers it in its own registry


class ServiceMetrics:
    """Request latency by route, model footprint gauges, model version info and reload counters."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        GC_PAUSES.install()
        self.registry.register(GC_PAUSES)
        self.request_latency = Histogram(
            "c2f_http_request_duration_seconds",
            "HTTP request latency by route template, method and status code.",
            ["route", "method", "status"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.footprint_bytes = Gauge(
            "c2f_model_footprint_bytes",
            "Bytes of the loaded model per component (as stored in the artifact).",
            ["component"],
            registry=self.registry,
        )
        self.params_paper = Gauge(
            "c2f_model_params_paper", "Embedding parameters in the paper's convention.", registry=self.registry
        )
        self.full_table_bytes = Gauge(
            "c2f_model_full_table_bytes", "float32 N*d full-table equivalent in bytes.", registry=self.registry
        )
        self.compression_ratio = Gauge(
            "c2f_model_compression_ratio",
            "Full table / compressed size (times smaller), by basis.",
            ["basis"],
            registry=self.registry,
        )
        self.model_info = Info("c2f_model", "The loaded model version.", registry=self.registry)
        self.model_loaded = Gauge(
            "c2f_model_loaded", "1 when a model is loaded and served, else 0.", registry=self.registry
        )
        self.reloads = Counter(
            "c2f_model_reloads_total", "Successful model (re)loads that swapped the model.", registry=self.registry
        )
        self.reload_failures = Counter(
            "c2f_model_reload_failures_total", "Model loads that failed verification.", registry=self.registry
        )

    def observe_model(self, version: str, method: str, mode: str, footprint: Footprint) -> None:
        """Record a newly swapped-in model."""
        self.model_info.info({"version": version, "method": method, "serving_mode": mode})
        self.model_loaded.set(1)
        self.reloads.inc()
        self.footprint_bytes.clear()
        for comp, nbytes in footprint.components.items():
            self.footprint_bytes.labels(component=comp).set(nbytes)
        self.footprint_bytes.labels(component="total").set(footprint.total_bytes)
        self.params_paper.set(footprint.params_paper)
        self.full_table_bytes.set(footprint.full_table_bytes)
        for basis in ("params", "bytes"):
            ratio = getattr(footprint, f"compression_ratio_{basis}")
            if ratio is not None:
                self.compression_ratio.labels(basis=basis).set(ratio)

    def observe_failure(self) -> None:
        self.reload_failures.inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class LatencyMiddleware:
    """Pure ASGI middleware timing every HTTP request, labelled by the matched route template."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) if status["code"] != 405 else None
            method = scope.get("method", "")
            self.metrics.request_latency.labels(
                route=template or "unmatched",
                method=method if method in METHODS else "other",
                status=str(status["code"]),
            ).observe(time.perf_counter() - start)
