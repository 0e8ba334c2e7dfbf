"""The checks behind ``/readyz``, each on its own and all within one time bound.

Why: checked one after another, a component that hangs (an object store that is down: each
request waits for its timeouts and retries) made every answer take 6-8 s, concurrent probes queued
behind one another, and an exception from the records' view (which verifies live checkpoints in
the object store) was reported as the *database's* problem. Here the database, the broker, the
blob store and the records are checked in parallel; a check still running at the deadline is
reported as "no answer within N s" while the others report what they found; a check already in
flight for an earlier probe is joined, never started twice, so concurrent probes cost one check.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from lure_core.database import (
    DatabaseDamaged,
    damaged_database_message,
    file_guard,
    is_damaged_database_error,
)
from service.operations.health import Health, assess

REACHABILITY = ("database", "broker", "blob_store")


@dataclass(frozen=True)
class Records:
    """The records' view: what the outbox holds and what the health assessment found."""

    outbox_pending: int
    health: Health


class SingleFlight:
    """At most one run of each named check at a time; later callers join the running one."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="readyz")
        self._running: dict[str, Future] = {}
        self._lock = threading.Lock()

    def submit(self, name: str, check: Callable[[], Any]) -> Future:
        with self._lock:
            future = self._running.get(name)
            if future is None or future.done():
                future = self._pool.submit(check)
                self._running[name] = future
            return future


class Readiness:
    """``report()``: the body and status of ``/readyz`` (see ``service/api/routes/health.py``)."""

    def __init__(self, res: Any, timeout_seconds: float) -> None:
        self.res, self.timeout = res, timeout_seconds
        self._flights = SingleFlight(workers=4)

    def _database(self) -> str:
        with self.res.sessions() as session:
            guard = file_guard(session.get_bind().engine)
            if guard is not None:
                guard.check()
            session.execute(text("SELECT 1"))
        return "ok"

    def _broker(self) -> str:
        with self.res.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return "ok"

    def _blob_store(self) -> str:
        self.res.blobs.for_checks().probe()
        return "ok"

    def _records(self) -> Records:
        settings = self.res.settings
        pending = self.res.dispatcher.pending()
        health = assess(
            self.res.sessions,
            self.res.verifier,
            worker_timeout=settings.worker_timeout_seconds,
            stale_after=settings.stale_job_seconds,
        )
        return Records(pending, health)

    def _problem(self, error: BaseException) -> str:
        """``error: ...`` in one line; a damaged SQLite file says how to restore it."""
        if isinstance(error, DatabaseDamaged):
            return f"error: {error}"
        problem = (str(getattr(error, "orig", None) or error).strip().splitlines() or ["?"])[0]
        if is_damaged_database_error(error):
            url = self.res.settings.resolved_database_url
            problem = damaged_database_message(url, problem)
        return f"error: {problem}"

    def _outcome(self, future: Future) -> tuple[Any, str | None]:
        """(value, None) when the check passed in time, (None, problem) otherwise."""
        if not future.done():
            return None, f"error: no answer within {self.timeout:g} s"
        error = future.exception()
        return (None, self._problem(error)) if error else (future.result(), None)

    def report(self) -> tuple[dict, int]:
        futures = {
            "database": self._flights.submit("database", self._database),
            "broker": self._flights.submit("broker", self._broker),
            "blob_store": self._flights.submit("blob_store", self._blob_store),
            "records": self._flights.submit("records", self._records),
        }
        wait(futures.values(), timeout=self.timeout)
        checks: dict[str, str] = {"blob_store_location": self.res.blobs.describe()}
        for name in REACHABILITY:
            value, problem = self._outcome(futures[name])
            checks[name] = problem or value
        problems = self._records_into(checks, futures["records"])
        reachable = all(checks[name] == "ok" for name in REACHABILITY)
        status = "unavailable" if not reachable else "degraded" if problems else "ok"
        body = {"ready": reachable, "status": status, "checks": checks, "problems": problems}
        return body, 200 if reachable else 503

    def _records_into(self, checks: dict[str, str], future: Future) -> list[str]:
        """The records' counts into ``checks``; returns the problems they show."""
        records, problem = self._outcome(future)
        if records is None:
            checks["outbox_pending"] = checks["workers_alive"] = "unknown"
            error = future.exception() if future.done() else None
            if isinstance(error, DatabaseError | DatabaseDamaged) and checks["database"] == "ok":
                checks["database"] = problem or "error"  # SELECT 1 passed, the pages did not
                return []
            return [] if checks["database"] != "ok" else [f"the records: {problem}"]
        checks["outbox_pending"] = str(records.outbox_pending)
        checks["workers_alive"] = str(records.health.workers_alive)
        return records.health.problems
