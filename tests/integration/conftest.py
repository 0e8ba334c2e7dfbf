"""Integration fixtures: real services when present; missing ones fail in CI
(LURE_REQUIRE_SERVICES).
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.services import service_url


@pytest.fixture()
def redis_url() -> str:
    """A Redis database of this test runner's own (pytest-xdist runs two side by side: each
    flushes only its own database, 15 for the first, 14 for the second...)."""
    import redis

    url = service_url("LURE_TEST_REDIS_URL")
    runner = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base, _, number = url.rpartition("/")
    url = f"{base}/{int(number) - int(runner or 0)}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture()
def postgres_url():
    import psycopg

    admin = service_url("LURE_TEST_POSTGRES_URL")
    plain = admin.replace("postgresql+psycopg://", "postgresql://")
    database = f"lure_it_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {database}")
    yield admin.rsplit("/", 1)[0] + "/" + database
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
