"""API-key authentication and scopes: 401 without a valid key, 403 with one lacking the scope.

Reads need any valid key; writes need ``ingest`` (chunks, sealing), ``predict`` or ``admin``
(creating models, promotion); ``admin`` implies all. A key limited to some models finds every
other model missing (404), on every route, and lists show it only its own. With
``LURE_AUTH=false`` every request passes (the server warns at start). The key is checked by
:class:`service.api.guard.RequestGuard` before any body is read; the route's dependency then
checks the scope and the model.
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from lure_core.api_keys import Principal, authenticate
from service.api.deps import Resources, resources
from service.api.key_cache import KeyCache

READ = None  # any valid key
# probes (compose, Kubernetes, load balancers) carry no key: /readyz answers them with its status
# only, and adds the checks and problems for a caller with a valid key
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/dashboard",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)
PUBLIC_PREFIXES = ("/dashboard/static/",)
BEARER = {"WWW-Authenticate": "Bearer"}


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def presented_key(headers: Headers) -> str | None:
    header = headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return headers.get("x-api-key") or None


def _missing_key() -> HTTPException:
    return HTTPException(
        401,
        "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
        headers=BEARER,
    )


async def verified_principal(
    sessions: sessionmaker[Session], headers: Headers, keys: KeyCache
) -> Principal:
    """The key's holder, from the cache of keys verified moments ago or else the database (off
    the event loop); an HTTPException(401) saying what is wrong with the key."""
    key = presented_key(headers)
    if key is None:
        raise _missing_key()
    return await keys.verify(key, lambda: run_in_threadpool(_holder, sessions, key))


def _holder(sessions: sessionmaker[Session], key: str) -> Principal:
    with sessions() as session:
        principal = authenticate(session, key)
    if principal is None:
        raise HTTPException(401, "invalid or revoked API key", headers=BEARER)
    return principal


def principal_for(
    sessions: sessionmaker[Session], headers: Headers, keys: KeyCache | None = None
) -> Principal:
    """The key's holder, or an HTTPException(401) saying what is wrong with the key."""
    key = presented_key(headers)
    if key is None:
        raise _missing_key()
    principal = _holder(sessions, key)
    if keys is not None:
        keys.put(key, principal)
    return principal


def require(scope: str | None):
    """A dependency that admits keys holding ``scope`` (``None``: any valid key)."""

    async def check(request: Request, res: Resources = Depends(resources)) -> Principal | None:
        if not res.settings.auth:
            return None
        # the guard verified the key before the body was read; async, so no thread hop either
        principal = getattr(request.state, "principal", None) or await run_in_threadpool(
            principal_for, res.sessions, request.headers, res.keys
        )
        if scope is not None and not principal.allows(scope):
            raise HTTPException(403, f"API key '{principal.name}' lacks the '{scope}' scope")
        name = request.path_params.get("name")
        if name is not None and not principal.may_touch(name):
            raise HTTPException(404, f"model {name!r} not found")  # as if it did not exist
        request.state.principal = principal
        return principal

    return Depends(check)


def may_touch(request: Request, model: str) -> bool:
    """Whether the request's key reaches ``model`` (every model with auth off)."""
    principal = getattr(request.state, "principal", None)
    return principal is None or principal.may_touch(model)


def reaches_every_model(request: Request) -> bool:
    principal = getattr(request.state, "principal", None)
    return principal is None or principal.every_model
