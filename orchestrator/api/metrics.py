"""`GET /metrics` (DESIGN section 9: keyless). Counts and latencies only: no label carries an
id, an address or a token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from orchestrator.api.deps import ResourcesDep
from orchestrator.observability import exposition

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics(resources: ResourcesDep) -> Response:
    reading = await resources.metrics_cache.read(resources.sessions)
    return Response(exposition(resources.process_metrics, reading), media_type=CONTENT_TYPE_LATEST)
