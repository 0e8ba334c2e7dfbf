import hashlib
import time

import numpy as np
import pytest
from safetensors.torch import load_file
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from lure_core.records import ModelRow, VersionRow
from lure_update.job import Outcome, execute_job
from service.api.key_cache import KeyCache
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images
from tests.server.conftest import post_train as _post_train


def test_versions_have_lineage_metrics_and_checkpoint_hashes(
    client, two_versions, settings, worker_ctx
):
    versions = client.get("/v1/models/digits/versions").json()
    assert [v["number"] for v in versions] == [1, 2]
    assert [v["parent"] for v in versions] == [None, 1]
    assert [v["megabatch"] for v in versions] == [1, 2]
    assert [v["live"] for v in versions] == [False, True]
    first, second = versions[0]["metrics"], versions[1]["metrics"]
    for m in (first, second):
        assert 0.5 < m["test_accuracy"] <= 1 and m["test_samples"] == 359
        assert m["generalization_gap"] == pytest.approx(m["train_accuracy"] - m["val_accuracy"])
        assert 0 <= m["ece"] < 1 and m["nll"] > 0 and m["train_seconds"] > 0
    assert second["cer"] == first["test_errors"] + second["test_errors"]
    assert first["train_samples"] == 270 and second["train_samples"] == 540  # full replay
    assert versions[1]["replay_size"] == 540
    assert set(versions[1]["seeds"]) >= {"init", "split", "reinit", "train", "importance"}
    with worker_ctx.sessions() as session:
        row = session.scalar(select(VersionRow).where(VersionRow.number == 2))
    path = settings.blob_dir / row.checkpoint_key
    assert hashlib.sha256(path.read_bytes()).hexdigest() == versions[1]["sha256"]
    assert "fc.weight" not in load_file(path) and "head.weight" in load_file(path)
    mask = load_file(settings.blob_dir / row.mask_key)
    kept = sum(int(t.sum()) for t in mask.values())
    assert kept == round(0.8 * sum(t.numel() for t in mask.values()))
    detail = client.get("/v1/models/digits/versions/2").json()
    assert sum(b["count"] for b in detail["metrics"]["reliability"]) == 359


def test_predict_serves_the_live_version_and_a_pinned_one(client, two_versions, digits):
    images = png_images(digits.test.x[:40])
    answer = client.post("/v1/models/digits/predict", json={"images": images})
    assert answer.status_code == 200 and answer.headers["x-model-version"] == "2"
    body = answer.json()
    assert body["version"] == 2 and len(body["predictions"]) == 40
    for prediction in body["predictions"]:
        assert len(prediction["probabilities"]) == 10
        assert sum(prediction["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert prediction["label"] == int(np.argmax(prediction["probabilities"]))
    predicted = [p["label"] for p in body["predictions"]]
    accuracy = np.mean(np.asarray(predicted) == digits.test.y[:40])
    assert accuracy > 0.5
    pinned = client.post("/v1/models/digits/predict?version=1", json={"images": images[:3]})
    assert pinned.headers["x-model-version"] == "1" and pinned.json()["version"] == 1


def test_promote_rolls_back_and_the_next_update_starts_from_it(
    client, two_versions, digits, run_jobs
):
    promoted = client.post("/v1/models/digits/versions/1/promote")
    assert promoted.status_code == 200 and promoted.json()["live"] is True
    images = png_images(digits.test.x[:3])
    assert (
        client.post("/v1/models/digits/predict", json={"images": images}).headers["x-model-version"]
        == "1"
    )
    _post_train(client, digits.train.x[600:900], digits.train.y[600:900])
    assert run_jobs() == ["published"]
    third = client.get("/v1/models/digits/versions/3").json()
    assert third["parent"] == 1 and third["live"] is True
    # the replay memory continues from version 1's (mega-batch 1), not version 2's
    assert third["replay_size"] == 270 + 270
    first = client.get("/v1/models/digits/versions/1").json()
    assert third["metrics"]["cer"] == first["metrics"]["cer"] + third["metrics"]["test_errors"]


def test_chunk_read_your_writes(client, model, digits, run_jobs):
    chunk = _post_train(client, digits.train.x[:300], digits.train.y[:300])
    before = client.get(f"/v1/models/digits/chunks/{chunk['id']}").json()
    assert before["megabatch"]["index"] == 1 and before["trained_in_version"] is None
    run_jobs()
    after = client.get(f"/v1/models/digits/chunks/{chunk['id']}").json()
    assert after["trained_in_version"] == 1
    assert client.get("/v1/models/digits/chunks/999").status_code == 404


def test_jobs_report_state_progress_and_timings(client, model, digits, run_jobs):
    job_id = _post_train(client, digits.train.x[:300], digits.train.y[:300])["jobs"][0]
    run_jobs()
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] == "succeeded" and job["version"] == 1 and job["attempts"] == 1
    assert job["progress"] == {"phase": "done"}
    assert (
        job["timings"]["train_seconds"] > 0
        and job["timings"]["total_seconds"] >= job["timings"]["train_seconds"]
    )
    assert client.get("/v1/jobs/12345").status_code == 404
    assert [j["id"] for j in client.get("/v1/models/digits/jobs").json()] == [job_id]


def test_a_redelivered_job_never_publishes_twice(client, model, digits, worker_ctx):
    job_id = _post_train(client, digits.train.x[:300], digits.train.y[:300])["jobs"][0]
    assert execute_job(worker_ctx, job_id) is Outcome.PUBLISHED
    assert execute_job(worker_ctx, job_id) is Outcome.ALREADY_DONE
    assert len(client.get("/v1/models/digits/versions").json()) == 1


def test_jobs_wait_for_earlier_megabatches(client, model, digits, worker_ctx):
    first = _post_train(client, digits.train.x[:300], digits.train.y[:300])["jobs"][0]
    second = _post_train(client, digits.train.x[300:600], digits.train.y[300:600])["jobs"][0]
    assert execute_job(worker_ctx, second) is Outcome.WAIT
    assert execute_job(worker_ctx, first) is Outcome.PUBLISHED
    assert execute_job(worker_ctx, second) is Outcome.PUBLISHED
    versions = client.get("/v1/models/digits/versions").json()
    assert [(v["number"], v["megabatch"]) for v in versions] == [(1, 1), (2, 2)]


def test_a_failing_update_is_recorded_with_its_error(client, model, digits, worker_ctx, settings):
    job_id = _post_train(client, digits.train.x[:300], digits.train.y[:300])["jobs"][0]
    for blob in (settings.blob_dir / "models").rglob("*.npz"):
        blob.write_bytes(b"damaged")
    outcomes = [execute_job(worker_ctx, job_id) for _ in range(settings.max_update_attempts)]
    assert outcomes == [Outcome.RETRY] * (settings.max_update_attempts - 1) + [Outcome.FAILED]
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (
        job["state"] == "failed"
        and "sha256" in job["error"]
        and "gave up after 3 attempts" in job["error"]
    )
    assert [f["attempt"] for f in job["failures"]] == [1, 2, 3]
    assert all(  # every row of the only mega-batch is lost with its damaged blob
        f["kind"] == "exception" and "LostData" in f["error"] for f in job["failures"]
    )
    assert execute_job(worker_ctx, job_id) is Outcome.ALREADY_DONE  # bounded: no fourth attempt
    assert client.get("/v1/models/digits/versions").json() == []


def test_metrics_series_for_plotting(client, two_versions):
    series = client.get("/v1/models/digits/metrics").json()
    assert series["versions"] == [1, 2] and series["live_version"] == 2
    assert len(series["test_accuracy"]) == len(series["cer"]) == len(series["ece"]) == 2
    assert series["cer"][1] >= series["cer"][0]


def test_predict_errors(client, model, digits, two_versions):
    good = png_images(digits.test.x[:1])
    assert client.post("/v1/models/digits/predict", json={"images": ["%%%"]}).status_code == 422
    assert client.post("/v1/models/digits/predict", json={"images": []}).status_code == 422
    answer = client.post("/v1/models/digits/predict?version=9", json={"images": good})
    assert answer.status_code == 404 and "no version 9" in answer.json()["detail"]
    answer = client.post("/v1/models/digits/predict", json={"images": good * 65})
    assert answer.status_code == 413 and "limit of 64" in answer.json()["detail"]
    assert client.post("/v1/models/digits/versions/7/promote").status_code == 404


def test_predict_before_any_version_is_a_clear_conflict(client, model, digits):
    answer = client.post(
        "/v1/models/digits/predict", json={"images": png_images(digits.test.x[:1])}
    )
    assert answer.status_code == 409 and "no published version" in answer.json()["detail"]


def test_a_live_predict_reads_one_version_row_however_long_the_lineage(
    client, two_versions, digits
):
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        answer = client.post(
            "/v1/models/digits/predict", json={"images": png_images(digits.test.x[:1])}
        )
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert answer.status_code == 200 and answer.json()["version"] == 2
    version_reads = [
        s for s in statements if s.lstrip().upper().startswith("SELECT") and " versions" in s
    ]
    # one query reads the model with its live version; the ancestors are fetched only when the
    # live checkpoint is refused
    assert len(version_reads) == 1 and "JOIN versions" in version_reads[0]


def _live_predict(client, images) -> tuple[int, int]:
    """The version that answered and how many version rows the request read."""
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        answer = client.post("/v1/models/digits/predict", json={"images": images})
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert answer.status_code == 200, answer.text
    reads = sum(s.lstrip().upper().startswith("SELECT") and " versions" in s for s in statements)
    return answer.json()["version"], reads


def test_the_live_version_is_trusted_for_its_cache_time_and_a_promotion_here_applies_at_once(
    client, two_versions, digits, worker_ctx
):
    images = png_images(digits.test.x[:1])
    live = client.app.state.resources.live
    live.ttl = 60.0  # long enough that the stale read below cannot expire on a slow machine
    assert _live_predict(client, images) == (2, 1)
    assert _live_predict(client, images) == (2, 0)  # from the cache: no database read
    # a promotion through this API process is served by the very next request
    assert client.post("/v1/models/digits/versions/1/promote").status_code == 200
    assert _live_predict(client, images) == (1, 1)
    # another process (a worker publishing, another replica promoting) changes the live version:
    # this process serves the cached one until its cache time has passed, then the new one
    with worker_ctx.sessions.begin() as session:
        session.get(ModelRow, 1).live_version = 2
    assert _live_predict(client, images) == (1, 0)
    live.ttl = 0.2
    time.sleep(0.3)
    assert _live_predict(client, images) == (2, 1)
    # pinned versions are always read afresh
    pinned = client.post("/v1/models/digits/predict?version=1", json={"images": images})
    assert pinned.json()["version"] == 1


def test_a_live_cache_time_of_zero_reads_the_live_version_every_request(
    client, two_versions, digits
):
    client.app.state.resources.live.ttl = 0  # LURE_LIVE_CACHE_SECONDS=0
    images = png_images(digits.test.x[:1])
    assert [_live_predict(client, images) for _ in range(3)] == [(2, 1)] * 3


@pytest.mark.parametrize("damage", ["tamper", "truncate", "delete"])
def test_a_damaged_checkpoint_is_refused_and_the_previous_version_keeps_serving(
    client, two_versions, digits, settings, worker_ctx, damage
):
    images = png_images(digits.test.x[:3])
    with worker_ctx.sessions() as session:
        path = settings.blob_dir / session.scalar(
            select(VersionRow.checkpoint_key).where(VersionRow.number == 2)
        )
    data = path.read_bytes()
    if damage == "tamper":
        path.write_bytes(data[:-64] + bytes(64))
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.unlink()
    answer = client.post("/v1/models/digits/predict", json={"images": images})
    assert answer.status_code == 200
    assert answer.headers["x-model-version"] == "1" and answer.json()["version"] == 1
    assert answer.headers["x-model-fallback"].startswith("version 2 refused")
    # the damage is recorded and the live pointer moved back: later requests go straight to version
    # 1
    assert client.get("/v1/models/digits").json()["live_version"] == 1
    assert "weights.safetensors" in client.get("/v1/models/digits/versions/2").json()["damaged"]
    answer = client.post("/v1/models/digits/predict", json={"images": images})
    assert (
        answer.status_code == 200
        and answer.json()["version"] == 1
        and "x-model-fallback" not in answer.headers
    )
    pinned = client.post("/v1/models/digits/predict?version=2", json={"images": images})
    assert pinned.status_code == 503 and "version 2" in pinned.json()["detail"]
    assert (
        'lure_checkpoint_integrity_failures_total{model_id="1",version="2"} 1.0'
        in client.get("/metrics").text
    )
    # readiness says the model serves an older version than its newest, and why
    ready = client.get("/readyz").json()
    assert ready["status"] == "degraded"
    assert any("version 2 is damaged" in p and "from version 1" in p for p in ready["problems"])
    if damage != "delete":
        path.write_bytes(data)  # the file is put back: nothing left to report
        assert not any("is damaged" in p for p in client.get("/readyz").json()["problems"])


def _selects(client, path: str) -> int:
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return sum(s.lstrip().upper().startswith("SELECT") for s in statements)


LISTS = [
    "/v1/models",
    "/v1/models/digits/versions",
    "/v1/models/digits/jobs",
    "/v1/models/digits/megabatches",
]


def test_list_endpoints_read_a_fixed_number_of_queries_however_long_the_list(
    client, model, digits, run_jobs
):
    # the key is verified once and trusted throughout: whether a 2 s cache entry expired
    # between two measurements on a busy machine must not count as a query of the list
    client.app.state.resources.keys = KeyCache(3600)
    client.post(
        "/v1/models/digits/chunks?split=test",
        content=npz_body(digits.test.x, digits.test.y),
        headers=NPZ,
    )
    _post_train(client, digits.train.x[:300], digits.train.y[:300])
    run_jobs()
    one = {path: _selects(client, path) for path in LISTS}
    for start in (300, 600, 900):
        _post_train(
            client, digits.train.x[start : start + 300], digits.train.y[start : start + 300]
        )
        run_jobs()
    client.post("/v1/models", json={**DIGITS_MODEL, "name": "second"})
    four = {path: _selects(client, path) for path in LISTS}
    assert len(client.get("/v1/models/digits/versions").json()) == 4
    assert four == one
