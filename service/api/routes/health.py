"""Liveness (the process answers) and readiness: reachable *and* doing its job.

``/readyz`` answers 503 when the database, broker or blob store cannot be reached (this replica
cannot serve). When they can but the server is not doing its job (no worker, a hung or failed
job, a damaged live checkpoint) it answers 200 with ``status: degraded`` and the problems, so a
load balancer keeps routing to a replica that can still serve; ``?strict=true`` turns degraded into
a 503 for monitors that should page on it.

Both answer without a key, as probes expect; ``/readyz`` shows its checks and problems (which
name models and jobs) only to a caller with a valid key.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from lure_core.database import damaged_database_message, is_damaged_database_error
from service.api.auth import verified_principal
from service.api.deps import Resources, resources
from service.operations.health import assess

router = APIRouter(tags=["health"])
REACHABILITY = ("database", "broker", "blob_store")


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


def _reachability(res: Resources) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        with res.sessions() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = _database_problem(res, error)
    try:
        with res.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as error:
        checks["broker"] = f"error: {error}"
    checks["blob_store_location"] = res.blobs.describe()
    try:
        res.blobs.probe()
        checks["blob_store"] = "ok"
    except Exception as error:
        checks["blob_store"] = f"error: {error}"
    return checks


def _database_problem(res: Resources, error: Exception) -> str:
    """``error: ...`` in words: a damaged file says how to restore it."""
    problem = (str(getattr(error, "orig", None) or error).strip().splitlines() or ["?"])[0]
    if is_damaged_database_error(error):
        problem = damaged_database_message(res.settings.resolved_database_url, problem)
    return f"error: {problem}"


def _assess(res: Resources, checks: dict[str, str]) -> list[str]:
    """The records' view (outbox, workers, jobs, versions); a database that answered ``SELECT 1``
    may still fail here (a damaged file): then the database check says so."""
    try:
        checks["outbox_pending"] = str(res.dispatcher.pending())
        health = assess(
            res.sessions,
            res.verifier,
            worker_timeout=res.settings.worker_timeout_seconds,
            stale_after=res.settings.stale_job_seconds,
        )
    except Exception as error:
        checks["database"] = _database_problem(res, error)
        checks["outbox_pending"] = "unknown"
        return []
    checks["workers_alive"] = str(health.workers_alive)
    return health.problems


def _readiness(res: Resources) -> tuple[dict, int]:
    checks = _reachability(res)
    problems: list[str] = []
    if checks["database"] == "ok":
        problems = _assess(res, checks)
    else:
        checks["outbox_pending"] = "unknown"
    reachable = all(v == "ok" for k, v in checks.items() if k in REACHABILITY)
    status = "unavailable" if not reachable else "degraded" if problems else "ok"
    return {
        "ready": reachable,
        "status": status,
        "checks": checks,
        "problems": problems,
    }, 200 if reachable else 503


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
    body, status = await run_in_threadpool(_readiness, res)
    if strict and body["status"] == "degraded":
        status = 503
    if not await _may_see_details(request, res):
        body = {"ready": body["ready"], "status": body["status"]}
    return JSONResponse(body, status_code=status)
