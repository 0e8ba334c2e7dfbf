"""The data gate's step of an update: before training, the live model judges the new mega-batch.

A mega-batch out of line with the stream (``lure_engine/data_gate.py``) is quarantined under the
default policy: its job ends without training, the mega-batch leaves the gate split and never
joins the replay memory, and ``/readyz`` says so until an admin releases or discards it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.megabatch_store import quarantine
from lure_core.model_store import model_name
from lure_core.records import MegaBatchRow, MegaBatchState, MetricsRow, VersionRow
from lure_engine.data_gate import (
    AgreementEvidence,
    DataVerdict,
    Scored,
    conflicting_labels,
    judge_data,
    label_skew_p_value,
    pixel_hashes,
)
from lure_engine.label_agreement import Agreement, best_mapping
from lure_engine.metrics import predict_logits
from lure_engine.pipeline import as_tensors
from lure_update.context import UpdateContext
from lure_update.inputs import UpdateInputs
from lure_update.training import starting_model

log = logging.getLogger("lure.worker")
RECENT = 3  # mega-batches the new one is compared with


def recent_scores(session: Session, inputs: UpdateInputs) -> Scored | None:
    """The prequential accuracies of the last mega-batches (each measured by the model live when
    it was trained, on the whole mega-batch; held versions count: their parent measured it),
    pooled. Versions trained from random weights say nothing about the data and are left out."""
    rows = session.execute(
        select(MegaBatchRow.index, MetricsRow.prequential_accuracy, MegaBatchRow.n_samples)
        .join(VersionRow, VersionRow.megabatch_id == MegaBatchRow.id)
        .join(MetricsRow, MetricsRow.version_id == VersionRow.id)
        .where(
            MegaBatchRow.model_id == inputs.model_id,
            MegaBatchRow.index < inputs.megabatch_index,
            VersionRow.parent_number.is_not(None),
            MetricsRow.prequential_accuracy.is_not(None),
        )
        .order_by(MegaBatchRow.index.desc())
    ).all()
    recent: dict[int, tuple[float, int]] = {}
    for index, accuracy, samples in rows:  # siblings share a parent: one measurement each
        if index not in recent and len(recent) < RECENT:
            recent[index] = (accuracy * samples, samples)
    if not recent:
        return None
    return Scored(round(sum(c for c, _ in recent.values())), sum(n for _, n in recent.values()))


def recent_agreement(session: Session, inputs: UpdateInputs) -> Agreement | None:
    """The live model's agreement with the last mega-batches it judged (each by the model live
    then), pooled; a quarantined or discarded one is not "recent data". None before any judged
    mega-batch recorded its counts (they are kept since this release)."""
    judged = session.scalars(
        select(MegaBatchRow)
        .where(
            MegaBatchRow.model_id == inputs.model_id,
            MegaBatchRow.index < inputs.megabatch_index,
            MegaBatchRow.data_gate.is_not(None),
            MegaBatchRow.state.not_in((MegaBatchState.QUARANTINED, MegaBatchState.DISCARDED)),
        )
        .order_by(MegaBatchRow.index.desc())
    )
    pooled, count = None, 0
    for megabatch in judged:
        numbers = (megabatch.data_gate or {}).get("numbers") or {}
        agreement = Agreement.from_dict(numbers.get("agreement") or {})
        if agreement is None:
            continue
        pooled, count = agreement if pooled is None else pooled + agreement, count + 1
        if count == RECENT:
            break
    return pooled


def _stream_seen(inputs: UpdateInputs) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels the stream already holds: the replay memory and earlier validation."""
    data = inputs.data
    replayed = len(data.train.y) - len(data.train_split.y)
    earlier = len(data.val.y) - data.val_own_rows
    images = np.concatenate([data.train.x[:replayed], data.val.x[:earlier]])
    return images, np.concatenate([data.train.y[:replayed], data.val.y[:earlier]])


def judge_megabatch(
    recent: tuple[Scored | None, Agreement | None], inputs: UpdateInputs, device: torch.device
) -> DataVerdict | None:
    """None: nothing to judge with (no live model yet). ``recent``: the recent mega-batches'
    prequential scores and agreement counts."""
    if inputs.start.version is None or inputs.start.state is None:
        return None
    data, recipe = inputs.data, inputs.recipe
    x, _ = as_tensors(data.megabatch, device, recipe.preprocessing)
    predicted = predict_logits(starting_model(inputs).to(device), x).argmax(1).cpu().numpy()
    labels = data.megabatch.y
    new = Scored(int((predicted == labels).sum()), len(labels))
    agreement = AgreementEvidence(
        Agreement.of(predicted, labels, recipe.num_classes),
        recent[1],
        best_mapping(predicted, labels, recipe.num_classes),
    )
    images, seen = _stream_seen(inputs)
    skew = label_skew_p_value(labels, seen, recipe.num_classes) if len(seen) else None
    stream = dict(zip(pixel_hashes(images), seen.tolist(), strict=True))
    conflicts = conflicting_labels(data.megabatch.x, labels, stream)
    return judge_data(new, recent[0], skew, conflicts, recipe.data_policy, agreement)


def _megabatch(session: Session, inputs: UpdateInputs) -> MegaBatchRow:
    row = session.scalar(
        select(MegaBatchRow).where(
            MegaBatchRow.model_id == inputs.model_id,
            MegaBatchRow.index == inputs.megabatch_index,
        )
    )
    assert row is not None  # a job's mega-batch goes only with its model
    return row


def check_data(ctx: UpdateContext, job_id: int, inputs: UpdateInputs, device) -> bool:
    """Judge (reads, then the live model's pass with no transaction open) and record in one
    short transaction; True: the mega-batch is quarantined and must not be trained on."""
    policy = inputs.recipe.data_policy
    with ctx.sessions() as session:
        released = (_megabatch(session, inputs).data_gate or {}).get("released_at")
        recent = (recent_scores(session, inputs), recent_agreement(session, inputs))
    if policy.mode == "off" or released:
        return False  # an admin released it: trained as it is
    verdict = judge_megabatch(recent, inputs, device)
    if verdict is None:
        return False
    quarantined = verdict.out_of_line and policy.mode == "quarantine"
    action = "quarantined" if quarantined else "warned" if verdict.out_of_line else "passed"
    with ctx.sessions.begin() as session:
        megabatch = _megabatch(session, inputs)
        megabatch.data_gate = {
            "verdict": action,
            "mode": policy.mode,
            **verdict.to_dict(),
            "at": datetime.now(UTC).isoformat(),
        }
        if quarantined:
            quarantine(session, megabatch, job_id)
    if action != "passed" or verdict.flags:
        _log_verdict(model_name(ctx.sessions, inputs.model_id), inputs, action, verdict)
    return quarantined


def _log_verdict(name: str, inputs: UpdateInputs, action: str, verdict: DataVerdict) -> None:
    log.warning(
        "mega-batch %s of model %s %s by the data gate: %s",
        inputs.megabatch_index,
        name,
        action,
        "; ".join(verdict.reasons + verdict.flags),
        extra={"model_id": inputs.model_id, "megabatch": inputs.megabatch_index},
    )
