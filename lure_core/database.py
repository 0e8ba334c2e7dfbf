"""Engines, sessions and schema upgrades (Alembic) for SQLite and PostgreSQL alike."""

from __future__ import annotations

import os
import struct
import threading
import weakref
from contextlib import closing
from pathlib import Path
from typing import cast

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
SQLITE_POOL_SIZE = 40  # anyio's default thread-pool size: every API thread keeps a connection


def make_engine(url: str) -> Engine:
    """SQLite gets WAL, a busy timeout and foreign keys, so an API and a worker can share it.

    Its pool holds as many connections as the API has threads (anyio's 40): with the default
    5 + 10 overflow, 32 concurrent predictions opened and closed a connection (and ran four
    PRAGMAs) on most requests, a third of the API's CPU per request in a profile.
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=10,
        )
        _guard_file(engine, url)

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


_GUARDS: weakref.WeakKeyDictionary[Engine, SqliteFileGuard] = weakref.WeakKeyDictionary()


def _guard_file(engine: Engine, url: str) -> None:
    """Check the file before every commit: a connection keeps the pages it has read, so a file
    truncated or replaced under a running server went on accepting (and acknowledging) writes
    that no new connection could ever read back."""
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return
    guard = SqliteFileGuard(url)
    _GUARDS[engine] = guard

    @event.listens_for(engine, "commit")
    def _before_commit(_connection) -> None:
        guard.check()


def file_guard(engine: Engine) -> SqliteFileGuard | None:
    """The SQLite file's guard (None on PostgreSQL)."""
    return _GUARDS.get(engine)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# any constant shared by every replica: pg_advisory_lock's key for schema upgrades
MIGRATION_LOCK_KEY = 0x1075E_0001


def rows_changed(result: Result) -> int:
    """How many rows an UPDATE or DELETE touched (SQLAlchemy types the result without it)."""
    return int(cast(CursorResult, result).rowcount)


class DatabaseDamaged(RuntimeError):
    """The SQLite file is not a whole database; the message says how to restore it."""


RESTORE_ADVICE = (
    "stop the server, restore the last backup into a new folder (`lure restore BACKUP "
    "--data-dir NEW`) and start on that folder; without a backup, `sqlite3 lure.db .recover` "
    "may save what is left (docs/RELIABILITY.md, 'A damaged database')"
)


def damaged_database_message(url: str, problem: str) -> str:
    path = url.removeprefix("sqlite:///")
    return f"the database {path} is damaged ({problem}): {RESTORE_ADVICE}"


def check_sqlite_intact(url: str) -> None:
    """SQLite's ``quick_check`` on an existing embedded database; DatabaseDamaged when it fails.

    A truncated or overwritten file otherwise starts a server whose every write answers 500."""
    import sqlite3

    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    if not path.exists():
        return
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
            rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as error:
        raise DatabaseDamaged(damaged_database_message(url, str(error))) from None
    if rows != [("ok",)]:
        problem = "; ".join(str(r[0]) for r in rows[:3])
        raise DatabaseDamaged(damaged_database_message(url, problem))


_MAGIC = b"SQLite format 3\x00"


class SqliteFileGuard:
    """A cheap check that the embedded database file is still whole: it exists, it is the file
    the server opened (same inode), its header is intact and the file holds every page the header
    counts. One ``stat`` and a 100-byte read (tens of microseconds), so it runs before every
    commit; SQLite's own ``quick_check`` confirms a short file (a checkpoint may be extending it
    right now) before it is called damaged.

    The header is read through one descriptor per file that is never closed
    (:func:`_reader`): closing *any* descriptor of a file drops every POSIX lock this process
    holds on it, SQLite's included, and then two writers corrupt the database ("How To Corrupt
    An SQLite Database File", 2.2). Opening and closing the file on each check did exactly that
    to the test suite's databases.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = Path(url.removeprefix("sqlite:///"))
        self._inode: tuple[int, int] | None = None

    def problem(self) -> str | None:
        """What is wrong with the file, in words; None when it looks whole."""
        try:
            identity, size = _identity(self.path)
        except FileNotFoundError:
            return "the file was removed under the running server" if self._inode else None
        if self._inode is not None and identity != self._inode:
            return "the file was replaced under the running server"  # never opened here
        reader = _reader(self.path, identity)
        if reader is None:
            return "the file was replaced under the running server"
        header = os.pread(reader, 100, 0)
        if self._inode is None:
            if len(header) < 100:
                return None  # a new database SQLite has not written yet
            self._inode = identity
        if len(header) < 100 or not header.startswith(_MAGIC):
            return f"its header is gone (the file holds {size} bytes)"
        expected = _header_size(header)
        if expected is not None and size < expected and not _quick_check_passes(self.path):
            return f"the file holds {size} bytes, its header counts {expected}"
        return None

    def check(self) -> None:
        problem = self.problem()
        if problem is not None:
            raise DatabaseDamaged(damaged_database_message(self.url, problem))


def _identity(path: Path) -> tuple[tuple[int, int], int]:
    stat = os.stat(path)
    return (stat.st_dev, stat.st_ino), stat.st_size


_READERS: dict[tuple[int, int], int] = {}  # (device, inode) → a descriptor kept open for good
_READERS_LOCK = threading.Lock()


def _reader(path: Path, identity: tuple[int, int]) -> int | None:
    """This process's one read-only descriptor of the file ``identity`` names, opened once and
    never closed (see :class:`SqliteFileGuard`: a close would drop SQLite's locks); None when the
    path names another file by the time it is opened."""
    with _READERS_LOCK:
        if identity not in _READERS:
            descriptor = os.open(path, os.O_RDONLY)
            opened = os.fstat(descriptor)
            _READERS[(opened.st_dev, opened.st_ino)] = descriptor  # kept whatever it is
        return _READERS.get(identity)


def _header_size(header: bytes) -> int | None:
    """Bytes the header says the file holds; None when the header's count is not current."""
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    pages, counter, valid_for = (
        struct.unpack(">I", header[offset : offset + 4])[0] for offset in (28, 24, 92)
    )
    return pages * page_size if pages and counter == valid_for else None


def _quick_check_passes(path: Path) -> bool:
    import sqlite3

    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
            return db.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    except sqlite3.DatabaseError:
        return False


def is_damaged_database_error(error: BaseException) -> bool:
    """SQLite's words for a file that is not (or no longer) a whole database."""
    text = str(error).lower()
    return "malformed" in text or "file is not a database" in text


def upgrade_database(url: str) -> None:
    """``alembic upgrade head``: the only way the schema is created or changed.

    API replicas starting together on one PostgreSQL would race to create the same tables; an
    advisory lock makes them take turns (the second finds the schema at head and does nothing).
    SQLite needs none: its writers already take turns on the file's lock.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if not url.startswith("postgresql"):
        command.upgrade(config, "head")
        return
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                connection.commit()
    finally:
        engine.dispose()
