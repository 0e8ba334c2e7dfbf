"""Deleting a model, crash-safe: its rows go in one transaction, then its blob folder.

Every blob of a model lives under ``models/<id>/`` in the blob store. Rows are deleted first and
atomically, so a crash leaves either the whole model or no rows at all; a blob folder whose model
row is gone is an orphan, and :func:`remove_orphan_blobs` (run by every delete and at API start)
removes it, so a crash between the two steps is finished by the next delete or start.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import BlobStore
from lure_core.records import (
    ChunkRow,
    DriftCheckRow,
    ExportRow,
    JobRow,
    JobState,
    MegaBatchRow,
    MetricsRow,
    ModelRow,
    PredictionRow,
    ShadowAnswerRow,
    VersionRow,
)

log = logging.getLogger("lure.removal")
MODELS_FOLDER = "models"


class ModelBusy(RuntimeError):
    """An update of the model is running; deleting under it would leave its output orphaned."""


def delete_model_rows(session: Session, model: ModelRow) -> None:
    """Every row of ``model``, children first (call inside one transaction)."""
    running = session.scalar(
        select(JobRow.id).where(JobRow.model_id == model.id, JobRow.state == JobState.RUNNING)
    )
    if running is not None:
        raise ModelBusy(
            f"job {running} is updating model {model.name!r}; retry once it finishes "
            f"(GET /v1/jobs/{running})"
        )
    versions = select(VersionRow.id).where(VersionRow.model_id == model.id)
    session.execute(delete(ExportRow).where(ExportRow.version_id.in_(versions)))
    session.execute(delete(MetricsRow).where(MetricsRow.version_id.in_(versions)))
    for log_table in (ShadowAnswerRow, PredictionRow, DriftCheckRow):
        session.execute(delete(log_table).where(log_table.model_id == model.id))
    for table in (JobRow, VersionRow, ChunkRow, MegaBatchRow):
        session.execute(delete(table).where(table.model_id == model.id))
    session.execute(delete(ModelRow).where(ModelRow.id == model.id))


def model_prefix(model_id: int) -> str:
    """The blob folder every blob of the model lives under."""
    return f"{MODELS_FOLDER}/{model_id}/"


def remove_orphan_blobs(sessions: sessionmaker[Session], blobs: BlobStore) -> list[int]:
    """Remove the blob folders of models that no longer have a row; returns their ids.

    Folders are listed before the rows are read, and a model's row is committed before its first
    blob is written, so a model being created is never mistaken for an orphan.
    """
    folders = [name for name in blobs.children(f"{MODELS_FOLDER}/") if name.isdigit()]
    if not folders:
        return []
    with sessions() as session:
        existing = set(session.scalars(select(ModelRow.id)))
    removed = []
    for name in folders:
        if int(name) not in existing:
            blobs.delete_prefix(model_prefix(int(name)))
            removed.append(int(name))
            log.info("removed the blobs of deleted model %s", name)
    return removed


def model_disk_bytes(blobs: BlobStore, model_id: int) -> int:
    """Bytes the model's blobs (chunks, checkpoints, masks, exports) take in the store."""
    return blobs.bytes_under(model_prefix(model_id))
