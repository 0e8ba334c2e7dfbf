"""Shadow versions (issue 28 §5): versions that answer the logged requests too, never returned.

Why off the request path: a shadow must not slow or fail ``/predict``. The prediction log's
writer thread, once it has stored a batch of logged answers, runs each of the model's shadow
versions on those images (as the model saw them) and stores what each said. The record a team
decides a promotion on: how often the shadow agrees with the version that answered, and how
each did on the requests that later got a label through ``/feedback``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, sessionmaker

from lure_core.recipe import Recipe
from lure_core.records import ModelRow, PredictionRow, ShadowAnswerRow, VersionRow

if TYPE_CHECKING:  # the record and the checks need no torch; only the runner loads models
    from service.serving.inference import ModelCache

log = logging.getLogger("lure.shadow")


def unservable_versions(session: Session, model_id: int, numbers: list[int]) -> list[int]:
    """Those of ``numbers`` that cannot shadow: no such version, or its checkpoint is damaged
    or pruned."""
    servable = set(
        session.scalars(
            select(VersionRow.number).where(
                VersionRow.model_id == model_id,
                VersionRow.number.in_(numbers),
                VersionRow.damaged.is_(None),
                VersionRow.pruned_at.is_(None),
            )
        )
    )
    return [n for n in numbers if n not in servable]


class ShadowRunner:
    def __init__(self, sessions: sessionmaker[Session], models: ModelCache) -> None:
        self.sessions, self.models = sessions, models

    def answer(self, entries) -> None:
        """Run every shadow version of each model in ``entries`` (stored logged predictions)."""
        by_model: dict[int, list] = defaultdict(list)
        for entry in entries:
            by_model[entry.model_id].append(entry)
        for model_id, logged in by_model.items():
            try:
                self._answer_model(model_id, logged)
            except Exception:  # a shadow never stops the log: its answers for these are missing
                log.warning("shadow versions of model %d failed", model_id, exc_info=True)

    def _answer_model(self, model_id: int, logged: list) -> None:
        with self.sessions() as session:
            model = session.get(ModelRow, model_id)
            if model is None or not model.recipe.shadow:
                return
            recipe = model.recipe
            versions = session.scalars(
                select(VersionRow).where(
                    VersionRow.model_id == model_id, VersionRow.number.in_(recipe.shadow)
                )
            ).all()
        rows = [
            row
            for version in versions
            if version.damaged is None and version.pruned_at is None
            for row in self._rows(recipe, version, logged)
        ]
        if rows:
            with self.sessions.begin() as session:
                session.add_all(rows)

    def _rows(self, recipe: Recipe, version: VersionRow, logged: list) -> list[ShadowAnswerRow]:
        """The shadow's answers on the entries another version answered."""
        others = [e for e in logged if e.version != version.number]
        if not others:
            return []
        engine = self.models.get(recipe, version)
        probabilities = engine.probabilities(np.stack([e.image for e in others]))
        return [
            ShadowAnswerRow(
                model_id=version.model_id,
                prediction_id=entry.id,
                version_number=version.number,
                predicted=int(p.argmax()),
                confidence=float(p.max()),
            )
            for entry, p in zip(others, probabilities, strict=True)
        ]


def shadow_record(session: Session, model_id: int) -> list[dict]:
    """Per version that has shadowed: answers given, agreement with the version that answered,
    and accuracy against the answering versions' on the same labelled requests."""
    agrees = case((ShadowAnswerRow.predicted == PredictionRow.predicted, 1), else_=0)
    labelled = PredictionRow.label.is_not(None)
    right = case((and_(labelled, ShadowAnswerRow.predicted == PredictionRow.label), 1), else_=0)
    served_right = case(
        (and_(labelled, PredictionRow.predicted == PredictionRow.label), 1), else_=0
    )
    rows = session.execute(
        select(
            ShadowAnswerRow.version_number,
            func.count(),
            func.sum(agrees),
            func.sum(case((labelled, 1), else_=0)),
            func.sum(right),
            func.sum(served_right),
        )
        .join(PredictionRow, PredictionRow.id == ShadowAnswerRow.prediction_id)
        .where(ShadowAnswerRow.model_id == model_id)
        .group_by(ShadowAnswerRow.version_number)
        .order_by(ShadowAnswerRow.version_number)
    ).all()
    return [_entry(*(int(v or 0) for v in row)) for row in rows]


def _entry(version: int, answered: int, agreed: int, labelled: int, right: int, served: int):
    return {
        "version": version,
        "answered": answered,
        "agreement": agreed / answered if answered else None,
        "labelled": labelled,
        "accuracy": right / labelled if labelled else None,
        "served_accuracy": served / labelled if labelled else None,
    }
