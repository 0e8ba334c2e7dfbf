"""Every write of a mega-batch's state, each with its job's: open → sealed (its split seed recorded,
its job queued) → quarantined by the data gate → sealed again (released) or discarded by an admin.
One module writes both, so a mega-batch and its job can never disagree.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lure_core import job_store
from lure_core.records import JobRow, MegaBatchRow, MegaBatchState, ModelRow
from lure_engine.splits import split_megabatch

log = logging.getLogger("lure.ingest")


def open_megabatch(session: Session, model_id: int, create: bool) -> MegaBatchRow | None:
    """The model's open mega-batch (the one chunks join); ``create``: a new one if none is open."""
    megabatch = session.scalar(
        select(MegaBatchRow).where(
            MegaBatchRow.model_id == model_id, MegaBatchRow.state == MegaBatchState.OPEN
        )
    )
    if megabatch is None and create:
        last = session.scalar(
            select(func.max(MegaBatchRow.index)).where(MegaBatchRow.model_id == model_id)
        )
        megabatch = MegaBatchRow(
            model_id=model_id, index=(last or 0) + 1, state=MegaBatchState.OPEN, n_samples=0
        )
        session.add(megabatch)
        session.flush()
    return megabatch


def seal(session: Session, model: ModelRow, megabatch: MegaBatchRow) -> JobRow:
    """Close the mega-batch: its 90/10 split seed and sizes recorded, its update job queued."""
    seed = model.recipe.split_seed(megabatch.index)
    train_rows, val_rows = split_megabatch(megabatch.n_samples, seed)
    megabatch.state, megabatch.split_seed = MegaBatchState.SEALED, seed
    megabatch.n_train, megabatch.n_val = len(train_rows), len(val_rows)
    megabatch.sealed_at = datetime.now(UTC)
    job = job_store.enqueue(session, model.id, megabatch.id)
    log.info(
        "mega-batch %d of %s sealed with %d samples; job %d queued",
        megabatch.index,
        model.name,
        megabatch.n_samples,
        job.id,
        extra={"model": model.name, "megabatch": megabatch.index, "job_id": job.id},
    )
    return job


def quarantine(session: Session, megabatch: MegaBatchRow, job_id: int) -> None:
    """The data gate stopped the mega-batch before training: it is not trained on or replayed,
    and its job ends with nothing published."""
    megabatch.state = MegaBatchState.QUARANTINED
    job_store.quarantine(session, job_id)


def release(session: Session, megabatch: MegaBatchRow, job_id: int | None) -> None:
    """An admin released a quarantined mega-batch: sealed again, its job queued again."""
    megabatch.state = MegaBatchState.SEALED
    if job_id is not None:
        job_store.release_quarantined(session, job_id)


def discard(session: Session, megabatch: MegaBatchRow, job_id: int | None) -> None:
    """An admin discarded a quarantined mega-batch: never trained on, its job ended for good."""
    megabatch.state = MegaBatchState.DISCARDED
    if job_id is not None:
        job_store.discard(session, job_id)
