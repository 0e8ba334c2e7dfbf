import pytest

from tests.helpers import DIGITS_MODEL


def test_create_list_and_get_a_model(client, model):
    assert model["name"] == "digits" and model["live_version"] is None
    assert model["config"]["keep_fraction"] == 0.8 and model["config"]["momentum"] == 0.9
    assert [m["name"] for m in client.get("/v1/models").json()] == ["digits"]
    assert client.get("/v1/models/digits").json()["config"]["architecture"] == "small_cnn"


def test_duplicate_name_is_a_conflict(client, model):
    answer = client.post("/v1/models", json=DIGITS_MODEL)
    assert answer.status_code == 409 and "already exists" in answer.json()["detail"]


@pytest.mark.parametrize(
    "override,field",
    [
        ({"name": "../etc"}, "name"),
        ({"name": "Has Space"}, "name"),
        ({"architecture": "resnet9000"}, "architecture"),
        ({"width": 0}, "width"),
        ({"num_classes": "ten"}, "num_classes"),
        ({"keep_fraction": 1.0}, "keep_fraction"),
        ({"channels": 4}, "channels"),
        ({"strategy": "forget"}, "strategy"),
        ({"replay": "buffer"}, "buffer_size"),
        ({"unknown_option": 1}, "unknown_option"),
    ],
)
def test_bad_model_definitions_are_refused_naming_the_field(client, override, field):
    answer = client.post("/v1/models", json={**DIGITS_MODEL, **override})
    assert answer.status_code == 422
    assert field in answer.text
    assert client.get("/v1/models").json() == []


def test_unknown_model_is_404(client):
    for path in (
        "/v1/models/nope",
        "/v1/models/nope/versions",
        "/v1/models/nope/megabatches",
        "/v1/models/nope/metrics",
        "/v1/models/nope/jobs",
    ):
        answer = client.get(path)
        assert answer.status_code == 404 and "nope" in answer.json()["detail"], path


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] is True
    assert (
        ready["checks"]["database"]
        == ready["checks"]["broker"]
        == ready["checks"]["blob_store"]
        == "ok"
    )


def test_openapi_documents_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/models",
        "/v1/models/{name}/chunks",
        "/v1/models/{name}/chunks/{chunk_id}",
        "/v1/models/{name}/megabatches",
        "/v1/models/{name}/megabatches/seal",
        "/v1/jobs/{job_id}",
        "/v1/models/{name}/versions",
        "/v1/models/{name}/versions/{number}",
        "/v1/models/{name}/versions/{number}/promote",
        "/v1/models/{name}/predict",
        "/v1/models/{name}/metrics",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    assert client.get("/docs").status_code == 200
