"""Drift checks on logged traffic (issue 28 §4), run by the prediction log's writer thread.

Every ``check_every`` answers a process logged for a model, it compares the live version's last
``window`` logged answers (from the database, so every API replica's traffic counts) with that
version's reference (``lure_core/drift.py``) and records the check. A drifted check seals the
open mega-batch early when the policy says so, at most once per live version: the data that came
with the new traffic is learnt now instead of when the mega-batch fills.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lure_core.drift import Answers, DriftPolicy, DriftResult, compare
from lure_core.model_store import live_version
from lure_core.records import DriftCheckRow, ModelRow, PredictionRow
from service.ingest.chunks import Ingestor
from service.serving.ttl_cache import TtlCache

log = logging.getLogger("lure.drift")


def drift_policy(model: ModelRow) -> DriftPolicy | None:
    """The model's drift policy; None when it logs nothing or turned drift off (``drift: null``).
    A log set up before drift checks existed gets the defaults."""
    logging_policy = model.recipe.log_predictions
    if not logging_policy or ("drift" in logging_policy and logging_policy["drift"] is None):
        return None
    return DriftPolicy.from_dict(logging_policy.get("drift"))


class DriftMonitor:
    def __init__(self, sessions: sessionmaker[Session], ingestor: Ingestor) -> None:
        self.sessions, self.ingestor = sessions, ingestor
        self._since: dict[str, int] = defaultdict(int)
        self._checked: dict[str, float] = {}  # monotonic time of each model's last check
        # each model's policy, boxed (None is a policy: drift off), read at most every 5 s
        self._policies: TtlCache[str, tuple[DriftPolicy | None]] = TtlCache(5.0)
        self._lock = threading.Lock()

    def logged(self, model: str, count: int) -> None:
        """Count ``count`` newly stored answers; check when a model has gathered enough."""
        with self._lock:
            self._since[model] += count
            gathered = self._since[model]
        policy = self._policy(model)
        if policy is None or gathered < policy.check_every:
            return
        if time.monotonic() - self._checked.get(model, -math.inf) < policy.min_seconds:
            return
        with self._lock:
            self._since[model], self._checked[model] = 0, time.monotonic()
        try:
            check_model(self.sessions, self.ingestor, model, policy)
        except Exception:  # a check never stops the log; the next one tries again
            log.warning("drift check of %s failed", model, exc_info=True)

    def _policy(self, model: str) -> DriftPolicy | None:
        boxed = self._policies.get(model)
        if boxed is None:
            with self.sessions() as session:
                row = session.scalar(select(ModelRow).where(ModelRow.name == model))
                boxed = (drift_policy(row) if row else None,)
            self._policies.put(model, boxed)
        return boxed[0]


def check_model(
    sessions: sessionmaker[Session], ingestor: Ingestor, name: str, policy: DriftPolicy
) -> DriftCheckRow | None:
    """One check of ``name``'s live version; None while it has no reference or a short window."""
    with sessions() as session:
        model = session.scalar(select(ModelRow).where(ModelRow.name == name))
        if model is None or model.live_version is None:
            return None
        version = live_version(session, model)
        if version is None or not version.drift_reference:
            return None
        window = recent_answers(session, model.id, version.number, policy.window)
        if len(window) < policy.window:
            return None
        reference = Answers.of(**version.drift_reference)
        result = compare(reference, window, policy.p_value)
        already = _sealed_for(session, model.id, version.number)
        model_id, number = model.id, version.number
    sealed = None
    if result.drifted and policy.seal and not already:
        sealed = _seal(ingestor, model_id)
    return _record(sessions, model_id, number, len(reference), len(window), result, sealed)


def recent_answers(session: Session, model_id: int, version: int, limit: int) -> Answers:
    rows = session.execute(
        select(PredictionRow.confidence, PredictionRow.predicted)
        .where(PredictionRow.model_id == model_id, PredictionRow.version_number == version)
        .order_by(PredictionRow.created_at.desc())
        .limit(limit)
    ).all()
    return Answers.of([r.confidence for r in rows], [r.predicted for r in rows])


def latest_drift(session: Session, model_id: int) -> tuple[DriftCheckRow | None, int]:
    """The model's latest check and how many of its checks drifted."""
    latest = session.scalar(
        select(DriftCheckRow)
        .where(DriftCheckRow.model_id == model_id)
        .order_by(DriftCheckRow.id.desc())
        .limit(1)
    )
    drifted = session.scalar(
        select(func.count()).where(DriftCheckRow.model_id == model_id, DriftCheckRow.drifted)
    )
    return latest, drifted or 0


def _sealed_for(session: Session, model_id: int, version: int) -> bool:
    return (
        session.scalar(
            select(DriftCheckRow.id).where(
                DriftCheckRow.model_id == model_id,
                DriftCheckRow.version_number == version,
                DriftCheckRow.sealed_megabatch.is_not(None),
            )
        )
        is not None
    )


def _seal(ingestor: Ingestor, model_id: int) -> int | None:
    sealed = ingestor.seal_open(model_id)
    if sealed is None:  # nothing open to seal: the drift is recorded, the stream goes on
        return None
    log.warning("traffic drifted: mega-batch %d sealed early", sealed[0].index)
    return sealed[0].index


def _record(
    sessions: sessionmaker[Session],
    model_id: int,
    version: int,
    reference_rows: int,
    window_rows: int,
    result: DriftResult,
    sealed: int | None,
) -> DriftCheckRow:
    row = DriftCheckRow(
        model_id=model_id,
        version_number=version,
        window_rows=window_rows,
        reference_rows=reference_rows,
        confidence_statistic=result.confidence_statistic,
        confidence_p_value=result.confidence_p_value,
        class_p_value=result.class_p_value,
        drifted=result.drifted,
        sealed_megabatch=sealed,
    )
    with sessions.begin() as session:
        session.add(row)
    if result.drifted:
        log.warning(
            "drift in model %d version %d: confidence KS D = %.3f (p = %.2g), classes p = %.2g",
            model_id,
            version,
            result.confidence_statistic,
            result.confidence_p_value,
            result.class_p_value,
        )
    return row
