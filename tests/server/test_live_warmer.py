"""A newly live version is loaded before any request asks for it
(``service/serving/live_warmer.py``)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from lure_core.records import VersionRow
from service.app import create_app
from tests.helpers import DIGITS_MODEL, png_images
from tests.server.conftest import new_key, post_train


def _live_row(client) -> VersionRow:
    live = client.get("/v1/models/digits").json()["live_version"]
    with client.app.state.resources.sessions() as session:
        return session.scalar(select(VersionRow).where(VersionRow.number == live))


def _wait_until_loaded(client, version: VersionRow, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.app.state.resources.models.loaded(version) is not None:
            return True
        time.sleep(0.1)
    return False


def test_a_published_version_is_loaded_before_the_first_predict(settings, digits, run_jobs):
    settings = settings.model_copy(update={"warm_live_seconds": 0.2})
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {new_key(client, 'admin', ['admin'])}"
        client.post("/v1/models", json=DIGITS_MODEL).raise_for_status()
        post_train(client, digits.train.x[:300], digits.train.y[:300])
        assert run_jobs() == ["published"]
        first = _live_row(client)
        assert _wait_until_loaded(client, first)  # no request has asked for it
        post_train(client, digits.train.x[300:600], digits.train.y[300:600])
        assert run_jobs() == ["published"]
        second = _live_row(client)
        assert second.number != first.number and _wait_until_loaded(client, second)
        answer = client.post(
            "/v1/models/digits/predict", json={"images": png_images(digits.test.x[:2])}
        )
        assert answer.status_code == 200 and answer.json()["version"] == second.number


def test_without_the_warmer_a_version_loads_on_its_first_request(client, model, digits, run_jobs):
    post_train(client, digits.train.x[:300], digits.train.y[:300])
    assert run_jobs() == ["published"]
    live = _live_row(client)
    assert not _wait_until_loaded(client, live, seconds=1.5)  # warm_live_seconds=0 in tests
    client.post("/v1/models/digits/predict", json={"images": png_images(digits.test.x[:2])})
    assert _wait_until_loaded(client, live, seconds=1)
