"""Labels by prediction id (issue 28 §2): logged images become training samples of the open
mega-batch without being uploaded again, and the labels measure the live model on real traffic.

Each item is judged on its own: an unknown or pruned id is a 404 for that item, a label out of
range a 422, a second label for an already labelled prediction a 409, and the same pair again a
200 that stores nothing. The accepted items become one chunk through the ingest path (so the
stream, mega-batches and jobs see them as any chunk).

Labels are *claimed* before the chunk is stored: one transaction sets each accepted row's label
where it has none yet, with the chunk's Idempotency-Key (derived from the claimed pairs). Two
concurrent requests naming one prediction therefore store it once (the second's claim finds it
labelled and answers 409 or 200), and a request that dies between claim and chunk is finished by
the next one naming those predictions: the rows name the key, and the ingest path stores a key
once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import BlobStore
from lure_core.database import rows_changed
from lure_core.records import PredictionRow
from service.ingest.chunks import Ingestor, IngestResult


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


def _read(
    sessions: sessionmaker[Session], model_id: int, ids: set[str]
) -> dict[str, PredictionRow]:
    with sessions() as session:
        found = session.scalars(
            select(PredictionRow).where(
                PredictionRow.model_id == model_id, PredictionRow.id.in_(ids)
            )
        ).all()
        session.expunge_all()
    return {row.id: row for row in found}


def record_feedback(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    ingestor: Ingestor,
    model_id: int,
    num_classes: int,
    pairs: list[tuple[str, int]],
) -> FeedbackResult:
    ids = {prediction_id for prediction_id, _ in pairs}
    rows = _read(sessions, model_id, ids)
    results, accepted = _judge(pairs, rows, num_classes)
    key, won = _claim(sessions, accepted)
    if len(won) < len(accepted):  # another request labelled some first: judge those again
        rows = _read(sessions, model_id, ids)
        again, _ = _judge(pairs, {i: r for i, r in rows.items() if i not in won}, num_classes)
        results = [
            mine if mine.prediction_id in won else new
            for mine, new in zip(results, again, strict=True)
        ]
    outcome = FeedbackResult(results)
    unfinished = {
        row.feedback_key
        for row in rows.values()
        if row.chunk_id is None and row.feedback_key not in (None, key)
    }
    for earlier in sorted(unfinished):  # claimed by a request that has not stored them (yet)
        stored = _store(sessions, blobs, ingestor, model_id, earlier)
        if not stored.replayed:  # it had died: this request stored them
            _report_stored(outcome.items, rows, earlier)
            outcome.ingested = stored
    if key is not None:
        outcome.ingested = _store(sessions, blobs, ingestor, model_id, key)
    return outcome


def _report_stored(items: list[ItemResult], rows: dict[str, PredictionRow], key: str) -> None:
    for item in items:
        row = rows.get(item.prediction_id)
        if item.status == 200 and row is not None and row.feedback_key == key:
            item.status, item.detail = 201, "stored as a training sample (an earlier request died)"


def _claim(
    sessions: sessionmaker[Session], accepted: list[tuple[PredictionRow, int]]
) -> tuple[str | None, set[str]]:
    """Label the accepted rows that are still unlabelled, in one transaction, naming the chunk
    they go into: its key (None when no row was still unlabelled) and the ids claimed."""
    if not accepted:
        return None, set()
    now = datetime.now(UTC)
    with sessions.begin() as session:
        won = [
            (row, label)
            for row, label in accepted
            if rows_changed(
                session.execute(
                    update(PredictionRow)
                    .where(PredictionRow.id == row.id, PredictionRow.label.is_(None))
                    .values(label=label, labelled_at=now)
                )
            )
        ]
        if not won:
            return None, set()
        key = _idempotency_key(won)
        ids = {row.id for row, _ in won}
        session.execute(
            update(PredictionRow).where(PredictionRow.id.in_(ids)).values(feedback_key=key)
        )
    return key, ids


def _claimed(sessions: sessionmaker[Session], key: str) -> list[PredictionRow]:
    with sessions() as session:
        rows = session.scalars(
            select(PredictionRow)
            .where(PredictionRow.feedback_key == key)
            .order_by(PredictionRow.id)
        ).all()
        session.expunge_all()
    return list(rows)


def _store(
    sessions: sessionmaker[Session], blobs: BlobStore, ingestor: Ingestor, model_id: int, key: str
) -> IngestResult:
    """The claimed rows' chunk, once whoever stores it (the ingest path keeps one chunk per key)."""
    claimed = _claimed(sessions, key)
    images = np.stack([blobs.read_arrays(r.image_key, r.image_sha256)["x"][0] for r in claimed])
    labels = np.array([row.label for row in claimed], dtype=np.int64)
    ingested = ingestor.add_chunk(model_id, "train", images, labels, key)
    with sessions.begin() as session:
        session.execute(
            update(PredictionRow)
            .where(PredictionRow.feedback_key == key, PredictionRow.chunk_id.is_(None))
            .values(chunk_id=ingested.chunk.id)
        )
    return ingested


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
