"""The point an update starts from: the live version's weights and forget-mask.

A damaged live version (its files fail the sha256 check) is recorded, the model's live pointer
moves back to the newest intact ancestor, and the update starts from that one
(``lure_core/lineage.py`` states the rule).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from lure_core.blobs import ChecksumMismatch
from lure_core.lineage import clear_damage, record_damage, version_row
from lure_core.live_pointer import retreat as retreat_live
from lure_core.records import ModelRow
from lure_core.update_inputs import StartingPoint, read_starting_point
from worker.attempts import WorkerContext


class NoIntactCheckpoint(RuntimeError):
    """Every version in the live version's lineage failed its integrity check."""


def load_starting_point(ctx: WorkerContext, session: Session, model: ModelRow) -> StartingPoint:
    """The live version, or its newest intact ancestor when it is damaged; none: the first."""
    number, damaged = model.live_version, []
    while number is not None:
        version = version_row(session, model.id, number)
        if version.pruned_at is not None:  # retention deleted its files: not damage
            number = version.parent_number
            continue
        try:
            start = read_starting_point(ctx.blobs, version)
        except ChecksumMismatch as error:
            record_damage(ctx.sessions, version, str(error))
            damaged.append(f"version {number}: {error}")
            number = version.parent_number
            continue
        clear_damage(ctx.sessions, version)
        if damaged:
            retreat_live(ctx.sessions, model.id, model.live_version, version.number)
        return start
    if damaged:
        raise NoIntactCheckpoint(f"no intact checkpoint to start from: {'; '.join(damaged)}")
    return StartingPoint(None, None, None)
