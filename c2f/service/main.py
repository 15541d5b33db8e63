"""The FastAPI app: ``create_app(settings)``; ``app`` is a module-level instance for ``uvicorn service.main:app``.

The lifespan loads the model LATEST points to (no artifact: the app still starts, /health/ready answers 503 and
model endpoints 503 ``no_model``) and runs the poller that reloads new versions every ``settings.reload_seconds``,
and the reader of recorded interaction events (:mod:`service.events`: every model is loaded with them).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from c2f.service.catalog import HiddenItems
from c2f.service.encoding import FastJSONResponse
from c2f.service.errors import install_error_handlers
from c2f.service.events import EventLog
from c2f.service.limits import RequestLimits
from c2f.service.logs import RequestLog, configure_logging
from c2f.service.metrics import LatencyMiddleware, ServiceMetrics
from c2f.service.offload import BoundedExecutor
from c2f.service.registry import LoadedModel, ModelRegistry
from c2f.service.routes import footprint, health, interactions, items, jobs, models, page, recommend, similar
from c2f.service.settings import Settings

logger = logging.getLogger("c2f.service")

DESCRIPTION = """\
Serves top-n recommendations from compressed C2F/LEGCF embeddings (or a full UD table).

* Compressed mode scores straight from the assignment matrix S^c and the propagated codebook H_meta, without
  materialising the item table; exact mode recomputes H_full once at load.
* Ids are the dataset's raw external ids. Every model response carries `model_version`.
* Hidden items (`PUT /items/{item_id}/hidden`) are left out of every answer; `items=` (an allow-list) and
  `where=column:value` (item attributes) narrow what an answer may contain.
* Errors are always JSON: `{"error": {"code": "...", "message": "..."}}` (see docs/api.md for the few that the
  HTTP server itself answers before the app sees the request).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build an app instance with its own model registry, metrics registry and poller."""
    settings = settings or Settings()
    metrics = ServiceMetrics()

    def on_swap(model: LoadedModel) -> None:
        metrics.observe_model(model.version, model.artifact.method, settings.serving_mode, model.artifact.footprint)

    registry = ModelRegistry(
        settings.artifact_root,
        settings.serving_mode,
        user_vectors=settings.user_vectors,
        reload_seconds=settings.reload_seconds,
        on_swap=on_swap,
        on_failure=lambda version, message: metrics.observe_failure(),
        prepare=lambda model: events.prepare(model),
    )
    events = EventLog(settings, lambda: registry.current)
    job_pool = BoundedExecutor(settings.redis_threads, settings.redis_queue, name="c2f-jobs")
    catalog = HiddenItems(settings, current=lambda: registry.current)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        result = await run_in_threadpool(registry.load_initial)
        if registry.current is None:
            logger.warning(
                "no model loaded from %s (%s); serving 503 until one is published",
                settings.artifact_root,
                result.error or "nothing published yet",
            )
        registry.start()
        await run_in_threadpool(catalog.start)  # one read of the hidden items (bounded by the Redis timeout) first
        events.start()
        try:
            yield
        finally:
            events.stop()
            catalog.stop()
            registry.stop()
            job_pool.shutdown()

    app = FastAPI(
        title="c2f recommendation service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.metrics = metrics
    app.state.job_pool = job_pool
    app.state.catalog = catalog
    app.state.events = events
    install_error_handlers(app)
    # Outermost last: request id and access log around everything, then metrics, then the request limits.
    app.add_middleware(
        RequestLimits,
        max_url_bytes=settings.max_url_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_body_bytes=settings.max_body_bytes,
        body_read_seconds=settings.body_read_seconds,
    )
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    app.add_middleware(RequestLog, access_log=settings.access_log)
    modules = (recommend, similar, items, interactions, footprint, health, models, jobs, page)
    routers = [module.router for module in modules]
    for router in routers:
        app.include_router(router)
    app.state.api_routes = [route for router in routers for route in router.routes]  # for 405's Allow header
    _document_limits(app, settings)
    return app


def _document_limits(app: FastAPI, settings: Settings) -> None:
    """Put the configured bounds (``n <= max_n``, list lengths) into the OpenAPI schema; the routes check them."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                for param in operation.get("parameters", []) if isinstance(operation, dict) else []:
                    if param.get("name") == "n":
                        param["schema"]["maximum"] = settings.max_n
                    elif param.get("name") == "exclude":
                        param["description"] += f" At most {settings.max_exclude} ids."
                    elif param.get("name") == "items":
                        param["description"] += f" At most {settings.max_candidates} ids."
                    elif param.get("name") == "where":
                        param["description"] += f" At most {settings.max_where} values in all."
        components = schema.get("components", {}).get("schemas", {})
        batch = components.get("BatchRecommendRequest", {}).get("properties")
        if batch:
            batch["n"]["maximum"] = settings.max_n
            batch["user_ids"]["maxItems"] = settings.max_batch_users
            batch["exclude"]["maxItems"] = settings.max_exclude
            batch["items"]["description"] += f" At most {settings.max_candidates} ids."
            for branch in batch["items"].get("anyOf", []):
                if branch.get("type") == "array":
                    branch["maxItems"] = settings.max_candidates
            batch["where"]["description"] += f" At most {settings.max_where} values in all."
        visitor = components.get("FoldInRecommendRequest", {}).get("properties")
        if visitor:
            visitor["n"]["maximum"] = settings.max_n
            visitor["items"]["maxItems"] = settings.max_history_items
            visitor["exclude"]["maxItems"] = settings.max_exclude
            visitor["where"]["description"] += f" At most {settings.max_where} values in all."
        events = components.get("InteractionsRequest", {}).get("properties")
        if events:
            events["events"]["maxItems"] = settings.max_events_per_request
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def __getattr__(name: str) -> FastAPI:
    # ``uvicorn service.main:app`` builds the app (reading C2F_* settings) on first access, not on plain import.
    if name == "app":
        settings = Settings()
        configure_logging(settings.log_level, settings.log_format)
        instance = create_app(settings)
        globals()["app"] = instance
        return instance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
