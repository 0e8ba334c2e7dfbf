"""Retention: keep the checkpoints of a model's newest N versions, the live one and each lineage's
head.

A pruned version keeps its row (lineage, metrics, gate record, replay state), so the history
stays whole; its checkpoint, mask and exports are deleted from the blob store. The version is
marked pruned *before* its files are deleted, so a crash in between leaves unreferenced files,
never a version that looks damaged. Versions a pending job started from are never pruned. Then the
chunks: samples no kept version can reach any more are deleted (``lure_update.chunk_retention``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import BlobStore
from lure_core.model_store import model_name
from lure_core.records import PENDING, ExportRow, JobRow, ModelRow, VersionRow
from lure_update.chunk_retention import compact_chunks
from lure_update.lineage_records import lineage_heads

log = logging.getLogger("lure.retention")


def versions_to_prune(session: Session, model: ModelRow, keep: int) -> list[VersionRow]:
    """Unpruned versions outside the newest ``keep``, the live one, any a job starts from and
    every lineage's head (its next candidate starts there)."""
    numbers = session.scalars(
        select(VersionRow.number)
        .where(VersionRow.model_id == model.id)
        .order_by(VersionRow.number.desc())
    ).all()
    protected = set(numbers[:keep]) | {model.live_version}
    recipe = model.recipe
    if recipe.own_lineages:
        protected |= {v.number for v in lineage_heads(session, model, recipe.candidates).values()}
    protected |= set(
        session.scalars(
            select(JobRow.parent_version).where(
                JobRow.model_id == model.id, JobRow.state.in_(PENDING)
            )
        )
    )
    return list(
        session.scalars(
            select(VersionRow).where(
                VersionRow.model_id == model.id,
                VersionRow.pruned_at.is_(None),
                VersionRow.number.not_in([n for n in protected if n is not None]),
            )
        )
    )


def apply_retention(sessions: sessionmaker[Session], blobs: BlobStore, model_id: int) -> list[int]:
    """Prune what the model's ``keep_versions`` allows, then the chunk data no kept version can
    reach; returns the pruned version numbers."""
    with sessions.begin() as session:
        model = session.get(ModelRow, model_id)
        keep = model.recipe.keep_versions if model else None
        if model is None or keep is None:
            return []
        doomed = versions_to_prune(session, model, keep)
        keys = [
            key for v in doomed for key in (v.checkpoint_key, v.mask_key, v.momentum_key) if key
        ]
        exports = session.scalars(
            select(ExportRow).where(ExportRow.version_id.in_([v.id for v in doomed]))
        ).all()
        keys += [e.blob_key for e in exports]
        for export in exports:
            session.delete(export)
        session.execute(
            update(VersionRow)
            .where(VersionRow.id.in_([v.id for v in doomed]))
            .values(pruned_at=datetime.now(UTC))
        )
        numbers = sorted(v.number for v in doomed)
    for key in keys:  # after the commit: a crash here leaves unreferenced files only
        blobs.delete(key)
    if numbers:
        log.info(
            "model %s: pruned the checkpoints of versions %s (keep_versions=%s)",
            model_name(sessions, model_id),
            ", ".join(map(str, numbers)),
            keep,
            extra={"model_id": model_id},
        )
    compact_chunks(sessions, blobs, model_id)
    return numbers
