"""Sweeping blobs no row names: what a crash between writing a blob and committing its row leaves.

Every writer stores the blob first and commits the row naming it second (ingest, an update's
checkpoints and masks, imports, exports, compaction), and retention commits first and deletes
second; so a crash can leave a blob without a row, never a row without its blob. Such blobs are
removed here once they are older than a grace period (``LURE_ORPHAN_BLOB_GRACE_SECONDS``, a day by
default): a blob younger than that may belong to a write whose row is about to commit, for
instance an update that waits out a database outage before publishing.

Blobs are listed *before* the rows are read, so a blob whose row commits in between is seen as
named.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import BlobStore, StoredBlob
from lure_core.records import ChunkRow, ExportRow, PredictionRow, VersionRow

log = logging.getLogger("lure.sweep")
MODELS = "models/"


def _named(session: Session) -> set[tuple[str, str]]:
    """(key, sha256) of every blob a row names; pruned versions name none."""
    kept = VersionRow.pruned_at.is_(None)
    queries = (
        select(VersionRow.checkpoint_key, VersionRow.checkpoint_sha256).where(kept),
        select(VersionRow.mask_key, VersionRow.mask_sha256).where(kept),
        select(VersionRow.momentum_key, VersionRow.momentum_sha256).where(kept),
        select(ChunkRow.blob_key, ChunkRow.sha256),
        select(ExportRow.blob_key, ExportRow.sha256),
        select(PredictionRow.image_key, PredictionRow.image_sha256),
    )
    named: set[tuple[str, str]] = set()
    for query in queries:
        named.update((key, sha) for key, sha in session.execute(query) if key and sha)
    return named


def _is_named(blob: StoredBlob, named: set[tuple[str, str]], keys: set[str]) -> bool:
    if blob.sha256 is None:  # a folder: only the key is known without hashing
        return blob.key in keys
    return (blob.key, blob.sha256) in named


def sweep_unnamed_blobs(
    sessions: sessionmaker[Session], blobs: BlobStore, grace_seconds: float
) -> list[StoredBlob]:
    """Remove the model blobs older than ``grace_seconds`` that no row names; returns them."""
    cutoff = time.time() - grace_seconds
    old = [blob for blob in blobs.entries(MODELS) if blob.modified < cutoff]
    if not old:
        return []
    with sessions() as session:
        named = _named(session)
    keys = {key for key, _ in named}
    swept = [blob for blob in old if not _is_named(blob, named, keys)]
    for blob in swept:
        blobs.discard(blob)
    if swept:
        log.info(
            "removed %d blobs no record names (%d bytes), left by writes that crashed before "
            "their record was committed",
            len(swept),
            sum(b.size for b in swept),
        )
    return swept
