"""Retention: the newest N versions' checkpoints plus the live one are kept; older versions keep
their rows and metrics, lose their files, and say so (410/409 naming retention, not damage)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from lure_core.backup import referenced_blobs
from lure_core.records import ChunkRow, MegaBatchRow, VersionRow
from lure_engine.splits import split_megabatch
from lure_update.samples import SampleReader, SamplesDeleted, sample_ids
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images


def _stream(client, digits, run_jobs, megabatches: int) -> None:
    for i in range(megabatches):
        client.post(
            "/v1/models/digits/chunks?split=train",
            content=npz_body(
                digits.train.x[300 * i : 300 * (i + 1)], digits.train.y[300 * i : 300 * (i + 1)]
            ),
            headers=NPZ,
        ).raise_for_status()
        assert run_jobs() == ["published"]


def _files(client) -> dict[int, bool]:
    res = client.app.state.resources
    with res.sessions() as session:
        rows = session.scalars(select(VersionRow).order_by(VersionRow.number)).all()
    return {v.number: res.blobs.path(v.checkpoint_key).exists() for v in rows}


def test_old_checkpoints_are_pruned_and_their_versions_say_so(client, digits, run_jobs, settings):
    model = {**DIGITS_MODEL, "keep_versions": 1, "promotion": {"min_accuracy_delta": None}}
    client.post("/v1/models", json=model).raise_for_status()
    client.post(
        "/v1/models/digits/chunks?split=test",
        content=npz_body(digits.test.x, digits.test.y),
        headers=NPZ,
    ).raise_for_status()
    _stream(client, digits, run_jobs, 3)
    versions = client.get("/v1/models/digits/versions").json()
    assert [(v["number"], v["pruned"], v["live"]) for v in versions] == [
        (1, True, False),
        (2, True, False),
        (3, False, True),
    ]
    assert all(v["metrics"]["test_accuracy"] is not None for v in versions)  # rows are kept
    assert _files(client) == {1: False, 2: False, 3: True}

    pinned = client.post(
        "/v1/models/digits/predict?version=1", json={"images": png_images(digits.test.x[:1])}
    )
    assert (
        pinned.status_code == 410
        and "pruned by retention (keep_versions=1)" in (pinned.json()["detail"])
    )
    assert client.post("/v1/models/digits/versions/2/promote").status_code == 409
    assert client.get("/v1/models/digits/versions/1/export?format=onnx").status_code == 410
    assert (
        client.post(
            "/v1/models/digits/predict", json={"images": png_images(digits.test.x[:1])}
        ).status_code
        == 200
    )

    # a backup leaves out what retention deleted instead of reporting it missing
    keys = {key for key, _ in referenced_blobs(settings.data_dir / "lure.db")}
    with client.app.state.resources.sessions() as session:
        pruned = session.scalars(select(VersionRow).where(VersionRow.number < 3)).all()
    assert not keys & {v.checkpoint_key for v in pruned}


def test_a_rollback_target_is_kept_and_a_tighter_limit_applies_at_once(client, digits, run_jobs):
    client.post(
        "/v1/models", json={**DIGITS_MODEL, "promotion": {"min_accuracy_delta": None}}
    ).raise_for_status()
    _stream(client, digits, run_jobs, 3)
    assert client.post("/v1/models/digits/versions/1/promote").status_code == 200
    answer = client.patch("/v1/models/digits", json={"keep_versions": 1})
    assert answer.status_code == 200, answer.text
    # the newest (3) and the live one (1, rolled back to) keep their files; 2 goes
    assert _files(client) == {1: True, 2: False, 3: True}
    assert client.post("/v1/models/digits/versions/3/promote").status_code == 200


def _val_rows(client, chunk: ChunkRow) -> set[int]:
    with client.app.state.resources.sessions() as session:
        megabatch = session.get(MegaBatchRow, chunk.megabatch_id)
    return set(split_megabatch(megabatch.n_samples, megabatch.split_seed)[1].tolist())


def _chunks(client) -> list[ChunkRow]:
    with client.app.state.resources.sessions() as session:
        return session.scalars(select(ChunkRow).order_by(ChunkRow.id)).all()


def test_samples_no_kept_version_can_reach_are_deleted_and_training_goes_on(
    client, digits, run_jobs
):
    model = {
        **DIGITS_MODEL,
        "epochs": 2,
        "replay": "buffer",
        "buffer_size": 40,
        "keep_versions": 2,
        "promotion": {"min_accuracy_delta": None},
    }
    client.post("/v1/models", json=model).raise_for_status()
    _stream(client, digits, run_jobs, 4)
    chunks = _chunks(client)
    # versions 3 and 4 keep their checkpoints: mega-batches 1 and 2 keep their 30 validation rows
    # plus the rows that 3's and 4's buffers, and the buffers they were trained from (2's and
    # 3's), still hold
    compacted = [c for c in chunks if c.kept_samples is not None]
    assert [c.megabatch_id for c in compacted] == [1, 2]
    with client.app.state.resources.sessions() as session:
        states = [
            v.replay_state
            for v in session.scalars(select(VersionRow).where(VersionRow.number >= 2))
        ]
    for chunk in compacted:
        replayed = {
            int(i) & 0xFFFFFFFF
            for state in states
            for i in state["ids"]
            if int(i) >> 32 == chunk.megabatch_id
        }
        assert chunk.kept_samples == 30 + len(replayed - _val_rows(client, chunk))
        assert chunk.compacted_at is not None
        assert chunk.n_samples == 300  # what was accepted is still on record
    assert chunks[2].kept_samples is None and chunks[3].kept_samples is None
    blobs = client.app.state.resources.blobs
    whole = blobs.path(chunks[3].blob_key).stat().st_size
    assert all(blobs.path(c.blob_key).stat().st_size < whole / 2 for c in compacted)
    files = {p.name for p in blobs.path(chunks[3].blob_key).parent.iterdir()}
    assert len(files) == 4  # the replaced blobs were deleted

    # the buffer still replays rows of the compacted mega-batches: the next update trains, the
    # kept version's audit rebuilds it bit for bit, and a chunk lookup still answers
    client.post(
        "/v1/models/digits/chunks?split=train",
        content=npz_body(digits.train.x[:300], digits.train.y[:300]),  # seen again, as new data
        headers=NPZ,
    ).raise_for_status()
    assert run_jobs() == ["published"]
    live = client.get("/v1/models/digits").json()["live_version"]
    audit = client.post(f"/v1/models/digits/versions/{live}/audit")
    assert audit.status_code == 200 and audit.json()["result"] == "match", audit.text
    view = client.get(f"/v1/models/digits/chunks/{chunks[0].id}").json()
    now = _chunks(client)[0].kept_samples  # version 3 was pruned since: fewer rows are reachable
    assert (view["accepted"], view["kept"]) == (300, now) and now <= compacted[0].kept_samples

    # a row nobody can reach any more is refused by name, never read back as zeros
    res = client.app.state.resources
    with res.sessions() as session:
        reader = SampleReader(session, res.blobs, 1)
        present = reader._load(1).present
        gone = int(np.flatnonzero(~present)[0])
        with pytest.raises(SamplesDeleted, match="deleted by retention"):
            reader.gather(sample_ids(1, np.array([gone])))


def test_full_replay_keeps_every_sample(client, digits, run_jobs):
    model = {**DIGITS_MODEL, "epochs": 2, "keep_versions": 1}
    client.post(
        "/v1/models", json={**model, "promotion": {"min_accuracy_delta": None}}
    ).raise_for_status()
    _stream(client, digits, run_jobs, 3)
    assert all(c.kept_samples is None for c in _chunks(client))


def test_each_lineage_head_is_kept_whatever_keep_versions_says(client, digits, run_jobs):
    model = {**DIGITS_MODEL, "keep_versions": 1, "strategy": "lure", "challengers": ["warm"]}
    client.post("/v1/models", json=model).raise_for_status()
    _stream(client, digits, run_jobs, 3)
    versions = client.get("/v1/models/digits/versions").json()
    heads = client.get("/v1/models/digits/strategies").json()["lineages"]["heads"]
    assert set(heads) == {"lure", "warm"}  # both extended their lineage on mega-batch 3
    kept = {v["number"] for v in versions if not v["pruned"]}
    live = next(v["number"] for v in versions if v["live"])
    assert kept == {live, *heads.values()}, (kept, heads)  # keep_versions=1 and the heads
    # the next candidate of each lineage starts from its head: nothing was lost to retention
    _stream(client, digits, run_jobs, 1)
    fourth = [v for v in client.get("/v1/models/digits/versions").json() if v["megabatch"] == 4]
    assert {v["strategy"]: v["parent"] for v in fourth} == heads
