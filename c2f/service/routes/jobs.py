"""Training jobs over HTTP: POST /train, GET /jobs, GET /jobs/{id}, DELETE /jobs/{id}.

Errors use the service's JSON shape ``{"error": {"code", "message"}}``: 422 ``validation_error`` for a bad
body (unknown params included), 422 ``unsafe_dataset_uri`` for a refused dataset URI (nothing is queued),
401 without the API key (when one is configured), 404 ``job_not_found``, 409 ``job_ended`` when cancelling
a job that already ended, 503 ``queue_unavailable`` when the job queue (Redis) is not configured, unreachable,
too slow or busy.

The handlers are ``async`` and run every blocking call (Redis, the dataset URI check's DNS and HEAD) on the job
queue's own bounded pool (``app.state.job_pool``, :mod:`service.offload`), never on the event loop or the thread
pool that serving uses: a frozen Redis delays only these routes, each by at most a few seconds. Nothing here runs
at import or start-up: the app starts and serves without Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request

from c2f.service import jobs
from c2f.service.deps import SettingsDep, require_api_key
from c2f.service.encoding import FastJSONResponse
from c2f.service.errors import JOB_ENDED, JOB_NOT_FOUND, QUEUE_UNAVAILABLE, UNSAFE_DATASET_URI, ApiError
from c2f.service.offload import BoundedExecutor, Busy
from c2f.service.schemas import ErrorResponse, JobAccepted, JobInfo, JobList
from c2f.service.settings import Settings
from c2f.service.uri import UnsafeURIError, check_dataset_uri

router = APIRouter(tags=["jobs"])

R = TypeVar("R")

URI_CHECK_SECONDS = 60.0  # DNS plus up to six HEAD requests of 10 s each

StatusFilter = Annotated[
    str | None,
    Query(pattern="^(queued|started|finished|failed|canceled)$", description="Only jobs in this state."),
]
JobId = Annotated[str, Path(description="The id POST /train returned (anything else: 404).")]

_401 = {"model": ErrorResponse, "description": "Missing or wrong API key (code unauthorized)."}
_404 = {"model": ErrorResponse, "description": "No such job, or its record expired (code job_not_found)."}
_503 = {"model": ErrorResponse, "description": "Job queue unavailable, too slow or busy (code queue_unavailable)."}


def _unavailable(message: str) -> ApiError:
    return ApiError(503, QUEUE_UNAVAILABLE, message)


def _not_found(job_id: str) -> ApiError:
    return ApiError(404, JOB_NOT_FOUND, f"no job {job_id!r} (unknown, or its record expired)")


async def _offload(request: Request, timeout: float, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """``fn`` on the job pool; 503 when the pool is full, the call takes over ``timeout`` s or Redis is down."""
    pool: BoundedExecutor = request.app.state.job_pool
    try:
        return await pool.run(timeout, fn, *args, **kwargs)
    except Busy as err:
        raise _unavailable(str(err)) from None
    except TimeoutError:
        raise _unavailable(f"the job queue did not answer within {timeout:g} s") from None
    except jobs.QueueUnavailable as err:
        raise _unavailable(str(err)) from None


def _redis_budget(settings: Settings) -> float:
    """How long an API call may wait on Redis: a few commands' worth of its timeout."""
    return 3 * settings.redis_timeout_seconds


@router.post(
    "/train",
    status_code=202,
    response_model=JobAccepted,
    dependencies=[Depends(require_api_key)],
    summary="Queue a training run; the worker publishes a new model version when it finishes",
    responses={
        400: {"model": ErrorResponse, "description": "The body is not JSON (code bad_request)."},
        401: _401,
        422: {"model": ErrorResponse, "description": "Invalid body, unknown parameter or unsafe dataset URI."},
        503: _503,
    },
)
async def post_train(request: Request, body: jobs.TrainRequest, settings: SettingsDep) -> FastJSONResponse:
    try:
        dataset_uri = await _offload(request, URI_CHECK_SECONDS, check_dataset_uri, body.dataset_uri, settings)
    except UnsafeURIError as err:
        raise ApiError(422, UNSAFE_DATASET_URI, err.reason) from None
    job_id = await _offload(request, _redis_budget(settings), jobs.enqueue_training, settings, body, dataset_uri)
    return FastJSONResponse(status_code=202, content={"job_id": job_id, "status": "queued"})


@router.get(
    "/jobs",
    response_model=JobList,
    summary="Recent training jobs, newest first",
    responses={503: _503},
)
async def get_jobs(
    request: Request,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: StatusFilter = None,
) -> FastJSONResponse:
    listed = await _offload(request, 2 * _redis_budget(settings), jobs.list_jobs, settings, limit=limit, status=status)
    return FastJSONResponse({"jobs": listed})


@router.get(
    "/jobs/{job_id}",
    response_model=JobInfo,
    summary="Status, progress and outcome of one training job",
    responses={404: _404, 503: _503},
)
async def get_job(request: Request, job_id: JobId, settings: SettingsDep) -> FastJSONResponse:
    try:
        return FastJSONResponse(await _offload(request, _redis_budget(settings), jobs.job_status, settings, job_id))
    except jobs.JobNotFound:
        raise _not_found(job_id) from None


@router.delete(
    "/jobs/{job_id}",
    status_code=202,
    response_model=JobAccepted,
    dependencies=[Depends(require_api_key)],
    summary="Cancel a queued job or stop a running one",
    responses={
        401: _401,
        404: _404,
        409: {"model": ErrorResponse, "description": "The job already ended (code job_ended)."},
        503: _503,
    },
)
async def delete_job(request: Request, job_id: JobId, settings: SettingsDep) -> FastJSONResponse:
    try:
        result = await _offload(request, _redis_budget(settings), jobs.cancel_job, settings, job_id)
    except jobs.JobNotFound:
        raise _not_found(job_id) from None
    except jobs.JobConflict as err:
        raise ApiError(409, JOB_ENDED, str(err)) from None
    return FastJSONResponse(status_code=202, content=result)
