"""Update jobs: state, progress (phase, epoch, step, loss), timings and error text."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.auth import READ, require
from service.api.deps import RecordId, db_session, model_or_404
from service.api.presenters import job_out
from service.api.schemas import JobOut
from worker.storage.schema import JobRow

router = APIRouter(tags=["jobs"])


@router.get("/v1/jobs/{job_id}", response_model=JobOut, dependencies=[require(READ)])
def get_job(job_id: RecordId, session: Session = Depends(db_session)) -> JobOut:
    job = session.get(JobRow, job_id)
    if job is None:
        raise HTTPException(404, f"job {job_id} not found")
    return job_out(session, job)


@router.get("/v1/models/{name}/jobs", response_model=list[JobOut], dependencies=[require(READ)])
def list_jobs(
    name: str, limit: int = Query(100, ge=1, le=10_000, description="the newest N jobs"),
    session: Session = Depends(db_session),
) -> list[JobOut]:
    """The model's newest ``limit`` jobs, oldest first."""
    model = model_or_404(session, name)
    newest = session.scalars(select(JobRow).where(JobRow.model_id == model.id).order_by(JobRow.id.desc()).limit(limit))
    return [job_out(session, j) for j in reversed(newest.all())]
