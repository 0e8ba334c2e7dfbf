"""Drains the outbox: queued jobs not yet handed to the broker are sent, oldest first.

Because sealing only writes a row, a broker outage delays updates but loses none: the dispatcher
keeps trying and sends the backlog in order once the broker is back.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from celery import Celery
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from worker.celery_app import UPDATE_QUEUE, UPDATE_TASK
from worker.storage.schema import JobRow

log = logging.getLogger("lure.dispatcher")


class Dispatcher:
    def __init__(self, sessions: sessionmaker[Session], celery: Celery, interval: float) -> None:
        self.sessions, self.celery, self.interval = sessions, celery, interval
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lure-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    def pending(self) -> int:
        with self.sessions() as session:
            return len(session.scalars(select(JobRow.id).where(JobRow.dispatched_at.is_(None))).all())

    def dispatch_once(self) -> int:
        """Send every undispatched job in id order; stop at the first broker error."""
        with self.sessions() as session:
            job_ids = session.scalars(select(JobRow.id).where(
                JobRow.dispatched_at.is_(None), JobRow.state == "queued").order_by(JobRow.id)).all()
        sent = 0
        for job_id in job_ids:
            try:
                self.celery.send_task(UPDATE_TASK, args=[job_id], queue=UPDATE_QUEUE)
            except Exception as error:  # broker down: keep the job in the outbox, retry later
                log.warning("broker unavailable, %d job(s) wait in the outbox: %s", len(job_ids) - sent, error)
                break
            with self.sessions.begin() as session:
                session.execute(update(JobRow).where(JobRow.id == job_id).values(dispatched_at=datetime.now(UTC)))
            sent += 1
        return sent

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.dispatch_once()
            except Exception:
                log.exception("dispatcher pass failed")
            self._wake.wait(self.interval)
            self._wake.clear()
