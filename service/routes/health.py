"""GET /health/live, GET /health/ready and GET /metrics (Prometheus text format)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from service.deps import MetricsDep, ModelDep
from service.schemas import ErrorResponse, LiveResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=LiveResponse, summary="The process is up")
def live() -> LiveResponse:
    return LiveResponse()


@router.get(
    "/health/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ErrorResponse, "description": "No model loaded yet (code no_model)."}},
    summary="200 once a model is loaded and served",
)
def ready(model: ModelDep) -> ReadyResponse:
    return ReadyResponse(model_version=model.version)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition format."}},
    summary="Prometheus metrics",
)
def metrics(metrics: MetricsDep) -> Response:
    body, content_type = metrics.render()
    return Response(content=body, media_type=content_type)
