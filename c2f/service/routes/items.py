"""Hidden items: GET /items/hidden, PUT and DELETE /items/{item_id}/hidden (:mod:`service.catalog`).

A hidden item (out of stock, withdrawn) is left out of every answer of every process sharing the Redis (within
``settings.hidden_refresh_seconds``; at once in the process that changed it), whatever model version serves, until
it is unhidden. The changes need the API key when one is configured and answer 503 ``catalog_unavailable`` when Redis
is not configured, unreachable or too slow (within a few ``settings.redis_timeout_seconds``; they run on the job
queue's bounded pool, never on serving's). The listing reads this process's copy and never waits on Redis.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from c2f.service.catalog import CatalogUnavailable, HiddenItems, HiddenItemsFull
from c2f.service.deps import CatalogDep, SettingsDep, require_api_key
from c2f.service.encoding import FastJSONResponse
from c2f.service.errors import CATALOG_UNAVAILABLE, HIDDEN_ITEMS_FULL, ApiError, no_model, unknown_item
from c2f.service.offload import BoundedExecutor, Busy
from c2f.service.schemas import ErrorResponse, HiddenItemChange, HiddenItemsResponse
from c2f.service.settings import Settings

router = APIRouter(tags=["catalog"])

ItemId = Annotated[str, Path(description="External item id.", examples=["1337"])]

_CHANGE_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong API key (code unauthorized)."},
    404: {"model": ErrorResponse, "description": "The served model has no such item (code unknown_item)."},
    503: {
        "model": ErrorResponse,
        "description": "Redis not configured, unreachable or too slow (code catalog_unavailable); no model loaded "
        "yet (no_model).",
    },
}


@router.get(
    "/items/hidden",
    response_model=HiddenItemsResponse,
    summary="The hidden items (this process's copy, refreshed from Redis in the background)",
)
async def list_hidden(catalog: CatalogDep) -> FastJSONResponse:
    snapshot = catalog.snapshot
    return FastJSONResponse({"items": sorted(snapshot.ids), **catalog.status()})


async def _change(request: Request, settings: Settings, catalog: HiddenItems, item_id: str, hidden: bool) -> dict:
    pool: BoundedExecutor = request.app.state.job_pool
    budget = 3 * settings.redis_timeout_seconds
    try:
        changed, snapshot = await pool.run(budget, catalog.change, item_id, hidden)
    except Busy as err:
        raise ApiError(503, CATALOG_UNAVAILABLE, str(err)) from None
    except TimeoutError:
        raise ApiError(503, CATALOG_UNAVAILABLE, f"Redis did not answer within {budget:g} s") from None
    except CatalogUnavailable as err:
        raise ApiError(503, CATALOG_UNAVAILABLE, str(err)) from None
    except HiddenItemsFull as err:
        raise ApiError(409, HIDDEN_ITEMS_FULL, str(err)) from None
    return {
        "item_id": item_id,
        "hidden": hidden,
        "changed": changed,
        "count": len(snapshot.ids),
        "version": snapshot.version,
    }


@router.put(
    "/items/{item_id}/hidden",
    response_model=HiddenItemChange,
    dependencies=[Depends(require_api_key)],
    responses={
        **_CHANGE_RESPONSES,
        409: {"model": ErrorResponse, "description": "settings.max_hidden_items reached (code hidden_items_full)."},
    },
    summary="Hide an item from every answer of every process (e.g. out of stock)",
)
async def hide_item(request: Request, item_id: ItemId, settings: SettingsDep, catalog: CatalogDep) -> FastJSONResponse:
    model = request.app.state.registry.current
    if model is None:
        raise no_model()
    if model.recommender.item_index(item_id) is None:
        raise unknown_item(item_id)
    return FastJSONResponse(await _change(request, settings, catalog, item_id, True))


@router.delete(
    "/items/{item_id}/hidden",
    response_model=HiddenItemChange,
    dependencies=[Depends(require_api_key)],
    responses=_CHANGE_RESPONSES,
    summary="Show a hidden item again",
)
async def unhide_item(
    request: Request, item_id: ItemId, settings: SettingsDep, catalog: CatalogDep
) -> FastJSONResponse:
    model = request.app.state.registry.current
    # an id hidden under an earlier model can always be unhidden; any other must be one of the served model's items
    if item_id not in catalog.snapshot.ids and (model is None or model.recommender.item_index(item_id) is None):
        raise unknown_item(item_id) if model is not None else no_model()
    return FastJSONResponse(await _change(request, settings, catalog, item_id, False))
