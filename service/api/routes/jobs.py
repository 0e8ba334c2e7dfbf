"""Update jobs: state, progress (phase, epoch, step, loss), attempts, failures; retry a
failed one.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.job_store import retry_failed
from lure_core.records import JobRow, ModelRow, WorkerRow
from service.api.auth import READ, may_touch, require
from service.api.deps import RecordId, Resources, db_session, model_or_404, resources
from service.api.presenters import jobs_out
from service.api.schemas import JobOut, WorkerOut

router = APIRouter(tags=["jobs"])


@router.get("/v1/jobs/{job_id}", response_model=JobOut, dependencies=[require(READ)])
def get_job(
    job_id: RecordId,
    request: Request,
    session: Session = Depends(db_session),
    res: Resources = Depends(resources),
) -> JobOut:
    found = jobs_out(session, JobRow.id == job_id, max_attempts=res.settings.max_update_attempts)
    if not found or not may_touch(request, found[0].model):
        raise HTTPException(404, f"job {job_id} not found")
    return found[0]


@router.get("/v1/models/{name}/jobs", response_model=list[JobOut], dependencies=[require(READ)])
def list_jobs(
    name: str,
    limit: int = Query(100, ge=1, le=10_000, description="the newest N jobs"),
    session: Session = Depends(db_session),
    res: Resources = Depends(resources),
) -> list[JobOut]:
    """The model's newest ``limit`` jobs, oldest first."""
    model = model_or_404(session, name)
    return jobs_out(
        session,
        JobRow.model_id == model.id,
        max_attempts=res.settings.max_update_attempts,
        newest=limit,
    )


@router.get("/v1/workers", response_model=list[WorkerOut], dependencies=[require(READ)])
def list_workers(session: Session = Depends(db_session)) -> list[WorkerOut]:
    """Worker processes by their last heartbeat, newest first (rows of cleanly stopped ones are
    gone).
    """
    return [
        WorkerOut(name=w.name, started_at=w.started_at, seen_at=w.seen_at)
        for w in session.scalars(select(WorkerRow).order_by(WorkerRow.seen_at.desc()))
    ]


@router.post("/v1/jobs/{job_id}/retry", response_model=JobOut, dependencies=[require("admin")])
def retry_job(job_id: RecordId, request: Request, res: Resources = Depends(resources)) -> JobOut:
    """Queue a failed job again with a fresh attempt budget; it trains from the then-live
    version.
    """
    with res.sessions.begin() as session:
        job = session.get(JobRow, job_id)
        model = session.get(ModelRow, job.model_id) if job is not None else None
        if job is None or not may_touch(request, model.name):
            raise HTTPException(404, f"job {job_id} not found")
        if not retry_failed(session, job_id):
            raise HTTPException(
                409, f"job {job_id} is {job.state}; only a failed job can be retried"
            )
    res.dispatcher.wake()
    with res.sessions() as session:
        return jobs_out(
            session, JobRow.id == job_id, max_attempts=res.settings.max_update_attempts
        )[0]
