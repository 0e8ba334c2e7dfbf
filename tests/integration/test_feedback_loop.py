"""The loop from /predict back into the stream, as a user runs it (issue 28), on SQLite and on
PostgreSQL + Redis: real API and worker processes, the ``lure`` CLI as real processes. Predictions
are logged; ``lure label-queue`` writes the most uncertain ones to a folder; the labels filled in
go back with ``lure feedback``; they seal a mega-batch that the worker trains on."""

from __future__ import annotations

import csv
import subprocess
import time

import pytest

from lure_engine.data import load_digits_dataset
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images
from tests.integration.deployments import KINDS, make_deployment
from tests.integration.processes import lure_command
from tests.integration.scenario import wait_for_versions

pytestmark = pytest.mark.slow
DATA = load_digits_dataset()
# checked on demand only (POST .../drift/check)
DRIFT = {"window": 20, "check_every": 10_000, "min_seconds": 0, "p_value": 0.001, "seal": False}
MODEL = {**DIGITS_MODEL, "megabatch_size": 40, "log_predictions": {"drift": DRIFT}}


@pytest.mark.parametrize("kind", KINDS)
def test_label_the_most_uncertain_predictions_and_train_on_them(kind, request, tmp_path):
    deployment = make_deployment(kind, request, tmp_path)
    env = deployment.env | {"LURE_URL": deployment.url, "LURE_API_KEY": deployment.key}

    def lure(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            lure_command(*args), env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr + done.stdout
        return done

    try:
        deployment.start_worker()
        with deployment.client() as client:
            client.post("/v1/models", json=MODEL).raise_for_status()
            for split, x, y in (("test", DATA.test.x, DATA.test.y),
                                ("train", DATA.train.x[:40], DATA.train.y[:40])):  # fmt: skip
                chunk = npz_body(x, y)
                client.post(f"/v1/models/digits/chunks?split={split}", headers=NPZ, content=chunk)
            wait_for_versions(client, "digits", 1, timeout=180)
            images = DATA.test.x[:60]
            answer = client.post("/v1/models/digits/predict", json={"images": png_images(images)})
            truth = {
                p["prediction_id"]: int(y)
                for p, y in zip(answer.json()["predictions"], DATA.test.y[:60], strict=True)
            }
            _check_drift(client)
            folder = tmp_path / "to-label"
            lure(
                "label-queue", str(folder), "--model", "digits", "--by", "entropy", "--limit", "40"
            )
            with open(folder / "labels.csv", newline="") as handle:
                rows = list(csv.DictReader(handle))
            assert len(rows) == 40 and all((folder / row["image"]).exists() for row in rows)
            for row in rows:  # the person labelling
                row["label"] = truth[row["prediction_id"]]
            with open(folder / "labels.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
            sent = lure("feedback", str(folder / "labels.csv"), "--model", "digits")
            assert "40 new samples" in sent.stdout
            again = lure("feedback", str(folder / "labels.csv"), "--model", "digits")
            assert "0 new samples" in again.stdout and "40 already labelled" in again.stdout
            versions = wait_for_versions(client, "digits", 2, timeout=180)
            assert versions[-1]["megabatch"] == 2  # trained on the labelled predictions
            accuracy = client.get("/v1/models/digits/live-accuracy").json()["versions"]
            assert accuracy[0]["version"] == 1 and accuracy[0]["labelled"] == 40
            queue = client.get("/v1/models/digits/label-queue?limit=100").json()
            assert len(queue) == 20  # the 40 labelled ones left the queue
            _shadow_version_one(client, lure)
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        deployment.stop()


def _check_drift(client) -> None:
    """A check of the 60 logged answers' last 20 against version 1's gate rows, stored and read
    back through the deployment's database."""
    deadline = time.monotonic() + 30
    while (checked := client.post("/v1/models/digits/drift/check")).status_code == 409:
        assert time.monotonic() < deadline, checked.text  # the log writes off the request path
        time.sleep(0.2)
    assert checked.status_code == 200, checked.text
    record = client.get("/v1/models/digits/drift").json()
    assert record["policy"] == DRIFT and record["live_version"] == 1
    assert record["checks"] == [checked.json()]
    assert checked.json()["version"] == 1 and checked.json()["window_rows"] == 20
    assert checked.json()["reference_rows"] == record["reference_rows"] >= 4


def _shadow_version_one(client, lure) -> None:
    """Version 1 shadows the live version 2 on 10 more requests; `lure versions` shows it."""
    client.patch("/v1/models/digits", json={"shadow": [1]}).raise_for_status()
    answer = client.post("/v1/models/digits/predict", json={"images": png_images(DATA.test.x[:10])})
    assert answer.json()["version"] == 2  # the shadow's answers are never returned
    deadline = time.monotonic() + 30
    while not (record := client.get("/v1/models/digits/shadow").json()["versions"]):
        assert time.monotonic() < deadline, "the shadow never answered"
        time.sleep(0.2)
    assert record[0]["version"] == 1 and record[0]["answered"] == 10
    table = lure("versions", "--model", "digits").stdout
    assert "agrees" in table and "of 10" in table, table
