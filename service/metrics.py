"""Prometheus metrics of one app instance, in its own CollectorRegistry (several apps per process never clash)."""

from __future__ import annotations

import time

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
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract.manifest import Footprint

# Label values come from closed sets, so that no request can add a time series: methods outside METHODS count as
# "other", paths no route matches as "unmatched", and the route label is a route's template ("/recommend/{user_id}").
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """Request latency by route, model footprint gauges, model version info and reload counters."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
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
