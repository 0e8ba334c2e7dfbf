"""Chunk retention: once no kept learner state can reach a training sample, its pixels go.

A mega-batch's samples stay reachable through three things: its validation rows (every later update
validates on all of them), the replay memory of every version whose checkpoint is kept (a rollback
resumes from it) and the replay memory each kept version was trained from (its audit re-runs that
update). A mega-batch whose own versions are all pruned needs nothing else, so each of its chunks
is rewritten to the reachable rows alone (``rows`` records where they sat). With full replay every
train row stays reachable and nothing changes; buffer and no-replay models shed most of their data.

Crash-safe in the retention module's order: the compacted blob is written first, the record is
switched to it in one transaction, and the old blob is deleted last: a crash leaves an unreferenced
file (counted in the model's disk use), never a chunk without its data.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import BlobStore
from lure_core.model_store import model_name
from lure_core.records import PENDING, ChunkRow, JobRow, MegaBatchRow, ModelRow, VersionRow
from lure_engine.replay import make_replay
from lure_engine.splits import split_megabatch
from lure_update.samples import ROW_BITS

log = logging.getLogger("lure.retention")


@dataclass(frozen=True)
class Compaction:
    chunks: int  # chunks rewritten
    samples_dropped: int  # samples no kept state can reach any more, now deleted


def _replay_ids(replay_spec: str, state: dict | None) -> np.ndarray:
    if not state:
        return np.empty(0, np.int64)
    replay = make_replay(replay_spec)
    replay.load_state_dict(state)
    return replay.ids()


def reachable_rows(session: Session, model: ModelRow) -> dict[int, set[int]] | None:
    """Mega-batch index → rows a kept state can reach, for every mega-batch that may shrink
    (all its versions pruned, no job pending on it); None when nothing may shrink."""
    if model.recipe.replay_spec == "full":  # every train row stays in the replay memory
        return None
    versions = session.scalars(select(VersionRow).where(VersionRow.model_id == model.id)).all()
    by_number = {v.number: v for v in versions}
    index_of = dict(
        session.execute(
            select(MegaBatchRow.id, MegaBatchRow.index).where(MegaBatchRow.model_id == model.id)
        ).all()
    )
    pending = set(
        session.scalars(
            select(JobRow.megabatch_id).where(
                JobRow.model_id == model.id, JobRow.state.in_(PENDING)
            )
        )
    )
    kept_megabatches = {v.megabatch_id for v in versions if v.pruned_at is None}
    shrinkable = {
        v.megabatch_id
        for v in versions
        if v.megabatch_id is not None
        and v.megabatch_id not in kept_megabatches
        and v.megabatch_id not in pending
    }
    if not shrinkable:
        return None
    spec = model.recipe.replay_spec
    states = []
    for version in versions:
        if version.pruned_at is not None:
            continue
        states.append(version.replay_state)
        replay_from = (version.inputs or {}).get("replay_from")
        source = by_number.get(replay_from) if replay_from is not None else None
        if source is not None:
            states.append(source.replay_state)
    reachable: dict[int, set[int]] = defaultdict(set)
    for state in states:
        ids = _replay_ids(spec, state)
        indexes, rows = (ids >> ROW_BITS).tolist(), (ids & ((1 << ROW_BITS) - 1)).tolist()
        for index, row in zip(indexes, rows, strict=True):
            reachable[index].add(row)
    out = {}
    for megabatch_id in shrinkable:
        megabatch = session.get(MegaBatchRow, megabatch_id)
        assert megabatch is not None and megabatch.split_seed is not None  # sealed, versioned
        _, val_rows = split_megabatch(megabatch.n_samples, megabatch.split_seed)
        out[index_of[megabatch_id]] = reachable[index_of[megabatch_id]] | set(val_rows.tolist())
    return out


def _plan(session: Session, model: ModelRow) -> list[tuple[ChunkRow, np.ndarray]]:
    """(chunk, rows of it to keep) for every chunk that holds more than it needs to."""
    keep = reachable_rows(session, model)
    if not keep:
        return []
    plan = []
    megabatches = session.scalars(
        select(MegaBatchRow).where(
            MegaBatchRow.model_id == model.id, MegaBatchRow.index.in_(list(keep))
        )
    ).all()
    for megabatch in megabatches:
        rows = keep[megabatch.index]
        offset = 0
        chunks = session.scalars(
            select(ChunkRow).where(ChunkRow.megabatch_id == megabatch.id).order_by(ChunkRow.id)
        ).all()
        for chunk in chunks:
            mine = np.array(
                sorted(r - offset for r in rows if offset <= r < offset + chunk.n_samples), np.int64
            )
            held = chunk.kept_samples if chunk.kept_samples is not None else chunk.n_samples
            if len(mine) < held:
                plan.append((chunk, mine))
            offset += chunk.n_samples
    return plan


def _compacted_arrays(blobs: BlobStore, chunk: ChunkRow, rows: np.ndarray) -> dict:
    arrays = blobs.read_arrays(chunk.blob_key, chunk.sha256)
    if "rows" in arrays:  # compacted before: map chunk rows to positions in the stored subset
        position = {int(r): i for i, r in enumerate(arrays["rows"])}
        pick = np.array([position[int(r)] for r in rows], np.int64)
    else:
        pick = rows
    return {"x": arrays["x"][pick], "y": arrays["y"][pick], "rows": rows}


def compact_chunks(sessions: sessionmaker[Session], blobs: BlobStore, model_id: int) -> Compaction:
    """Shrink every chunk of ``model_id`` to the rows a kept state can still reach."""
    with sessions() as session:
        model = session.get(ModelRow, model_id)
        if model is None or model.recipe.keep_versions is None:
            return Compaction(0, 0)
        plan = [(chunk.id, chunk.blob_key, rows) for chunk, rows in _plan(session, model)]
        written = {}
        for chunk_id, _, rows in plan:
            chunk = session.get(ChunkRow, chunk_id)
            if chunk is None:  # deleted meanwhile (its model was): nothing to compact
                continue
            key = f"models/{model_id}/chunks/{uuid.uuid4().hex}.npz"
            written[chunk_id] = (
                key,
                blobs.write_arrays(key, **_compacted_arrays(blobs, chunk, rows)),
            )
    dropped, old_keys = 0, []
    with sessions.begin() as session:
        for chunk_id, old_key, rows in plan:
            if chunk_id not in written:
                continue
            chunk = session.get(ChunkRow, chunk_id)
            if chunk is None or chunk.blob_key != old_key:  # changed meanwhile: retry next time
                blobs.delete(written[chunk_id][0])
                continue
            held = chunk.kept_samples if chunk.kept_samples is not None else chunk.n_samples
            dropped += held - len(rows)
            chunk.blob_key, chunk.sha256 = written[chunk_id]
            chunk.kept_samples, chunk.compacted_at = len(rows), datetime.now(UTC)
            old_keys.append(old_key)
    for key in old_keys:
        blobs.delete(key)
    if old_keys:
        log.info(
            "model %s: %d chunks compacted, %d samples no kept version can reach deleted",
            model_name(sessions, model_id),
            len(old_keys),
            dropped,
            extra={"model_id": model_id},
        )
    return Compaction(len(old_keys), dropped)
