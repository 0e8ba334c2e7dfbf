"""The server on S3-compatible object storage (issue 27), in-process against the tests' SeaweedFS:
every user of blobs goes through the store, nothing lands in the data folder but the read cache,
a second host with an empty folder serves what the first stored, and the sweep removes exactly
the blobs no row names."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lure_core.blob_sweep import sweep_unnamed_blobs
from lure_core.blobs import LocalBlobStore
from service.app import create_app
from tests.helpers import png_images
from tests.server.conftest import BOTH_BLOB_BACKENDS, new_key, post_train


def _blob_files(settings) -> list:
    return (
        [p for p in settings.blob_dir.rglob("*") if p.is_file()]
        if settings.blob_dir.exists()
        else []
    )


def _without_ids(answer: dict) -> list[dict]:
    """The answers; each request's prediction ids are its own."""
    return [{k: v for k, v in p.items() if k != "prediction_id"} for p in answer["predictions"]]


def _keys(client) -> list[str]:
    return sorted(e.key for e in client.app.state.resources.blobs.entries("models/"))


@pytest.mark.parametrize("blob_backend", ["s3"])
def test_every_blob_of_a_model_lives_in_the_bucket_and_leaves_with_it(
    client, settings, two_versions, digits
):
    assert _blob_files(settings) == []  # the data folder holds no blob, only the read cache
    keys = _keys(client)
    assert sum("/chunks/" in k for k in keys) == 3 and sum("weights" in k for k in keys) == 2
    exported = client.get("/v1/models/digits/versions/2/export?format=onnx")
    assert exported.status_code == 200, exported.text
    assert any("/exports/" in k for k in _keys(client))
    audit = client.post("/v1/models/digits/versions/2/audit")
    assert audit.status_code == 200 and audit.json()["result"] == "match", audit.text
    answer = client.post(
        "/v1/models/digits/predict", json={"images": png_images(digits.test.x[:4])}
    )
    assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "2"
    assert client.delete("/v1/models/digits").status_code == 204
    assert _keys(client) == []


@pytest.mark.parametrize("blob_backend", ["s3"])
def test_a_second_host_with_an_empty_folder_serves_the_same_answers(
    client, settings, two_versions, digits, tmp_path
):
    images = png_images(digits.test.x[:8])
    first = client.post("/v1/models/digits/predict", json={"images": images}).json()
    other = settings.model_copy(
        update={"data_dir": tmp_path / "other-host", "database_url": settings.resolved_database_url}
    )
    with TestClient(create_app(other)) as second:
        second.headers["Authorization"] = f"Bearer {new_key(second, 'second', ['admin'])}"
        answer = second.post("/v1/models/digits/predict", json={"images": images})
        assert answer.status_code == 200, answer.text
        assert _without_ids(answer.json()) == _without_ids(first)
        cache = second.app.state.resources.blobs.cache
        assert cache.misses >= 1 and cache.size > 0  # fetched from the bucket, then kept locally
    assert not (tmp_path / "other-host" / "blobs").exists() or not any(
        (tmp_path / "other-host" / "blobs").rglob("*.*")
    )


@pytest.mark.parametrize("blob_backend", BOTH_BLOB_BACKENDS)
def test_the_sweep_removes_only_old_blobs_no_row_names(client, settings, model, digits):
    chunk = post_train(client, digits.train.x[:20], digits.train.y[:20])
    blobs = client.app.state.resources.blobs
    [stored] = _keys(client)
    model_id = stored.split("/")[1]
    crashed = f"models/{model_id}/chunks/written-then-crashed.npz"
    blobs.write_arrays(crashed, x=np.zeros((1, 8, 8), np.uint8), y=np.zeros(1, np.int64))
    sessions = client.app.state.resources.sessions
    assert sweep_unnamed_blobs(sessions, blobs, grace_seconds=3600) == []  # too young
    time.sleep(1.1)  # object stores keep whole seconds
    swept = sweep_unnamed_blobs(sessions, blobs, grace_seconds=0)
    assert [blob.key for blob in swept] == [crashed]
    assert _keys(client) == [stored]
    assert client.get(f"/v1/models/digits/chunks/{chunk['id']}").status_code == 200
    if isinstance(blobs, LocalBlobStore):
        assert not blobs.path(crashed).exists()
