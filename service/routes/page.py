"""GET / status page (filled in by the deploy work)."""

from fastapi import APIRouter

router = APIRouter(tags=["page"])
