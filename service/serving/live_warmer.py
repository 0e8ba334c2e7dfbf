"""Each model's live version is loaded, and its inference engine chosen, soon after it goes live,
in a thread of the API process: the first ``/predict`` after a publish no longer pays for the
checkpoint read, the ONNX export and the engine timing in a user's request.

The API learns of a publish from the database (a worker publishes, possibly on another host), so
the warmer looks every ``LURE_WARM_LIVE_SECONDS`` at which versions are live. A version that fails
its sha256 is left to ``/predict``, which records the damage and falls back to an ancestor.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import ChecksumMismatch
from lure_core.model_store import is_live
from lure_core.records import ModelRow, VersionRow
from service.serving.inference import ModelCache

log = logging.getLogger("lure.inference")


class LiveWarmer:
    """Loads live versions into ``models`` in the background; ``warm_once`` is one look."""

    def __init__(
        self, sessions: sessionmaker[Session], models: ModelCache, interval_seconds: float
    ) -> None:
        self.sessions, self.models, self.interval = sessions, models, interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tried: set[tuple] = set()  # each live checkpoint is loaded (or tried) once

    def start(self) -> None:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._loop, name="lure-warmer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _live(self) -> list[tuple[ModelRow, VersionRow]]:
        """Live versions with a checkpoint, newest first, as many as the cache holds."""
        with self.sessions() as session:
            rows = session.execute(
                select(ModelRow, VersionRow)
                .join(VersionRow, is_live())
                .where(VersionRow.pruned_at.is_(None), VersionRow.damaged.is_(None))
                .order_by(VersionRow.id.desc())
                .limit(self.models.size)
            ).all()
            session.expunge_all()
        return [(model, version) for model, version in rows]

    def warm_once(self) -> list[tuple[str, int]]:
        """Load every live version not loaded yet; returns (model, version) of those loaded."""
        warmed = []
        for model, version in self._live():
            key = (version.model_id, version.number, version.checkpoint_sha256)
            if key in self._tried or self.models.loaded(version) is not None:
                continue
            self._tried.add(key)
            try:
                self.models.get(model.recipe, version, model_name=model.name)
            except (ChecksumMismatch, FileNotFoundError):
                continue  # /predict records the damage and answers from an intact ancestor
            warmed.append((model.name, version.number))
        return warmed

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.warm_once()
            except Exception:  # the database away, a model that fails to build: try again later
                log.debug("warming the live versions failed; retrying", exc_info=True)
