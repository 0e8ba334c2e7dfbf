"""Publishing a version: one transaction writes the version, its metrics, the live pointer and the
job's end, so a version is either fully published or not at all, and never twice.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lure_core.records import JobRow, JobState, ModelRow, Release, VersionRow, metrics_row
from lure_engine.metrics import UpdateMetrics
from worker.attempts import WorkerContext, now


def _release(model: ModelRow, job: JobRow, version: VersionRow) -> None:
    """Make ``version`` live, unless a promotion happened while it trained: the promotion wins."""
    if model.promotion_epoch == job.promotion_epoch and model.live_version == job.parent_version:
        model.live_version, version.release = version.number, Release.LIVE
        return
    version.release = Release.SUPERSEDED
    version.release_note = (
        f"not made live: while it trained from version {job.parent_version}, version "
        f"{model.live_version} was promoted; promote this version to serve it"
    )


def _existing(session: Session, job: JobRow) -> VersionRow | None:
    return session.scalar(
        select(VersionRow).where(
            VersionRow.model_id == job.model_id, VersionRow.megabatch_id == job.megabatch_id
        )
    )


def _insert(session: Session, job: JobRow, version: VersionRow, metrics: UpdateMetrics) -> int:
    number = (
        session.scalar(
            select(func.max(VersionRow.number)).where(VersionRow.model_id == job.model_id)
        )
        or 0
    ) + 1
    version.number, version.megabatch_id = number, job.megabatch_id
    _release(session.get(ModelRow, job.model_id), job, version)
    session.add(version)
    session.flush()
    session.add(metrics_row(version.id, metrics))
    return number


def publish(
    ctx: WorkerContext, job_id: int, version: VersionRow, metrics: UpdateMetrics, timings: dict
) -> int:
    """Version + metrics + live pointer + job state; a duplicate delivery publishes nothing."""
    try:
        with ctx.sessions.begin() as session:
            job = session.get(JobRow, job_id)
            existing = _existing(session, job)
            number = existing.number if existing else _insert(session, job, version, metrics)
            job.state, job.version, job.finished_at, job.runner = (
                JobState.SUCCEEDED,
                number,
                now(),
                None,
            )
            job.timings, job.progress, job.error = timings, {"phase": "done"}, None
            return number
    except IntegrityError:  # a concurrent duplicate won the race: it is published, exactly once
        with ctx.sessions.begin() as session:
            job = session.get(JobRow, job_id)
            job.state, job.version, job.finished_at = (
                JobState.SUCCEEDED,
                _existing(session, job).number,
                now(),
            )
            return job.version
