"""The state an update starts from: the live version's weights, forget-mask and replay memory.

A damaged live version (its files fail the sha256 check) is recorded, the model's live pointer
moves back to the newest intact ancestor, and the update starts from that one
(``lure_core/lineage.py`` states the rule).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sqlalchemy.orm import Session

from lure_core.blobs import ChecksumMismatch
from lure_core.checkpoints import load_state
from lure_core.lineage import clear_damage, record_damage, retreat_live, version_row
from lure_core.records import ModelRow, VersionRow
from worker.attempts import WorkerContext


class NoIntactCheckpoint(RuntimeError):
    """Every version in the live version's lineage failed its integrity check."""


@dataclass
class Learner:
    parent: VersionRow | None  # None: the first version, from the recipe's random init
    state: dict[str, torch.Tensor] | None
    mask: dict[str, torch.Tensor] | None


def _read(ctx: WorkerContext, version: VersionRow) -> Learner:
    state = load_state(ctx.blobs, version.checkpoint_key, version.checkpoint_sha256)
    mask = None
    if version.mask_key:
        mask = {
            k: v.bool()
            for k, v in load_state(ctx.blobs, version.mask_key, version.mask_sha256).items()
        }
    return Learner(version, state, mask)


def load_learner(ctx: WorkerContext, session: Session, model: ModelRow) -> Learner:
    """The live version's learner, or its newest intact ancestor's when it is damaged."""
    number, damaged = model.live_version, []
    while number is not None:
        version = version_row(session, model.id, number)
        try:
            learner = _read(ctx, version)
        except ChecksumMismatch as error:
            record_damage(ctx.sessions, version, str(error))
            damaged.append(f"version {number}: {error}")
            number = version.parent_number
            continue
        clear_damage(ctx.sessions, version)
        if damaged:
            retreat_live(ctx.sessions, model.id, model.live_version, version.number)
        return learner
    if damaged:
        raise NoIntactCheckpoint(f"no intact checkpoint to start from: {'; '.join(damaged)}")
    return Learner(None, None, None)
