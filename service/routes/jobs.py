"""Training jobs over HTTP: POST /train, GET /jobs, GET /jobs/{id}, DELETE /jobs/{id}.

Errors use the service's JSON shape ``{"error": {"code", "message"}}``: 422 ``validation_error`` for a bad
body (unknown params included), 422 ``unsafe_dataset_uri`` for a refused dataset URI (nothing is queued),
401 without the API key (when one is configured), 404 ``job_not_found``, 409 ``job_ended`` when cancelling
a job that already ended, 503 ``queue_unavailable`` when the job queue (Redis) is not configured or
unreachable. Handlers are plain ``def``: they block on Redis and on the dataset URI check (DNS, HEAD), so
FastAPI runs them in its thread pool. Nothing here runs at import or start-up: the app starts and serves without Redis.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from service import jobs
from service.deps import SettingsDep, require_api_key
from service.errors import JOB_ENDED, JOB_NOT_FOUND, QUEUE_UNAVAILABLE, UNSAFE_DATASET_URI, ApiError
from service.uri import UnsafeURIError, check_dataset_uri

router = APIRouter(tags=["jobs"])

StatusFilter = Annotated[
    str | None,
    Query(pattern="^(queued|started|finished|failed|canceled)$", description="Only jobs in this state."),
]


def _unavailable(err: jobs.QueueUnavailable) -> ApiError:
    return ApiError(503, QUEUE_UNAVAILABLE, str(err))


def _not_found(job_id: str) -> ApiError:
    return ApiError(404, JOB_NOT_FOUND, f"no job {job_id!r} (unknown, or its record expired)")


@router.post(
    "/train",
    status_code=202,
    dependencies=[Depends(require_api_key)],
    summary="Queue a training run; the worker publishes a new model version when it finishes",
    responses={
        401: {"description": "Missing or wrong API key"},
        422: {"description": "Invalid body, unknown parameter or unsafe dataset URI"},
        503: {"description": "Job queue unavailable"},
    },
)
def post_train(body: jobs.TrainRequest, settings: SettingsDep) -> JSONResponse:
    try:
        dataset_uri = check_dataset_uri(body.dataset_uri, settings)
    except UnsafeURIError as err:
        raise ApiError(422, UNSAFE_DATASET_URI, err.reason) from None
    try:
        job_id = jobs.enqueue_training(settings, body, dataset_uri)
    except jobs.QueueUnavailable as err:
        raise _unavailable(err) from None
    return JSONResponse(status_code=202, content={"job_id": job_id, "status": "queued"})


@router.get("/jobs", summary="Recent training jobs, newest first")
def get_jobs(
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: StatusFilter = None,
) -> dict[str, Any]:
    try:
        return {"jobs": jobs.list_jobs(settings, limit=limit, status=status)}
    except jobs.QueueUnavailable as err:
        raise _unavailable(err) from None


@router.get("/jobs/{job_id}", summary="Status, progress and outcome of one training job")
def get_job(job_id: str, settings: SettingsDep) -> dict[str, Any]:
    try:
        return jobs.job_status(settings, job_id)
    except jobs.JobNotFound:
        raise _not_found(job_id) from None
    except jobs.QueueUnavailable as err:
        raise _unavailable(err) from None


@router.delete(
    "/jobs/{job_id}",
    status_code=202,
    dependencies=[Depends(require_api_key)],
    summary="Cancel a queued job or stop a running one",
)
def delete_job(job_id: str, settings: SettingsDep) -> JSONResponse:
    try:
        return JSONResponse(status_code=202, content=jobs.cancel_job(settings, job_id))
    except jobs.JobNotFound:
        raise _not_found(job_id) from None
    except jobs.JobConflict as err:
        raise ApiError(409, JOB_ENDED, str(err)) from None
    except jobs.QueueUnavailable as err:
        raise _unavailable(err) from None
