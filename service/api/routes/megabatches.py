"""Mega-batches of a model, sealing the open one early, and releasing or discarding one the
data gate quarantined."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.megabatch_store import discard, release
from lure_core.records import JobRow, MegaBatchRow, MegaBatchState, ModelRow
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


def _quarantined_or_409(session: Session, model: ModelRow, index: int) -> MegaBatchRow:
    megabatch = session.scalar(
        select(MegaBatchRow).where(MegaBatchRow.model_id == model.id, MegaBatchRow.index == index)
    )
    if megabatch is None:
        raise HTTPException(404, f"model {model.name!r} has no mega-batch {index}")
    if megabatch.state != MegaBatchState.QUARANTINED:
        raise HTTPException(
            409,
            f"mega-batch {index} of {model.name!r} is {megabatch.state}; only a quarantined one "
            "can be released or discarded",
        )
    return megabatch


@router.post("/{index}/{action}", response_model=MegaBatchOut, dependencies=[require("admin")])
def decide_quarantined(
    name: str,
    action: Literal["release", "discard"],
    request: Request,
    index: int = Path(ge=1, le=2**31 - 1),
    res: Resources = Depends(resources),
) -> MegaBatchOut:
    """An admin's decision on a quarantined mega-batch: ``release`` trains it as it is (from the
    then-live version; the data gate does not judge it again), ``discard`` keeps it out for good.
    Both are recorded on the mega-batch with who decided and when."""
    principal = getattr(request.state, "principal", None)
    with res.sessions.begin() as session:
        model = model_or_404(session, name)
        megabatch = _quarantined_or_409(session, model, index)
        job_id = session.scalar(select(JobRow.id).where(JobRow.megabatch_id == megabatch.id))
        done = {"release": "released", "discard": "discarded"}[action]
        decided = {
            f"{done}_at": datetime.now(UTC).isoformat(),
            f"{done}_by": principal.name if principal else "auth off",
        }
        megabatch.data_gate = {**(megabatch.data_gate or {}), **decided}
        (release if action == "release" else discard)(session, megabatch, job_id)
    if action == "release":
        res.dispatcher.wake()
    with res.sessions() as session:
        model = model_or_404(session, name)
        row = session.scalar(
            select(MegaBatchRow).where(
                MegaBatchRow.model_id == model.id, MegaBatchRow.index == index
            )
        )
        return megabatch_out(session, model, row)
