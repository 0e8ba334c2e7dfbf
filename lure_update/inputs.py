"""What one update reads from the records and blobs: its starting point, data, replay memory and
seeds (``UpdateInputs``).

Shared by the update (which trains the candidates of a mega-batch) and the audit (which rebuilds a
published version from its record), so an audit re-runs exactly the code that produced the version
(``lure_update/training.py`` trains on it).

Weights and forget-mask come from the version the update starts from (the live one); the replay
memory comes from the *stream* (``replay_source``): the newest version published since the last
manual promotion, whether it went live or was held. A held mega-batch's data therefore stays in the
training stream exactly as if its version had passed (docs/SERVER.md, "Promotion gate", says what
that means per replay mode).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.blobs import BlobStore
from lure_core.model_store import VersionRef, version_row
from lure_core.recipe import Recipe
from lure_core.records import JobRow, MegaBatchRow, MetricsRow, ModelRow, VersionRow
from lure_engine.pipeline import MegaBatchData
from lure_engine.replay import Replay, make_replay
from lure_engine.update import UpdateSeeds
from lure_update.samples import SampleReader, sample_ids
from lure_update.starting_point import StartingPoint


def replay_source(
    session: Session, model: ModelRow, megabatch_index: int, start: VersionRef | None
) -> VersionRow | None:
    """The version whose replay memory an update of ``megabatch_index`` continues.

    The newest version trained on an earlier mega-batch since the last manual promotion (its job
    ran under the model's current ``promotion_epoch``), whether the gate passed or held it: a held
    mega-batch's data stays in the stream. Without one, the starting point itself: a promotion
    (rollback) resumes from the promoted version's exact state, data included.
    """
    newest = session.scalar(
        select(VersionRow)
        .join(MegaBatchRow, MegaBatchRow.id == VersionRow.megabatch_id)
        .join(JobRow, JobRow.megabatch_id == VersionRow.megabatch_id)
        .where(
            VersionRow.model_id == model.id,
            MegaBatchRow.index < megabatch_index,
            JobRow.promotion_epoch == model.promotion_epoch,
        )
        .order_by(MegaBatchRow.index.desc(), VersionRow.number.desc())
        .limit(1)
    )
    if newest is not None or start is None:
        return newest
    return version_row(session, model.id, start.number)


def train_ids_digest(ids: np.ndarray) -> str:
    """sha256 of the sample references trained on, in training order: the audit compares it."""
    return hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()


@dataclass
class UpdateInputs:
    """Everything one update of one mega-batch reads, gathered in one short session."""

    model_id: int
    recipe: Recipe
    megabatch_index: int
    start: StartingPoint
    replay: Replay  # the stream's replay memory before this mega-batch joins it
    replay_from: int | None  # the version whose replay memory that is
    parent_cer: int
    data: MegaBatchData
    train_rows: np.ndarray  # the mega-batch's train rows (they join the replay memory)
    # chunks whose blob is missing or altered → why; their rows are left out of everything
    lost_chunks: dict[int, str] = field(default_factory=dict)

    @property
    def seeds(self) -> UpdateSeeds:
        return UpdateSeeds.derive(self.recipe.seed, self.megabatch_index)

    @property
    def train_ids(self) -> np.ndarray:
        """The sample references trained on: replay first, then the mega-batch's train rows."""
        return np.concatenate(
            [self.replay.ids(), sample_ids(self.megabatch_index, self.train_rows)]
        ).astype(np.int64)

    def replay_after(self) -> dict:
        """The replay memory once this mega-batch joined it (recorded on every sibling)."""
        replay = make_replay(self.recipe.replay_spec, seed=self.recipe.replay_seed)
        replay.load_state_dict(self.replay.state_dict())
        replay.observe(sample_ids(self.megabatch_index, self.train_rows), self.data.train_split.y)
        return replay.state_dict()

    def record(self) -> dict:
        """What a version records of its inputs, so an audit can rebuild it."""
        return {
            "parent": self.start.version.number if self.start.version else None,
            "replay_from": self.replay_from,
            "megabatch": self.megabatch_index,
            "train_samples": len(self.train_ids),
            "train_ids_sha256": train_ids_digest(self.train_ids),
            "torch_threads": torch.get_num_threads(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            **({"lost_chunks": sorted(self.lost_chunks)} if self.lost_chunks else {}),
        }


def gather_inputs(
    session: Session,
    blobs: BlobStore,
    model_id: int,
    recipe: Recipe,
    megabatch: MegaBatchRow,
    start: StartingPoint,
    replay_from: VersionRow | None,
) -> UpdateInputs:
    """The mega-batch, the replay memory of ``replay_from``, validation and test data."""
    replay = make_replay(recipe.replay_spec, seed=recipe.replay_seed)
    if replay_from is not None:
        replay.load_state_dict(replay_from.replay_state)
    parent_cer = cumulative_errors(session, start.version)
    reader = SampleReader(session, blobs, model_id)
    lost = reader.lost_among(replay.ids())
    if len(lost):  # their chunk's blob is gone: the memory drops them for good
        replay.forget(lost)
    train_rows = reader.train_rows(megabatch)
    if not len(train_rows):
        raise LostData(
            f"every training row of mega-batch {megabatch.index} was lost with its chunks' blobs "
            f"({'; '.join(reader.lost.values())}); nothing new to learn from"
        )
    data = reader.update_data(megabatch, replay.ids())
    return UpdateInputs(
        model_id,
        recipe,
        megabatch.index,
        start,
        replay,
        replay_from.number if replay_from is not None else None,
        parent_cer,
        data,
        train_rows,
        dict(reader.lost),
    )


def cumulative_errors(session: Session, version: VersionRef | None) -> int:
    """The CER a version ended with: its child's count continues from it."""
    if version is None:
        return 0
    return session.scalar(select(MetricsRow.cer).where(MetricsRow.version_id == version.id)) or 0


def starting_from(session: Session, inputs: UpdateInputs, start: StartingPoint) -> UpdateInputs:
    """The same update (data, replay, seeds) from another starting point: a challenger
    lineage's own head instead of the live version."""
    if start.version == inputs.start.version:
        return inputs
    return replace(inputs, start=start, parent_cer=cumulative_errors(session, start.version))


class LostData(RuntimeError):
    """A mega-batch has no readable training rows left (every one of its chunks' blobs is
    lost)."""
