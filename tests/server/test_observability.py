import json
import logging
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lure_core.logs import configure_logging
from tests.helpers import png_images


def _samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(samples, name, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_prometheus_metrics_cover_requests_predictions_ingest_queue_and_updates(
    client, two_versions, digits
):
    client.post("/v1/models/digits/predict", json={"images": png_images(digits.test.x[:7])})
    client.get("/v1/models/nope")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert _value(samples, "lure_predictions_total", model="digits", version="2") == 7
    assert _value(samples, "lure_samples_ingested_total", model="digits", split="train") == 600
    assert _value(samples, "lure_samples_ingested_total", model="digits", split="test") == len(
        digits.test.x
    )
    assert _value(samples, "lure_megabatches_sealed_total", model="digits") == 2
    assert (
        _value(
            samples,
            "lure_http_requests_total",
            route="/v1/models/{name}/predict",
            method="POST",
            status="200",
        )
        == 1
    )
    assert (
        _value(
            samples,
            "lure_http_requests_total",
            route="/v1/models/{name}",
            method="GET",
            status="404",
        )
        == 1
    )
    assert (
        _value(
            samples,
            "lure_http_request_duration_seconds_count",
            route="/v1/models/{name}/predict",
            method="POST",
        )
        == 1
    )
    assert _value(samples, "lure_live_version", model="digits") == 2
    assert _value(samples, "lure_update_failures_total", model="digits") == 0
    for phase in ("total", "unlearn", "train", "evaluate"):
        assert (
            _value(samples, "lure_update_duration_seconds_count", model="digits", phase=phase) == 2
        )
        assert (
            _value(
                samples,
                "lure_update_duration_seconds_bucket",
                model="digits",
                phase=phase,
                le="+Inf",
            )
            == 2
        )
    names = {name for name, _ in samples}
    assert "lure_queue_depth" not in names or all(
        value == 0 for (name, _), value in samples.items() if name == "lure_queue_depth"
    )


def test_queue_depth_counts_waiting_jobs(client, model, digits):
    from tests.helpers import NPZ, npz_body

    client.post(
        "/v1/models/digits/chunks?split=train",
        content=npz_body(digits.train.x[:300], digits.train.y[:300]),
        headers=NPZ,
    )
    samples = _samples(client.get("/metrics").text)
    assert _value(samples, "lure_queue_depth", model="digits", state="queued") == 1


def test_logs_are_json_objects_with_job_ids_when_asked(capsys, monkeypatch):
    monkeypatch.setenv("LURE_LOG_FORMAT", "json")
    configure_logging("api")
    try:
        logging.getLogger("lure.test").info("sealed", extra={"job_id": 7, "version": 3})
        logging.getLogger("httpx").info("HTTP Request: GET /healthz")
        line = capsys.readouterr().err.strip().splitlines()[-2]
        record = json.loads(line)
        assert record["message"] == "sealed" and record["job_id"] == 7 and record["version"] == 3
        assert record["level"] == "INFO" and record["process_name"] == "api" and "time" in record
    finally:
        logging.getLogger().handlers.clear()


def test_console_logs_are_short_lines_without_library_chatter(capsys, monkeypatch):
    monkeypatch.delenv("LURE_LOG_FORMAT", raising=False)
    configure_logging("worker")
    try:
        logging.getLogger("lure.worker").info("digits version 3 published")
        for chatty in ("httpx", "alembic.runtime.migration", "celery.app.trace", "uvicorn.error"):
            logging.getLogger(chatty).info("noise")
        logging.getLogger("celery.worker").warning("lost connection")
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 2, lines
        assert re.fullmatch(r"\d\d:\d\d:\d\d worker  digits version 3 published", lines[0])
        assert lines[1].endswith("worker  WARNING: lost connection")
    finally:
        logging.getLogger().handlers.clear()


def test_an_unknown_log_format_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("LURE_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="LURE_LOG_FORMAT must be one of text, json"):
        configure_logging("api")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_making_an_object_store_client_logs_nothing_in_either_format(
    capsys, monkeypatch, log_format
):
    """Every update process makes its own S3 client, one every 2 s while a job waits, and each
    logged "Found credentials in environment variables." (issue 42 §5)."""
    from lure_core.object_store import make_s3_client

    monkeypatch.setenv("LURE_LOG_FORMAT", log_format)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    configure_logging("worker")
    try:
        for _ in range(3):
            make_s3_client("http://127.0.0.1:1", 1.0)._request_signer._credentials  # noqa: B018
        logging.getLogger("lure.worker").info("after the clients")
        lines = capsys.readouterr().err.strip().splitlines()
        assert not any("credentials" in line.lower() for line in lines), lines
        assert "after the clients" in lines[-1]
    finally:
        logging.getLogger().handlers.clear()
