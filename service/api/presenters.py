"""Rows → response bodies, in one place so every route shows a record the same way.

Each list is read with one joined query, whatever its length; a single record goes through the
same query filtered to it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.records import (
    FINISHED,
    METRIC_FIELDS,
    JobRow,
    MegaBatchRow,
    MegaBatchState,
    MetricsRow,
    ModelRow,
    VersionRow,
)
from service.api.schemas import JobOut, MegaBatchOut, ModelOut, VersionOut

_MEGABATCH_COLUMNS = (
    "index",
    "state",
    "n_samples",
    "n_train",
    "n_val",
    "split_seed",
    "sealed_at",
    "data_gate",
)


def megabatches_out(session: Session, models: dict[int, ModelRow], *where) -> list[MegaBatchOut]:
    """Mega-batches matching ``where`` (of the given models), with their job and version."""
    rows = session.execute(
        select(MegaBatchRow, JobRow.id, JobRow.version)  # the job's version: the winner
        .outerjoin(JobRow, JobRow.megabatch_id == MegaBatchRow.id)
        .where(MegaBatchRow.model_id.in_(models), *where)
        .order_by(MegaBatchRow.model_id, MegaBatchRow.index)
    )
    return [
        MegaBatchOut(
            **{name: getattr(row, name) for name in _MEGABATCH_COLUMNS},
            size=models[row.model_id].recipe.megabatch_size,
            job_id=job_id,
            version=number,
        )
        for row, job_id, number in rows
    ]


def megabatch_out(session: Session, model: ModelRow, row: MegaBatchRow) -> MegaBatchOut:
    return megabatches_out(session, {model.id: model}, MegaBatchRow.id == row.id)[0]


def models_out(session: Session, *where) -> list[ModelOut]:
    models = {
        m.id: m for m in session.scalars(select(ModelRow).where(*where).order_by(ModelRow.name))
    }
    open_rows = session.scalars(
        select(MegaBatchRow).where(
            MegaBatchRow.model_id.in_(models), MegaBatchRow.state == MegaBatchState.OPEN
        )
    ).all()
    open_out = dict(
        zip(
            (r.model_id for r in open_rows),
            megabatches_out(session, models, MegaBatchRow.id.in_([r.id for r in open_rows])),
            strict=True,
        )
    )
    return [
        ModelOut(
            name=m.name,
            config=m.config,
            live_version=m.live_version,
            created_at=m.created_at,
            open_megabatch=open_out[m.id].model_dump() if m.id in open_out else None,
        )
        for m in models.values()
    ]


def model_out(session: Session, model: ModelRow) -> ModelOut:
    return models_out(session, ModelRow.id == model.id)[0]


def metrics_dict(row: MetricsRow | None, with_reliability: bool = False) -> dict:
    if row is None:
        return {}
    out = {name: getattr(row, name) for name in METRIC_FIELDS}
    if with_reliability:
        out["reliability"] = row.reliability
    return out


def versions_out(
    session: Session, model: ModelRow, *where, with_reliability: bool = False
) -> list[VersionOut]:
    # the live pointer is read in the same statement as the versions: a version published between
    # two reads would otherwise be listed, but not as live
    rows = session.execute(
        select(VersionRow, MetricsRow, MegaBatchRow.index, ModelRow.live_version)
        .join(ModelRow, ModelRow.id == VersionRow.model_id)
        .outerjoin(MetricsRow, MetricsRow.version_id == VersionRow.id)
        .outerjoin(MegaBatchRow, MegaBatchRow.id == VersionRow.megabatch_id)  # none: imported
        .where(VersionRow.model_id == model.id, *where)
        .order_by(VersionRow.number)
    )
    return [
        VersionOut(
            number=row.number,
            model=model.name,
            live=live_version == row.number,
            megabatch=index,
            parent=row.parent_number,
            strategy=row.strategy,
            origin=row.origin,
            seeds=row.seeds,
            sha256=row.checkpoint_sha256,
            mask_sha256=row.mask_sha256,
            momentum_sha256=row.momentum_sha256,
            replay_size=len(row.replay_state.get("ids", [])),
            release=row.release,
            release_note=row.release_note,
            damaged=row.damaged,
            pruned=row.pruned_at is not None,
            gate=row.gate,
            candidate_seconds=row.candidate_seconds,
            inputs=row.inputs,
            config=row.config,
            created_at=row.created_at,
            metrics=metrics_dict(metrics, with_reliability),
        )
        for row, metrics, index, live_version in rows
    ]


def version_out(
    session: Session, model: ModelRow, row: VersionRow, with_reliability: bool = False
) -> VersionOut:
    return versions_out(session, model, VersionRow.id == row.id, with_reliability=with_reliability)[
        0
    ]


def jobs_out(
    session: Session, *where, max_attempts: int, newest: int | None = None
) -> list[JobOut]:
    """Jobs matching ``where``, oldest first (``newest``: only the last N)."""
    query = (
        select(JobRow, ModelRow.name, MegaBatchRow.index)
        .join(ModelRow, ModelRow.id == JobRow.model_id)
        .join(MegaBatchRow, MegaBatchRow.id == JobRow.megabatch_id)
        .where(*where)
        .order_by(JobRow.id.desc())
        .limit(newest)
    )
    return [
        _job_out(row, name, index, max_attempts)
        for row, name, index in reversed(session.execute(query).all())
    ]


def _job_out(row: JobRow, model_name: str, index: int, max_attempts: int) -> JobOut:
    left = 0 if row.state in FINISHED else max_attempts - (row.attempts - row.attempts_base)
    return JobOut(
        id=row.id,
        model=model_name,
        megabatch=index,
        state=row.state,
        attempts=row.attempts,
        attempts_left=max(left, 0),
        failures=row.failures or [],
        runner=row.runner,
        parent_version=row.parent_version,
        progress=row.progress or {},
        timings=row.timings or {},
        error=row.error,
        version=row.version,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )
