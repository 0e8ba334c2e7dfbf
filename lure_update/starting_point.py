"""The point an update starts from: the live version's weights and forget-mask.

A damaged live version (its files fail the sha256 check) is recorded, the model's live pointer
moves back to the newest intact ancestor, and the update starts from that one
(``lure_update/damaged_versions.py`` states the rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from sqlalchemy.orm import Session

from lure_core.blobs import BlobStore
from lure_core.checkpoints import load_state
from lure_core.live_pointer import retreat as retreat_live
from lure_core.model_store import VersionRef, live_version
from lure_core.records import ModelRow, VersionRow
from lure_update.context import UpdateContext
from lure_update.damaged_versions import newest_intact


@dataclass
class StartingPoint:
    """The version an update starts from: its weights and forget-mask (None: the first update),
    and its SGD momentum when its recipe carried momentum."""

    version: VersionRef | None
    state: dict[str, torch.Tensor] | None
    mask: dict[str, torch.Tensor] | None
    momentum: dict[str, torch.Tensor] | None = None


def read_starting_point(blobs: BlobStore, version: VersionRow) -> StartingPoint:
    """Weights, mask and momentum of ``version``; ChecksumMismatch when a file fails its sha256."""
    state = load_state(blobs, version.checkpoint_key, version.checkpoint_sha256)
    mask = momentum = None
    if version.mask_key and version.mask_sha256:
        mask = {
            k: v.bool() for k, v in load_state(blobs, version.mask_key, version.mask_sha256).items()
        }
    if version.momentum_key and version.momentum_sha256:
        momentum = load_state(blobs, version.momentum_key, version.momentum_sha256)
    return StartingPoint(VersionRef.of(version), state, mask, momentum)


class NoIntactCheckpoint(RuntimeError):
    """Every version in the live version's lineage failed its integrity check."""


def load_starting_point(ctx: UpdateContext, session: Session, model: ModelRow) -> StartingPoint:
    """The live version, or its newest intact ancestor when it is damaged; none: the first."""
    if model.live_version is None:
        return StartingPoint(None, None, None)
    live = live_version(session, model)
    if live is None:
        raise NoIntactCheckpoint(f"live version {model.live_version} has no record")
    found = newest_intact(ctx.sessions, live, partial(read_starting_point, ctx.blobs))
    if found.version is None or found.value is None:
        if found.refused:
            raise NoIntactCheckpoint(
                f"no intact checkpoint to start from: {'; '.join(found.refused)}"
            )
        return StartingPoint(None, None, None)  # every version pruned: nothing to start from
    if found.refused:
        retreat_live(ctx.sessions, model.id, model.live_version, found.version.number)
    return found.value
