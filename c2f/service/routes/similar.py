"""GET /similar-items/{item_id}: cosine neighbours of an item (the item itself and the hidden items excluded), with
the ranking routes' ``exclude``, ``items`` (allow-list) and ``where`` (attribute filter)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from c2f.service.deps import CatalogDep, ModelDep, SettingsDep
from c2f.service.encoding import FastJSONResponse
from c2f.service.errors import unknown_item
from c2f.service.routes.recommend import _ERRORS, ItemsQuery, WhereQuery, check_n, scored, selection
from c2f.service.schemas import ErrorResponse, SimilarItemsResponse

router = APIRouter(tags=["similar"])


@router.get(
    "/similar-items/{item_id}",
    response_model=SimilarItemsResponse,
    responses={
        404: {"model": ErrorResponse, "description": "Unknown item (code unknown_item)."},
        422: _ERRORS[422],
        503: {"model": ErrorResponse, "description": "No model loaded yet (code no_model)."},
    },
    summary="Most similar items by cosine similarity of the served embeddings",
)
async def similar_items(
    model: ModelDep,
    settings: SettingsDep,
    item_id: Annotated[str, Path(description="External item id.", examples=["1337"])],
    catalog: CatalogDep,
    n: Annotated[int, Query(ge=1, description="Number of neighbours (at most settings.max_n).")] = 20,
    exclude: Annotated[
        list[str] | None, Query(description="Item ids to drop: comma-separated and/or repeated.", examples=["7,9"])
    ] = None,
    items: ItemsQuery = None,
    where: WhereQuery = None,
) -> FastJSONResponse:
    check_n(n, settings.max_n)
    rec = model.recommender
    iidx = rec.item_index(item_id)
    if iidx is None:
        raise unknown_item(item_id)
    chosen = selection(model, settings, catalog, exclude, items, where)
    idx, scores = rec.similar_items(iidx, n, item_filter=chosen.filter)
    return FastJSONResponse(
        {
            "item_id": item_id,
            "items": scored(model, idx, scores),
            "model_version": model.version,
            "ignored_exclude": chosen.ignored_exclude,
            "ignored_items": chosen.ignored_items,
        }
    )
