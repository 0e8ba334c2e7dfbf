"""An API in this test's process (FastAPI's TestClient) over either deployment's real stores, and
the worker's update function called directly: cheap enough to run a flow on both databases.

``sqlite``: the embedded default (SQLite and a data folder); ``postgres``: PostgreSQL + Redis +
the tests' S3 server, each test on its own database and bucket prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from lure_core.api_keys import create_key
from lure_core.blob_backend import open_blob_store
from lure_core.database import make_engine, make_session_factory
from lure_core.records import JobRow
from lure_update.job import UpdateContext, execute_job
from service.app import create_app
from service.settings import ServerSettings
from tests.s3 import s3_environment

KINDS = ["sqlite", "postgres"]


@dataclass
class InProcess:
    settings: ServerSettings
    s3_env: dict[str, str] | None  # None: blobs in the data folder

    def client(self) -> TestClient:
        """An admin client; use it as a context manager (the app's start and stop)."""
        client = TestClient(create_app(self.settings))
        return client

    def run_jobs(self) -> list[str]:
        """Every queued job, oldest first, through the worker's own update function."""
        context = UpdateContext(
            self.settings,
            make_session_factory(make_engine(self.settings.resolved_database_url)),
            open_blob_store(self.settings),
        )
        outcomes = []
        while True:
            with context.sessions() as session:
                job = session.scalar(
                    select(JobRow.id).where(JobRow.state == "queued").order_by(JobRow.id)
                )
            if job is None:
                return outcomes
            outcomes.append(execute_job(context, job).value)


def admin(client: TestClient) -> TestClient:
    with client.app.state.resources.sessions.begin() as session:
        key, _ = create_key(session, "admin", ["admin"])
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def in_process(request: pytest.FixtureRequest, kind: str, tmp_path, monkeypatch) -> InProcess:
    values: dict = {"data_dir": tmp_path / "data", "dispatch_interval_seconds": 3600}
    env = None
    if kind == "postgres":
        env = s3_environment()
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            monkeypatch.setenv(name, env[name])
        values |= {
            "database_url": request.getfixturevalue("postgres_url"),
            "broker_url": request.getfixturevalue("redis_url"),
            "blob_url": env["LURE_BLOB_URL"],
            "s3_endpoint_url": env["LURE_S3_ENDPOINT_URL"],
        }
    return InProcess(ServerSettings(**values, warm_live_seconds=0), env)
