"""API replicas that start together on one empty PostgreSQL database all come up: the schema
upgrade takes an advisory lock, so they migrate in turn. Without it two of three crashed with a
duplicate-table error in every trial."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import create_engine, text

UPGRADE = (
    "import sys; from lure_core.database import upgrade_database; upgrade_database(sys.argv[1])"
)


def test_replicas_upgrading_one_empty_database_at_once_all_succeed(postgres_url):
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADE, postgres_url], stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in processes]
    assert [code for code, _ in results] == [0, 0, 0], [err[-600:] for _, err in results]
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        heads = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    engine.dispose()
    assert len(heads) == 1
