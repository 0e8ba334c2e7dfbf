"""The whole server, for real: HTTP, a Celery worker process, and either deployment's storage."""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.processes import (
    Process,
    create_admin_key,
    free_port,
    lure_command,
    wait_ready,
)
from tests.integration.scenario import run_scenario
from tests.s3 import s3_environment, stored_keys

pytestmark = pytest.mark.slow


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LURE_")}
    env.update(values)
    env["LURE_TORCH_THREADS"] = "1"
    return env


def test_embedded_default_lure_up(tmp_path):
    """`lure up`: SQLite, the filesystem queue and a worker it starts itself."""
    port = free_port()
    key = create_admin_key(_env(), tmp_path / "data")
    server = Process(
        lure_command("up", "--port", str(port), "--data-dir", str(tmp_path / "data")),
        _env(LURE_LOG_FORMAT="json"),  # the ids in the logs are checked below
        tmp_path / "up.log",
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", server, key)
        run_scenario(f"http://127.0.0.1:{port}", key)
    except BaseException:
        print(server.tail(80))
        raise
    finally:
        server.stop()
    assert (tmp_path / "data" / "lure.db").exists()
    records = [
        json.loads(line)
        for line in (tmp_path / "up.log").read_text().splitlines()
        if line.startswith("{")
    ]
    published = [r for r in records if r.get("process_name") == "worker" and "version" in r]
    assert sorted(r["version"] for r in published) == [1, 2, 3]
    assert all(isinstance(r["job_id"], int) for r in published)
    assert any(r.get("process_name") == "api" and r.get("job_id") for r in records)


@pytest.mark.parametrize("blobs", ["folder", "s3"])
def test_redis_postgres_and_a_separate_worker(tmp_path, redis_url, postgres_url, blobs):
    """Production shape: `lure api` and `lure worker` as separate processes on Redis +
    PostgreSQL, with blobs in a shared folder or, with no shared disk, in S3.
    """
    port = free_port()
    env = _env(
        LURE_DATABASE_URL=postgres_url,
        LURE_BROKER_URL=redis_url,
        LURE_DATA_DIR=str(tmp_path / "blobs"),
        **(s3_environment() if blobs == "s3" else {}),
    )
    worker_env = env | ({"LURE_DATA_DIR": str(tmp_path / "worker-host")} if blobs == "s3" else {})
    key = create_admin_key(env)  # also runs the migrations, before any process starts
    api = Process(lure_command("api", "--port", str(port)), env, tmp_path / "api.log")
    worker = None
    try:
        wait_ready(f"http://127.0.0.1:{port}", api, key)
        worker = Process(lure_command("worker"), worker_env, tmp_path / "worker.log")
        run_scenario(f"http://127.0.0.1:{port}", key)
    except BaseException:
        print("--- api ---\n" + api.tail(60))
        if worker:
            print("--- worker ---\n" + worker.tail(80))
        raise
    finally:
        if worker:
            worker.stop()
        api.stop()
    import sqlalchemy
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from lure_core.database import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT count(*) FROM versions")).scalar() == 3
        checkpoints = connection.execute(sqlalchemy.text("SELECT checkpoint_key FROM versions"))
        keys = [row[0] for row in checkpoints]
        assert (
            connection.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar()
            == head
        )
    engine.dispose()
    if blobs == "s3":  # every checkpoint in the bucket, no blob on either host's disk
        stored = stored_keys(env)
        assert all(any(k.startswith(key + "/") for k in stored) for key in keys)
        for host in ("blobs", "worker-host"):
            assert not [p for p in (tmp_path / host / "blobs").rglob("*") if p.is_file()]
