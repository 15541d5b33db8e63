"""GET /recommend/{user_id}, POST /recommend (a visitor folded in from items) and POST /recommend/batch.

Unknown ids in ``exclude`` are ignored and echoed back in ``ignored_exclude`` (a typo should not fail a
request, but the caller can see it).  ``exclude`` takes comma-separated ids and may be repeated, at most
``settings.max_exclude`` of them (422 beyond).  The allow-list ``items`` (the candidates to rank) works the same way
(``ignored_items``, at most ``settings.max_candidates``), and ``where=column:value`` keeps the items whose attribute
matches (:mod:`service.filters`).  Hidden items (:mod:`service.catalog`) are never answered.

Recorded events (``POST /interactions``, :mod:`service.live`) count at once: a user the model trained is scored with
its vector moved by them and their items count as seen; a user id only events named is folded in from them
(strategy ``fold_in``) and served like any other.

The handlers are the hot path: ``async`` (no thread-pool hop; the numpy work is ~0.1 ms), and they answer with a
dict they build themselves, encoded by orjson (:class:`FastJSONResponse`), instead of a pydantic model that
FastAPI would validate again; ``response_model`` still documents the shape.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.routing import APIRoute

from c2f.service.catalog import HiddenItems
from c2f.service.deps import CatalogDep, ModelDep, SettingsDep
from c2f.service.encoding import FastJSONResponse
from c2f.service.errors import UNKNOWN_USER, invalid, unknown_user
from c2f.service.filters import ItemFilter, Selection, resolve_ids, select_items
from c2f.service.live import LiveUser
from c2f.service.registry import LoadedModel
from c2f.service.schemas import (
    BatchRecommendRequest,
    BatchRecommendResponse,
    ErrorResponse,
    FoldInRecommendRequest,
    FoldInRecommendResponse,
    RecommendResponse,
)
from c2f.service.settings import Settings

router = APIRouter(tags=["recommend"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "Unknown user (code unknown_user)."},
    422: {
        "model": ErrorResponse,
        "description": "Invalid parameters (code validation_error); a where= filter on a model without item "
        "attributes (no_item_attributes) or on a column it does not have (unknown_attribute).",
    },
    503: {"model": ErrorResponse, "description": "No model loaded yet (code no_model)."},
}

ItemsQuery = Annotated[
    list[str] | None,
    Query(
        description="Allow-list: rank only these item ids (comma-separated and/or repeated; unknown ids are ignored "
        "and reported in ignored_items).",
        examples=["7,9,1337"],
    ),
]
WhereQuery = Annotated[
    list[str] | None,
    Query(
        description="Attribute filter column:value (| between alternative values); repeated: all must hold. Needs "
        "a model trained with an item attribute table.",
        examples=["genre:jazz|blues"],
    ),
]


_BAD_BODY: dict[str, object] = {"model": ErrorResponse, "description": "The body is not JSON (code bad_request)."}


def check_n(n: int, max_n: int) -> None:
    if not 1 <= n <= max_n:
        raise invalid(f"n must be between 1 and {max_n}, got {n}", details=[{"loc": ["n"], "max": max_n}])


def selection(
    model: LoadedModel,
    settings: Settings,
    catalog: HiddenItems,
    exclude: list[str] | None,
    items: list[str] | None = None,
    where: list[str] | None = None,
) -> Selection:
    """The items a request may be answered with: :func:`service.filters.select_items` with the hidden items and the
    configured bounds."""
    rec = model.recommender
    return select_items(
        rec,
        catalog.indices(rec),
        exclude=exclude,
        items=items,
        where=where,
        max_exclude=settings.max_exclude,
        max_candidates=settings.max_candidates,
        max_where=settings.max_where,
    )


def live_user(model: LoadedModel, user_id: str) -> LiveUser | None:
    """The user's recorded events as served (None: it has none, or no event log runs)."""
    return model.live.get(user_id) if model.live is not None else None


def live_ranked(
    model: LoadedModel, users: list[LiveUser], n: int, exclude_seen: bool, item_filter: ItemFilter
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Top-n of users served from their recorded events' vectors (one (indices, scores) per user), among the items
    ``item_filter`` answers."""
    rec = model.recommender
    vectors = np.stack([user.vector for user in users])
    seen = [user.seen(rec) if exclude_seen else None for user in users]
    return rec.recommend_vectors(vectors, seen, n, item_filter=item_filter)


def scored(model: LoadedModel, idx: np.ndarray, scores: np.ndarray) -> list[dict[str, object]]:
    """``[{"item_id", "score"}, ...]`` (the :class:`ScoredItem` shape) for item indices and their scores."""
    ids = model.recommender.item_ids[idx].tolist()
    return [{"item_id": i, "score": s} for i, s in zip(ids, scores.tolist(), strict=True)]


async def recommend(
    model: ModelDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    user_id: Annotated[str, Path(description="External user id.", examples=["42"])],
    n: Annotated[int, Query(ge=1, description="Number of items (at most settings.max_n).")] = 20,
    exclude_seen: Annotated[bool, Query(description="Drop items the user interacted with in training.")] = True,
    exclude: Annotated[
        list[str] | None, Query(description="Item ids to drop: comma-separated and/or repeated.", examples=["7,9"])
    ] = None,
    fallback: Annotated[
        Literal["popular"] | None,
        Query(description="'popular': unknown users get the most popular items (strategy 'popular')."),
    ] = None,
    items: ItemsQuery = None,
    where: WhereQuery = None,
) -> FastJSONResponse:
    return answer(model, settings, catalog, user_id, n, exclude_seen, exclude, fallback, items, where)


def answer(
    model: LoadedModel,
    settings: Settings,
    catalog: HiddenItems,
    user_id: str,
    n: int,
    exclude_seen: bool,
    exclude: list[str] | None,
    fallback: str | None,
    items: list[str] | None = None,
    where: list[str] | None = None,
) -> FastJSONResponse:
    """The body of ``GET /recommend/{user_id}`` once its parameters are parsed (by FastAPI or by
    :class:`HandParsedRoute`)."""
    check_n(n, settings.max_n)
    chosen = selection(model, settings, catalog, exclude, items, where)
    rec = model.recommender
    uidx = rec.user_index(user_id)
    live = live_user(model, user_id)
    if live is not None:
        ((idx, scores),) = live_ranked(model, [live], n, exclude_seen, chosen.filter)
        strategy: Literal["model", "popular", "fold_in"] = "fold_in" if live.index is None else "model"
    elif uidx is None:
        if fallback != "popular":
            raise unknown_user(user_id)
        idx, scores = rec.popular(n, item_filter=chosen.filter)
        strategy = "popular"
    else:
        idx, scores = rec.recommend(uidx, n, exclude_seen=exclude_seen, item_filter=chosen.filter)
        strategy = "model"
    return FastJSONResponse(
        {
            "user_id": user_id,
            "items": scored(model, idx, scores),
            "model_version": model.version,
            "strategy": strategy,
            "ignored_exclude": chosen.ignored_exclude,
            "ignored_items": chosen.ignored_items,
        }
    )


# Query values FastAPI (pydantic, lax mode) reads as these booleans; anything else goes to the full path, which
# answers exactly as before (422 for a bad value).
_BOOLS = {"true": True, "1": True, "false": False, "0": False}
_KNOWN_QUERY = frozenset(("n", "exclude_seen", "exclude", "fallback", "items", "where"))
_LISTS = frozenset(("exclude", "items", "where"))

HandParsed = tuple[int, bool, list[str] | None, str | None, list[str] | None, list[str] | None]


def _hand_parse(request: Request) -> HandParsed | None:
    """``(n, exclude_seen, exclude, fallback, items, where)`` for a plainly well-formed query string, else None.

    None sends the request through FastAPI's own parameter solving and validation (errors, odd spellings of
    booleans, repeated scalar parameters), so the hand parser only has to be right about the requests it accepts."""
    n, exclude_seen, fallback = 20, True, None
    lists: dict[str, list[str]] = {}
    seen: set[str] = set()
    for key, value in request.query_params.multi_items():
        if key in _LISTS:
            lists.setdefault(key, []).append(value)
            continue
        if key in seen or key not in _KNOWN_QUERY:
            if key in _KNOWN_QUERY:
                return None
            continue  # FastAPI ignores unknown parameters too
        seen.add(key)
        if key == "n":
            if not value.isascii() or not value.isdigit() or len(value) > 9 or int(value) < 1:
                return None  # n < 1 is FastAPI's Query(ge=1) error, answered by its path
            n = int(value)
        elif key == "exclude_seen":
            if value not in _BOOLS:
                return None
            exclude_seen = _BOOLS[value]
        elif value == "popular":
            fallback = value
        else:
            return None
    return n, exclude_seen, lists.get("exclude"), fallback, lists.get("items"), lists.get("where")


class HandParsedRoute(APIRoute):
    """``GET /recommend/{user_id}``: FastAPI documents it from :func:`recommend`'s signature and handles every
    unusual request through it, but a plainly well-formed request skips FastAPI's dependency solving and parameter
    validation (about half of the app's CPU per request, measured in process with cProfile) for a hand parser of
    the six query parameters; both paths then run :func:`answer`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()

        async def handler(request: Request) -> Response:
            model = request.app.state.registry.current
            parsed = _hand_parse(request) if model is not None else None
            if parsed is None:
                return await full(request)
            request.scope.setdefault("state", {})["model_version"] = model.version  # for the access log
            state = request.app.state
            n, exclude_seen, exclude, fallback, items, where = parsed
            user_id = request.path_params["user_id"]
            return answer(
                model, state.settings, state.catalog, user_id, n, exclude_seen, exclude, fallback, items, where
            )

        return handler


router.add_api_route(
    "/recommend/{user_id}",
    recommend,
    methods=["GET"],
    response_model=RecommendResponse,
    responses=_ERRORS,
    summary="Top-n items for a user",
    route_class_override=HandParsedRoute,
)


@router.post(
    "/recommend/batch",
    response_model=BatchRecommendResponse,
    responses={400: _BAD_BODY, 422: _ERRORS[422], 503: _ERRORS[503]},
    summary="Top-n items for several users (unknown users are reported per entry)",
)
def recommend_batch(
    model: ModelDep, settings: SettingsDep, catalog: CatalogDep, body: BatchRecommendRequest
) -> FastJSONResponse:
    check_n(body.n, settings.max_n)
    if len(body.user_ids) > settings.max_batch_users:
        raise invalid(
            f"at most {settings.max_batch_users} user_ids per batch, got {len(body.user_ids)}",
            details=[{"loc": ["user_ids"], "max": settings.max_batch_users}],
        )
    rec = model.recommender
    chosen = selection(model, settings, catalog, body.exclude, body.items, body.where)
    lives = [live_user(model, u) for u in body.user_ids]
    indices = [rec.user_index(u) if live is None else None for u, live in zip(body.user_ids, lives, strict=True)]
    known = [i for i in indices if i is not None]
    ranked = iter(rec.recommend_batch(known, body.n, exclude_seen=body.exclude_seen, item_filter=chosen.filter))
    with_events = [live for live in lives if live is not None]
    from_events = iter(live_ranked(model, with_events, body.n, body.exclude_seen, chosen.filter) if with_events else [])
    popular = rec.popular(body.n, item_filter=chosen.filter) if body.fallback == "popular" else None
    results: list[dict[str, object]] = []
    for user_id, uidx, live in zip(body.user_ids, indices, lives, strict=True):
        if live is not None:
            idx, scores = next(from_events)
            strategy = "fold_in" if live.index is None else "model"
            results.append(
                {"user_id": user_id, "items": scored(model, idx, scores), "strategy": strategy, "error": None}
            )
        elif uidx is not None:
            idx, scores = next(ranked)
            results.append(
                {"user_id": user_id, "items": scored(model, idx, scores), "strategy": "model", "error": None}
            )
        elif popular is not None:
            results.append({"user_id": user_id, "items": scored(model, *popular), "strategy": "popular", "error": None})
        else:
            err = {"code": UNKNOWN_USER, "message": f"unknown user id {user_id!r}", "details": None}
            results.append({"user_id": user_id, "items": [], "strategy": None, "error": err})
    return FastJSONResponse(
        {
            "model_version": model.version,
            "results": results,
            "ignored_exclude": chosen.ignored_exclude,
            "ignored_items": chosen.ignored_items,
        }
    )


@router.post(
    "/recommend",
    response_model=FoldInRecommendResponse,
    responses={400: _BAD_BODY, 422: _ERRORS[422], 503: _ERRORS[503]},
    summary="Top-n items for a visitor known only by the items it interacted with (fold-in, no retraining)",
)
def recommend_from_items(
    model: ModelDep, settings: SettingsDep, catalog: CatalogDep, body: FoldInRecommendRequest
) -> FastJSONResponse:
    """The visitor's vector is folded in from the known ids of ``items`` (c2f.contract.foldin) and ranked like a
    trained user's; when none of them is known, the popular items answer (strategy "popular"). Hidden items and
    ``where`` filters apply as on every ranking route (``items`` here is the visitor's history, not an allow-list)."""
    check_n(body.n, settings.max_n)
    if len(body.items) > settings.max_history_items:
        raise invalid(
            f"at most {settings.max_history_items} ids in items, got {len(body.items)}",
            details=[{"loc": ["items"], "max": settings.max_history_items}],
        )
    rec = model.recommender
    history, ignored_items = resolve_ids(rec, list(dict.fromkeys(body.items)))
    chosen = selection(model, settings, catalog, body.exclude, None, body.where)
    if history.size:
        ((idx, scores),) = rec.recommend_histories(
            [history], body.n, exclude_seen=body.exclude_seen, item_filter=chosen.filter
        )
        strategy = "fold_in"
    else:
        idx, scores = rec.popular(body.n, item_filter=chosen.filter)
        strategy = "popular"
    return FastJSONResponse(
        {
            "items": scored(model, idx, scores),
            "model_version": model.version,
            "strategy": strategy,
            "ignored_items": ignored_items,
            "ignored_exclude": chosen.ignored_exclude,
        }
    )
