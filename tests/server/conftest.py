"""An API on a fresh SQLite database and data folder per test, over FastAPI's TestClient."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from lure_core.api_keys import create_key
from lure_core.blob_backend import open_blob_store
from lure_core.database import make_engine, make_session_factory
from lure_core.records import ChunkRow, JobRow
from lure_update.job import UpdateContext, execute_job
from service.app import create_app
from service.settings import ServerSettings
from tests.helpers import DIGITS_MODEL, NPZ, npz_body
from tests.s3 import s3_environment


@pytest.fixture()
def blob_backend() -> str:
    """Where blobs live: a module runs on both with
    ``pytestmark = pytest.mark.parametrize("blob_backend", BOTH_BLOB_BACKENDS)``."""
    return "folder"


BOTH_BLOB_BACKENDS = ["folder", "s3"]


def blob_settings(backend: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The settings that put blobs on ``backend``: its own prefix on the tests' S3 server."""
    if backend == "folder":
        return {}
    env = s3_environment()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, env[name])
    return {"blob_url": env["LURE_BLOB_URL"], "s3_endpoint_url": env["LURE_S3_ENDPOINT_URL"]}


@pytest.fixture()
def settings(tmp_path, blob_backend, monkeypatch) -> ServerSettings:
    return ServerSettings(
        **blob_settings(blob_backend, monkeypatch),
        data_dir=tmp_path / "data",
        dispatch_interval_seconds=3600,
        max_body_bytes=2_000_000,
        max_import_bytes=20_000_000,
        max_samples_per_chunk=2000,
        max_predict_batch=64,
        warm_live_seconds=0,  # tests/server/test_live_warmer.py turns it on
    )


@pytest.fixture()
def client(settings):
    """Authenticated as an admin; ``make_key`` gives other scopes."""
    with TestClient(create_app(settings)) as test_client:
        key = new_key(test_client, "test-admin", ["admin"])
        test_client.headers["Authorization"] = f"Bearer {key}"
        yield test_client


def new_key(test_client: TestClient, name: str, scopes: list[str]) -> str:
    with test_client.app.state.resources.sessions.begin() as session:
        key, _ = create_key(session, name, scopes)
    return key


@pytest.fixture()
def make_key(client):
    return lambda *scopes: new_key(client, "-".join(scopes) or "none", list(scopes))


@pytest.fixture()
def model(client) -> dict:
    answer = client.post("/v1/models", json=DIGITS_MODEL)
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.fixture()
def worker_ctx(settings, client) -> UpdateContext:
    """The real update function with its real storage, called in-process instead of via Celery."""
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    return UpdateContext(settings, sessions, open_blob_store(settings))


@pytest.fixture()
def run_jobs(worker_ctx):
    def run() -> list[str]:
        with worker_ctx.sessions() as session:
            ids = session.scalars(
                select(JobRow.id).where(JobRow.state == "queued").order_by(JobRow.id)
            ).all()
        return [execute_job(worker_ctx, job_id).value for job_id in ids]

    return run


@pytest.fixture()
def stored(settings, worker_ctx):
    """What is on disk and in the database: to prove a refused request stored nothing."""

    def snapshot() -> tuple[int, int]:
        with worker_ctx.sessions() as session:
            chunks = session.scalar(select(func.count()).select_from(ChunkRow))
        files = [p for p in settings.blob_dir.rglob("*") if p.is_file()]
        return chunks, len(files)

    return snapshot


def post_train(client, x, y, model: str = "digits"):
    answer = client.post(
        f"/v1/models/{model}/chunks?split=train", content=npz_body(x, y), headers=NPZ
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.fixture()
def two_versions(client, model, digits, run_jobs):
    client.post(
        "/v1/models/digits/chunks?split=test",
        content=npz_body(digits.test.x, digits.test.y),
        headers=NPZ,
    )
    first = post_train(client, digits.train.x[:300], digits.train.y[:300])
    assert run_jobs() == ["published"]
    second = post_train(client, digits.train.x[300:600], digits.train.y[300:600])
    assert run_jobs() == ["published"]
    return first, second
