"""The prediction log (issue 28 §1): a sample of ``/predict`` answers kept, off the request path.

Why off the path: logging must never slow or fail ``/predict``. The request only puts its
entries on a bounded queue (``offer``, which never blocks); one writer thread per API process
stores each image as a blob and the rows in one transaction per batch. When the queue is full
the entries are dropped and counted (``lure_prediction_log_dropped_total``), never waited for.
The same thread prunes each model's log by age (``keep_days``) and count (``max_rows``).

The image is kept as the model saw it (decoded and resized to its input), so a label that
arrives later by prediction id (``/feedback``) makes a training sample without a re-upload.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import BlobStore
from lure_core.records import ModelRow, PredictionRow, ShadowAnswerRow

log = logging.getLogger("lure.prediction_log")
TOP_K = 5


def new_prediction_ids(count: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(count)]


@dataclass(frozen=True)
class Uncertainty:
    confidence: float
    margin: float
    entropy: float


def uncertainty(probabilities: np.ndarray) -> Uncertainty:
    """Top-1 probability, its margin over the runner-up and the entropy (nats): what the label
    queue ranks by."""
    p = np.asarray(probabilities, dtype=np.float64)
    ranked = np.sort(p)[::-1]
    second = ranked[1] if len(ranked) > 1 else 0.0
    entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    return Uncertainty(float(ranked[0]), float(ranked[0] - second), entropy)


@dataclass(frozen=True)
class LoggedPrediction:
    id: str
    model_id: int
    version: int
    image: np.ndarray  # as the model saw it
    probabilities: np.ndarray
    created_at: datetime


def _row(entry: LoggedPrediction, key: str, sha: str) -> dict:
    """The entry's ``predictions`` row as plain values, for one bulk INSERT per batch (no ORM
    object per row: the writer thread shares the API process's CPU with /predict)."""
    order = np.argsort(-entry.probabilities, kind="stable")[:TOP_K]
    measure = uncertainty(entry.probabilities)
    return {
        "id": entry.id,
        "model_id": entry.model_id,
        "version_number": entry.version,
        "created_at": entry.created_at,
        "image_key": key,
        "image_sha256": sha,
        "top_k": [[int(i), round(float(entry.probabilities[i]), 6)] for i in order],
        "predicted": int(order[0]),
        "confidence": measure.confidence,
        "margin": measure.margin,
        "entropy": measure.entropy,
    }


def image_key(model_id: int, image: np.ndarray) -> str:
    """Content-addressed: the same image predicted twice is stored once."""
    digest = hashlib.sha256(str(image.shape).encode() + image.tobytes()).hexdigest()
    return f"models/{model_id}/predictions/{digest}.npz"


class PredictionLog:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        on_dropped=lambda model, count: None,
        on_logged=lambda model, count: None,
        on_stored=lambda entries: None,
        capacity: int = 10_000,
        prune_every: float = 60.0,
    ) -> None:
        self.sessions, self.blobs = sessions, blobs
        self.on_dropped, self.on_logged = on_dropped, on_logged
        self.on_stored = on_stored  # the shadow versions answer what was stored
        self.prune_every = prune_every
        self._queue: queue.Queue[tuple[str, LoggedPrediction]] = queue.Queue(capacity)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def offer(self, model: str, entries: list[LoggedPrediction]) -> None:
        """Queue ``entries``; never blocks: what does not fit is dropped and counted."""
        for number, entry in enumerate(entries):
            try:
                self._queue.put_nowait((model, entry))
            except queue.Full:
                self.on_dropped(model, len(entries) - number)
                return

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued entry is stored (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    def _run(self) -> None:
        pruned = time.monotonic()
        while not self._stop.is_set() or not self._queue.empty():
            batch = self._take(max_items=256)
            if batch:
                self._store_safely(batch)
            if time.monotonic() - pruned >= self.prune_every:
                pruned = time.monotonic()
                self._prune_safely()

    def _take(self, max_items: int) -> list[tuple[str, LoggedPrediction]]:
        try:
            batch = [self._queue.get(timeout=0.25)]
        except queue.Empty:
            return []
        while len(batch) < max_items:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _store_safely(self, batch: list[tuple[str, LoggedPrediction]]) -> None:
        entries = [entry for _, entry in batch]
        try:
            self.store(entries)
        except Exception:  # the database or store away: these entries are lost, counted
            log.warning("could not store %d logged predictions", len(batch), exc_info=True)
            for model, count in _per_model(batch).items():
                self.on_dropped(model, count)
        else:
            self.on_stored(entries)
            for model, count in _per_model(batch).items():
                self.on_logged(model, count)
        finally:
            for _ in batch:
                self._queue.task_done()

    def store(self, entries: list[LoggedPrediction]) -> None:
        """Images first, then the rows naming them (the blob sweep removes an image whose row
        never committed)."""
        rows = []
        for entry in entries:
            key = image_key(entry.model_id, entry.image)
            sha = self.blobs.write_arrays(key, x=entry.image[None])
            rows.append(_row(entry, key, sha))
        with self.sessions.begin() as session:
            session.execute(insert(PredictionRow), rows)

    def _prune_safely(self) -> None:
        try:
            prune_all(self.sessions, self.blobs)
        except Exception:
            log.warning("pruning the prediction log failed; trying again later", exc_info=True)


def _per_model(batch: list[tuple[str, LoggedPrediction]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for model, _ in batch:
        counts[model] = counts.get(model, 0) + 1
    return counts


def prune_all(sessions: sessionmaker[Session], blobs: BlobStore) -> int:
    """Each model's log cut to its ``keep_days`` and ``max_rows``; a model that stopped logging
    keeps what it has until it is deleted. Returns the rows removed."""
    with sessions() as session:
        models = [(m.id, m.recipe.log_predictions) for m in session.scalars(select(ModelRow))]
    return sum(prune_model(sessions, blobs, mid, policy) for mid, policy in models if policy)


def prune_model(sessions: sessionmaker[Session], blobs: BlobStore, model_id: int, policy) -> int:
    cutoff = datetime.now(UTC) - timedelta(days=float(policy.get("keep_days", 30.0)))
    with sessions.begin() as session:
        doomed = set(
            session.scalars(
                select(PredictionRow.id).where(
                    PredictionRow.model_id == model_id, PredictionRow.created_at < cutoff
                )
            )
        )
        doomed |= set(_beyond_count(session, model_id, int(policy.get("max_rows", 100_000))))
        keys = set(
            session.scalars(select(PredictionRow.image_key).where(PredictionRow.id.in_(doomed)))
        )
        session.execute(delete(ShadowAnswerRow).where(ShadowAnswerRow.prediction_id.in_(doomed)))
        session.execute(delete(PredictionRow).where(PredictionRow.id.in_(doomed)))
        still = set(
            session.scalars(
                select(PredictionRow.image_key).where(PredictionRow.image_key.in_(keys))
            )
        )
    for key in keys - still:  # after the commit: a crash leaves unnamed images, swept later
        blobs.delete(key)
    return len(doomed)


def _beyond_count(session: Session, model_id: int, max_rows: int) -> list[str]:
    total = session.scalar(
        select(func.count()).select_from(PredictionRow).where(PredictionRow.model_id == model_id)
    )
    if not total or total <= max_rows:
        return []
    return list(
        session.scalars(
            select(PredictionRow.id)
            .where(PredictionRow.model_id == model_id)
            .order_by(PredictionRow.created_at, PredictionRow.id)
            .limit(total - max_rows)
        )
    )
