"""Who and how much, before a body is read: the key and the size limit on every route.

FastAPI reads and parses a JSON body before it runs a route's dependencies, so a dependency alone
would let anyone without a key make the server buffer and parse a body of any size. This ASGI
middleware refuses a missing or invalid key (401) and a declared size over ``max_body_bytes``
(413) before reading a byte, and stops a body that streams past the limit without a declared size.
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.auth import is_public, verified_principal


async def _refuse(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"]:  # no name or number holds NUL; PostgreSQL refuses it in text
            await _refuse(send, 404, "no resource has a NUL character in its path")
            return
        res = scope["app"].state.resources
        headers = Headers(scope=scope)
        if res.settings.auth and not is_public(scope["path"]):
            try:
                principal = await verified_principal(res.sessions, headers, res.keys)
            except HTTPException as error:
                await _refuse(send, error.status_code, error.detail, error.headers)
                return
            scope["state"] = {**scope.get("state", {}), "principal": principal}
        limit = body_limit(scope["path"], res.settings)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(
                send, 413, f"request body of {declared} bytes exceeds the limit of {limit} bytes"
            )
            return
        await self.app(scope, _limited(receive, limit), send)


def body_limit(path: str, settings) -> int:
    """Imported weights may be larger than any other body (a ResNet-50 is ~100 MB)."""
    return (
        settings.max_import_bytes if path.endswith("/versions/import") else settings.max_body_bytes
    )


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises a 413 once more than ``limit`` body bytes have arrived."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, f"request body exceeds the limit of {limit} bytes")
        return message

    return wrapped
