"""Reading a model's versions: its name, one version, and the one answer to "which version is
live" (every place that serves, trains, reports or checks the live version asks here).

Writes of the live pointer are ``lure_core/live_pointer.py``'s, each with its rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, sessionmaker

from lure_core.records import ModelRow, VersionRow


@dataclass(frozen=True)
class VersionRef:
    """A version as an update carries it past the database: which one it is, not its row (the
    run step trains and judges on plain data)."""

    id: int
    model_id: int
    number: int
    strategy: str
    parent_number: int | None

    @classmethod
    def of(cls, row: VersionRow) -> VersionRef:
        return cls(row.id, row.model_id, row.number, row.strategy, row.parent_number)


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


def live_version(session: Session, model: ModelRow) -> VersionRow | None:
    """The version the model serves and the next update starts from (None: none yet)."""
    if model.live_version is None:
        return None
    return version_row(session, model.id, model.live_version)


def is_live() -> ColumnElement[bool]:
    """The same answer for queries over many models: joins ``VersionRow`` to its model's live
    version (``select(ModelRow, VersionRow).join(VersionRow, is_live())``)."""
    return (VersionRow.model_id == ModelRow.id) & (VersionRow.number == ModelRow.live_version)
