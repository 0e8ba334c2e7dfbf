"""Deleting a model, crash-safe: its rows go in one transaction, then its blob folder.

Every blob of a model lives under ``models/<id>/`` in the blob store. Rows are deleted first and
atomically, so a crash leaves either the whole model or no rows at all; a blob folder whose model
row is gone is an orphan, and :func:`remove_orphan_blobs` (run by every delete and at API start)
removes it, so a crash between the two steps is finished by the next delete or start.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import BlobStore
from lure_core.records import (
    ChunkRow,
    ExportRow,
    JobRow,
    JobState,
    MegaBatchRow,
    MetricsRow,
    ModelRow,
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
    for table in (JobRow, VersionRow, ChunkRow, MegaBatchRow):
        session.execute(delete(table).where(table.model_id == model.id))
    session.execute(delete(ModelRow).where(ModelRow.id == model.id))


def model_folder(blobs: BlobStore, model_id: int) -> Path:
    return blobs.root / MODELS_FOLDER / str(model_id)


def remove_orphan_blobs(sessions: sessionmaker[Session], blobs: BlobStore) -> list[int]:
    """Remove the blob folders of models that no longer have a row; returns their ids.

    Folders are listed before the rows are read, and a model's row is committed before its first
    blob is written, so a model being created is never mistaken for an orphan.
    """
    root = blobs.root / MODELS_FOLDER
    folders = (
        [p for p in root.iterdir() if p.is_dir() and p.name.isdigit()] if root.exists() else []
    )
    if not folders:
        return []
    with sessions() as session:
        existing = set(session.scalars(select(ModelRow.id)))
    removed = []
    for folder in folders:
        if int(folder.name) not in existing:
            shutil.rmtree(folder)
            removed.append(int(folder.name))
            log.info("removed the blobs of deleted model %s", folder.name)
    return removed


def model_disk_bytes(blobs: BlobStore, model_id: int) -> int:
    """Bytes the model's blobs (chunks, checkpoints, masks, exports) take on disk."""
    return _folder_bytes(model_folder(blobs, model_id))


def _folder_bytes(folder: Path) -> int:
    """One ``scandir`` pass (each entry's type and size come with the listing, not a stat call
    apiece as with ``rglob``); a folder or file removed meanwhile counts as empty."""
    total = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        total += _folder_bytes(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
    except FileNotFoundError:
        return 0
    return total
