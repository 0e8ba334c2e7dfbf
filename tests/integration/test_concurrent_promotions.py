"""Concurrent promotions each count (issue 23 E): ``promotion_epoch`` was read, incremented in
Python and written back, so two promotions at once could count as one, and an update that started
before the second one could then publish as live over it. On both databases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from lure_core.blob_backend import open_blob_store
from lure_core.records import JobRow, ModelRow
from lure_update.job import UpdateContext, execute_job
from service.app import create_app
from service.settings import ServerSettings
from tests.helpers import DIGITS_MODEL, NPZ, npz_body
from tests.server.conftest import new_key

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_every_concurrent_promotion_counts(kind, request, tmp_path, digits):
    settings = ServerSettings(data_dir=tmp_path / "data", dispatch_interval_seconds=3600)
    if kind == "postgres":
        settings = ServerSettings(
            data_dir=tmp_path / "data",
            dispatch_interval_seconds=3600,
            database_url=request.getfixturevalue("postgres_url"),
            broker_url=request.getfixturevalue("redis_url"),
        )
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {new_key(client, 'admin', ['admin'])}"
        client.post("/v1/models", json={**DIGITS_MODEL, "epochs": 1}).raise_for_status()
        res = client.app.state.resources
        ctx = UpdateContext(settings, res.sessions, open_blob_store(settings))
        for start in (0, 300):
            client.post(
                "/v1/models/digits/chunks?split=train",
                content=npz_body(
                    digits.train.x[start : start + 300], digits.train.y[start : start + 300]
                ),
                headers=NPZ,
            ).raise_for_status()
            with res.sessions() as session:
                job = session.scalar(select(JobRow.id).where(JobRow.state == "queued"))
            assert execute_job(ctx, job).value == "published"

        def promote(i: int) -> int:
            return client.post(f"/v1/models/digits/versions/{1 + i % 2}/promote").status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(promote, range(40)))
        assert set(codes) <= {200, 503}  # SQLite may ask a writer to come back (busy)
        with res.sessions() as session:
            epoch = session.scalar(select(ModelRow.promotion_epoch))
        assert epoch == codes.count(200) and codes.count(200) >= 20
        # a NUL in a path is a 404 before any query (PostgreSQL refuses NUL in text: it was a 500)
        assert client.get("/v1/models/a%00b").status_code == 404
