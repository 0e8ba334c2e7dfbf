"""Shadow versions (issue 28 §5), through HTTP: an older version answers every logged request off
the request path; its agreement with live and its accuracy on feedback are recorded."""

from __future__ import annotations

from sqlalchemy import func, select

from lure_core.records import ShadowAnswerRow
from tests.helpers import png_images

LOG = {"sample_rate": 1.0, "keep_days": 30, "max_rows": 1000}


def _labels(client, images, version: int | None = None) -> tuple[list[int], list[str]]:
    pinned = f"?version={version}" if version is not None else ""
    answer = client.post(f"/v1/models/digits/predict{pinned}", json={"images": png_images(images)})
    assert answer.status_code == 200, answer.text
    assert client.app.state.resources.prediction_log.flush()
    predictions = answer.json()["predictions"]
    return [p["label"] for p in predictions], [p["prediction_id"] for p in predictions]


def test_a_shadow_version_answers_logged_requests_and_is_measured_against_live(
    client, two_versions, digits
):
    answer = client.patch("/v1/models/digits", json={"log_predictions": LOG, "shadow": [1]})
    assert answer.status_code == 200, answer.text
    images, truth = digits.test.x[:30], [int(y) for y in digits.test.y[:30]]
    served, ids = _labels(client, images)  # version 2 answers; version 1 shadows
    shadowed, _ = _labels(client, images, version=1)  # v1 answering itself: no shadow answer
    record = client.get("/v1/models/digits/shadow").json()
    agreement = sum(a == b for a, b in zip(served, shadowed, strict=True)) / 30
    assert record["shadow"] == [1]
    assert record["versions"] == [
        {
            "version": 1,
            "answered": 30,
            "agreement": agreement,
            "labelled": 0,
            "accuracy": None,
            "served_accuracy": None,
        }
    ]
    assert agreement < 1  # v1 (83 % on the test split) and v2 (97 %) disagree somewhere
    exported = f'lure_shadow_agreement{{model="digits",version="1"}} {agreement}'
    assert exported in client.get("/metrics").text

    items = [{"prediction_id": i, "label": y} for i, y in zip(ids[:20], truth[:20], strict=True)]
    assert client.post("/v1/models/digits/feedback", json=items).json()["accepted"] == 20
    [measured] = client.get("/v1/models/digits/shadow").json()["versions"]
    right = sum(s == y for s, y in zip(shadowed[:20], truth[:20], strict=True))
    served_right = sum(s == y for s, y in zip(served[:20], truth[:20], strict=True))
    assert measured["labelled"] == 20
    assert measured["accuracy"] == right / 20 and measured["served_accuracy"] == served_right / 20

    assert client.delete("/v1/models/digits").status_code == 204  # its answers go with it
    with client.app.state.resources.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ShadowAnswerRow)) == 0


def test_only_servable_versions_of_a_logging_model_may_shadow(client, two_versions):
    unknown = client.patch("/v1/models/digits", json={"log_predictions": LOG, "shadow": [1, 7]})
    assert unknown.status_code == 422 and "no servable version 7" in unknown.json()["detail"]
    unlogged = client.patch("/v1/models/digits", json={"shadow": [1]})
    assert unlogged.status_code == 422 and "set log_predictions" in unlogged.text
    twice = client.patch("/v1/models/digits", json={"log_predictions": LOG, "shadow": [1, 1]})
    assert twice.status_code == 422 and "distinct" in twice.text
    assert client.get("/v1/models/digits").json()["config"]["shadow"] == []  # nothing stored
    fresh = client.post(
        "/v1/models",
        json={**client.get("/v1/models/digits").json()["config"], "name": "new"}
        | {"log_predictions": LOG, "shadow": [1]},
    )
    assert fresh.status_code == 422 and "no versions yet" in fresh.json()["detail"]
