"""Issue 42 §3: a promotion verifies the stored bytes, whatever a cache holds. An API process that
had served version 2 (so held it in memory, and on S3 in its local read cache) accepted
``promote`` of it after its stored weights were altered, and ``/predict`` went on serving it.
In-process APIs over the real stores: SQLite and a data folder, PostgreSQL + Redis + S3."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from lure_core.api_keys import create_key
from lure_core.blob_backend import open_blob_store
from lure_core.database import make_engine, make_session_factory
from lure_core.records import JobRow, VersionRow
from service.app import create_app
from service.settings import ServerSettings
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images
from tests.s3 import s3_client, s3_environment
from worker.update_job import WorkerContext, execute_job


@pytest.fixture(params=["sqlite", "postgres"])
def deployment(request, tmp_path, monkeypatch):
    """(settings, environment of the S3 prefix or None)."""
    values: dict = {"data_dir": tmp_path / "data", "dispatch_interval_seconds": 3600}
    env = None
    if request.param == "postgres":
        env = s3_environment()
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            monkeypatch.setenv(name, env[name])
        values |= {
            "database_url": request.getfixturevalue("postgres_url"),
            "broker_url": request.getfixturevalue("redis_url"),
            "blob_url": env["LURE_BLOB_URL"],
            "s3_endpoint_url": env["LURE_S3_ENDPOINT_URL"],
        }
    return ServerSettings(**values, warm_live_seconds=0), env


def _train_two_versions(client, settings, digits) -> None:
    context = WorkerContext(
        settings,
        make_session_factory(make_engine(settings.resolved_database_url)),
        open_blob_store(settings),
    )
    for start in (0, 300):
        rows = slice(start, start + 300)
        body = npz_body(digits.train.x[rows], digits.train.y[rows])
        client.post("/v1/models/digits/chunks?split=train", content=body, headers=NPZ)
        with context.sessions() as session:
            job = session.scalar(select(JobRow.id).where(JobRow.state == "queued"))
        assert execute_job(context, job).value == "published"


def _alter_stored_weights(client, settings, env) -> None:
    """Flip bytes of version 2's weights where they are stored (the folder, or the bucket)."""
    with client.app.state.resources.sessions() as session:
        row = session.scalar(select(VersionRow).where(VersionRow.number == 2))
    if env is None:
        path = settings.blob_dir / row.checkpoint_key
        data = bytearray(path.read_bytes())
        data[-100:] = bytes(100)
        path.write_bytes(bytes(data))
        return
    bucket, _, prefix = env["LURE_BLOB_URL"].removeprefix("s3://").partition("/")
    name = f"{prefix}/{row.checkpoint_key}/{row.checkpoint_sha256}"
    store = s3_client(env)
    data = bytearray(store.get_object(Bucket=bucket, Key=name)["Body"].read())
    data[-100:] = bytes(100)
    store.put_object(Bucket=bucket, Key=name, Body=bytes(data))


def test_promotion_refuses_a_version_whose_stored_weights_fail_their_sha256(deployment, digits):
    settings, env = deployment
    images = png_images(digits.test.x[:4])
    with TestClient(create_app(settings)) as client:
        with client.app.state.resources.sessions.begin() as session:
            key, _ = create_key(session, "admin", ["admin"])
        client.headers["Authorization"] = f"Bearer {key}"
        client.post("/v1/models", json=DIGITS_MODEL).raise_for_status()
        _train_two_versions(client, settings, digits)
        client.post("/v1/models/digits/versions/1/promote").raise_for_status()
        pinned = client.post("/v1/models/digits/predict?version=2", json={"images": images})
        assert pinned.status_code == 200  # version 2 is now loaded in this process
        _alter_stored_weights(client, settings, env)
        promoted = client.post("/v1/models/digits/versions/2/promote")
        assert promoted.status_code == 409, promoted.text
        assert "version 2 is damaged" in promoted.json()["detail"]
        assert client.get("/v1/models/digits").json()["live_version"] == 1
        assert client.get("/v1/models/digits/versions/2").json()["damaged"]
        # the copy in memory is dropped: version 2 is read (and refused) before it is served
        again = client.post("/v1/models/digits/predict?version=2", json={"images": images})
        assert again.status_code == 503, again.text
        live = client.post("/v1/models/digits/predict", json={"images": images})
        assert live.status_code == 200 and live.json()["version"] == 1
        assert client.post("/v1/models/digits/versions/1/promote").status_code == 200
