"""The FastAPI app: ``create_app(settings)``; ``app`` is a module-level instance for ``uvicorn service.main:app``.

The lifespan loads the model LATEST points to (no artifact: the app still starts, /health/ready answers 503 and
model endpoints 503 ``no_model``) and runs the poller that reloads new versions every ``settings.reload_seconds``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from service.errors import install_error_handlers
from service.metrics import LatencyMiddleware, ServiceMetrics
from service.registry import LoadedModel, ModelRegistry
from service.routes import footprint, health, jobs, models, page, recommend, similar
from service.settings import Settings

logger = logging.getLogger("c2f.service")

DESCRIPTION = """\
Serves top-n recommendations from compressed C2F/LEGCF embeddings (or a full UD table).

* Compressed mode scores straight from the assignment matrix S^c and the propagated codebook H_meta, without
  materialising the item table; exact mode recomputes H_full once at load.
* Ids are the dataset's raw external ids. Every model response carries `model_version`.
* Errors are always JSON: `{"error": {"code": "...", "message": "..."}}`.
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
        reload_seconds=settings.reload_seconds,
        on_swap=on_swap,
        on_failure=lambda version, message: metrics.observe_failure(),
    )

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
        try:
            yield
        finally:
            registry.stop()

    app = FastAPI(
        title="c2f recommendation service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    for module in (recommend, similar, footprint, health, models, jobs, page):
        app.include_router(module.router)
    return app


def __getattr__(name: str) -> FastAPI:
    # ``uvicorn service.main:app`` builds the app (reading C2F_* settings) on first access, not on plain import.
    if name == "app":
        instance = create_app()
        globals()["app"] = instance
        return instance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
