"""The job store: every write of a job's state, each with its rule, typed.

A job's life: :func:`enqueue` (its mega-batch is sealed) → :func:`pending_sends` /
:func:`mark_sent` (the dispatcher puts it on the broker) → :func:`claim` (a worker takes an
attempt; a stale one is taken over) → :func:`heartbeat` while it trains, :func:`record_start`
(what it started from) → :func:`succeed`, or :func:`record_failure` (queued again while attempts
remain, else failed) or :func:`release_interrupted` (a shutdown or an infrastructure fault:
handed back, uncounted) → :func:`retry_failed` (an admin gives a failed job a fresh budget).
Routes, the dispatcher and the worker call these instead of writing ``JobRow`` state columns.
One convention for their first argument: a :class:`JobStore` where the function owns its
transaction, the caller's ``Session`` where it joins one (enqueue with the chunk, succeed with the
publication, quarantine with the data gate's verdict).

No torch here: the Celery process that supervises update processes imports this module, and it
starts in a second instead of the five that importing torch and the engine takes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from lure_core.database import rows_changed
from lure_core.records import FINISHED, PENDING, JobRow, JobState, MegaBatchRow
from lure_core.settings import SharedSettings

log = logging.getLogger("lure.worker")


@dataclass(frozen=True)
class JobStore:
    """Where jobs are recorded and the limits their attempts run under."""

    sessions: sessionmaker[Session]
    settings: SharedSettings


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
    # the data gate quarantined the mega-batch: nothing trained, an admin releases or discards it
    QUARANTINED = "quarantined"


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
    updated = rows_changed(
        session.execute(
            update(JobRow)
            .where(
                JobRow.id == job.id,
                JobRow.state == JobState.RUNNING,
                JobRow.attempts == job.attempts,
                same_runner,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    )
    return outcome if updated == 1 else Outcome.WAIT


def record_failure(store: JobStore, job_id: int, runner: str, kind: str, error: str) -> Outcome:
    """The attempt held by ``runner`` failed (an exception, or its process died): count it."""
    with store.sessions.begin() as session:
        job = session.get(JobRow, job_id)
        if job is None or job.state != JobState.RUNNING or job.runner != runner:
            return (
                Outcome.WAIT
            )  # never claimed by this runner, or already taken over: nothing to record
        outcome = _settle_attempt(session, job, kind, error, store.settings)
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
    store: JobStore, job_id: int, runner: str | None, reason: str, kind: str = "interrupted"
) -> Outcome:
    """Hand back an attempt that a shutdown (SIGTERM, Ctrl-C) stopped: the job is queued again
    for the dispatcher to send, its attempt count restored, and the interruption recorded (kind
    ``interrupted``, not counted against ``max_update_attempts``). A job not yet claimed is only
    marked for sending again. ``kind`` ``unreachable``: the database or broker failed under it."""
    with store.sessions.begin() as session:
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


def retry_delay(store: JobStore, job_id: int) -> float:
    """Exponential back-off from the number of attempts that failed since the last manual retry."""
    with store.sessions() as session:
        job = session.get(JobRow, job_id)
        failed = max(1, job.attempts - job.attempts_base) if job else 1
    return min(store.settings.retry_backoff_seconds * 2 ** (failed - 1), 600.0)


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


def claim(store: JobStore, job_id: int, runner: str) -> Outcome | None:
    """Take the job if it is ours to run; None means claimed.

    A running job whose heartbeat is older than the stale limit lost its worker: that attempt is
    recorded as lost, and the job is taken over while attempts remain (failed otherwise).
    """
    with store.sessions.begin() as session:
        job = session.get(JobRow, job_id)
        if job is None:
            return Outcome.MISSING
        if job.state in FINISHED:
            return Outcome.ALREADY_DONE
        if _earlier_pending(session, job):
            return Outcome.WAIT
        if (
            job.state == JobState.RUNNING
            and (outcome := _take_over(session, job, store.settings)) is not Outcome.RETRY
        ):
            return outcome
        claimed = rows_changed(
            session.execute(
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
            )
        )
        return None if claimed == 1 else Outcome.WAIT


def now() -> datetime:
    return datetime.now(UTC)


def enqueue(session: Session, model_id: int, megabatch_id: int) -> JobRow:
    """A sealed mega-batch's update job, queued for the dispatcher (in the sealing transaction)."""
    job = JobRow(
        model_id=model_id, megabatch_id=megabatch_id, state=JobState.QUEUED, progress={}, timings={}
    )
    session.add(job)
    session.flush()
    return job


def pending_sends(session: Session, stale_after: float, resend_after: float) -> list[int]:
    """Jobs to put on the broker, in id order: never sent, sent long ago and not claimed (the
    message was lost), or running without a heartbeat (its worker died)."""
    at = now()
    stale, resend = at - timedelta(seconds=stale_after), at - timedelta(seconds=resend_after)
    return list(
        session.scalars(
            select(JobRow.id)
            .where(
                or_(
                    and_(JobRow.state == JobState.QUEUED, JobRow.dispatched_at.is_(None)),
                    and_(JobRow.state == JobState.QUEUED, JobRow.dispatched_at < resend),
                    and_(
                        JobRow.state == JobState.RUNNING,
                        JobRow.heartbeat_at < stale,
                        JobRow.dispatched_at < stale,
                    ),
                )
            )
            .order_by(JobRow.id)
        ).all()
    )


def mark_sent(session: Session, job_id: int) -> None:
    session.execute(update(JobRow).where(JobRow.id == job_id).values(dispatched_at=now()))


def heartbeat(store: JobStore, job_id: int, runner: str, progress: dict | None = None) -> None:
    """The attempt held by ``runner`` is alive (and how far it got); a taken-over attempt
    writes nothing."""
    values: dict = {"heartbeat_at": now()}
    if progress is not None:
        values["progress"] = progress
    with store.sessions.begin() as session:
        session.execute(
            update(JobRow).where(JobRow.id == job_id, JobRow.runner == runner).values(**values)
        )


def record_start(
    session: Session, job_id: int, parent_version: int | None, promotion_epoch: int
) -> None:
    """What this attempt started from: publishing checks that nothing moved since."""
    session.execute(
        update(JobRow)
        .where(JobRow.id == job_id)
        .values(parent_version=parent_version, promotion_epoch=promotion_epoch)
    )


def succeed(
    session: Session, job_id: int, version: int | None, timings: dict | None = None
) -> None:
    """The job published ``version`` (in the publishing transaction); a duplicate delivery that
    lost the race records the winner without its timings."""
    values: dict = {"state": JobState.SUCCEEDED, "version": version, "finished_at": now()}
    if timings is not None:
        values |= {"runner": None, "timings": timings, "progress": {"phase": "done"}, "error": None}
    session.execute(update(JobRow).where(JobRow.id == job_id).values(**values))


def _requeue(session: Session, job_id: int, finished: JobState, phase: str) -> bool:
    """Queue a finished job again with a fresh attempt budget; False: it is not ``finished``."""
    return bool(
        rows_changed(
            session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state == finished)
                .values(
                    state=JobState.QUEUED,
                    attempts_base=JobRow.attempts,
                    dispatched_at=None,
                    finished_at=None,
                    progress={"phase": phase},
                )
                .execution_options(synchronize_session=False)
            )
        )
    )


def retry_failed(session: Session, job_id: int) -> bool:
    """An admin's retry of a failed job; False: it is not failed."""
    return _requeue(session, job_id, JobState.FAILED, "retry requested")


def quarantine(session: Session, job_id: int) -> None:
    """The data gate stopped this job's mega-batch before training: finished, nothing published."""
    session.execute(
        update(JobRow)
        .where(JobRow.id == job_id)
        .values(
            state=JobState.QUARANTINED,
            runner=None,
            finished_at=now(),
            progress={"phase": "quarantined by the data gate"},
        )
    )


def release_quarantined(session: Session, job_id: int) -> bool:
    """An admin released the quarantined mega-batch; False: the job is not quarantined."""
    return _requeue(session, job_id, JobState.QUARANTINED, "released from quarantine")


def discard(session: Session, job_id: int) -> bool:
    """An admin discarded the quarantined mega-batch: the job ends for good."""
    return bool(
        rows_changed(
            session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state == JobState.QUARANTINED)
                .values(state=JobState.DISCARDED, progress={"phase": "discarded"})
                .execution_options(synchronize_session=False)
            )
        )
    )
