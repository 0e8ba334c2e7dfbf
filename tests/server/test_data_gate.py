"""The data gate through HTTP and the real update function: a mega-batch out of line with the
stream is quarantined before training, kept out of training, replay and the gate split, reported,
and released or discarded by an admin. tests/integration runs the flow with Celery on PostgreSQL."""

from __future__ import annotations

import numpy as np

from tests.helpers import DIGITS_MODEL
from tests.server.conftest import post_train
from tests.server.test_promotion_gate import _post_test_set, _versions


def _stream_with_a_poisoned_third(client, digits, run_jobs, seed: int = 0) -> None:
    _post_test_set(client, digits)
    x, y = digits.train.x, digits.train.y
    post_train(client, x[:300], y[:300])
    post_train(client, x[300:600], y[300:600])
    assert run_jobs() == ["published", "published"]
    post_train(client, x[600:900], np.random.default_rng(seed).permutation(y[600:900]))
    assert run_jobs() == ["quarantined"]


def _megabatch(client, index: int) -> dict:
    return client.get("/v1/models/digits/megabatches").json()[index - 1]


def test_a_shuffled_megabatch_is_quarantined_before_training_and_reported(
    client, model, digits, run_jobs
):
    _stream_with_a_poisoned_third(client, digits, run_jobs)
    third = _megabatch(client, 3)
    assert third["state"] == "quarantined" and third["version"] is None
    gate = third["data_gate"]
    assert gate["verdict"] == "quarantined" and gate["mode"] == "quarantine"
    assert "disagree with what the model learnt" in gate["reasons"][0]
    assert gate["numbers"]["new"]["rows"] == 300 and gate["numbers"]["accuracy_drop_p"] < 1e-6
    assert [v["number"] for v in _versions(client)] == [1, 2]  # nothing trained on it
    ready = client.get("/readyz").json()
    assert ready["status"] == "degraded"
    assert any("mega-batch 3 is quarantined" in p for p in ready["problems"])
    assert (
        'lure_megabatches_quarantined{model="digits",state="quarantined"} 1.0'
        in client.get("/metrics").text
    )
    # the stream goes on without it: not in the next update's replay nor in its gate rows
    x, y = digits.train.x, digits.train.y
    post_train(client, x[900:1200], y[900:1200])
    assert run_jobs() == ["published"]
    after = _versions(client)[2]
    assert after["number"] == 3 and after["parent"] == 2 and after["live"]
    assert after["inputs"]["train_samples"] == 3 * 270  # mega-batches 1, 2 and 4
    assert after["gate"]["numbers"]["gate_rows"]["judged"] == 60  # mega-batches 1 and 2
    assert _megabatch(client, 4)["data_gate"]["verdict"] == "passed"


def test_an_admin_releases_a_quarantined_megabatch_and_it_trains_as_it_is(
    client, model, digits, run_jobs
):
    _stream_with_a_poisoned_third(client, digits, run_jobs)
    released = client.post("/v1/models/digits/megabatches/3/release")
    assert released.status_code == 200, released.text
    assert released.json()["state"] == "sealed"
    assert released.json()["data_gate"]["released_by"] == "test-admin"
    assert run_jobs() == ["published"]  # the data gate does not judge it again
    assert _megabatch(client, 3)["version"] == 3
    assert not any("quarantined" in p for p in client.get("/readyz").json()["problems"])
    again = client.post("/v1/models/digits/megabatches/3/release")
    assert again.status_code == 409 and "only a quarantined one" in again.json()["detail"]


def test_an_admin_discards_a_quarantined_megabatch_for_good(client, model, digits, run_jobs):
    _stream_with_a_poisoned_third(client, digits, run_jobs)
    assert client.post("/v1/models/digits/megabatches/3/discard").status_code == 200
    third = _megabatch(client, 3)
    assert third["state"] == "discarded" and "discarded_at" in third["data_gate"]
    assert run_jobs() == []
    assert not any("quarantined" in p for p in client.get("/readyz").json()["problems"])
    assert client.post("/v1/models/digits/megabatches/9/discard").status_code == 404
    assert client.post("/v1/models/digits/megabatches/3/forget").status_code == 422


def test_the_data_gate_can_be_turned_off_per_model(client, digits, run_jobs):
    answer = client.post("/v1/models", json={**DIGITS_MODEL, "data_gate": {"mode": "off"}})
    assert answer.status_code == 201 and answer.json()["config"]["data_gate"]["mode"] == "off"
    _post_test_set(client, digits)
    x, y = digits.train.x, digits.train.y
    post_train(client, x[:300], y[:300])
    post_train(client, x[300:600], y[300:600])
    post_train(client, x[600:900], np.random.default_rng(0).permutation(y[600:900]))
    assert run_jobs() == ["published"] * 3
    assert _megabatch(client, 3)["data_gate"] is None
    bad = client.patch("/v1/models/digits", json={"data_gate": {"mode": "ignore"}})
    assert bad.status_code == 422 and "mode" in bad.text
    warn = client.patch("/v1/models/digits", json={"data_gate": {"mode": "warn"}})
    assert warn.status_code == 200 and warn.json()["config"]["data_gate"]["mode"] == "warn"
