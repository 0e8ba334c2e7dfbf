"""Drift of served traffic (issue 28 §4), through HTTP: clean traffic passes its checks, corrupted
traffic drifts, the check is recorded, exported and seals the open mega-batch once."""

from __future__ import annotations

import numpy as np
import pytest

from lure_core.drift import Answers, compare
from tests.helpers import png_images
from tests.server.conftest import post_train

LOG = {"sample_rate": 1.0, "keep_days": 30, "max_rows": 1000}
DRIFT = {"window": 40, "check_every": 40, "min_seconds": 0, "p_value": 0.001, "seal": True}


def _predict_and_store(client, images) -> None:
    answer = client.post("/v1/models/digits/predict", json={"images": png_images(images)})
    assert answer.status_code == 200, answer.text
    assert client.app.state.resources.prediction_log.flush()  # and the checks it triggered


def _noisy(images: np.ndarray) -> np.ndarray:
    """Low contrast under heavy noise: what a dirty lens or a broken camera sends."""
    noise = np.random.default_rng(0).normal(0, 70, images.shape)
    return np.clip(images * 0.2 + 100 + noise, 0, 255).astype(np.uint8)


def test_corrupted_traffic_drifts_is_recorded_and_seals_the_open_megabatch_once(
    client, two_versions, digits, run_jobs
):
    answer = client.patch("/v1/models/digits", json={"log_predictions": {**LOG, "drift": DRIFT}})
    assert answer.status_code == 200, answer.text
    before = client.get("/v1/models/digits/drift").json()
    assert before["policy"] == DRIFT and before["live_version"] == 2 and before["checks"] == []
    assert before["reference_rows"] == 30  # version 2's gate rows: mega-batch 1's held-out 30

    _predict_and_store(client, digits.test.x[:40])  # the traffic it was trained for
    [clean] = client.get("/v1/models/digits/drift").json()["checks"]
    assert clean["version"] == 2 and clean["window_rows"] == 40 and clean["reference_rows"] == 30
    assert not clean["drifted"] and clean["p_value"] > DRIFT["p_value"]

    post_train(client, digits.train.x[600:700], digits.train.y[600:700])  # an open mega-batch
    _predict_and_store(client, _noisy(digits.test.x[40:80]))
    drifted = client.get("/v1/models/digits/drift").json()
    assert drifted["drifted_checks"] == 1
    last = drifted["checks"][-1]
    assert last["drifted"] and last["p_value"] < DRIFT["p_value"]
    assert last["sealed_megabatch"] == 3  # 100 of 300 samples: sealed early, its update queued
    megabatch = client.get("/v1/models/digits/megabatches").json()[2]
    assert megabatch["state"] == "sealed" and megabatch["n_samples"] == 100
    metrics = client.get("/metrics").text
    assert 'lure_drift_alarms_total{model="digits"} 1.0' in metrics
    assert 'lure_drift_p_value{model="digits"}' in metrics

    post_train(client, digits.train.x[700:750], digits.train.y[700:750])
    again = client.post("/v1/models/digits/drift/check")  # the same live version, still drifted
    assert again.status_code == 200, again.text
    assert again.json()["drifted"] and again.json()["sealed_megabatch"] is None  # sealed once
    assert run_jobs() == ["published"]


def test_drift_is_on_with_the_log_and_off_when_asked(client, two_versions):
    answer = client.patch("/v1/models/digits", json={"log_predictions": LOG})
    assert answer.json()["config"]["log_predictions"]["drift"] == {
        "window": 200,
        "check_every": 100,
        "min_seconds": 10.0,
        "p_value": 0.001,
        "seal": True,
    }
    short = client.post("/v1/models/digits/drift/check")  # no logged answers yet
    assert short.status_code == 409 and "200 logged answers" in short.json()["detail"]
    client.patch("/v1/models/digits", json={"log_predictions": {**LOG, "drift": None}})
    assert client.get("/v1/models/digits/drift").json()["policy"] is None
    off = client.post("/v1/models/digits/drift/check")
    assert off.status_code == 409 and "no drift checks" in off.json()["detail"]
    bad = client.patch(
        "/v1/models/digits", json={"log_predictions": {**LOG, "drift": {"window": 5}}}
    )
    assert bad.status_code == 422 and "window" in bad.text


def test_the_tests_keep_their_level_on_samples_of_one_distribution():
    rng = np.random.default_rng(1)
    reference = Answers.of(rng.beta(6, 1, 300), rng.integers(0, 10, 300))
    alarms = [
        compare(reference, Answers.of(rng.beta(6, 1, 200), rng.integers(0, 10, 200)), 0.05).drifted
        for _ in range(400)
    ]
    assert np.mean(alarms) <= 0.05 + 0.02  # Bonferroni over two tests: at most the level
    shifted = compare(reference, Answers.of(rng.beta(2, 1, 200), rng.integers(0, 10, 200)), 0.001)
    assert shifted.drifted and shifted.confidence_p_value < 1e-6
    one_class = compare(reference, Answers.of(rng.beta(6, 1, 200), np.zeros(200, int)), 0.001)
    assert one_class.drifted and one_class.class_p_value < 1e-6


def test_a_check_needs_rows_on_both_sides():
    with pytest.raises(ValueError, match="rows in both"):
        compare(Answers.of([], []), Answers.of([0.5], [1]), 0.01)
