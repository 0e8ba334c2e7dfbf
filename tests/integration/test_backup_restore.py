"""``lure backup`` while the embedded server runs and trains, ``lure restore`` into a fresh folder,
and a server on the restored folder serves the same versions with the same answers."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from lure_engine.data import load_digits_dataset
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images
from tests.integration.deployments import environment, start_lure_up
from tests.integration.processes import Process, free_port, lure_command, wait_ready
from tests.integration.scenario import wait_for_versions

pytestmark = pytest.mark.slow
DATA = load_digits_dataset()


def _lure(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(lure_command(*args), env=env, capture_output=True, text=True, timeout=300)


def _answers(client: httpx.Client) -> tuple[int, list]:
    answer = client.post("/v1/models/digits/predict", json={"images": png_images(DATA.test.x[:8])})
    assert answer.status_code == 200, answer.text
    return answer.json()["version"], [p["probabilities"] for p in answer.json()["predictions"]]


def _post(client: httpx.Client, start: int) -> None:
    answer = client.post(
        "/v1/models/digits/chunks?split=train",
        headers=NPZ,
        content=npz_body(DATA.train.x[start : start + 300], DATA.train.y[start : start + 300]),
    )
    assert answer.status_code == 201, answer.text


def test_a_backup_taken_while_training_restores_into_a_server_with_the_same_versions(tmp_path):
    server = start_lure_up(tmp_path)
    env = environment(tmp_path)
    env.pop("LURE_DATA_DIR")
    data_dir = str(tmp_path / "data")
    try:
        with httpx.Client(
            base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {server.key}"}
        ) as client:
            client.post("/v1/models", json=DIGITS_MODEL).raise_for_status()
            client.post(
                "/v1/models/digits/chunks?split=test",
                content=npz_body(DATA.test.x, DATA.test.y),
                headers=NPZ,
            ).raise_for_status()
            _post(client, 0)
            _post(client, 300)
            wait_for_versions(client, "digits", 2)
            _post(client, 600)  # mega-batch 3 trains while the backup runs
            made = _lure(env, "backup", str(tmp_path / "backup"), "--data-dir", data_dir)
            assert made.returncode == 0, made.stderr
            assert "backed up" in made.stdout
            # one self-contained database file: no WAL side files a restore would not copy
            assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == [
                "blobs",
                "lure.db",
                "manifest.json",
            ]
            versions_at_backup = client.get("/v1/models/digits/versions").json()
            live_before = _answers(client)
    finally:
        server.server.stop()

    again = _lure(env, "backup", str(tmp_path / "backup"), "--data-dir", data_dir)
    assert again.returncode == 2 and "exists and is not empty" in again.stderr
    restored_dir = tmp_path / "restored"
    restored = _lure(env, "restore", str(tmp_path / "backup"), "--data-dir", str(restored_dir))
    assert restored.returncode == 0, restored.stderr
    print(made.stdout, restored.stdout)

    port = free_port()
    up = Process(
        lure_command("up", "--port", str(port), "--data-dir", str(restored_dir)),
        env,
        tmp_path / "restored.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, up, server.key)  # the same keys: they live in the database
        with httpx.Client(
            base_url=url, timeout=60, headers={"Authorization": f"Bearer {server.key}"}
        ) as client:
            # versions 1-2 were in the snapshot; version 3 was published after it or was not,
            # and if not, the restored server trains mega-batch 3 itself from the restored queue
            versions = wait_for_versions(client, "digits", 3, timeout=240)
            by_number = {v["number"]: v["sha256"] for v in versions}
            for v in versions_at_backup[:2]:
                assert by_number[v["number"]] == v["sha256"]
            if live_before[0] <= 2:
                pinned = client.post(
                    f"/v1/models/digits/predict?version={live_before[0]}",
                    json={"images": png_images(DATA.test.x[:8])},
                ).json()
                assert [p["probabilities"] for p in pinned["predictions"]] == live_before[1]
            pinned_one = client.post(
                "/v1/models/digits/predict?version=1",
                json={"images": png_images(DATA.test.x[:8])},
            )
            assert pinned_one.status_code == 200
    except BaseException:
        print(up.tail(60))
        raise
    finally:
        up.stop()


def test_a_damaged_backup_is_refused_naming_the_blob(tmp_path):
    server = start_lure_up(tmp_path)
    env = environment(tmp_path)
    env.pop("LURE_DATA_DIR")
    try:
        with httpx.Client(
            base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {server.key}"}
        ) as client:
            client.post("/v1/models", json=DIGITS_MODEL).raise_for_status()
            _post(client, 0)
        made = _lure(env, "backup", str(tmp_path / "b"), "--data-dir", str(tmp_path / "data"))
        assert made.returncode == 0, made.stderr
    finally:
        server.server.stop()
    [chunk] = (tmp_path / "b" / "blobs").rglob("*.npz")
    chunk.write_bytes(chunk.read_bytes()[:-10] + b"0123456789")
    target = tmp_path / "restored"
    refused = _lure(env, "restore", str(tmp_path / "b"), "--data-dir", str(target))
    assert refused.returncode == 2
    assert "the backup is damaged: blob" in refused.stderr and "differs from the recorded" in (
        refused.stderr
    )
    assert not target.exists()  # nothing half restored
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".restored.partial")]
    shutil.rmtree(tmp_path / "b")
