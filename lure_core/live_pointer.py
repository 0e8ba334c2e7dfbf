"""The live pointer: which version ``/predict`` serves and the next update starts from. Every
write of ``ModelRow.live_version`` is here, each with its rule:

- :func:`first_version`: imported weights become version 0 and go live;
- :func:`release_if_unchanged`: an update's winner goes live only if nothing moved the pointer
  while it trained (a promotion wins; ``promotion_epoch`` says whether one happened);
- :func:`promote`: a person (an admin key) serves a version; every promotion counts, even two at
  once (one UPDATE), so a running update learns of it;
- :func:`retreat`: a damaged live version gives way to its newest intact ancestor.
"""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from lure_core.database import rows_changed
from lure_core.model_store import model_name
from lure_core.records import JobRow, ModelRow

log = logging.getLogger("lure.lineage")


def first_version(session: Session, model_id: int, number: int = 0) -> None:
    """A model's first version (imported weights) is live at once."""
    session.execute(update(ModelRow).where(ModelRow.id == model_id).values(live_version=number))


def release_if_unchanged(model: ModelRow, job: JobRow, number: int) -> bool:
    """Make ``number`` live if the pointer is where ``job`` started from and no promotion
    happened since; False: a promotion won (the caller records why)."""
    if model.promotion_epoch == job.promotion_epoch and model.live_version == job.parent_version:
        model.live_version = number
        return True
    return False


def promote(session: Session, model_id: int, number: int) -> None:
    """Serve ``number`` from now on; updates already running publish without going live."""
    session.execute(
        update(ModelRow)
        .where(ModelRow.id == model_id)
        .values(live_version=number, promotion_epoch=ModelRow.promotion_epoch + 1)
        .execution_options(synchronize_session=False)
    )


def retreat(sessions: sessionmaker[Session], model_id: int, damaged: int, intact: int) -> bool:
    """Move the pointer from a damaged version to an intact ancestor, unless it moved already."""
    with sessions.begin() as session:
        moved = rows_changed(
            session.execute(
                update(ModelRow)
                .where(ModelRow.id == model_id, ModelRow.live_version == damaged)
                .values(live_version=intact)
            )
        )
    if moved:
        log.error(
            "model %s: live version %s is damaged; version %s (its newest intact ancestor) is "
            "live now",
            model_name(sessions, model_id),
            damaged,
            intact,
            extra={"model_id": model_id, "version": intact},
        )
    return bool(moved)
