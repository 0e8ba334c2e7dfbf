"""A chunk whose blob is missing or altered costs the model its rows, not its future: later
updates train without them, the replay memory drops them, the chunk is marked lost, ``/readyz``
names it, and an audit says why it cannot rebuild (issue 23 A, E)."""

from __future__ import annotations

from sqlalchemy import select

from lure_core.records import ChunkRow
from tests.server.conftest import post_train


def _first_chunk_blob(worker_ctx, settings):
    with worker_ctx.sessions() as session:
        chunk = session.scalar(
            select(ChunkRow).where(ChunkRow.split == "train").order_by(ChunkRow.id)
        )
    return chunk, settings.blob_dir / chunk.blob_key


def test_a_deleted_chunk_blob_leaves_its_rows_out_and_the_model_keeps_learning(
    client, two_versions, digits, run_jobs, worker_ctx, settings
):
    chunk, path = _first_chunk_blob(worker_ctx, settings)
    path.unlink()
    for start in (600, 900):
        post_train(client, digits.train.x[start : start + 300], digits.train.y[start : start + 300])
        assert run_jobs() == ["published"]
    versions = client.get("/v1/models/digits/versions").json()
    assert [v["number"] for v in versions] == [1, 2, 3, 4]
    # full replay of 4 mega-batches of 270 training rows, less the lost chunk's 270
    assert versions[2]["metrics"]["train_samples"] == 3 * 270 - 270
    assert versions[3]["metrics"]["train_samples"] == 4 * 270 - 270
    assert versions[3]["replay_size"] == 4 * 270 - 270  # the memory dropped them for good
    with worker_ctx.sessions() as session:
        lost = session.get(ChunkRow, chunk.id)
    assert lost.lost_at is not None and "missing" in lost.lost_reason
    ready = client.get("/readyz").json()
    assert ready["status"] == "degraded"
    assert any(f"chunk {chunk.id} is lost" in p for p in ready["problems"])
    audit = client.post("/v1/models/digits/versions/2/audit").json()
    assert audit["result"] == "not_auditable" and "lost" in audit["reason"]
    assert client.post("/v1/models/digits/versions/4/audit").json()["result"] == "match"


def test_an_altered_chunk_blob_is_lost_too_and_putting_it_back_clears_readiness(
    client, two_versions, digits, run_jobs, worker_ctx, settings
):
    _, path = _first_chunk_blob(worker_ctx, settings)
    original = path.read_bytes()
    path.write_bytes(original[:-10] + bytes(10))
    post_train(client, digits.train.x[600:900], digits.train.y[600:900])
    assert run_jobs() == ["published"]
    assert client.get("/v1/models/digits/versions/3").json()["metrics"]["train_samples"] == 540
    assert client.get("/readyz").json()["status"] == "degraded"
    assert any("is lost" in p for p in client.get("/readyz").json()["problems"])
    path.write_bytes(original)
    assert not any("is lost" in p for p in client.get("/readyz").json()["problems"])


def test_a_mega_batch_whose_every_row_is_lost_fails_its_job_and_says_why(
    client, model, digits, run_jobs, worker_ctx, settings
):
    post_train(client, digits.train.x[:300], digits.train.y[:300])
    _, path = _first_chunk_blob(worker_ctx, settings)
    path.unlink()
    assert run_jobs() == ["retry"]
    job = client.get("/v1/models/digits/jobs").json()[0]
    assert "every training row of mega-batch 1 was lost" in job["error"]
    assert job["attempts"] == 1 and job["state"] == "queued"
