"""API keys over HTTP: create one (its secret shown once), list them, revoke one, and say what the
presented key may do. Managing keys needs an admin key for every model; a team's key cannot make
itself a wider one."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.api_keys import SCOPES, create_key, revoke_key
from lure_core.records import ApiKeyRow
from service.api.auth import READ, reaches_every_model, require
from service.api.deps import Resources, db_session, resources

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="who or what uses the key")
    scopes: list[str] = Field(min_length=1, description=f"among {', '.join(SCOPES)}")
    models: list[str] | None = Field(
        None,
        max_length=100,
        description="model names or prefixes ending in '*' (team-a-*); none: every model",
    )


class KeyOut(BaseModel):
    prefix: str
    name: str
    scopes: list[str]
    models: list[str] | None
    revoked: bool = False


class KeyCreated(KeyOut):
    key: str = Field(description="the secret: shown once, only its sha256 is stored")


def _out(row: ApiKeyRow) -> KeyOut:
    return KeyOut(
        prefix=row.prefix,
        name=row.name,
        scopes=list(row.scopes),
        models=row.models,
        revoked=row.revoked_at is not None,
    )


def _every_model_admin(request: Request) -> None:
    if not reaches_every_model(request):
        raise HTTPException(403, "managing keys needs an admin key for every model")


@router.get("/me", response_model=KeyOut, dependencies=[require(READ)])
def this_key(request: Request) -> KeyOut:
    """The presented key: its name, scopes and the models it reaches (the dashboard shows it)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:  # LURE_AUTH=false
        return KeyOut(prefix="", name="(authentication off)", scopes=["admin"], models=None)
    models = list(principal.models) if principal.models is not None else None
    return KeyOut(
        prefix=principal.prefix, name=principal.name, scopes=list(principal.scopes), models=models
    )


@router.post("", status_code=201, response_model=KeyCreated, dependencies=[require("admin")])
def new_key(body: KeyCreate, request: Request, res: Resources = Depends(resources)) -> KeyCreated:
    _every_model_admin(request)
    try:
        with res.sessions.begin() as session:
            key, row = create_key(session, body.name, body.scopes, body.models)
            created = _out(row)
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
    return KeyCreated(**created.model_dump(), key=key)


@router.get("", response_model=list[KeyOut], dependencies=[require("admin")])
def list_keys(request: Request, session: Session = Depends(db_session)) -> list[KeyOut]:
    _every_model_admin(request)
    return [_out(row) for row in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))]


@router.delete("/{prefix}", status_code=204, dependencies=[require("admin")])
def revoke(prefix: str, request: Request, res: Resources = Depends(resources)) -> Response:
    """Revoke the key; every API process refuses it within ``LURE_KEY_CACHE_SECONDS``."""
    _every_model_admin(request)
    with res.sessions.begin() as session:
        if revoke_key(session, prefix) is None:
            raise HTTPException(404, f"no key with prefix {prefix!r}")
    return Response(status_code=204)
