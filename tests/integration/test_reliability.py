"""Crash and outage tests against real processes on Redis + PostgreSQL (and SQLite for the API).

Each one kills or stops something a real deployment loses, then checks that acknowledged data
survived and exactly one version per mega-batch was published. Worker deaths during an update are
in ``test_update_reliability.py``, on both databases.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from lure_engine.data import load_digits_dataset
from tests.helpers import DIGITS_MODEL, NPZ, npz_body
from tests.integration.processes import (
    Process,
    create_admin_key,
    free_port,
    lure_command,
    wait_ready,
)
from tests.integration.scenario import wait_for_versions

pytestmark = pytest.mark.slow
DATA = load_digits_dataset()


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LURE_")}
    return env | {"LURE_TORCH_THREADS": "1", "LURE_STALE_JOB_SECONDS": "3"} | values


def _client(port: int, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=60, headers={"Authorization": f"Bearer {key}"}
    )


def _wait_job(client: httpx.Client, job_id: int, predicate, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached the state wanted: {job}")


def _start_redis(port: int, log) -> Process:
    server = Process(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        dict(os.environ),
        log,
    )
    for _ in range(50):
        if (
            subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True
            ).stdout.strip()
            == b"PONG"
        ):
            return server
        time.sleep(0.1)
    raise RuntimeError("redis did not start")


def test_redis_outage_delays_updates_but_loses_none(tmp_path, postgres_url):
    redis_port = free_port()
    redis = _start_redis(redis_port, tmp_path / "redis1.log")
    env = _env(
        LURE_DATABASE_URL=postgres_url,
        LURE_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
        LURE_DATA_DIR=str(tmp_path / "blobs"),
    )
    key, port = create_admin_key(env), free_port()
    api = Process(lure_command("api", "--port", str(port)), env, tmp_path / "api.log")
    worker = Process(lure_command("worker"), env, tmp_path / "worker.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", api, key)
        with _client(port, key) as client:
            client.post("/v1/models", json={**DIGITS_MODEL, "epochs": 3}).raise_for_status()
            client.post(
                "/v1/models/digits/chunks?split=test",
                content=npz_body(DATA.test.x, DATA.test.y),
                headers=NPZ,
            ).raise_for_status()
            redis.stop(signal.SIGKILL)
            sealed = []
            for start in range(
                0, 1200, 150
            ):  # keeps arriving while the broker is down: all accepted
                answer = client.post(
                    "/v1/models/digits/chunks?split=train",
                    headers=NPZ,
                    content=npz_body(
                        DATA.train.x[start : start + 150], DATA.train.y[start : start + 150]
                    ),
                )
                assert answer.status_code == 201, answer.text
                sealed += answer.json()["sealed"]
            assert sealed == [1, 2, 3, 4]
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["broker"].startswith("error")
            assert int(ready.json()["checks"]["outbox_pending"]) == 4
            assert client.get("/v1/models/digits/versions").json() == []

            redis = _start_redis(redis_port, tmp_path / "redis2.log")
            versions = wait_for_versions(client, "digits", 4, timeout=240)
            assert [(v["number"], v["megabatch"], v["parent"]) for v in versions] == [
                (1, 1, None),
                (2, 2, 1),
                (3, 3, 2),
                (4, 4, 3),
            ]
            jobs = client.get("/v1/models/digits/jobs").json()
            finished = sorted(jobs, key=lambda j: j["finished_at"])
            assert [j["megabatch"] for j in finished] == [1, 2, 3, 4]  # processed in order
            assert client.get("/readyz").json()["checks"]["outbox_pending"] == "0"
    except BaseException:
        print(f"--- api ---\n{api.tail(40)}\n--- worker ---\n{worker.tail(40)}")
        raise
    finally:
        worker.stop()
        api.stop()
        redis.stop()


def test_api_restarts_lose_no_acknowledged_chunk_and_store_none_twice(tmp_path):
    import threading

    data_dir = tmp_path / "data"
    env = _env(LURE_DATA_DIR=str(data_dir))
    key, port = create_admin_key(env, data_dir), free_port()
    logs = iter(range(100))

    def start_api() -> Process:
        api = Process(
            lure_command("api", "--port", str(port)), env, tmp_path / f"api{next(logs)}.log"
        )
        wait_ready(f"http://127.0.0.1:{port}", api, key)
        return api

    api = start_api()
    acknowledged: dict[str, int] = {}
    try:
        with _client(port, key) as client:
            client.post(
                "/v1/models", json={**DIGITS_MODEL, "megabatch_size": 10_000}
            ).raise_for_status()

            def post(index: int) -> None:
                """Retry with the same Idempotency-Key until the server acknowledges (as a client
                should).
                """
                start = index * 40
                body = npz_body(DATA.train.x[start : start + 40], DATA.train.y[start : start + 40])
                while True:
                    try:
                        answer = client.post(
                            "/v1/models/digits/chunks?split=train",
                            content=body,
                            headers={**NPZ, "Idempotency-Key": f"stream-{index}"},
                        )
                        if answer.status_code == 201:
                            acknowledged[f"stream-{index}"] = answer.json()["id"]
                            return
                    except httpx.TransportError:
                        pass
                    time.sleep(0.3)

            for index in range(24):
                if index in (8, 16):  # between requests
                    api.stop(signal.SIGKILL)
                    api = start_api()
                if index == 12:  # in the middle of one
                    sender = threading.Thread(target=post, args=(index,))
                    sender.start()
                    time.sleep(0.05)
                    api.stop(signal.SIGKILL)
                    api = start_api()
                    sender.join(timeout=60)
                else:
                    post(index)
            assert len(acknowledged) == 24
            model = client.get("/v1/models/digits").json()
            assert model["open_megabatch"]["n_samples"] == 24 * 40
            for chunk_id in acknowledged.values():
                assert client.get(f"/v1/models/digits/chunks/{chunk_id}").json()["accepted"] == 40
    finally:
        api.stop()
    import hashlib
    import sqlite3

    with sqlite3.connect(data_dir / "lure.db") as db:
        rows = db.execute(
            "SELECT count(*), sum(n_samples), count(DISTINCT idempotency_key) FROM chunks"
        ).fetchone()
        blobs = db.execute("SELECT blob_key, sha256 FROM chunks").fetchall()
    assert rows == (24, 24 * 40, 24)
    for blob_key, sha in blobs:  # every acknowledged chunk's data is whole on disk
        assert hashlib.sha256((data_dir / "blobs" / blob_key).read_bytes()).hexdigest() == sha
    # a kill after a blob's fsync but before its commit may leave one unreferenced file: garbage,
    # not loss
    assert len(list((data_dir / "blobs" / "models").rglob("*.npz"))) in (24, 25)
