"""The point an update starts from: the live version's weights and forget-mask.

A damaged live version (its files fail the sha256 check) is recorded, the model's live pointer
moves back to the newest intact ancestor, and the update starts from that one
(``lure_update/damaged_versions.py`` states the rule).
"""

from __future__ import annotations

from functools import partial

from sqlalchemy.orm import Session

from lure_core.live_pointer import retreat as retreat_live
from lure_core.model_store import live_version
from lure_core.records import ModelRow
from lure_update.context import UpdateContext
from lure_update.damaged_versions import newest_intact
from lure_update.inputs import StartingPoint, read_starting_point


class NoIntactCheckpoint(RuntimeError):
    """Every version in the live version's lineage failed its integrity check."""


def load_starting_point(ctx: UpdateContext, session: Session, model: ModelRow) -> StartingPoint:
    """The live version, or its newest intact ancestor when it is damaged; none: the first."""
    if model.live_version is None:
        return StartingPoint(None, None, None)
    live = live_version(session, model)
    if live is None:
        raise NoIntactCheckpoint(f"live version {model.live_version} has no record")
    found = newest_intact(ctx.sessions, live, partial(read_starting_point, ctx.blobs))
    if found.version is None or found.value is None:
        if found.refused:
            raise NoIntactCheckpoint(
                f"no intact checkpoint to start from: {'; '.join(found.refused)}"
            )
        return StartingPoint(None, None, None)  # every version pruned: nothing to start from
    if found.refused:
        retreat_live(ctx.sessions, model.id, model.live_version, found.version.number)
    return found.value
