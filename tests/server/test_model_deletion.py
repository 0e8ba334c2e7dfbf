"""DELETE /v1/models/{name}: rows and blobs go, a running update blocks it, a crash halfway is
finished by the next delete or the next start; disk use per model in the API and /metrics."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from lure_core.blobs import LocalBlobStore
from lure_core.records import ChunkRow, JobRow, MegaBatchRow, MetricsRow, ModelRow, VersionRow
from service.app import create_app
from tests.helpers import DIGITS_MODEL


def _counts(client) -> dict[str, int]:
    with client.app.state.resources.sessions() as session:
        return {
            table.__tablename__: session.scalar(select(func.count()).select_from(table))
            for table in (ModelRow, MegaBatchRow, ChunkRow, JobRow, VersionRow, MetricsRow)
        }


def _folder(settings, model_id: int):
    return settings.blob_dir / "models" / str(model_id)


def test_disk_use_is_reported_per_model(client, two_versions, settings):
    [model] = client.get("/v1/models").json()
    on_disk = sum(p.stat().st_size for p in _folder(settings, 1).rglob("*") if p.is_file())
    assert model["disk_bytes"] == on_disk > 0
    assert client.get("/v1/models/digits").json()["disk_bytes"] == on_disk
    assert (
        f'lure_model_disk_bytes{{model="digits"}} {float(on_disk)}' in client.get("/metrics").text
    )


def test_deleting_a_model_removes_its_rows_and_blobs_and_frees_its_name(
    client, two_versions, settings
):
    client.post("/v1/models", json={**DIGITS_MODEL, "name": "other"}).raise_for_status()
    other_before = _folder(settings, 2).exists()
    assert client.delete("/v1/models/digits").status_code == 204
    assert client.get("/v1/models/digits").status_code == 404
    assert [m["name"] for m in client.get("/v1/models").json()] == ["other"]
    assert _counts(client) == {
        "models": 1,
        "megabatches": 0,
        "chunks": 0,
        "jobs": 0,
        "versions": 0,
        "metrics": 0,
    }
    assert not _folder(settings, 1).exists()
    assert _folder(settings, 2).exists() == other_before  # the other model is untouched
    assert client.delete("/v1/models/digits").status_code == 404
    assert client.post("/v1/models", json=DIGITS_MODEL).status_code == 201


def test_a_running_update_blocks_the_delete_with_a_409_naming_the_job(client, two_versions):
    with client.app.state.resources.sessions.begin() as session:
        session.execute(update(JobRow).where(JobRow.id == 2).values(state="running"))
    answer = client.delete("/v1/models/digits")
    assert (
        answer.status_code == 409 and "job 2 is updating model 'digits'" in answer.json()["detail"]
    )
    assert client.get("/v1/models/digits").status_code == 200  # nothing removed


def test_a_crash_between_rows_and_blobs_is_finished_by_the_next_delete(
    client, two_versions, settings, monkeypatch
):
    def crash(*_args, **_kwargs):
        raise OSError("the process died here")

    monkeypatch.setattr(LocalBlobStore, "delete_prefix", crash)
    with pytest.raises(OSError):
        client.delete("/v1/models/digits")
    monkeypatch.undo()
    assert _counts(client)["models"] == 0  # the rows went in one transaction
    assert _folder(settings, 1).exists()  # the blobs are orphaned...
    assert client.delete("/v1/models/digits").status_code == 404  # ...until the next delete
    assert not _folder(settings, 1).exists()


def test_orphaned_blobs_are_removed_when_the_api_starts(settings):
    orphan = _folder(settings, 7) / "chunks" / "left-behind.npz"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    with TestClient(create_app(settings)):
        pass
    assert not _folder(settings, 7).exists()
