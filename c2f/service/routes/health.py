"""GET /health/live, GET /health/ready and GET /metrics (Prometheus text format).

The probes are ``async`` and read only process state (never Redis, never the thread pool): they answer while the
job queue hangs or every pool thread is busy. Readiness reports the hidden items in force (``stale`` when Redis
could not be read lately) without depending on them.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from c2f.service.deps import CatalogDep, MetricsDep, ModelDep
from c2f.service.encoding import FastJSONResponse
from c2f.service.schemas import ErrorResponse, LiveResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=LiveResponse, summary="The process is up")
async def live() -> FastJSONResponse:
    return FastJSONResponse({"status": "ok"})


@router.get(
    "/health/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ErrorResponse, "description": "No model loaded yet (code no_model)."}},
    summary="200 once a model is loaded and served",
)
async def ready(model: ModelDep, catalog: CatalogDep) -> FastJSONResponse:
    # stale hidden items (Redis unreadable) do not make the process unready: it serves the last known set
    return FastJSONResponse({"status": "ready", "model_version": model.version, "hidden_items": catalog.status()})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition format."}},
    summary="Prometheus metrics",
)
def metrics(metrics: MetricsDep) -> Response:
    body, content_type = metrics.render()
    return Response(content=body, media_type=content_type)
