"""A model never stops learning silently: update crashes, lost workers, damaged checkpoints,
promotions during training and readiness, on real processes over both databases (issue 11).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from lure_engine.data import load_digits_dataset
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images
from tests.integration.deployments import (
    KINDS,
    WITH_OBJECT_STORE,
    make_deployment,
    runner_pid,
    shorten_later_updates,
    training,
    wait_for,
    wait_job,
)
from tests.integration.scenario import wait_for_versions

pytestmark = pytest.mark.slow
DATA = load_digits_dataset()
SLOW_MODEL = {**DIGITS_MODEL, "epochs": 150}  # long enough to act on a job while it trains


def _post(client, start: int, count: int = 300) -> dict:
    answer = client.post(
        "/v1/models/digits/chunks?split=train",
        headers=NPZ,
        content=npz_body(DATA.train.x[start : start + count], DATA.train.y[start : start + count]),
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def _model(client, **overrides) -> None:
    """The digits model with the promotion gate off: these tests are about what happens to
    updates, and a gate verdict on 90 rows hangs on one validation sample (issue 23 G: version 3
    was held for -0.0111 on one machine and not on another)."""
    gate_off = {"promotion": {"min_accuracy_delta": None}}
    client.post("/v1/models", json={**DIGITS_MODEL, **gate_off, **overrides}).raise_for_status()
    client.post(
        "/v1/models/digits/chunks?split=test",
        content=npz_body(DATA.test.x, DATA.test.y),
        headers=NPZ,
    ).raise_for_status()


@pytest.mark.parametrize("kind", WITH_OBJECT_STORE)
def test_crashed_updates_are_recorded_retried_then_failed_clearly_and_later_megabatches_go_on(
    kind, request, tmp_path
):
    deployment = make_deployment(
        kind, request, tmp_path, LURE_MAX_UPDATE_ATTEMPTS="2", LURE_RETRY_BACKOFF_SECONDS="0.5"
    )
    try:
        deployment.start_worker()
        with deployment.client() as client:
            _model(client, epochs=150)
            first = _post(client, 0)["jobs"][0]
            # attempt 1 dies as a native fault does; the worker records it and retries on its own
            job = wait_job(client, first, lambda j: training(j, 1) and j["attempts"] == 1)
            os.kill(runner_pid(job), signal.SIGSEGV)
            job = wait_job(client, first, lambda j: training(j, 1) and j["attempts"] == 2)
            [failure] = job["failures"]
            assert failure["attempt"] == 1 and failure["kind"] == "signal"
            assert "killed by SIGSEGV (Segmentation fault)" in failure["error"]
            assert (
                "last Python stack of the update process" in failure["error"]
            )  # from faulthandler
            assert "trainer.py" in failure["error"]
            # attempt 2 dies as the OOM killer kills: the job has used its attempts and fails
            # clearly
            os.kill(runner_pid(job), signal.SIGKILL)
            shorten_later_updates(client)
            job = wait_job(client, first, lambda j: j["state"] == "failed")
            assert job["error"].startswith("gave up after 2 attempts")
            assert "SIGKILL" in job["error"] and "out of memory" in job["error"]
            assert [f["kind"] for f in job["failures"]] == ["signal", "signal"]
            assert len(client.get("/v1/workers").json()) == 1  # the worker itself survived both
            ready = client.get("/readyz").json()
            assert ready["status"] == "degraded" and any(
                f"job {first} " in p for p in ready["problems"]
            )
            assert 'lure_jobs_failed_waiting{model="digits"} 1.0' in client.get("/metrics").text

            _post(client, 300)  # the next mega-batch is not blocked behind the failed one
            versions = wait_for(
                lambda: client.get("/v1/models/digits/versions").json(), 120, "a version"
            )
            assert [(v["number"], v["megabatch"], v["parent"]) for v in versions] == [(1, 2, None)]

            retried = client.post(f"/v1/jobs/{first}/retry")
            assert retried.status_code == 200 and retried.json()["state"] == "queued"
            assert retried.json()["attempts_left"] == 2
            assert client.post(f"/v1/jobs/{first}/retry").status_code == 409  # not failed any more
            versions = wait_for(
                lambda: (v := client.get("/v1/models/digits/versions").json())[1:] and v,
                120,
                "the retried version",
            )
            assert [(v["number"], v["megabatch"], v["parent"]) for v in versions] == [
                (1, 2, None),
                (2, 1, 1),
            ]
            job = client.get(f"/v1/jobs/{first}").json()
            assert (
                job["state"] == "succeeded" and job["attempts"] == 3 and len(job["failures"]) == 2
            )
            assert client.get("/readyz").json()["status"] == "ok"
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        deployment.stop()


@pytest.mark.parametrize("kind", WITH_OBJECT_STORE)
def test_a_worker_killed_mid_update_is_taken_over_on_either_database(kind, request, tmp_path):
    """The whole worker dies (no supervisor left to record it): the job goes stale and is taken
    over.
    """
    deployment = make_deployment(kind, request, tmp_path, LURE_STALE_JOB_SECONDS="3")
    try:
        first = deployment.start_worker()
        with deployment.client() as client:
            _model(client, epochs=150)
            job_id = _post(client, 0)["jobs"][0]
            wait_job(client, job_id, lambda j: training(j, 3))
            deployment.kill_worker(first)
            assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "running"
            shorten_later_updates(client)
            deployment.start_worker()
            versions = wait_for_versions(client, "digits", 1, timeout=240)
            time.sleep(4)  # room for a duplicate delivery to (wrongly) publish again
            versions = client.get("/v1/models/digits/versions").json()
            assert [(v["number"], v["megabatch"]) for v in versions] == [(1, 1)]
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["state"] == "succeeded" and job["version"] == 1 and job["attempts"] == 2
            [lost] = job["failures"]
            assert lost["kind"] == "lost" and "no heartbeat since" in lost["error"]
            megabatches = client.get("/v1/models/digits/megabatches").json()
            assert (
                sum(m["n_samples"] for m in megabatches) == 300
            )  # every acknowledged sample is in one
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        deployment.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_stopping_a_worker_mid_update_hands_the_attempt_back(kind, request, tmp_path):
    """SIGTERM to the worker's main process alone (what ``docker stop`` and systemd send): it
    stops the update at once instead of training on, and the job goes back to the queue with its
    attempt uncounted; the next worker trains it."""
    deployment = make_deployment(kind, request, tmp_path)
    try:
        first = deployment.start_worker()
        with deployment.client() as client:
            _model(client, epochs=150)
            job_id = _post(client, 0)["jobs"][0]
            wait_job(client, job_id, lambda j: training(j, 3))
            os.kill(first.popen.pid, signal.SIGTERM)
            first.popen.wait(30)  # a warm shutdown that waited for 150 epochs would time out
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert (job["state"], job["attempts"], job["runner"]) == ("queued", 0, None), job
            [stopped] = job["failures"]
            assert stopped["kind"] == "interrupted" and "SIGTERM" in stopped["error"]
            shorten_later_updates(client)
            deployment.start_worker()
            wait_for_versions(client, "digits", 1, timeout=300)
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["state"] == "succeeded" and job["attempts"] == 1
            assert [f["kind"] for f in job["failures"]] == ["interrupted"]
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        deployment.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_live_checkpoint_is_reported_and_training_goes_on_from_the_intact_parent(
    kind, request, tmp_path
):
    deployment = make_deployment(kind, request, tmp_path)
    try:
        deployment.start_worker()
        with deployment.client() as client:
            _model(client)
            _post(client, 0)
            _post(client, 300)
            wait_for_versions(client, "digits", 2)
            checkpoint = next(
                (deployment.data_dir / "blobs" / "models").rglob("mb00002-*/weights.safetensors")
            )
            checkpoint.write_bytes(
                checkpoint.read_bytes()[:-64] + bytes(64)
            )  # bit rot on the live version

            ready = client.get("/readyz").json()
            assert ready["status"] == "degraded"
            assert any(
                "live version 2's checkpoint fails its sha256 check" in p for p in ready["problems"]
            )
            assert 'lure_live_checkpoint_damaged{model="digits"} 1.0' in client.get("/metrics").text

            job_id = _post(client, 600)["jobs"][
                0
            ]  # more data: the update must not stall on the damage
            versions = wait_for_versions(client, "digits", 3)
            assert [(v["number"], v["parent"]) for v in versions] == [(1, None), (2, 1), (3, 1)]
            assert (
                versions[1]["damaged"]
                and "sha256" in versions[1]["damaged"]
                and versions[2]["live"]
            )
            assert client.get(f"/v1/jobs/{job_id}").json()["parent_version"] == 1
            assert client.get("/readyz").json()["status"] == "ok"
            answer = client.post(
                "/v1/models/digits/predict", json={"images": png_images(DATA.test.x[:2])}
            )
            assert answer.status_code == 200 and answer.json()["version"] == 3
            promote = client.post("/v1/models/digits/versions/2/promote")
            assert promote.status_code == 409 and "damaged" in promote.json()["detail"]
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        deployment.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_a_promotion_made_during_an_update_wins(kind, request, tmp_path):
    deployment = make_deployment(kind, request, tmp_path)
    try:
        deployment.start_worker()
        with deployment.client() as client:
            _model(client, epochs=40)
            _post(client, 0)
            _post(client, 300)
            wait_for_versions(client, "digits", 2, timeout=240)
            job_id = _post(client, 600)["jobs"][0]
            wait_job(client, job_id, lambda j: training(j, 1))
            assert (
                client.post("/v1/models/digits/versions/1/promote").status_code == 200
            )  # a rollback
            versions = wait_for_versions(client, "digits", 3, timeout=240)
            third = versions[2]
            assert third["parent"] == 2 and not third["live"] and third["release"] == "superseded"
            assert "version 1 was promoted" in third["release_note"]
            assert client.get("/v1/models/digits").json()["live_version"] == 1
            answer = client.post(
                "/v1/models/digits/predict", json={"images": png_images(DATA.test.x[:2])}
            )
            assert answer.json()["version"] == 1
            _post(client, 900)  # the next update starts from what is live: the promoted version
            fourth = wait_for_versions(client, "digits", 4, timeout=240)[3]
            assert fourth["parent"] == 1 and fourth["live"] and fourth["release"] == "live"
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        deployment.stop()


def test_readiness_tells_when_no_worker_is_alive(request, tmp_path):
    deployment = make_deployment("sqlite", request, tmp_path, LURE_WORKER_TIMEOUT_SECONDS="3")
    try:
        with deployment.client() as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "degraded"
            assert any("no worker has reported" in p for p in ready.json()["problems"])
            assert client.get("/readyz?strict=true").status_code == 503
            assert "lure_workers_alive 0.0" in client.get("/metrics").text
            worker = deployment.start_worker()
            wait_for(
                lambda: client.get("/readyz").json()["status"] == "ok", 60, "ready with a worker"
            )
            assert client.get("/readyz?strict=true").status_code == 200
            assert len(client.get("/v1/workers").json()) == 1
            deployment.kill_worker(worker)  # died: no goodbye, its heartbeat just stops
            wait_for(
                lambda: client.get("/readyz").json()["status"] == "degraded", 30, "degraded again"
            )
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        deployment.stop()


def test_lure_up_restarts_its_worker_and_refuses_a_second_server_on_its_folder(tmp_path):
    from tests.integration.deployments import start_lure_up
    from tests.integration.processes import Process, free_port, lure_command

    embedded = start_lure_up(tmp_path)
    server, url, key, env = embedded.server, embedded.url, embedded.key, embedded.env
    try:
        import httpx

        with httpx.Client(
            base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            [worker] = wait_for(lambda: client.get("/v1/workers").json(), 60, "a worker")
            os.kill(int(worker["name"].rsplit(":", 1)[1]), signal.SIGKILL)
            wait_for(
                lambda: [
                    w for w in client.get("/v1/workers").json() if w["name"] != worker["name"]
                ],
                90,
                "a restarted worker",
            )
            assert (
                "worker killed by SIGKILL" in server.log.read_text()
                and "restarting it" in server.log.read_text()
            )
            _model(client)
            _post(client, 0)
            assert wait_for_versions(client, "digits", 1)[0]["number"] == 1  # the new worker trains

            second = Process(
                lure_command(
                    "api", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")
                ),
                env,
                tmp_path / "second.log",
            )
            assert second.popen.wait(60) == 2
            assert "is in use by another LURE server" in second.log.read_text()
            second.stop()
    except BaseException:
        print(server.tail(60))
        raise
    finally:
        server.stop()
