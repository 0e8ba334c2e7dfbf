"""Mega-batches of a model, and sealing the open one early."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy.orm import Session

from lure_core.records import MegaBatchRow
from service.api.auth import READ, require
from service.api.deps import Resources, db_session, model_or_404, resources
from service.api.presenters import megabatch_out, megabatches_out
from service.api.schemas import MegaBatchOut

router = APIRouter(prefix="/v1/models/{name}/megabatches", tags=["megabatches"])


@router.get("", response_model=list[MegaBatchOut], dependencies=[require(READ)])
def list_megabatches(name: str, session: Session = Depends(db_session)) -> list[MegaBatchOut]:
    model = model_or_404(session, name)
    return megabatches_out(session, {model.id: model})


@router.post("/seal", response_model=MegaBatchOut, dependencies=[require("ingest")])
def seal_open(name: str, res: Resources = Depends(resources)) -> MegaBatchOut:
    """Seal the open mega-batch now (fewer samples than megabatch_size) and queue its update."""
    with res.sessions() as session:
        model = model_or_404(session, name)
    sealed = res.ingestor.seal_open(model.id)
    if sealed is None:
        raise HTTPException(409, f"model {name!r} has no open mega-batch with samples to seal")
    res.metrics.sealed.labels(name).inc()
    with res.sessions() as session:
        return megabatch_out(
            session, session.get(type(model), model.id), session.get(MegaBatchRow, sealed[0].id)
        )
