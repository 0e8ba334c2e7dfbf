"""The schema the migrations build is the schema the code declares (``lure_core/records.py``)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from lure_core.database import make_engine, upgrade_database
from lure_core.records import Base


def test_migrations_build_exactly_the_declared_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'schema.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []
