"""Drains the outbox: queued jobs not yet handed to the broker are sent, oldest first.

Because sealing only writes a row, a broker outage delays updates but loses none: the dispatcher
keeps trying and sends the backlog in order once the broker is back. It also re-sends work that a
dead worker dropped: a running job whose heartbeat is older than ``stale_after`` seconds, or a
queued job sent more than ``resend_after`` seconds ago and never started. Duplicate deliveries are
harmless: a worker claims a job atomically and a version is unique per mega-batch.
"""

from __future__ import annotations

import logging
import threading

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lure_core.job_store import mark_sent, pending_sends
from lure_core.queue import send_update
from lure_core.records import JobRow

log = logging.getLogger("lure.dispatcher")


class Dispatcher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        celery: Celery,
        interval: float,
        stale_after: float = 60.0,
        resend_after: float = 600.0,
    ) -> None:
        self.sessions, self.celery, self.interval = sessions, celery, interval
        self.stale_after, self.resend_after = stale_after, resend_after
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
            return len(
                session.scalars(select(JobRow.id).where(JobRow.dispatched_at.is_(None))).all()
            )

    def dispatch_once(self) -> int:
        """Send every undispatched (or dropped) job in id order; stop at the first broker error."""
        with self.sessions() as session:
            job_ids = pending_sends(session, self.stale_after, self.resend_after)
        sent = 0
        for job_id in job_ids:
            try:
                send_update(self.celery, job_id)
            except Exception as error:  # broker down: keep the job in the outbox, retry later
                log.warning(
                    "broker unavailable, %d job(s) wait in the outbox: %s",
                    len(job_ids) - sent,
                    error,
                )
                break
            log.info("job %d sent to the queue", job_id, extra={"job_id": job_id})
            with self.sessions.begin() as session:
                mark_sent(session, job_id)
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
