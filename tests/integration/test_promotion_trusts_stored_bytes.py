"""Issue 42 §3: a promotion verifies the stored bytes, whatever a cache holds. An API process that
had served version 2 (so held it in memory, and on S3 in its local read cache) accepted
``promote`` of it after its stored weights were altered, and ``/predict`` went on serving it.
In-process APIs over the real stores: SQLite and a data folder, PostgreSQL + Redis + S3."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lure_core.records import VersionRow
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images
from tests.integration.in_process import KINDS, InProcess, admin, in_process
from tests.s3 import s3_client


@pytest.fixture(params=KINDS)
def deployment(request, tmp_path, monkeypatch) -> InProcess:
    return in_process(request, request.param, tmp_path, monkeypatch)


def _train_two_versions(client, deployment: InProcess, digits) -> None:
    for start in (0, 300):
        rows = slice(start, start + 300)
        body = npz_body(digits.train.x[rows], digits.train.y[rows])
        client.post("/v1/models/digits/chunks?split=train", content=body, headers=NPZ)
        assert deployment.run_jobs() == ["published"]


def _alter_stored_weights(client, settings, env) -> None:
    """Flip bytes of version 2's weights where they are stored (the folder, or the bucket)."""
    with client.app.state.resources.sessions() as session:
        row = session.scalar(select(VersionRow).where(VersionRow.number == 2))
    if env is None:
        path = settings.blob_dir / row.checkpoint_key
        data = bytearray(path.read_bytes())
        data[-100:] = bytes(100)
        path.write_bytes(bytes(data))
        return
    bucket, _, prefix = env["LURE_BLOB_URL"].removeprefix("s3://").partition("/")
    name = f"{prefix}/{row.checkpoint_key}/{row.checkpoint_sha256}"
    store = s3_client(env)
    data = bytearray(store.get_object(Bucket=bucket, Key=name)["Body"].read())
    data[-100:] = bytes(100)
    store.put_object(Bucket=bucket, Key=name, Body=bytes(data))


def test_promotion_refuses_a_version_whose_stored_weights_fail_their_sha256(deployment, digits):
    settings, env = deployment.settings, deployment.s3_env
    images = png_images(digits.test.x[:4])
    with deployment.client() as client:
        admin(client)
        client.post("/v1/models", json=DIGITS_MODEL).raise_for_status()
        _train_two_versions(client, deployment, digits)
        client.post("/v1/models/digits/versions/1/promote").raise_for_status()
        pinned = client.post("/v1/models/digits/predict?version=2", json={"images": images})
        assert pinned.status_code == 200  # version 2 is now loaded in this process
        _alter_stored_weights(client, settings, env)
        promoted = client.post("/v1/models/digits/versions/2/promote")
        assert promoted.status_code == 409, promoted.text
        assert "version 2 is damaged" in promoted.json()["detail"]
        assert client.get("/v1/models/digits").json()["live_version"] == 1
        assert client.get("/v1/models/digits/versions/2").json()["damaged"]
        # the copy in memory is dropped: version 2 is read (and refused) before it is served
        again = client.post("/v1/models/digits/predict?version=2", json={"images": images})
        assert again.status_code == 503, again.text
        live = client.post("/v1/models/digits/predict", json={"images": images})
        assert live.status_code == 200 and live.json()["version"] == 1
        assert client.post("/v1/models/digits/versions/1/promote").status_code == 200
