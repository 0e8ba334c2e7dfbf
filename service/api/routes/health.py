"""Liveness (the process answers) and readiness (database, broker and blob store reachable)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.api.auth import READ, require
from service.api.deps import Resources, resources

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", dependencies=[require(READ)])
def readyz(res: Resources = Depends(resources)) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with res.sessions() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"error: {error}"
    try:
        with res.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as error:
        checks["broker"] = f"error: {error}"
    try:
        key = f"readiness/{uuid.uuid4().hex}"
        sha = res.blobs.write(key, b"ok")
        res.blobs.read(key, sha)
        res.blobs.delete(key)
        checks["blob_store"] = "ok"
    except Exception as error:
        checks["blob_store"] = f"error: {error}"
    ready = all(v == "ok" for v in checks.values())
    checks["outbox_pending"] = str(res.dispatcher.pending()) if checks["database"] == "ok" else "unknown"
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)
