"""Published versions with lineage and metrics; promotion (rollback) of an older one."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy.orm import Session

from service.api.auth import READ, require
from service.api.deps import (
    RecordId,
    Resources,
    db_session,
    model_or_404,
    resources,
    version_or_404,
)
from service.api.presenters import version_out, versions_out
from service.api.schemas import VersionOut

router = APIRouter(prefix="/v1/models/{name}/versions", tags=["versions"])


@router.get("", response_model=list[VersionOut], dependencies=[require(READ)])
def list_versions(name: str, session: Session = Depends(db_session)) -> list[VersionOut]:
    model = model_or_404(session, name)
    return versions_out(session, model)


@router.get("/{number}", response_model=VersionOut, dependencies=[require(READ)])
def get_version(name: str, number: RecordId, session: Session = Depends(db_session)) -> VersionOut:
    model = model_or_404(session, name)
    return version_out(
        session, model, version_or_404(session, model, number), with_reliability=True
    )


@router.post("/{number}/promote", response_model=VersionOut, dependencies=[require("admin")])
def promote(name: str, number: RecordId, res: Resources = Depends(resources)) -> VersionOut:
    """Serve ``number`` again; the next update starts from it (its weights, mask and replay).

    A promotion wins over updates already running: they publish their versions without making
    them live (``release: superseded``).
    """
    with res.sessions.begin() as session:
        model = model_or_404(session, name)
        version = version_or_404(session, model, number)
        if version.damaged:
            raise HTTPException(
                409, f"version {number} is damaged and cannot be served: {version.damaged}"
            )
        model.live_version = number
        model.promotion_epoch += 1
    with res.sessions() as session:
        model = model_or_404(session, name)
        return version_out(session, model, version_or_404(session, model, number))
