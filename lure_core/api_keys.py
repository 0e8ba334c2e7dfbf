"""API keys: created with a random secret shown once, stored as a sha256, revoked by prefix.

Keys are 32 random bytes, so a plain sha256 (not a slow password hash) is enough: there is nothing
to brute-force. The ``admin`` scope implies every other scope. A key may be limited to some models
(exact names, or prefixes ending in ``*`` such as ``team-a-*``): every other model is invisible to
it, as if it did not exist. A key without that limit reaches every model.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.records import ApiKeyRow

SCOPES = ("ingest", "predict", "admin")
# a model name (service/api/schemas.py's NAME_PATTERN), or a prefix of one followed by '*'
MODEL_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}\*?")


@dataclass(frozen=True)
class Principal:
    name: str
    prefix: str
    scopes: tuple[str, ...]
    models: tuple[str, ...] | None = None  # None: every model

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    @property
    def every_model(self) -> bool:
        return self.models is None or "*" in self.models

    def may_touch(self, model: str) -> bool:
        """Whether this key reaches the model named ``model``."""
        if self.every_model:
            return True
        return any(
            model.startswith(p[:-1]) if p.endswith("*") else model == p for p in self.models or ()
        )


EVERY_MODEL_BY_PATTERN = (
    "model pattern '*' matches every model: a key for every model is made by naming no model "
    '(`lure keys create` with --all-models, or no "models" over HTTP); a pattern this wide is '
    'usually an empty shell variable (--model "$TEAM*")'
)


def check_model_patterns(models: list[str]) -> list[str]:
    """The patterns, each a model name or a prefix ending in '*'; ValueError naming a bad one.
    A lone '*' is refused: a key for every model must be asked for as such."""
    for pattern in models:
        if pattern == "*":
            raise ValueError(EVERY_MODEL_BY_PATTERN)
        if not MODEL_PATTERN.fullmatch(pattern):
            raise ValueError(
                f"model pattern {pattern!r}: use a model name (lowercase letters, digits, '-', "
                "'_') or a prefix followed by '*', e.g. team-a-*"
            )
    return sorted(set(models))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    session: Session, name: str, scopes: list[str], models: list[str] | None = None
) -> tuple[str, ApiKeyRow]:
    """Returns the full key (shown once) and its record. ``models``: the model names or
    prefixes (``team-a-*``) it may touch; None: every model."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(
            f"scopes must be among {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}"
        )
    if models is not None and not models:
        raise ValueError("a key limited to models needs at least one name or prefix")
    prefix = secrets.token_hex(4)
    key = f"lure_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKeyRow(
        name=name,
        prefix=prefix,
        secret_sha256=_digest(key),
        scopes=sorted(set(scopes)),
        models=check_model_patterns(models) if models is not None else None,
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
    models = tuple(row.models) if row.models is not None else None
    return Principal(row.name, row.prefix, tuple(row.scopes), models)


def revoke_key(session: Session, prefix: str) -> ApiKeyRow | None:
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
    if row is not None and row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
    return row


def active_admin_exists(session: Session) -> bool:
    """An admin key for every model exists (a team's admin key does not make the server's)."""
    return any(
        "admin" in row.scopes and row.models is None
        for row in session.scalars(select(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None)))
    )
