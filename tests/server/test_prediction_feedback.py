"""From /predict back into the stream (issue 28 §1-3): the prediction log, labels by prediction id,
live accuracy and the label queue, through HTTP."""

from __future__ import annotations

import io
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select, update

from lure_core.backup import backup, restore
from lure_core.records import PredictionRow
from service.ingest import feedback
from service.serving.prediction_log import prune_model
from tests.helpers import png_images

LOG = {"sample_rate": 1.0, "keep_days": 30, "max_rows": 1000}
DRIFT_DEFAULTS = {
    "window": 200,
    "check_every": 100,
    "min_seconds": 10.0,
    "p_value": 0.001,
    "seal": True,
}


def _predict(client, images) -> dict:
    answer = client.post("/v1/models/digits/predict", json={"images": png_images(images)})
    assert answer.status_code == 200, answer.text
    return answer


def _logged(client) -> int:
    client.app.state.resources.prediction_log.flush()
    with client.app.state.resources.sessions() as session:
        return session.scalar(select(func.count()).select_from(PredictionRow))


@pytest.fixture()
def logging_on(client, two_versions):
    answer = client.patch("/v1/models/digits", json={"log_predictions": LOG})
    assert answer.status_code == 200, answer.text
    assert answer.json()["config"]["log_predictions"] == LOG | {"drift": DRIFT_DEFAULTS}


def _samples(client) -> int:
    return sum(m["n_samples"] for m in client.get("/v1/models/digits/megabatches").json())


def test_logged_predictions_are_labelled_by_id_once_each(client, logging_on, digits):
    answer = _predict(client, digits.test.x[:6])
    ids = [p["prediction_id"] for p in answer.json()["predictions"]]
    said = [p["label"] for p in answer.json()["predictions"][:4]]  # what the server answered
    assert answer.headers["X-Prediction-Ids"].split(",") == ids and len(set(ids)) == 6
    assert _logged(client) == 6
    before = _samples(client)
    truth = [int(y) for y in digits.test.y[:6]]
    items = [{"prediction_id": i, "label": y} for i, y in zip(ids[:4], truth[:4], strict=True)]
    items += [
        {"prediction_id": ids[0], "label": truth[0]},  # the same pair twice: one sample
        {"prediction_id": ids[4], "label": 10},  # out of range
        {"prediction_id": "0" * 32, "label": 1},  # never logged
    ]
    answer = client.post("/v1/models/digits/feedback", json=items)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] == 4 and body["chunk"] is not None
    assert [i["status"] for i in body["items"]] == [201, 201, 201, 201, 200, 422, 404]
    assert _samples(client) == before + 4
    again = client.post("/v1/models/digits/feedback", json=items[:4]).json()
    assert again["accepted"] == 0 and {i["status"] for i in again["items"]} == {200}
    assert _samples(client) == before + 4  # idempotent
    other = (truth[1] + 1) % 10
    conflict = client.post(
        "/v1/models/digits/feedback", json=[{"prediction_id": ids[1], "label": other}]
    )
    assert conflict.json()["items"][0]["status"] == 409
    accuracy = client.get("/v1/models/digits/live-accuracy").json()["versions"]
    assert _said(client, ids[:4]) == said  # the log kept the answer given
    correct = sum(p == y for p, y in zip(said, truth[:4], strict=True))
    assert accuracy == [
        {"version": 2, "labelled": 4, "correct": correct, "accuracy": pytest.approx(correct / 4)}
    ]
    metrics = client.get("/metrics").text
    assert 'lure_predictions_logged_total{model="digits"} 6.0' in metrics
    assert 'lure_feedback_labels{model="digits",version="2"} 4.0' in metrics
    assert f'lure_live_accuracy{{model="digits",version="2"}} {correct / 4}' in metrics


def _said(client, ids: list[str]) -> list[int]:
    """What the logged answers predicted."""
    with client.app.state.resources.sessions() as session:
        rows = {r.id: r for r in session.scalars(select(PredictionRow))}
    return [rows[i].predicted for i in ids]


def test_the_label_queue_puts_the_most_uncertain_first_with_its_image(client, logging_on, digits):
    _predict(client, digits.test.x[:20])
    assert _logged(client) == 20
    for by, key, reverse in (
        ("margin", "margin", False),
        ("entropy", "entropy", True),
        ("least_confidence", "confidence", False),
    ):
        listed = client.get(f"/v1/models/digits/label-queue?by={by}&limit=5").json()
        assert len(listed) == 5
        values = [item[key] for item in listed]
        assert values == sorted(values, reverse=reverse)
        with client.app.state.resources.sessions() as session:
            every = [getattr(r, key) for r in session.scalars(select(PredictionRow))]
        assert values[0] == (max(every) if reverse else min(every))
    first = client.get("/v1/models/digits/label-queue?limit=1").json()[0]
    image = client.get(first["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(image.content)))
    assert pixels.shape == digits.test.x.shape[1:3]
    assert client.get("/v1/models/digits/label-queue?by=random").status_code == 422
    client.post(
        "/v1/models/digits/feedback", json=[{"prediction_id": first["prediction_id"], "label": 1}]
    )
    listed = client.get("/v1/models/digits/label-queue?limit=100").json()
    assert first["prediction_id"] not in {i["prediction_id"] for i in listed} and len(listed) == 19


def test_an_image_served_twice_is_queued_once_and_never_after_its_label(client, logging_on, digits):
    _predict(client, digits.test.x[:10])
    _predict(client, digits.test.x[:10])  # the same ten images again: twenty logged answers
    assert _logged(client) == 20
    listed = client.get("/v1/models/digits/label-queue?limit=100").json()
    assert len(listed) == 10 and len({i["image_url"] for i in listed}) == 10
    client.post(
        "/v1/models/digits/feedback",
        json=[{"prediction_id": listed[0]["prediction_id"], "label": int(digits.test.y[0])}],
    )
    # its other logged answer (the other prediction id of the same image) left the queue too
    assert len(client.get("/v1/models/digits/label-queue?limit=100").json()) == 9
    assert client.get("/v1/models/digits/label-queue?version=1").json() == []  # v2 answered
    assert len(client.get("/v1/models/digits/label-queue?version=2&limit=100").json()) == 9


def test_without_logging_answers_carry_ids_that_label_nothing(client, two_versions, digits):
    ids = [p["prediction_id"] for p in _predict(client, digits.test.x[:2]).json()["predictions"]]
    assert _logged(client) == 0
    answer = client.post("/v1/models/digits/feedback", json=[{"prediction_id": ids[0], "label": 1}])
    assert answer.json()["items"][0]["status"] == 404 and answer.json()["accepted"] == 0


def test_a_full_log_drops_and_counts_instead_of_slowing_predict(client, logging_on, digits):
    log = client.app.state.resources.prediction_log
    log.stop()  # nothing drains the queue now
    log._queue = queue.Queue(2)
    answer = _predict(client, digits.test.x[:5])
    assert len(answer.json()["predictions"]) == 5
    metrics = client.get("/metrics").text
    assert 'lure_prediction_log_dropped_total{model="digits"} 3.0' in metrics


def kept_model_id(res) -> int:
    with res.sessions() as session:
        return session.scalar(select(PredictionRow.model_id).limit(1))


def test_the_log_is_pruned_by_age_and_count_with_its_images(client, logging_on, digits, settings):
    _predict(client, digits.test.x[:8])
    assert _logged(client) == 8
    res = client.app.state.resources
    with res.sessions.begin() as session:
        oldest = session.scalars(select(PredictionRow.id).order_by(PredictionRow.id).limit(2)).all()
        session.execute(
            update(PredictionRow)
            .where(PredictionRow.id.in_(oldest))
            .values(created_at=datetime.now(UTC) - timedelta(days=40))
        )
    model_id = kept_model_id(res)
    removed = prune_model(res.sessions, res.blobs, model_id, {"keep_days": 30, "max_rows": 5})
    assert removed == 3  # two too old, then the oldest beyond five
    with res.sessions() as session:
        kept = session.scalars(select(PredictionRow)).all()
    assert len(kept) == 5 and not set(oldest) & {r.id for r in kept}
    images = list((settings.blob_dir / "models").rglob("predictions/*.npz"))
    assert len(images) == len({r.image_key for r in kept})


def test_a_backup_keeps_the_logged_images_a_label_may_still_arrive_for(
    client, logging_on, digits, settings, tmp_path
):
    ids = [p["prediction_id"] for p in _predict(client, digits.test.x[:3]).json()["predictions"]]
    assert _logged(client) == 3
    backup(settings.data_dir, tmp_path / "backup")
    restore(tmp_path / "backup", tmp_path / "restored")
    with client.app.state.resources.sessions() as session:
        keys = session.scalars(select(PredictionRow.image_key).where(PredictionRow.id.in_(ids)))
        assert all((tmp_path / "restored" / "blobs" / key).is_file() for key in keys)


def test_overlapping_requests_at_once_store_each_labelled_prediction_once(
    client, logging_on, digits, monkeypatch
):
    """Both requests read every row unlabelled before either stores anything: the label is
    claimed first, so the prediction both name becomes one sample, not two."""
    ids = [p["prediction_id"] for p in _predict(client, digits.test.x[:3]).json()["predictions"]]
    truth = [int(y) for y in digits.test.y[:3]]
    _logged(client)
    before = _samples(client)
    both_judged = threading.Barrier(2, timeout=30)
    judge = feedback._judge

    def judge_then_wait(*args):
        verdict = judge(*args)
        if threading.current_thread() is not threading.main_thread():
            try:
                both_judged.wait()
            except threading.BrokenBarrierError:
                pass  # re-judging after a lost claim: the other request is done
        return verdict

    monkeypatch.setattr(feedback, "_judge", judge_then_wait)
    first = [{"prediction_id": ids[i], "label": truth[i]} for i in (0, 1)]
    second = [{"prediction_id": ids[i], "label": truth[i]} for i in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda items: _post_feedback(client, items), (first, second)))
    assert _samples(client) == before + 3  # ids[1] once
    statuses = sorted(a["items"][index]["status"] for a, index in zip(answers, (1, 0), strict=True))
    assert statuses == [200, 201]  # one request stored it, the other found it labelled
    assert answers[0]["items"][0]["status"] == answers[1]["items"][1]["status"] == 201


def _post_feedback(client, items: list[dict]) -> dict:
    answer = client.post("/v1/models/digits/feedback", json=items)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_request_that_died_after_claiming_its_labels_is_finished_by_the_next(
    client, logging_on, digits, monkeypatch
):
    ids = [p["prediction_id"] for p in _predict(client, digits.test.x[:2]).json()["predictions"]]
    items = [
        {"prediction_id": i, "label": int(y)} for i, y in zip(ids, digits.test.y, strict=False)
    ]
    _logged(client)
    before = _samples(client)
    ingestor = client.app.state.resources.ingestor

    def dies(*args, **kwargs):
        raise OSError("the process died before the chunk was stored")

    monkeypatch.setattr(ingestor, "add_chunk", dies)
    with pytest.raises(OSError):
        client.post("/v1/models/digits/feedback", json=items)
    monkeypatch.undo()
    assert _samples(client) == before  # labels claimed, nothing stored yet
    retried = _post_feedback(client, items)
    assert [i["status"] for i in retried["items"]] == [201, 201] and retried["chunk"] is not None
    assert _samples(client) == before + 2
    again = _post_feedback(client, items)
    assert [i["status"] for i in again["items"]] == [200, 200]
    assert _samples(client) == before + 2
