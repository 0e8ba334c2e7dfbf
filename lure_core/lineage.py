"""What happens when a stored version turns out to be damaged (its file fails the sha256 check).

The rule, the same for ``/predict`` and for updates: the damage is recorded on the version, the
model's live pointer moves back to the newest intact ancestor, and serving and training go on from
there. A version whose file is restored (its sha256 matches again) is usable again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from lure_core.database import rows_changed
from lure_core.records import ModelRow, VersionRow

log = logging.getLogger("lure.lineage")


def model_name(sessions: sessionmaker[Session], model_id: int) -> str:
    """The model's name for a log line (its id when it is gone): people read names."""
    try:
        with sessions() as session:
            return session.scalar(select(ModelRow.name).where(ModelRow.id == model_id)) or str(
                model_id
            )
    except Exception:  # a log line never fails the work it reports
        return str(model_id)


def version_row(session: Session, model_id: int, number: int) -> VersionRow | None:
    return session.scalar(
        select(VersionRow).where(VersionRow.model_id == model_id, VersionRow.number == number)
    )


def record_damage(sessions: sessionmaker[Session], version: VersionRow, error: str) -> None:
    """Mark ``version`` damaged (once) with the reason; logged as an error for operators."""
    with sessions.begin() as session:
        updated = rows_changed(
            session.execute(
                update(VersionRow)
                .where(VersionRow.id == version.id, VersionRow.damaged.is_(None))
                .values(damaged=error[:2000], damaged_at=datetime.now(UTC))
            )
        )
    if updated:
        log.error(
            "version %s of model %s is damaged: %s",
            version.number,
            version.model_id,
            error,
            extra={"model_id": version.model_id, "version": version.number},
        )


def clear_damage(sessions: sessionmaker[Session], version: VersionRow) -> None:
    """The file verifies again (restored from a backup): the version may be used again."""
    if version.damaged is None:
        return
    with sessions.begin() as session:
        session.execute(
            update(VersionRow)
            .where(VersionRow.id == version.id)
            .values(damaged=None, damaged_at=None)
        )
    log.warning(
        "version %s of model %s verifies again; its damage record is cleared",
        version.number,
        version.model_id,
        extra={"model_id": version.model_id, "version": version.number},
    )
