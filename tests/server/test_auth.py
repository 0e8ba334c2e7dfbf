import time

import pytest
from fastapi.testclient import TestClient

from lure_core.api_keys import revoke_key
from service.app import create_app
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images

READ_ROUTES = [
    "/v1/models",
    "/v1/models/digits",
    "/v1/models/digits/versions",
    "/v1/models/digits/megabatches",
    "/v1/models/digits/metrics",
    "/v1/models/digits/jobs",
    "/v1/jobs/1",
    "/metrics",
]


def _anonymous(client):
    """Per-request headers merge with the client's: blank out its admin key."""
    return {"Authorization": ""}


def test_every_route_but_the_probes_needs_a_key(client, model):
    headers = _anonymous(client)
    calls = [("GET", path, {}) for path in READ_ROUTES] + [
        ("POST", "/v1/models", {"json": {**DIGITS_MODEL, "name": "other"}}),
        ("POST", "/v1/models/digits/chunks", {"json": {"images": ["x"], "labels": [1]}}),
        ("POST", "/v1/models/digits/megabatches/seal", {}),
        ("POST", "/v1/models/digits/predict", {"json": {"images": ["x"]}}),
        ("POST", "/v1/models/digits/versions/1/promote", {}),
        ("POST", "/v1/models/digits/megabatches/1/release", {}),
        ("POST", "/v1/models/digits/megabatches/1/discard", {}),
    ]
    for method, path, kwargs in calls:
        answer = client.request(method, path, headers=headers, **kwargs)
        assert answer.status_code == 401, (path, answer.text)
        assert "missing API key" in answer.json()["detail"]
        assert answer.headers["www-authenticate"] == "Bearer"
    assert client.get("/healthz", headers=headers).status_code == 200
    anonymous = client.get("/readyz", headers=headers)
    assert anonymous.status_code == 200
    detailed = client.get("/readyz").json()
    assert detailed["status"] == "degraded"  # no worker runs in these tests
    assert "no worker" in " ".join(detailed["problems"]) and detailed["checks"]["database"] == "ok"
    # status only: the problems name models and jobs
    assert anonymous.json() == {"ready": True, "status": "degraded"}
    invalid = client.get("/readyz", headers={"Authorization": "Bearer lure_nope_nope"})
    assert set(invalid.json()) == {"ready", "status"}
    assert (
        client.get("/dashboard", headers=headers).status_code == 200
    )  # a static page; its data needs a key


def test_invalid_and_revoked_keys_are_refused(client, model, make_key):
    key = make_key("ingest")
    assert (
        client.get("/v1/models", headers={"Authorization": "Bearer lure_nope_nope"}).status_code
        == 401
    )
    assert (
        client.get("/v1/models", headers={"Authorization": "", "X-API-Key": key}).status_code == 200
    )
    with client.app.state.resources.sessions.begin() as session:
        revoke_key(session, key.split("_")[1])
    # a key verified moments ago is trusted for key_cache_seconds (2 s), then refused
    revoked_at = time.monotonic()
    while (
        answer := client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    ).status_code == 200:
        assert time.monotonic() - revoked_at < 2.5, "a revoked key outlived the key cache"
        time.sleep(0.1)
    assert answer.status_code == 401 and answer.json()["detail"] == "invalid or revoked API key"


def test_without_the_key_cache_a_revoked_key_is_refused_at_once(settings):
    from fastapi.testclient import TestClient

    from service.app import create_app
    from tests.server.conftest import new_key

    with TestClient(create_app(settings.model_copy(update={"key_cache_seconds": 0}))) as client:
        key = new_key(client, "briefly", ["ingest"])
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/v1/models", headers=headers).status_code == 200
        with client.app.state.resources.sessions.begin() as session:
            revoke_key(session, key.split("_")[1])
        assert client.get("/v1/models", headers=headers).status_code == 401


def test_scopes_gate_writes(client, model, make_key, digits):
    ingest, predict = make_key("ingest"), make_key("predict")
    body = npz_body(digits.train.x[:10], digits.train.y[:10])

    def call(key, method, path, **kwargs):
        return client.request(
            method,
            path,
            headers={"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})},
            **kwargs,
        )

    assert (
        call(
            ingest, "POST", "/v1/models/digits/chunks?split=train", content=body, headers=NPZ
        ).status_code
        == 201
    )
    denied = call(
        predict, "POST", "/v1/models/digits/chunks?split=train", content=body, headers=NPZ
    )
    assert denied.status_code == 403 and "lacks the 'ingest' scope" in denied.json()["detail"]
    assert call(ingest, "POST", "/v1/models", json={**DIGITS_MODEL, "name": "x"}).status_code == 403
    assert call(ingest, "POST", "/v1/models/digits/versions/1/promote").status_code == 403
    for action in ("release", "discard"):  # deciding on a quarantined mega-batch: admin only
        refused = call(ingest, "POST", f"/v1/models/digits/megabatches/1/{action}")
        assert refused.status_code == 403 and "'admin' scope" in refused.json()["detail"]
    assert (
        call(
            ingest,
            "POST",
            "/v1/models/digits/predict",
            json={"images": png_images(digits.test.x[:1])},
        ).status_code
        == 403
    )
    # a predict key reaches the predictor (409: nothing published yet), and any key can read
    assert (
        call(
            predict,
            "POST",
            "/v1/models/digits/predict",
            json={"images": png_images(digits.test.x[:1])},
        ).status_code
        == 409
    )
    assert call(predict, "GET", "/v1/models/digits/versions").status_code == 200


def test_auth_off_is_explicit_and_warned(settings, caplog):
    settings.auth = False
    with caplog.at_level("WARNING"), TestClient(create_app(settings)) as open_client:
        assert open_client.get("/v1/models").status_code == 200
    assert any("AUTHENTICATION IS OFF" in r.message for r in caplog.records)


def test_keys_are_stored_hashed(client, make_key):
    from sqlalchemy import select

    from lure_core.records import ApiKeyRow

    key = make_key("predict")
    with client.app.state.resources.sessions() as session:
        rows = session.scalars(select(ApiKeyRow)).all()
    assert all(key not in (row.secret_sha256, row.prefix, row.name) for row in rows)
    assert any(len(row.secret_sha256) == 64 for row in rows)


@pytest.mark.parametrize("scopes", [[], ["root"]])
def test_bad_scopes_are_refused(client, scopes):
    from lure_core.api_keys import create_key

    with pytest.raises(ValueError, match="scopes must be among"):
        with client.app.state.resources.sessions.begin() as session:
            create_key(session, "bad", scopes)
