"""FastAPI dependencies shared by all routers (use the ``Annotated`` aliases in signatures).

``require_api_key`` guards mutating endpoints: when ``settings.api_key`` is set, requests need
``Authorization: Bearer <key>``; otherwise a 401 JSON error.  Reuse it as
``dependencies=[Depends(require_api_key)]`` or as a parameter typed :data:`ApiKeyDep`.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from c2f.service.catalog import HiddenItems
from c2f.service.errors import UNAUTHORIZED, ApiError, no_model
from c2f.service.metrics import ServiceMetrics
from c2f.service.registry import LoadedModel, ModelRegistry
from c2f.service.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="Required when the service runs with C2F_API_KEY set.")


# The dependencies are ``async def`` because they only read app state: a sync dependency costs each request a
# threadpool hop (making get_settings/get_model async saved ~100 µs per /recommend, measured in process).


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry  # type: ignore[no-any-return]


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


async def get_catalog(request: Request) -> HiddenItems:
    return request.app.state.catalog  # type: ignore[no-any-return]


async def get_model(request: Request) -> LoadedModel:
    """One snapshot of the served model for the whole request (503 ``no_model`` when none is loaded)."""
    model = request.app.state.registry.current
    if model is None:
        raise no_model()
    request.scope.setdefault("state", {})["model_version"] = model.version  # for the access log (service.logs)
    return model  # type: ignore[no-any-return]


async def require_api_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless ``Authorization: Bearer <settings.api_key>`` (no check when no key is configured)."""
    expected = request.app.state.settings.api_key
    if not expected:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, UNAUTHORIZED, "missing API key: send 'Authorization: Bearer <key>'", headers=challenge)
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise ApiError(401, UNAUTHORIZED, "invalid API key", headers=challenge)


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]
CatalogDep = Annotated[HiddenItems, Depends(get_catalog)]
ApiKeyDep = Annotated[None, Depends(require_api_key)]
