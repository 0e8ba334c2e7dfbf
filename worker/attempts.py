"""A job's attempts, as records: claim one, record how it failed, decide whether to try again.

No torch here: the Celery process that supervises update processes imports this module, and it
starts in a second instead of the five that importing torch and the engine takes.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import BlobStore
from lure_core.records import FINISHED, PENDING, JobRow, JobState, MegaBatchRow
from lure_core.settings import SharedSettings

log = logging.getLogger("lure.worker")


class Outcome(StrEnum):
    PUBLISHED = "published"
    ALREADY_DONE = "already_done"
    WAIT = "wait"  # an earlier mega-batch is still pending, or another worker holds this job
    RETRY = "retry"  # this attempt failed; the job is queued again for a later attempt
    FAILED = (
        "failed"  # the last allowed attempt failed: the job is failed, later mega-batches go on
    )
    MISSING = "missing"
    # the worker was asked to stop mid-update: the attempt is handed back, not counted
    INTERRUPTED = "interrupted"
    # the database or broker was unreachable: the attempt is handed back, not counted, and the
    # task tries again in seconds (lure_core/infrastructure.py)
    UNREACHABLE = "unreachable"


@dataclass
class WorkerContext:
    settings: SharedSettings
    sessions: sessionmaker[Session]
    blobs: BlobStore


def runner_name(pid: int | None = None) -> str:
    """Who runs an attempt: host and process id, recorded on the job while it runs."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def _attempts_left(job: JobRow, settings: SharedSettings) -> int:
    return settings.max_update_attempts - (job.attempts - job.attempts_base)


def _failed_attempt(
    job: JobRow, kind: str, error: str, settings: SharedSettings
) -> tuple[dict, Outcome]:
    """The column values that record a failed attempt of ``job``: queued again, or failed
    for good.
    """
    entry = {
        "attempt": job.attempts,
        "at": now().isoformat(),
        "kind": kind,
        "runner": job.runner,
        "error": error[-4000:],
    }
    values = {
        "failures": [*(job.failures or []), entry],
        "runner": None,
        "progress": {"phase": "failed attempt"},
    }
    if _attempts_left(job, settings) > 0:
        return values | {
            "state": JobState.QUEUED,
            "error": error[-4000:],
            "dispatched_at": now(),
        }, Outcome.RETRY
    tried = job.attempts - job.attempts_base
    error = (
        f"gave up after {tried} attempt{'s' * (tried > 1)}; later mega-batches train without "
        "this one "
        f"until it is retried (POST /v1/jobs/{job.id}/retry). Last attempt: {error}"
    )
    return values | {
        "state": JobState.FAILED,
        "error": error[-4000:],
        "finished_at": now(),
    }, Outcome.FAILED


def _settle_attempt(
    session: Session, job: JobRow, kind: str, error: str, settings: SharedSettings
) -> Outcome:
    """Record the failure only if the attempt is still the one we read (compare-and-set, no
    locks).
    """
    values, outcome = _failed_attempt(job, kind, error, settings)
    same_runner = JobRow.runner.is_(None) if job.runner is None else JobRow.runner == job.runner
    updated = session.execute(
        update(JobRow)
        .where(
            JobRow.id == job.id,
            JobRow.state == JobState.RUNNING,
            JobRow.attempts == job.attempts,
            same_runner,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    return outcome if updated == 1 else Outcome.WAIT


def record_failure(ctx: WorkerContext, job_id: int, runner: str, kind: str, error: str) -> Outcome:
    """The attempt held by ``runner`` failed (an exception, or its process died): count it."""
    with ctx.sessions.begin() as session:
        job = session.get(JobRow, job_id)
        if job is None or job.state != JobState.RUNNING or job.runner != runner:
            return (
                Outcome.WAIT
            )  # never claimed by this runner, or already taken over: nothing to record
        outcome = _settle_attempt(session, job, kind, error, ctx.settings)
    if outcome is not Outcome.WAIT:
        summary = error.strip().splitlines()[-1 if kind == "exception" else 0]
        log.error(
            "job %s attempt failed (%s), %s: %s",
            job_id,
            kind,
            "will retry" if outcome is Outcome.RETRY else "giving up",
            summary,
            extra={"job_id": job_id},
        )
    return outcome


def release_interrupted(
    ctx: WorkerContext, job_id: int, runner: str | None, reason: str, kind: str = "interrupted"
) -> Outcome:
    """Hand back an attempt that a shutdown (SIGTERM, Ctrl-C) stopped: the job is queued again
    for the dispatcher to send, its attempt count restored, and the interruption recorded (kind
    ``interrupted``, not counted against ``max_update_attempts``). A job not yet claimed is only
    marked for sending again. ``kind`` ``unreachable``: the database or broker failed under it."""
    with ctx.sessions.begin() as session:
        job = session.get(JobRow, job_id)
        if job is None:
            return Outcome.MISSING
        why = "(a shutdown)" if kind == "interrupted" else "(an infrastructure fault)"
        entry = {
            "attempt": job.attempts,
            "at": now().isoformat(),
            "kind": kind,
            "runner": runner,
            "error": f"update stopped by {reason} {why}; not counted as an attempt",
        }
        started = runner is not None and job.state == JobState.RUNNING and job.runner == runner
        if started:
            session.execute(
                update(JobRow)
                .where(
                    JobRow.id == job_id,
                    JobRow.state == JobState.RUNNING,
                    JobRow.runner == runner,
                    JobRow.attempts == job.attempts,
                )
                .values(
                    state=JobState.QUEUED,
                    attempts=JobRow.attempts - 1,
                    runner=None,
                    dispatched_at=None,  # the dispatcher sends it again, to any worker
                    progress={"phase": "interrupted"},
                    failures=[*(job.failures or []), entry],
                )
                .execution_options(synchronize_session=False)
            )
        elif job.state == JobState.QUEUED:  # stopped before claiming it: have it sent again
            job.dispatched_at = None
    if started:
        log.warning(
            "job %s: update interrupted by %s; queued again, attempt not counted",
            job_id,
            reason,
            extra={"job_id": job_id},
        )
    return Outcome.INTERRUPTED if kind == "interrupted" else Outcome.UNREACHABLE


def retry_delay(ctx: WorkerContext, job_id: int) -> float:
    """Exponential back-off from the number of attempts that failed since the last manual retry."""
    with ctx.sessions() as session:
        job = session.get(JobRow, job_id)
        failed = max(1, job.attempts - job.attempts_base) if job else 1
    return min(ctx.settings.retry_backoff_seconds * 2 ** (failed - 1), 600.0)


def _earlier_pending(session: Session, job: JobRow) -> bool:
    """Is an earlier mega-batch of the same model still queued or running?"""
    index = select(MegaBatchRow.index).where(MegaBatchRow.id == job.megabatch_id).scalar_subquery()
    query = (
        select(func.count())
        .select_from(JobRow)
        .join(MegaBatchRow, JobRow.megabatch_id == MegaBatchRow.id)
        .where(
            JobRow.model_id == job.model_id, MegaBatchRow.index < index, JobRow.state.in_(PENDING)
        )
    )
    return bool(session.scalar(query))


def _take_over(session: Session, job: JobRow, settings: SharedSettings) -> Outcome:
    """A running job: WAIT while its attempt is alive; a stale one is recorded as lost (RETRY)."""
    stale = now() - timedelta(seconds=settings.stale_job_seconds)
    if job.heartbeat_at is not None and job.heartbeat_at >= stale:
        return Outcome.WAIT
    since = f"{job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if job.heartbeat_at else "its start"
    lost = f"attempt lost: no heartbeat since {since} from {job.runner} (its worker died or hung)"
    outcome = _settle_attempt(session, job, "lost", lost, settings)
    verdict = {Outcome.RETRY: "taking it over", Outcome.FAILED: "giving up"}
    log.warning(
        "job %s: %s; %s",
        job.id,
        lost,
        verdict.get(outcome, "someone else took it"),
        extra={"job_id": job.id},
    )
    return outcome


def claim(ctx: WorkerContext, job_id: int, runner: str) -> Outcome | None:
    """Take the job if it is ours to run; None means claimed.

    A running job whose heartbeat is older than the stale limit lost its worker: that attempt is
    recorded as lost, and the job is taken over while attempts remain (failed otherwise).
    """
    with ctx.sessions.begin() as session:
        job = session.get(JobRow, job_id)
        if job is None:
            return Outcome.MISSING
        if job.state in FINISHED:
            return Outcome.ALREADY_DONE
        if _earlier_pending(session, job):
            return Outcome.WAIT
        if (
            job.state == JobState.RUNNING
            and (outcome := _take_over(session, job, ctx.settings)) is not Outcome.RETRY
        ):
            return outcome
        claimed = session.execute(
            update(JobRow)
            .where(
                JobRow.id == job_id,
                JobRow.state == JobState.QUEUED,
                JobRow.attempts == job.attempts,
            )
            .values(
                state=JobState.RUNNING,
                attempts=JobRow.attempts + 1,
                runner=runner,
                started_at=now(),
                heartbeat_at=now(),
                progress={"phase": "loading"},
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        return None if claimed == 1 else Outcome.WAIT


def now() -> datetime:
    return datetime.now(UTC)
