"""Infrastructure faults (the database, the broker or the object store unreachable) told apart
from faults of an update itself, and waited out.

A PostgreSQL restart, a dropped connection or a locked SQLite file says nothing about the update
that hit it: counting it as a failed attempt let a 10-second database restart fail a job for good.
Work that touches the database runs under :func:`ride_out`, which retries it until the database
answers again; only errors this module does not recognise count against ``max_update_attempts``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from lure_core.blobs import ObjectStoreUnavailable

log = logging.getLogger("lure.infrastructure")
T = TypeVar("T")

# SQLite's OperationalError also says "no such table" (a bug, never waited out): only these are
# the file being busy or unreachable
_SQLITE_TRANSIENT = ("database is locked", "unable to open database", "disk i/o error")


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_broker_fault(error: BaseException) -> bool:
    """Redis or kombu could not be reached (imported lazily: the filesystem queue needs neither)."""
    try:
        from kombu.exceptions import OperationalError as KombuOperationalError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - both ship with celery[redis]
        return False
    return isinstance(error, KombuOperationalError | RedisConnectionError | RedisTimeoutError)


def _is_database_fault(error: BaseException) -> bool:
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, DisconnectionError):
        return True
    if isinstance(error, sqlite3.OperationalError):
        return any(text in str(error).lower() for text in _SQLITE_TRANSIENT)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a dependency of the project
        return False
    # connection refused, reset, "terminating connection due to administrator command", ...
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


def is_infrastructure_fault(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is the database, broker or object store being
    unreachable."""
    for cause in _causes(error):
        if isinstance(cause, OperationalError | InterfaceError) and cause.orig is not None:
            if _is_database_fault(cause.orig) or cause.connection_invalidated:
                return True
            continue
        if _is_database_fault(cause) or _is_broker_fault(cause):
            return True
        if isinstance(cause, ObjectStoreUnavailable):
            return True
        if isinstance(cause, ConnectionRefusedError | ConnectionResetError | BrokenPipeError):
            return True
    return False


def ride_out(
    work: Callable[[], T],
    what: str,
    *,
    stop: threading.Event | None = None,
    first_wait: float = 0.5,
    max_wait: float = 5.0,
    report_every: float = 15.0,
) -> T:
    """``work()``, retried while it fails on an infrastructure fault (waits grow from
    ``first_wait`` to ``max_wait`` seconds); any other error is raised at once. A set ``stop``
    event ends the waiting by raising the last fault."""
    wait, started, reported = first_wait, time.monotonic(), 0.0
    while True:
        try:
            return work()
        except Exception as error:
            if not is_infrastructure_fault(error):
                raise
            waited = time.monotonic() - started
            if waited - reported >= report_every or reported == 0.0:
                log.warning(
                    "%s: the database, broker or blob store is unreachable (%s); waiting for it "
                    "(%.0f s so far; this is not counted against the update)",
                    what,
                    str(error).strip().splitlines()[0][:200] if str(error).strip() else error,
                    waited,
                )
                reported = max(waited, 1e-9)
            if stop is not None and stop.wait(wait):
                raise
            if stop is None:
                time.sleep(wait)
            wait = min(wait * 2, max_wait)
