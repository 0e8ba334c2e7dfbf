"""Liveness (the process answers) and readiness: reachable *and* doing its job.

``/readyz`` answers 503 when the database, broker or blob store cannot be reached (this replica
cannot serve), naming which; every check runs at once and the answer comes within
``LURE_READINESS_TIMEOUT_SECONDS`` (``service/operations/readiness.py``). When they can but the
server is not doing its job (no worker, a hung or failed job, a damaged live checkpoint) it answers
200 with ``status: degraded`` and the problems, so a load balancer keeps routing to a replica that
can still serve; ``?strict=true`` turns degraded into a 503 for monitors that should page on it.

Both answer without a key, as probes expect; ``/readyz`` shows its checks and problems (which
name models and jobs) only to a caller with a valid key.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service.api.auth import verified_principal
from service.api.deps import Resources, resources

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


async def _may_see_details(request: Request, res: Resources) -> bool:
    """A valid key sees the checks; a key verified moments ago still does while the database
    cannot say (the checks are then what the caller needs most)."""
    if not res.settings.auth:
        return True
    try:
        principal = await verified_principal(res.sessions, request.headers, res.keys)
    except HTTPException:
        return False
    except Exception:  # the database cannot verify a key it has not seen: no details
        return False
    return principal.every_model  # the problems name every model


@router.get("/readyz")
async def readyz(
    request: Request,
    strict: bool = Query(False, description="answer 503 when degraded, not only when unavailable"),
    res: Resources = Depends(resources),
) -> JSONResponse:
    body, status = await run_in_threadpool(res.readiness.report)
    if strict and body["status"] == "degraded":
        status = 503
    if not await _may_see_details(request, res):
        body = {"ready": body["ready"], "status": body["status"]}
    return JSONResponse(body, status_code=status)
