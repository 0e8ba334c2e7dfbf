"""Labels by prediction id (issue 28 §2): logged images become training samples of the open
mega-batch without being uploaded again, and the labels measure the live model on real traffic.

Each item is judged on its own: an unknown or pruned id is a 404 for that item, a label out of
range a 422, a second label for an already labelled prediction a 409, and the same pair again a
200 that stores nothing. The accepted items become one chunk through the ingest path (so the
stream, mega-batches and jobs see them as any chunk); its Idempotency-Key is derived from the
accepted pairs, so a retried request stores them once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import BlobStore
from lure_core.records import PredictionRow
from service.ingest import Ingestor, IngestResult


@dataclass
class ItemResult:
    prediction_id: str
    status: int
    detail: str


@dataclass
class FeedbackResult:
    items: list[ItemResult] = field(default_factory=list)
    ingested: IngestResult | None = None

    @property
    def accepted(self) -> list[ItemResult]:
        return [item for item in self.items if item.status == 201]


def _judge(pairs: list[tuple[str, int]], rows: dict[str, PredictionRow], num_classes: int):
    """Each item's verdict, in order; the accepted ones as (row, label)."""
    results, accepted, given = [], [], {}
    for prediction_id, label in pairs:
        row = rows.get(prediction_id)
        earlier = given.get(prediction_id, row.label if row is not None else None)
        if row is None:
            results.append(ItemResult(prediction_id, 404, "unknown prediction id: never logged "
                                      "(not sampled, or dropped) or pruned"))  # fmt: skip
        elif not 0 <= label < num_classes:
            results.append(ItemResult(prediction_id, 422, f"label {label} is outside "
                                      f"0..{num_classes - 1}"))  # fmt: skip
        elif earlier == label:
            results.append(ItemResult(prediction_id, 200, "already labelled: nothing stored"))
        elif earlier is not None:
            results.append(ItemResult(prediction_id, 409, f"already labelled {earlier}"))
        else:
            given[prediction_id] = label
            accepted.append((row, label))
            results.append(ItemResult(prediction_id, 201, "stored as a training sample"))
    return results, accepted


def _idempotency_key(accepted: list[tuple[PredictionRow, int]]) -> str:
    pairs = ",".join(f"{row.id}:{label}" for row, label in sorted(accepted, key=lambda a: a[0].id))
    return "feedback-" + hashlib.sha256(pairs.encode()).hexdigest()[:40]


def record_feedback(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    ingestor: Ingestor,
    model_id: int,
    num_classes: int,
    pairs: list[tuple[str, int]],
) -> FeedbackResult:
    with sessions() as session:
        found = session.scalars(
            select(PredictionRow).where(
                PredictionRow.model_id == model_id,
                PredictionRow.id.in_({prediction_id for prediction_id, _ in pairs}),
            )
        ).all()
        rows = {row.id: row for row in found}
        session.expunge_all()
    results, accepted = _judge(pairs, rows, num_classes)
    outcome = FeedbackResult(results)
    if not accepted:
        return outcome
    images = np.stack([blobs.read_arrays(r.image_key, r.image_sha256)["x"][0] for r, _ in accepted])
    labels = np.array([label for _, label in accepted], dtype=np.int64)
    key = _idempotency_key(accepted)
    outcome.ingested = ingestor.add_chunk(model_id, "train", images, labels, key)
    _mark_labelled(sessions, accepted, outcome.ingested.chunk.id)
    return outcome


def _mark_labelled(sessions, accepted: list[tuple[PredictionRow, int]], chunk_id: int) -> None:
    now = datetime.now(UTC)
    with sessions.begin() as session:
        for row, label in accepted:
            session.execute(
                update(PredictionRow)
                .where(PredictionRow.id == row.id, PredictionRow.label.is_(None))
                .values(label=label, labelled_at=now, chunk_id=chunk_id)
            )


def live_accuracy(session: Session, model_id: int) -> list[dict]:
    """Per answering version: labelled predictions and the share the logged answer got right."""
    correct = func.sum(case((PredictionRow.label == PredictionRow.predicted, 1), else_=0))
    rows = session.execute(
        select(PredictionRow.version_number, func.count(), correct)
        .where(PredictionRow.model_id == model_id, PredictionRow.label.is_not(None))
        .group_by(PredictionRow.version_number)
        .order_by(PredictionRow.version_number)
    ).all()
    return [
        {"version": v, "labelled": n, "correct": int(c), "accuracy": round(int(c) / n, 6)}
        for v, n, c in rows
    ]


QUEUE_ORDER = {
    "margin": PredictionRow.margin.asc(),  # top-1 barely ahead of top-2
    "entropy": PredictionRow.entropy.desc(),  # probability spread over many labels
    "least_confidence": PredictionRow.confidence.asc(),  # lowest top-1 probability
}


def label_queue(
    session: Session, model_id: int, by: str, limit: int, version: int | None = None
) -> list[PredictionRow]:
    """Logged predictions not yet labelled, most uncertain first (ties: newest first); one per
    image, and none of an image already labelled under another prediction id (an image served
    twice is labelled once). ``version``: only that version's answers (the live one's say what
    the model now finds hard; older answers rank by what an older model found hard)."""
    labelled = (
        select(PredictionRow.image_key)
        .where(PredictionRow.model_id == model_id, PredictionRow.label.is_not(None))
        .scalar_subquery()
    )
    query = select(PredictionRow).where(
        PredictionRow.model_id == model_id,
        PredictionRow.label.is_(None),
        PredictionRow.image_key.not_in(labelled),
    )
    if version is not None:
        query = query.where(PredictionRow.version_number == version)
    ordered = query.order_by(QUEUE_ORDER[by], PredictionRow.created_at.desc(), PredictionRow.id)
    queue, seen = [], set()
    for row in session.scalars(ordered.execution_options(yield_per=500)):
        if row.image_key not in seen:
            seen.add(row.image_key)
            queue.append(row)
            if len(queue) == limit:
                break
    return queue
