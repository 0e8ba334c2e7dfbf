"""An unreachable database is waited out, never counted against an update (issue 23 A):
PostgreSQL restarted while jobs wait in Redis and one trains. Before, each message the worker
took during the outage was acknowledged and lost (its job waited for the 600 s re-send) and the
running job lost an attempt."""

from __future__ import annotations

import time

import pytest

from lure_engine.data import load_digits_dataset
from tests.helpers import DIGITS_MODEL, NPZ, npz_body
from tests.integration.deployments import (
    Deployment,
    environment,
    shorten_later_updates,
    training,
    wait_job,
)
from tests.integration.private_postgres import PrivatePostgres
from tests.integration.processes import create_admin_key, free_port
from tests.integration.scenario import wait_for_versions

pytestmark = pytest.mark.slow
DATA = load_digits_dataset()


def test_a_postgres_restart_loses_no_queued_job_and_costs_no_attempt(tmp_path, redis_url):
    postgres = PrivatePostgres()
    env = environment(tmp_path, LURE_DATABASE_URL=postgres.url, LURE_BROKER_URL=redis_url)
    deployment = Deployment("postgres", tmp_path, env, create_admin_key(env), free_port())
    try:
        deployment.start_api()
        deployment.start_worker()
        with deployment.client() as client:
            model = {**DIGITS_MODEL, "epochs": 40}  # each update runs for seconds
            client.post("/v1/models", json=model).raise_for_status()
            client.post(
                "/v1/models/digits/chunks?split=test",
                content=npz_body(DATA.test.x, DATA.test.y),
                headers=NPZ,
            ).raise_for_status()
            sealed = []
            for start in range(0, 1200, 300):
                answer = client.post(
                    "/v1/models/digits/chunks?split=train",
                    content=npz_body(
                        DATA.train.x[start : start + 300], DATA.train.y[start : start + 300]
                    ),
                    headers=NPZ,
                )
                sealed += answer.json()["sealed"]
            assert sealed == [1, 2, 3, 4]
            first = client.get("/v1/models/digits/jobs").json()[0]["id"]
            # the first trains while three more wait in Redis
            wait_job(client, first, lambda job: training(job, 1), timeout=120)
            shorten_later_updates(client)  # the three waiting ones: 8 epochs, not 40
            postgres.stop()
            time.sleep(10)
            postgres.start()
            back = time.monotonic()
            versions = wait_for_versions(client, "digits", 4, timeout=240)
            waited = time.monotonic() - back
            jobs = client.get("/v1/models/digits/jobs").json()
        assert [v["parent"] for v in versions] == [None, 1, 2, 3]
        assert waited < 200  # resumed within seconds of the restart, not at the 600 s re-send
        assert [j["state"] for j in jobs] == ["succeeded"] * 4
        assert [j["attempts"] for j in jobs] == [1, 1, 1, 1], jobs
        counted = [f for j in jobs for f in j["failures"] if f["kind"] != "unreachable"]
        assert counted == []
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        deployment.stop()
        postgres.close()
