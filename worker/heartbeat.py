"""A worker process says it is alive: one row per process, refreshed every few seconds.

The API's readiness check reads these rows: no fresh row means no worker is taking updates, which
a queue alone cannot tell (a message waits just as quietly for a dead worker as for a busy one).
The beat runs in the supervising process, so a long update never makes a live worker look dead.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy import delete, update
from sqlalchemy.orm import Session, sessionmaker

from lure_core.records import WorkerRow

log = logging.getLogger("lure.worker")


class WorkerHeartbeat:
    def __init__(self, sessions: sessionmaker[Session], name: str, interval: float) -> None:
        self.sessions, self.name, self.interval = sessions, name, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="lure-worker-heartbeat", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """A clean shutdown removes the row: readiness then knows at once that this worker left."""
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            with self.sessions.begin() as session:
                session.execute(delete(WorkerRow).where(WorkerRow.name == self.name))
        except Exception:
            log.warning("could not remove worker heartbeat %s", self.name, exc_info=True)

    def beat(self) -> None:
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            seen = session.execute(
                update(WorkerRow).where(WorkerRow.name == self.name).values(seen_at=now)
            ).rowcount
            if not seen:
                session.add(WorkerRow(name=self.name, started_at=now, seen_at=now))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception:  # the database is briefly unreachable: keep beating
                log.warning("worker heartbeat failed", exc_info=True)
            self._stop.wait(self.interval)
