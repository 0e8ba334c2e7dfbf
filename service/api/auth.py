"""API-key authentication and scopes: 401 without a valid key, 403 with one lacking the scope.

Reads need any valid key; writes need ``ingest`` (chunks, sealing), ``predict`` or ``admin``
(creating models, promotion); ``admin`` implies all. With ``LURE_AUTH=false`` every request passes
(the server warns at start).
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request

from service.api.deps import Resources, resources
from worker.storage.api_keys import Principal, authenticate

READ = None  # any valid key


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def require(scope: str | None):
    """A dependency that admits keys holding ``scope`` (``None``: any valid key)."""

    def check(request: Request, res: Resources = Depends(resources)) -> Principal | None:
        if not res.settings.auth:
            return None
        key = _presented_key(request)
        if key is None:
            raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                                headers={"WWW-Authenticate": "Bearer"})
        with res.sessions() as session:
            principal = authenticate(session, key)
        if principal is None:
            raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        if scope is not None and not principal.allows(scope):
            raise HTTPException(403, f"API key '{principal.name}' lacks the '{scope}' scope")
        request.state.principal = principal
        return principal

    return Depends(check)
