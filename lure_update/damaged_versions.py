"""What happens when a stored version turns out to be damaged (its file fails the sha256 check).

The rule, the same for ``/predict`` and for updates: the damage is recorded on the version, the
model's live pointer moves back to the newest intact ancestor, and serving and training go on from
there. A version whose file is restored (its sha256 matches again) is usable again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import ChecksumMismatch
from lure_core.database import rows_changed
from lure_core.model_store import version_row
from lure_core.records import VersionRow

log = logging.getLogger("lure.lineage")


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


T = TypeVar("T")


@dataclass
class IntactFound(Generic[T]):
    """What :func:`newest_intact` found: the loaded value and its version (None: nothing
    intact), and one line per damaged version it passed."""

    value: T | None
    version: VersionRow | None
    refused: list[str]


def newest_intact(
    sessions: sessionmaker[Session],
    start: VersionRow,
    load: Callable[[VersionRow], T],
    follow_ancestors: bool = True,
) -> IntactFound[T]:
    """The one ancestor walk: ``load`` ``start``, or its newest intact ancestor when it fails
    the sha256 check. A damaged version is recorded, a pruned one (retention deleted its files:
    not damage) skipped, one that verifies again cleared; ``follow_ancestors=False`` stops at
    ``start`` (a pinned version is that version or nothing)."""
    refused: list[str] = []
    row: VersionRow | None = start
    while row is not None:
        if row.pruned_at is None:
            try:
                value = load(row)
            except ChecksumMismatch as error:
                record_damage(sessions, row, str(error))
                refused.append(f"version {row.number}: {error}")
            else:
                clear_damage(sessions, row)
                return IntactFound(value, row, refused)
        if not follow_ancestors or row.parent_number is None:
            break
        with sessions() as session:  # ancestors are read only once a newer one is refused
            row = version_row(session, row.model_id, row.parent_number)
    return IntactFound(None, None, refused)
