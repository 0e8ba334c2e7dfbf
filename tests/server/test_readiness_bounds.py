"""``/readyz`` within its bound (issue 42 §2): a check that hangs is reported as unanswered while
every other check reports what it found, and probes that arrive together share one run of it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest


@pytest.fixture()
def hanging_store(client, monkeypatch):
    """The blob store's probe hangs (an object store that accepts connections and never
    answers); returns how many probes were started."""
    started: list[float] = []
    release = threading.Event()
    store = client.app.state.resources.blobs

    def hang() -> None:
        started.append(time.monotonic())
        release.wait(30)

    monkeypatch.setattr(store, "probe", hang)
    yield started
    release.set()


def test_a_hanging_store_is_named_within_the_bound_and_hides_no_other_check(
    client, hanging_store, settings
):
    began = time.monotonic()
    answer = client.get("/readyz")
    took = time.monotonic() - began
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert (
        checks["blob_store"] == f"error: no answer within {settings.readiness_timeout_seconds:g} s"
    )
    assert checks["database"] == "ok" and checks["broker"] == "ok"
    assert checks["outbox_pending"] == "0" and checks["workers_alive"] == "0"
    assert took < settings.readiness_timeout_seconds + 1.0, took
    with ThreadPoolExecutor(4) as pool:
        timings = list(pool.map(lambda _: _timed(client), range(4)))
    assert max(timings) < settings.readiness_timeout_seconds + 1.0, timings
    assert len(hanging_store) == 1  # one probe in flight, joined by every later call


def _timed(client) -> float:
    began = time.monotonic()
    assert client.get("/readyz").status_code == 503
    return time.monotonic() - began
