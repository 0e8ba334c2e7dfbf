"""Integration fixtures: real services when present; missing ones fail in CI
(LURE_REQUIRE_SERVICES).
"""

from __future__ import annotations

import os
import uuid

import pytest


def _service_url(name: str) -> str:
    url = os.environ.get(name)
    if not url:
        message = f"{name} is not set: run `source scripts/services.sh` (scripts/test.sh does)"
        if os.environ.get("LURE_REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture()
def redis_url() -> str:
    import redis

    url = _service_url("LURE_TEST_REDIS_URL")
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture()
def postgres_url():
    import psycopg

    admin = _service_url("LURE_TEST_POSTGRES_URL")
    plain = admin.replace("postgresql+psycopg://", "postgresql://")
    database = f"lure_it_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {database}")
    yield admin.rsplit("/", 1)[0] + "/" + database
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
