"""One shape for every error answer: ``{"detail": "<what is wrong, in words>"}``.

FastAPI answers a request that fails validation with ``detail`` as a list of objects, while every
other refusal here has ``detail`` as a sentence: a client had to handle both. A validation error
now says it in one sentence too (each field and its problem) and keeps FastAPI's list, for code
that wants it, under ``errors``; the OpenAPI document describes that shape.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DatabaseError
from starlette.requests import ClientDisconnect

from lure_core.blobs import ObjectStoreUnavailable
from lure_core.database import (
    DatabaseDamaged,
    damaged_database_message,
    is_damaged_database_error,
)
from lure_core.infrastructure import is_infrastructure_fault

log = logging.getLogger("lure.api")

_VALIDATION_SCHEMA = {
    "title": "HTTPValidationError",
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "each field at fault and its problem"},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
    },
}


def _where(location: list) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def describe(errors: list[dict]) -> str:
    return "; ".join(f"{_where(e.get('loc', []))}: {e.get('msg', 'invalid')}" for e in errors)


async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    errors = jsonable_encoder(error.errors())
    return JSONResponse({"detail": describe(errors), "errors": errors}, status_code=422)


def _outcome(request: Request) -> str:
    """What a refused request left behind, in words a client can act on: a read changed
    nothing, so only a write says that nothing was stored."""
    if request.method in ("GET", "HEAD") or request.url.path.endswith("/predict"):
        return "try again"
    return "nothing was changed, try again"


async def _database_error(request: Request, error: DatabaseError) -> JSONResponse:
    """A damaged SQLite file, or a database that cannot be reached, is a 503 that says so (and,
    for a damaged file, how to restore it), not a bare 500."""
    if is_infrastructure_fault(error):
        detail = f"the database cannot be reached right now; {_outcome(request)}"
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})
    if not is_damaged_database_error(error):
        raise error
    settings = request.app.state.resources.settings
    message = damaged_database_message(settings.resolved_database_url, str(error.orig or error))
    log.error("%s", message)
    return JSONResponse({"detail": message}, status_code=503)


async def _damaged_file(_request: Request, error: DatabaseDamaged) -> JSONResponse:
    """The SQLite file changed under the server (``SqliteFileGuard``): the write was not
    committed, so nothing was acknowledged that could not be read back."""
    log.error("%s", error)
    return JSONResponse({"detail": str(error)}, status_code=503)


async def _object_store_error(request: Request, error: ObjectStoreUnavailable) -> JSONResponse:
    """The object store down is waited out by the client, like the database (a chunk's row is
    only committed after its object is)."""
    log.warning("%s", error)
    detail = f"the blob store cannot be reached right now; {_outcome(request)} ({error})"
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})


async def _client_gone(request: Request, _error: ClientDisconnect) -> Response:
    """A client that hung up mid-request (a load generator ending its run) is nobody's error:
    one info line, no traceback; nothing is answered to a closed connection anyway."""
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=499)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DatabaseError, _database_error)
    app.add_exception_handler(DatabaseDamaged, _damaged_file)
    app.add_exception_handler(ObjectStoreUnavailable, _object_store_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            if "HTTPValidationError" in components:
                components["HTTPValidationError"] = _VALIDATION_SCHEMA
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
