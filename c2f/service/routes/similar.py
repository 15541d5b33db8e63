"""GET /similar-items/{item_id}: cosine neighbours of an item (the item itself excluded)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from c2f.service.deps import ModelDep, SettingsDep
from c2f.service.encoding import FastJSONResponse
from c2f.service.errors import unknown_item
from c2f.service.routes.recommend import check_n, scored
from c2f.service.schemas import ErrorResponse, SimilarItemsResponse

router = APIRouter(tags=["similar"])


@router.get(
    "/similar-items/{item_id}",
    response_model=SimilarItemsResponse,
    responses={
        404: {"model": ErrorResponse, "description": "Unknown item (code unknown_item)."},
        422: {"model": ErrorResponse, "description": "Invalid parameters (code validation_error)."},
        503: {"model": ErrorResponse, "description": "No model loaded yet (code no_model)."},
    },
    summary="Most similar items by cosine similarity of the served embeddings",
)
async def similar_items(
    model: ModelDep,
    settings: SettingsDep,
    item_id: Annotated[str, Path(description="External item id.", examples=["1337"])],
    n: Annotated[int, Query(ge=1, description="Number of neighbours (at most settings.max_n).")] = 20,
) -> FastJSONResponse:
    check_n(n, settings.max_n)
    rec = model.recommender
    iidx = rec.item_index(item_id)
    if iidx is None:
        raise unknown_item(item_id)
    idx, scores = rec.similar_items(iidx, n)
    return FastJSONResponse({"item_id": item_id, "items": scored(model, idx, scores), "model_version": model.version})
