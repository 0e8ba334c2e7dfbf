"""Read a model's stored samples: mega-batches (in chunk order), their splits, the test set.

A sample reference is one integer, ``(mega-batch index << 32) | row``: replay buffers and versions
store these, and any of them can be read back for as long as the chunks exist.

A chunk whose blob is missing or fails its sha256 is *lost*: its rows are left out of every read
(training, replay, validation, the test set) and named in ``SampleReader.lost``, so one damaged
file costs the model those rows, not every later update (docs/RELIABILITY.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.blobs import BlobStore, ChecksumMismatch
from lure_core.records import ChunkRow, MegaBatchRow, MegaBatchState
from lure_engine.data import ImageArrays
from lure_engine.pipeline import MegaBatchData
from lure_engine.splits import split_megabatch

ROW_BITS = 32


def sample_ids(megabatch_index: int, rows: np.ndarray) -> np.ndarray:
    return (np.int64(megabatch_index) << ROW_BITS) | rows.astype(np.int64)


class SamplesDeleted(LookupError):
    """An update asked for samples that retention deleted (no kept state could reach them)."""


def _read_chunk(blobs: BlobStore, chunk: ChunkRow, lost: dict[int, str]) -> dict | None:
    """The chunk's arrays, or None (recorded in ``lost``) when its blob is missing or altered."""
    try:
        return blobs.read_arrays(chunk.blob_key, chunk.sha256)
    except ChecksumMismatch as error:
        lost[chunk.id] = str(error)
        return None


def _load_chunks(
    blobs: BlobStore, chunks: list[ChunkRow], lost: dict[int, str]
) -> tuple[np.ndarray, np.ndarray] | None:
    arrays = [a for c in chunks if (a := _read_chunk(blobs, c, lost)) is not None]
    if not arrays:
        return None
    return np.concatenate([a["x"] for a in arrays]), np.concatenate(
        [a["y"] for a in arrays]
    ).astype(np.int64)


@dataclass
class _Rows:
    """A mega-batch's rows in chunk order. ``present``: rows stored (None: all of them);
    ``intact``: rows not lost with their chunk's blob (None: all of them)."""

    x: np.ndarray
    y: np.ndarray
    present: np.ndarray | None
    intact: np.ndarray | None


def _load_megabatch(blobs: BlobStore, chunks: list[ChunkRow], lost: dict[int, str]) -> _Rows:
    """A compacted chunk holds only the rows retention kept, a lost chunk none; the others read as
    zeros and are marked absent, so row numbers (and the sample references built on them) never
    shift."""
    arrays = [_read_chunk(blobs, c, lost) for c in chunks]
    if all(a is not None and "rows" not in a for a in arrays):
        x = np.concatenate([a["x"] for a in arrays if a is not None])
        y = np.concatenate([a["y"] for a in arrays if a is not None]).astype(np.int64)
        return _Rows(x, y, None, None)
    total = sum(c.n_samples for c in chunks)
    shape = next((a["x"].shape[1:] for a in arrays if a is not None), (1, 1, 1))
    x, y = np.zeros((total, *shape), np.uint8), np.zeros(total, np.int64)
    present, intact = np.zeros(total, bool), np.ones(total, bool)
    offset = 0
    for chunk, stored in zip(chunks, arrays, strict=True):
        if stored is None:
            intact[offset : offset + chunk.n_samples] = False
        else:
            rows = stored["rows"] if "rows" in stored else np.arange(chunk.n_samples)
            x[offset + rows], y[offset + rows] = stored["x"], stored["y"]
            present[offset + rows] = True
        offset += chunk.n_samples
    return _Rows(x, y, present | ~intact, intact if not intact.all() else None)


class SampleReader:
    """Loads and caches one model's mega-batches for the length of one update; ``lost`` maps
    each chunk whose blob could not be read to why."""

    def __init__(self, session: Session, blobs: BlobStore, model_id: int) -> None:
        self.session, self.blobs, self.model_id = session, blobs, model_id
        self._cache: dict[int, _Rows] = {}
        self.lost: dict[int, str] = {}

    def megabatch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Every row of mega-batch ``index``; rows deleted by retention or lost read as zeros."""
        rows = self._load(index)
        return rows.x, rows.y

    def intact(self, index: int, rows: np.ndarray) -> np.ndarray:
        """``rows`` of mega-batch ``index`` without those lost with their chunk's blob."""
        intact = self._load(index).intact
        return rows if intact is None else rows[intact[rows]]

    def lost_among(self, ids: np.ndarray) -> np.ndarray:
        """The sample references in ``ids`` whose chunk's blob is lost."""
        indexes, rows = ids >> ROW_BITS, ids & ((1 << ROW_BITS) - 1)
        lost = np.zeros(len(ids), bool)
        for index in np.unique(indexes):
            intact = self._load(int(index)).intact
            if intact is not None:
                where = indexes == index
                lost[where] = ~intact[rows[where]]
        return ids[lost]

    def _load(self, index: int) -> _Rows:
        if index not in self._cache:
            row = self.session.scalar(
                select(MegaBatchRow).where(
                    MegaBatchRow.model_id == self.model_id, MegaBatchRow.index == index
                )
            )
            if row is None:
                raise LookupError(f"model {self.model_id} has no mega-batch {index}")
            chunks = self.session.scalars(
                select(ChunkRow).where(ChunkRow.megabatch_id == row.id).order_by(ChunkRow.id)
            ).all()
            self._cache[index] = _load_megabatch(self.blobs, list(chunks), self.lost)
        return self._cache[index]

    def split(self, row: MegaBatchRow) -> tuple[np.ndarray, np.ndarray]:
        """The recorded 90/10 split: train rows and validation rows."""
        if row.split_seed is None:
            raise ValueError(f"mega-batch {row.index} is not sealed: it has no split yet")
        return split_megabatch(row.n_samples, row.split_seed)

    def train_rows(self, row: MegaBatchRow) -> np.ndarray:
        """The mega-batch's train rows that can still be read (all of them unless a blob is
        lost)."""
        return self.intact(row.index, self.split(row)[0])

    def gather(self, ids: np.ndarray) -> ImageArrays:
        """The samples ``ids`` refer to, in the order of ``ids`` (replay order is training
        order); a reference retention deleted or whose blob is lost is an error (callers leave
        lost ones out first: ``lost_among``)."""
        x_first, _ = self.megabatch(1 if len(ids) == 0 else int(ids[0] >> ROW_BITS))
        x_out = np.empty((len(ids), *x_first.shape[1:]), np.uint8)
        y_out = np.empty(len(ids), np.int64)
        indexes, rows = ids >> ROW_BITS, ids & ((1 << ROW_BITS) - 1)
        for index in np.unique(indexes):
            where = indexes == index
            stored = self._load(int(index))
            wanted = rows[where]
            if stored.intact is not None and not stored.intact[wanted].all():
                raise SamplesDeleted(
                    f"samples of mega-batch {int(index)} were lost with their chunk's blob"
                )
            if stored.present is not None and not stored.present[wanted].all():
                missing = wanted[~stored.present[wanted]]
                raise SamplesDeleted(
                    f"{len(missing)} samples of mega-batch {int(index)} (rows "
                    f"{', '.join(map(str, missing[:5].tolist()))}…) were deleted by retention: "
                    "no kept version could reach them"
                )
            x_out[where], y_out[where] = stored.x[wanted], stored.y[wanted]
        return ImageArrays(x_out, y_out)

    def test_set(self) -> ImageArrays | None:
        chunks = self.session.scalars(
            select(ChunkRow)
            .where(ChunkRow.model_id == self.model_id, ChunkRow.split == "test")
            .order_by(ChunkRow.id)
        ).all()
        loaded = _load_chunks(self.blobs, list(chunks), self.lost) if chunks else None
        return ImageArrays(*loaded) if loaded is not None else None

    def update_data(self, megabatch: MegaBatchRow, replay_ids: np.ndarray) -> MegaBatchData:
        """What an update of ``megabatch`` reads: the layout the simulator builds from a dataset
        (``replay_ids`` without lost references: ``lost_among``)."""
        x, y = self.megabatch(megabatch.index)
        every = self.intact(megabatch.index, np.arange(megabatch.n_samples))
        train_rows = self.train_rows(megabatch)
        replay = (
            self.gather(replay_ids)
            if len(replay_ids)
            else ImageArrays(np.zeros((0, *x.shape[1:]), np.uint8), np.zeros(0, np.int64))
        )
        return MegaBatchData(
            megabatch=ImageArrays(x[every], y[every]),
            train_split=ImageArrays(x[train_rows], y[train_rows]),
            train=ImageArrays(
                np.concatenate([replay.x, x[train_rows]]), np.concatenate([replay.y, y[train_rows]])
            ),
            val=self._validation(megabatch.index),
            test=self.test_set(),
            val_own_rows=len(self.intact(megabatch.index, self.split(megabatch)[1])),
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
            val_rows = self.intact(row.index, self.split(row)[1])
            if len(val_rows):  # a mega-batch lost whole has no rows (nor a true image shape)
                parts.append((x[val_rows], y[val_rows]))
        if not parts:
            shape = self.megabatch(up_to)[0].shape[1:]
            return ImageArrays(np.zeros((0, *shape), np.uint8), np.zeros(0, np.int64))
        return ImageArrays(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        )
