"""Retention on PostgreSQL: the same tests as ``tests/server/test_retention.py`` (checkpoint
pruning and chunk compaction, training and an audit after it), with the API's database on a real
PostgreSQL server instead of SQLite."""

from __future__ import annotations

import pytest

from service.settings import ServerSettings
from tests.server.conftest import client, run_jobs, worker_ctx  # noqa: F401 - fixtures
from tests.server.test_retention import (
    test_a_rollback_target_is_kept_and_a_tighter_limit_applies_at_once,  # noqa: F401
    test_full_replay_keeps_every_sample,  # noqa: F401
    test_samples_no_kept_version_can_reach_are_deleted_and_training_goes_on,  # noqa: F401
)


@pytest.fixture()
def settings(tmp_path, postgres_url) -> ServerSettings:
    return ServerSettings(
        data_dir=tmp_path / "data",
        database_url=postgres_url,
        dispatch_interval_seconds=3600,
        max_body_bytes=2_000_000,
        max_samples_per_chunk=2000,
    )


def test_these_tests_run_on_postgres(client):  # noqa: F811 - the imported fixture
    engine = client.app.state.resources.sessions.kw["bind"]
    assert engine.url.get_backend_name() == "postgresql"
