"""Retention: the newest N versions' checkpoints plus the live one are kept; older versions keep
their rows and metrics, lose their files, and say so (410/409 naming retention, not damage)."""

from __future__ import annotations

from sqlalchemy import select

from lure_core.backup import referenced_blobs
from lure_core.records import VersionRow
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
