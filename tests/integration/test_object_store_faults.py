"""The object store stopped and restarted mid-stream (issue 27 §3), on a private SeaweedFS: ingest
answers 503 with ``Retry-After`` and stores nothing, ``/predict`` keeps serving the version it
has loaded and answers 503 only for one it never fetched, ``/readyz`` names the store, an update
caught by the outage is retried without losing an attempt, and everything resumes once the store
is back."""

from __future__ import annotations

import time

import pytest

from lure_engine.data import load_digits_dataset
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images
from tests.integration.deployments import Deployment, environment, training, wait_job
from tests.integration.processes import create_admin_key, free_port
from tests.integration.scenario import wait_for_versions
from tests.s3 import PrivateS3, stored_keys

pytestmark = pytest.mark.slow
DATA = load_digits_dataset()
IMAGES = png_images(DATA.test.x[:4])


def _train(client, start: int, count: int = 300):
    x, y = DATA.train.x[start : start + count], DATA.train.y[start : start + count]
    return client.post("/v1/models/digits/chunks?split=train", content=npz_body(x, y), headers=NPZ)


def _predict(client, version: int | None = None):
    pinned = f"?version={version}" if version is not None else ""
    return client.post(f"/v1/models/digits/predict{pinned}", json={"images": IMAGES})


def _samples(client) -> int:
    return sum(m["n_samples"] for m in client.get("/v1/models/digits/megabatches").json())


def _during_the_outage(client) -> None:
    samples = _samples(client)
    refused = _train(client, 900, 30)
    assert refused.status_code == 503 and refused.headers["Retry-After"], refused.text
    assert "blob store" in refused.json()["detail"]
    assert _samples(client) == samples  # nothing half-stored
    live = _predict(client)  # loaded before the outage: served from memory
    assert live.status_code == 200 and live.headers["X-Model-Version"] == "2", live.text
    never_fetched = _predict(client, version=1)
    assert never_fetched.status_code == 503, never_fetched.text
    ready = client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["blob_store"].startswith("error") and "s3://" in checks["blob_store_location"]


def test_an_object_store_outage_refuses_ingest_keeps_serving_and_costs_no_attempt(
    tmp_path, postgres_url, redis_url
):
    s3 = PrivateS3(tmp_path / "s3")
    s3.start()
    s3_env = s3.environment()
    env = environment(
        tmp_path,
        **s3_env,
        LURE_DATABASE_URL=postgres_url,
        LURE_BROKER_URL=redis_url,
        LURE_WARM_LIVE_SECONDS="0",  # the API loads a version only when asked to serve it
    )
    deployment = Deployment("postgres", tmp_path, env, create_admin_key(env), free_port())
    try:
        deployment.start_api()
        deployment.env = env | {"LURE_DATA_DIR": str(tmp_path / "worker-host")}  # no shared disk
        deployment.start_worker()
        with deployment.client() as client:
            client.post("/v1/models", json={**DIGITS_MODEL, "epochs": 40}).raise_for_status()
            client.post(
                "/v1/models/digits/chunks?split=test",
                content=npz_body(DATA.test.x, DATA.test.y),
                headers=NPZ,
            ).raise_for_status()
            for start in (0, 300):
                assert _train(client, start).status_code == 201
            wait_for_versions(client, "digits", 2, timeout=240)
            assert _predict(client).headers["X-Model-Version"] == "2"  # loads version 2
            [third] = _train(client, 600).json()["jobs"]
            wait_job(client, third, lambda job: training(job, 2), timeout=120)
            s3.stop()  # mid-update: its checkpoint cannot be written
            _during_the_outage(client)
            time.sleep(3)
            s3.start()
            assert _train(client, 900, 30).status_code == 201  # accepted again
            assert any("/chunks/" in key for key in stored_keys(s3_env))
            versions = wait_for_versions(client, "digits", 3, timeout=240)
            jobs = client.get("/v1/models/digits/jobs").json()
            assert _predict(client, version=1).status_code == 200
            assert client.get("/readyz").status_code == 200
        assert [v["megabatch"] for v in versions] == [1, 2, 3]
        assert [j["state"] for j in jobs] == ["succeeded"] * 3
        assert [j["attempts"] for j in jobs] == [1, 1, 1], jobs
        # caught mid-update, the attempt was handed back (maybe more than once while the store
        # stayed down), never counted
        assert {f["kind"] for j in jobs for f in j["failures"]} <= {"unreachable"}
        for host in ("data", "worker-host"):  # nothing but the read cache on either host
            assert not any(p.is_file() for p in (tmp_path / host / "blobs").rglob("*"))
    except BaseException:
        print(deployment.logs())
        print((tmp_path / "s3" / "weed.log").read_text()[-3000:])
        raise
    finally:
        deployment.stop()
        s3.stop()
