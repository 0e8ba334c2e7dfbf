"""API keys: created with a random secret shown once, stored as a sha256, revoked by prefix.

Keys are 32 random bytes, so a plain sha256 (not a slow password hash) is enough: there is nothing
to brute-force. The ``admin`` scope implies every other scope.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.records import ApiKeyRow

SCOPES = ("ingest", "predict", "admin")


@dataclass(frozen=True)
class Principal:
    name: str
    prefix: str
    scopes: tuple[str, ...]

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, name: str, scopes: list[str]) -> tuple[str, ApiKeyRow]:
    """Returns the full key (shown once) and its record."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(
            f"scopes must be among {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}"
        )
    prefix = secrets.token_hex(4)
    key = f"lure_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKeyRow(
        name=name, prefix=prefix, secret_sha256=_digest(key), scopes=sorted(set(scopes))
    )
    session.add(row)
    session.flush()
    return key, row


def authenticate(session: Session, key: str) -> Principal | None:
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "lure":
        return None
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == parts[1]))
    if (
        row is None
        or row.revoked_at is not None
        or not hmac.compare_digest(row.secret_sha256, _digest(key))
    ):
        return None
    return Principal(row.name, row.prefix, tuple(row.scopes))


def revoke_key(session: Session, prefix: str) -> ApiKeyRow | None:
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
    if row is not None and row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
    return row


def active_admin_exists(session: Session) -> bool:
    return any(
        "admin" in row.scopes
        for row in session.scalars(select(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None)))
    )
