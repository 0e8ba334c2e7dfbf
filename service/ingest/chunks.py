"""Accept validated samples: store the blob, record the chunk, fill and seal mega-batches.

A chunk is never split: it joins the open mega-batch, and the mega-batch is sealed as soon as it
holds ``megabatch_size`` samples or more. Sealing records the 90/10 split seed and inserts the
update job in the same transaction; the dispatcher then enqueues it (the jobs table is the outbox).
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import BlobStore
from lure_core.megabatch_store import open_megabatch, seal
from lure_core.records import ChunkRow, JobRow, MegaBatchRow, ModelRow


@dataclass
class IngestResult:
    chunk: ChunkRow
    megabatch: MegaBatchRow | None
    sealed: list[MegaBatchRow] = field(default_factory=list)
    jobs: list[JobRow] = field(default_factory=list)
    replayed: bool = (
        False  # an Idempotency-Key seen before: the first request's chunk, nothing stored
    )


def find_by_idempotency_key(session: Session, model_id: int, key: str) -> ChunkRow | None:
    return session.scalar(
        select(ChunkRow).where(ChunkRow.model_id == model_id, ChunkRow.idempotency_key == key)
    )


class Ingestor:
    def __init__(self, sessions: sessionmaker[Session], blobs: BlobStore, on_sealed=None) -> None:
        self.sessions, self.blobs = sessions, blobs
        self.on_sealed = on_sealed or (lambda: None)
        self._locks: dict[int, threading.Lock] = defaultdict(threading.Lock)

    def add_chunk(
        self,
        model_id: int,
        split: str,
        x: np.ndarray,
        y: np.ndarray,
        idempotency_key: str | None = None,
    ) -> IngestResult:
        """Durable on return: blob fsynced and record committed (or neither, on error)."""
        key = f"models/{model_id}/chunks/{uuid.uuid4().hex}.npz"
        sha = self.blobs.write_arrays(key, x=x, y=y.astype(np.int64))
        chunk = ChunkRow(
            model_id=model_id,
            split=split,
            n_samples=len(x),
            blob_key=key,
            sha256=sha,
            idempotency_key=idempotency_key,
        )
        try:
            with self._locks[model_id], self.sessions.begin() as session:
                result = _record(session, chunk)
            if result.replayed:
                self.blobs.delete(key)
        except IntegrityError:
            self.blobs.delete(key)
            if idempotency_key:  # the same key committed concurrently (another API replica)
                with self.sessions() as session:
                    first = find_by_idempotency_key(session, model_id, idempotency_key)
                if first is not None:
                    return IngestResult(first, None, replayed=True)
            raise
        except BaseException:
            self.blobs.delete(key)
            raise
        if result.jobs:
            self.on_sealed()
        return result

    def seal_open(self, model_id: int) -> tuple[MegaBatchRow, JobRow] | None:
        """Seal the open mega-batch early; None when there is nothing to seal."""
        with self._locks[model_id], self.sessions.begin() as session:
            model = session.get(ModelRow, model_id, with_for_update=True)
            megabatch = open_megabatch(session, model_id, create=False)
            if megabatch is None or megabatch.n_samples == 0:
                return None
            job = seal(session, model, megabatch)
        self.on_sealed()
        return megabatch, job


def _record(session: Session, chunk: ChunkRow) -> IngestResult:
    """Record ``chunk`` (its blob is on disk): join the open mega-batch, seal it when full."""
    model = session.get(ModelRow, chunk.model_id, with_for_update=True)
    key = chunk.idempotency_key
    if key and (first := find_by_idempotency_key(session, chunk.model_id, key)):
        return IngestResult(first, None, replayed=True)
    result = IngestResult(chunk, None)
    if chunk.split == "train":
        megabatch = open_megabatch(session, chunk.model_id, create=True)
        megabatch.n_samples += chunk.n_samples
        session.flush()
        chunk.megabatch_id, result.megabatch = megabatch.id, megabatch
        if megabatch.n_samples >= model.recipe.megabatch_size:
            result.jobs.append(seal(session, model, megabatch))
            result.sealed.append(megabatch)
    session.add(chunk)
    session.flush()
    return result
