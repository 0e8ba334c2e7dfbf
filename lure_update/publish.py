"""Publishing a mega-batch's versions: one transaction writes every candidate's version and
metrics, the live pointer and the job's end, so a mega-batch is either fully published or not at
all, and never twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lure_core.job_store import succeed
from lure_core.live_pointer import release_if_unchanged
from lure_core.records import (
    GateVerdict,
    JobRow,
    ModelRow,
    Release,
    VersionRow,
    metrics_row,
)
from lure_engine.metrics_record import UpdateMetrics
from lure_update.context import UpdateContext


@dataclass
class Published:
    version: VersionRow
    metrics: UpdateMetrics


def _release_winner(model: ModelRow, job: JobRow, version: VersionRow) -> None:
    """Make the winning candidate live when it passed the gate, unless a promotion happened
    while it trained: the promotion wins."""
    gate = version.gate or {}
    if gate.get("verdict") != GateVerdict.PASSED:
        version.release = Release.HELD
        version.release_note = "held by the promotion gate: " + "; ".join(gate.get("reasons", []))
        return
    if release_if_unchanged(model, job, version.number):
        version.release = Release.LIVE
        return
    version.release = Release.SUPERSEDED
    version.release_note = (
        f"not made live: while it trained from version {job.parent_version}, version "
        f"{model.live_version} was promoted; promote this version to serve it"
    )


def _existing_winner(session: Session, job: JobRow) -> int | None:
    """The published version of this job's mega-batch that won it, if it is published."""
    versions = session.scalars(
        select(VersionRow)
        .where(VersionRow.model_id == job.model_id, VersionRow.megabatch_id == job.megabatch_id)
        .order_by(VersionRow.number)
    ).all()
    winners = [v for v in versions if (v.gate or {}).get("winner", True)]
    return (winners or versions)[0].number if versions else None


def _fresh_copy(version: VersionRow) -> VersionRow:
    """A new row with ``version``'s values and no primary key: a publish retried after a lost
    connection must not re-insert objects a rolled-back transaction already numbered."""
    values = {
        a.key: getattr(version, a.key)
        for a in inspect(VersionRow).column_attrs
        if not a.columns[0].primary_key
    }
    return VersionRow(**{k: v for k, v in values.items() if v is not None})  # None: the default


def _insert(session: Session, job: JobRow, published: list[Published], best: int) -> int:
    """Number the siblings consecutively; release the winner; the others are not chosen."""
    number = session.scalar(
        select(func.max(VersionRow.number)).where(VersionRow.model_id == job.model_id)
    )
    number = 0 if number is None else number
    model = session.get_one(ModelRow, job.model_id)
    rows = [_fresh_copy(item.version) for item in published]
    winner = rows[best]
    for offset, row in enumerate(rows, start=1):
        row.number, row.megabatch_id = number + offset, job.megabatch_id
    _release_winner(model, job, winner)
    for row, item in zip(rows, published, strict=True):
        if row is not winner:
            row.release = Release.NOT_CHOSEN
            row.release_note = (
                f"version {winner.number} ({winner.strategy}) ranked higher on "
                f"{(winner.gate or {}).get('rank_by')}"
            )
        session.add(row)
        session.flush()
        session.add(metrics_row(row.id, item.metrics))
        item.version = row  # what was published, for the caller's log line
    return winner.number


def publish(
    ctx: UpdateContext, job_id: int, published: list[Published], best: int, timings: dict
) -> int:
    """Versions + metrics + live pointer + job state; a duplicate delivery publishes nothing."""
    try:
        with ctx.sessions.begin() as session:
            job = session.get_one(JobRow, job_id)
            number = _existing_winner(session, job)
            if number is None:
                number = _insert(session, job, published, best)
            succeed(session, job_id, number, timings)
            return number
    except IntegrityError:  # a concurrent duplicate won the race: it is published, exactly once
        with ctx.sessions.begin() as session:
            job = session.get_one(JobRow, job_id)
            number = _existing_winner(session, job)
            assert number is not None  # the duplicate that won published it
            succeed(session, job_id, number)
            return number
