"""Training jobs: POST /train, GET /jobs, GET/DELETE /jobs/{id} (filled in by the jobs work)."""

from fastapi import APIRouter

router = APIRouter(tags=["jobs"])
