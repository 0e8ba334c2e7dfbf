"""Engines, sessions and schema upgrades (Alembic) for SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
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


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# any constant shared by every replica: pg_advisory_lock's key for schema upgrades
MIGRATION_LOCK_KEY = 0x1075E_0001


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
