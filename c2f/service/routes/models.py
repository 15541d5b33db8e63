"""GET /models (loaded / available versions, last reload error) and POST /models/reload (API key)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from c2f.service.deps import ApiKeyDep, RegistryDep, SettingsDep
from c2f.service.errors import RELOAD_FAILED, ApiError
from c2f.service.redact import scrub
from c2f.service.schemas import ErrorResponse, ModelsResponse, ReloadResponse

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelsResponse, summary="Loaded and available model versions")
def get_models(registry: RegistryDep, settings: SettingsDep) -> ModelsResponse:
    status = registry.status()
    if status["last_error"]:
        status["last_error"] = scrub(status["last_error"], settings)
    return ModelsResponse.model_validate(status)


@router.post(
    "/models/reload",
    response_model=ReloadResponse,
    responses={
        401: {"model": ErrorResponse, "description": "Missing or wrong API key (code unauthorized)."},
        409: {
            "model": ErrorResponse,
            "description": "The version LATEST names failed verification; the old model is still served "
            "(code reload_failed, details.kept_version).",
        },
    },
    summary="Load the version LATEST points to now (verified; the old model stays on failure)",
)
async def reload_model(registry: RegistryDep, _auth: ApiKeyDep) -> ReloadResponse:
    result = await run_in_threadpool(registry.reload, force=True)
    if not result.ok:
        raise ApiError(
            409,
            RELOAD_FAILED,
            f"reload of {result.attempted_version or 'LATEST'} failed: {result.error}",
            details={"failed_version": result.attempted_version, "kept_version": result.version},
        )
    return ReloadResponse(
        changed=result.changed, model_version=result.version, previous_version=result.previous_version
    )
