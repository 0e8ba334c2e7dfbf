"""Read a model's stored samples: mega-batches (in chunk order), their splits, the test set.

A sample reference is one integer, ``(mega-batch index << 32) | row``: replay buffers and versions
store these, and any of them can be read back for as long as the chunks exist.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.blobs import BlobStore
from lure_core.records import ChunkRow, MegaBatchRow, MegaBatchState
from lure_engine.data import ImageArrays
from lure_engine.pipeline import MegaBatchData
from lure_engine.splits import split_megabatch

ROW_BITS = 32


def sample_ids(megabatch_index: int, rows: np.ndarray) -> np.ndarray:
    return (np.int64(megabatch_index) << ROW_BITS) | rows.astype(np.int64)


class SamplesDeleted(LookupError):
    """An update asked for samples that retention deleted (no kept state could reach them)."""


def _load_chunks(blobs: BlobStore, chunks: list[ChunkRow]) -> tuple[np.ndarray, np.ndarray]:
    arrays = [blobs.read_arrays(c.blob_key, c.sha256) for c in chunks]
    return np.concatenate([a["x"] for a in arrays]), np.concatenate(
        [a["y"] for a in arrays]
    ).astype(np.int64)


def _load_megabatch(
    blobs: BlobStore, chunks: list[ChunkRow]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A mega-batch's rows in chunk order, plus which rows are present (None: all of them).

    A compacted chunk holds only the rows retention kept; the others read as zeros and are marked
    absent, so row numbers (and the sample references built on them) never shift.
    """
    arrays = [blobs.read_arrays(c.blob_key, c.sha256) for c in chunks]
    if not any("rows" in a for a in arrays):
        return (
            np.concatenate([a["x"] for a in arrays]),
            np.concatenate([a["y"] for a in arrays]).astype(np.int64),
            None,
        )
    total = sum(c.n_samples for c in chunks)
    shape = next(a["x"].shape[1:] for a in arrays)
    x, y = np.zeros((total, *shape), np.uint8), np.zeros(total, np.int64)
    present = np.zeros(total, bool)
    offset = 0
    for chunk, stored in zip(chunks, arrays, strict=True):
        rows = stored["rows"] if "rows" in stored else np.arange(chunk.n_samples)
        x[offset + rows], y[offset + rows] = stored["x"], stored["y"]
        present[offset + rows] = True
        offset += chunk.n_samples
    return x, y, present


class SampleReader:
    """Loads and caches one model's mega-batches for the length of one update."""

    def __init__(self, session: Session, blobs: BlobStore, model_id: int) -> None:
        self.session, self.blobs, self.model_id = session, blobs, model_id
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}

    def megabatch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Every row of mega-batch ``index``; rows retention deleted read as zeros."""
        return self._load(index)[:2]

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if index not in self._cache:
            row = self.session.scalar(
                select(MegaBatchRow).where(
                    MegaBatchRow.model_id == self.model_id, MegaBatchRow.index == index
                )
            )
            chunks = self.session.scalars(
                select(ChunkRow).where(ChunkRow.megabatch_id == row.id).order_by(ChunkRow.id)
            ).all()
            self._cache[index] = _load_megabatch(self.blobs, list(chunks))
        return self._cache[index]

    def split(self, row: MegaBatchRow) -> tuple[np.ndarray, np.ndarray]:
        """The recorded 90/10 split: train rows and validation rows."""
        return split_megabatch(row.n_samples, row.split_seed)

    def gather(self, ids: np.ndarray) -> ImageArrays:
        """The samples ``ids`` refer to, in the order of ``ids`` (replay order is training
        order).
        """
        x_first, _ = self.megabatch(1 if len(ids) == 0 else int(ids[0] >> ROW_BITS))
        x_out = np.empty((len(ids), *x_first.shape[1:]), np.uint8)
        y_out = np.empty(len(ids), np.int64)
        indexes, rows = ids >> ROW_BITS, ids & ((1 << ROW_BITS) - 1)
        for index in np.unique(indexes):
            where = indexes == index
            x, y, present = self._load(int(index))
            if present is not None and not present[rows[where]].all():
                missing = rows[where][~present[rows[where]]]
                raise SamplesDeleted(
                    f"{len(missing)} samples of mega-batch {int(index)} (rows "
                    f"{', '.join(map(str, missing[:5].tolist()))}…) were deleted by retention: "
                    "no kept version could reach them"
                )
            x_out[where], y_out[where] = x[rows[where]], y[rows[where]]
        return ImageArrays(x_out, y_out)

    def test_set(self) -> ImageArrays | None:
        chunks = self.session.scalars(
            select(ChunkRow)
            .where(ChunkRow.model_id == self.model_id, ChunkRow.split == "test")
            .order_by(ChunkRow.id)
        ).all()
        return ImageArrays(*_load_chunks(self.blobs, list(chunks))) if chunks else None

    def update_data(self, megabatch: MegaBatchRow, replay_ids: np.ndarray) -> MegaBatchData:
        """What an update of ``megabatch`` reads: the layout the simulator builds from a dataset."""
        x, y = self.megabatch(megabatch.index)
        train_rows, _ = self.split(megabatch)
        replay = self.gather(replay_ids)
        return MegaBatchData(
            megabatch=ImageArrays(x, y),
            train_split=ImageArrays(x[train_rows], y[train_rows]),
            train=ImageArrays(
                np.concatenate([replay.x, x[train_rows]]), np.concatenate([replay.y, y[train_rows]])
            ),
            val=self._validation(megabatch.index),
            test=self.test_set(),
        )

    def _validation(self, up_to: int) -> ImageArrays:
        """The validation rows of every sealed mega-batch up to ``up_to``, in mega-batch order."""
        parts = []
        for row in self.session.scalars(
            select(MegaBatchRow)
            .where(
                MegaBatchRow.model_id == self.model_id,
                MegaBatchRow.state == MegaBatchState.SEALED,
                MegaBatchRow.index <= up_to,
            )
            .order_by(MegaBatchRow.index)
        ):
            x, y = self.megabatch(row.index)
            _, val_rows = self.split(row)
            parts.append((x[val_rows], y[val_rows]))
        return ImageArrays(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        )
