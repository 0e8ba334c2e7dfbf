"""Read a model's stored samples: mega-batches (in chunk order), their splits, the test set.

A sample reference is one integer, ``(mega-batch index << 32) | row``: replay buffers and versions
store these, and any of them can be read back for as long as the chunks exist.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_engine.alma.stream import split_train_val
from worker.storage.blobs import BlobStore
from worker.storage.schema import ChunkRow, MegaBatchRow

ROW_BITS = 32


def sample_ids(megabatch_index: int, rows: np.ndarray) -> np.ndarray:
    return (np.int64(megabatch_index) << ROW_BITS) | rows.astype(np.int64)


def _load_chunks(blobs: BlobStore, chunks: list[ChunkRow]) -> tuple[np.ndarray, np.ndarray]:
    arrays = [blobs.read_arrays(c.blob_key, c.sha256) for c in chunks]
    return np.concatenate([a["x"] for a in arrays]), np.concatenate([a["y"] for a in arrays]).astype(np.int64)


class SampleReader:
    """Loads and caches one model's mega-batches for the length of one update."""

    def __init__(self, session: Session, blobs: BlobStore, model_id: int) -> None:
        self.session, self.blobs, self.model_id = session, blobs, model_id
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def megabatch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index not in self._cache:
            row = self.session.scalar(select(MegaBatchRow).where(
                MegaBatchRow.model_id == self.model_id, MegaBatchRow.index == index))
            chunks = self.session.scalars(
                select(ChunkRow).where(ChunkRow.megabatch_id == row.id).order_by(ChunkRow.id)).all()
            self._cache[index] = _load_chunks(self.blobs, list(chunks))
        return self._cache[index]

    def split(self, row: MegaBatchRow) -> tuple[np.ndarray, np.ndarray]:
        """The recorded 90/10 split: train rows and validation rows."""
        return split_train_val(np.arange(row.n_samples), 0.1, row.split_seed)

    def gather(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(ids) == 0:
            x, _ = self.megabatch(1)
            return np.empty((0, *x.shape[1:]), np.uint8), np.empty(0, np.int64)
        indexes, rows = ids >> ROW_BITS, ids & ((1 << ROW_BITS) - 1)
        xs, ys = [], []
        for index in np.unique(indexes):
            x, y = self.megabatch(int(index))
            pick = rows[indexes == index]
            xs.append(x[pick])
            ys.append(y[pick])
        return np.concatenate(xs), np.concatenate(ys)

    def test_set(self) -> tuple[np.ndarray, np.ndarray] | None:
        chunks = self.session.scalars(select(ChunkRow).where(
            ChunkRow.model_id == self.model_id, ChunkRow.split == "test").order_by(ChunkRow.id)).all()
        return _load_chunks(self.blobs, list(chunks)) if chunks else None
