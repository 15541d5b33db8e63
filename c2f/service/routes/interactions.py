"""POST /interactions: record a batch of (user, item, ts) events; they count in the next recommendation at once.

What happens to the events: :mod:`service.events` (the Redis stream, the reader thread); how they change the
answers: :mod:`service.live`. Each event is checked on its own: an unknown item, a malformed timestamp or a cap
refuses that event (its entry in ``results`` says why, with a stable code) and the rest of the batch is recorded.
A batch over ``settings.max_events_per_request`` or a body that is not a list of events is a 422 and records
nothing. Redis unset, down, slow or busy: 503 ``events_unavailable`` within a few ``redis_timeout_seconds``, and
nothing of the batch is applied; serving goes on from what was recorded before.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from c2f.service.deps import ModelDep, SettingsDep, require_api_key
from c2f.service.encoding import FastJSONResponse
from c2f.service.errors import EVENTS_UNAVAILABLE, ApiError, invalid
from c2f.service.events import EventLog, EventsUnavailable
from c2f.service.offload import Busy
from c2f.service.schemas import ErrorResponse, InteractionsRequest, InteractionsResponse

router = APIRouter(tags=["interactions"])


@router.post(
    "/interactions",
    response_model=InteractionsResponse,
    dependencies=[Depends(require_api_key)],
    summary="Record interaction events; a user's next recommendation reflects them",
    responses={
        400: {"model": ErrorResponse, "description": "The body is not JSON (code bad_request)."},
        401: {"model": ErrorResponse, "description": "Missing or wrong API key (code unauthorized)."},
        422: {"model": ErrorResponse, "description": "Not a list of events, or too many (code validation_error)."},
        503: {
            "model": ErrorResponse,
            "description": "No model loaded (no_model), or Redis unset, down, slow or busy (events_unavailable): "
            "nothing of the batch was applied.",
        },
    },
)
async def post_interactions(
    request: Request, model: ModelDep, settings: SettingsDep, body: InteractionsRequest
) -> FastJSONResponse:
    limit = settings.max_events_per_request
    if len(body.events) > limit:
        raise invalid(
            f"at most {limit} events per request, got {len(body.events)}", details=[{"loc": ["events"], "max": limit}]
        )
    log: EventLog = request.app.state.events
    budget = 3 * settings.redis_timeout_seconds  # a connect and the pipeline's round trip, with room
    try:
        results = await log.pool.run(budget, log.record, model, body.events)
    except Busy:
        raise ApiError(503, EVENTS_UNAVAILABLE, "too many event batches waiting for Redis; try again shortly") from None
    except TimeoutError:
        raise ApiError(503, EVENTS_UNAVAILABLE, f"Redis did not confirm the events within {budget:g} s") from None
    except EventsUnavailable as err:
        raise ApiError(503, EVENTS_UNAVAILABLE, str(err)) from None
    recorded = sum(result["error"] is None for result in results)
    return FastJSONResponse(
        {
            "model_version": model.version,
            "recorded": recorded,
            "refused": len(results) - recorded,
            "results": results,
        }
    )
