"""Drift of the traffic a model answers (issue 28 §4): the checks made on its logged answers,
and a check on demand."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from lure_core.drift import adjusted_p_value
from lure_core.model_store import live_version
from lure_core.records import DriftCheckRow
from service.api.auth import READ, require
from service.api.deps import Resources, db_session, model_or_404, resources
from service.serving.drift_monitor import check_model, drift_policy, latest_drift

router = APIRouter(prefix="/v1/models/{name}/drift", tags=["drift"])


class DriftCheckOut(BaseModel):
    version: int
    checked_at: datetime
    window_rows: int
    reference_rows: int
    confidence_statistic: float = Field(description="Kolmogorov–Smirnov D on top-1 confidence")
    confidence_p_value: float
    class_p_value: float = Field(description="chi-square on the predicted classes")
    p_value: float = Field(description="the smaller p-value, Bonferroni-adjusted")
    drifted: bool
    sealed_megabatch: int | None = Field(None, description="sealed early by this check")


class DriftOut(BaseModel):
    policy: dict | None = Field(description="log_predictions.drift; null: no drift checks")
    live_version: int | None
    reference_rows: int | None = Field(description="gate rows the live version is compared with")
    drifted_checks: int
    checks: list[DriftCheckOut] = Field(description="the latest checks, oldest first")


def _check_out(row: DriftCheckRow) -> DriftCheckOut:
    return DriftCheckOut(
        version=row.version_number,
        checked_at=row.checked_at,
        window_rows=row.window_rows,
        reference_rows=row.reference_rows,
        confidence_statistic=row.confidence_statistic,
        confidence_p_value=row.confidence_p_value,
        class_p_value=row.class_p_value,
        p_value=adjusted_p_value(row.confidence_p_value, row.class_p_value),
        drifted=row.drifted,
        sealed_megabatch=row.sealed_megabatch,
    )


@router.get("", response_model=DriftOut, dependencies=[require(READ)])
def get_drift(
    name: str,
    limit: int = Query(100, ge=1, le=10_000),
    session: Session = Depends(db_session),
) -> DriftOut:
    model = model_or_404(session, name)
    policy = drift_policy(model)
    live = live_version(session, model)
    reference = live.drift_reference if live is not None else None
    rows = session.scalars(
        select(DriftCheckRow)
        .where(DriftCheckRow.model_id == model.id)
        .order_by(DriftCheckRow.id.desc())
        .limit(limit)
    ).all()
    drifted = latest_drift(session, model.id)[1]
    return DriftOut(
        policy=policy.__dict__ if policy else None,
        live_version=model.live_version,
        reference_rows=len(reference["confidence"]) if reference else None,
        drifted_checks=drifted,
        checks=[_check_out(row) for row in reversed(rows)],
    )


@router.post("/check", response_model=DriftCheckOut, dependencies=[require("ingest")])
async def check_now(name: str, res: Resources = Depends(resources)) -> DriftCheckOut:
    """Check now instead of after the next ``check_every`` logged answers (the policy's seal
    applies as it would then)."""
    with res.sessions() as session:
        model = model_or_404(session, name)
        policy = drift_policy(model)
    if policy is None:
        raise HTTPException(
            409, f"model {name!r} has no drift checks: set log_predictions (drift is on with it)"
        )
    row = await run_in_threadpool(check_model, res.sessions, res.ingestor, name, policy)
    if row is None:
        raise HTTPException(
            409,
            f"model {name!r} cannot be checked yet: its live version needs a reference (a "
            f"version published by an update) and {policy.window} logged answers",
        )
    return _check_out(row)
