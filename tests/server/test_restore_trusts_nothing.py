"""``lure restore`` verifies a backup before it writes anything, and never writes or deletes
outside the new data folder, whatever the manifest names (issue 23 C)."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest

from lure_core.backup import BackupError, backup, restore
from lure_engine.data import load_digits_dataset
from tests.helpers import NPZ, npz_body

DATA = load_digits_dataset()
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@pytest.fixture()
def made(tmp_path, settings, client, model):
    """A backup of a data folder holding one model and one stored chunk, and a file outside."""
    answer = client.post(
        "/v1/models/digits/chunks?split=train",
        headers=NPZ,
        content=npz_body(DATA.train.x[:50], DATA.train.y[:50]),
    )
    assert answer.status_code == 201, answer.text
    backup(settings.data_dir, tmp_path / "backup")
    victim = tmp_path / "outside" / "precious.txt"
    victim.parent.mkdir()
    victim.write_text("do not touch")
    return tmp_path / "backup", victim


def _edit_manifest(folder, change) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _nothing_written(tmp_path, target) -> None:
    assert not target.exists()
    assert not list(tmp_path.glob(".restored.partial-*"))


@pytest.mark.parametrize("sha256", [EMPTY_SHA256, "0" * 64])
@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_a_manifest_key_outside_the_blob_folder_touches_nothing(tmp_path, made, sha256, how):
    folder, victim = made
    key = "../../../outside/precious.txt" if how == "relative" else str(victim)
    _edit_manifest(folder, lambda m: m["blobs"].update({key: sha256}))
    target = tmp_path / "restored"
    with pytest.raises(BackupError, match="not a path inside the blob folder"):
        restore(folder, target)
    assert victim.read_text() == "do not touch"
    _nothing_written(tmp_path, target)


def test_a_blob_key_the_database_does_not_name_is_refused(tmp_path, made):
    folder, _ = made
    _edit_manifest(folder, lambda m: m["blobs"].update({"models/1/extra.npz": EMPTY_SHA256}))
    with pytest.raises(BackupError, match="its database does not"):
        restore(folder, tmp_path / "restored")
    _nothing_written(tmp_path, tmp_path / "restored")


def test_an_altered_blob_is_found_before_anything_is_written(tmp_path, made):
    folder, _ = made
    blob = next(p for p in (folder / "blobs").rglob("*") if p.is_file())
    data = blob.read_bytes()
    blob.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    with pytest.raises(BackupError, match="damaged: blob .*nothing was written"):
        restore(folder, tmp_path / "restored")
    _nothing_written(tmp_path, tmp_path / "restored")


def test_a_blob_linked_out_of_the_backup_is_refused(tmp_path, made):
    folder, victim = made
    blob = next(p for p in (folder / "blobs").rglob("*") if p.is_file())
    blob.unlink()
    blob.symlink_to(victim)
    with pytest.raises(BackupError, match="link out of its blob folder"):
        restore(folder, tmp_path / "restored")
    assert victim.read_text() == "do not touch"


def test_flipped_bytes_in_the_database_fail_its_recorded_sha256(tmp_path, made):
    folder, _ = made
    database = folder / "lure.db"
    data = bytearray(database.read_bytes())
    data[4096 : 4096 + 64] = bytes(b ^ 0xFF for b in data[4096 : 4096 + 64])
    database.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="does not match the sha256"):
        restore(folder, tmp_path / "restored")
    _nothing_written(tmp_path, tmp_path / "restored")


def test_a_damaged_database_without_a_recorded_sha256_fails_sqlites_check(tmp_path, made):
    folder, _ = made
    _edit_manifest(folder, lambda m: m.pop("database_sha256"))  # a backup from before 0.2
    database = folder / "lure.db"
    database.write_bytes(database.read_bytes()[: 3 * 4096])
    with pytest.raises(BackupError, match="damaged: lure.db"):
        restore(folder, tmp_path / "restored")
    _nothing_written(tmp_path, tmp_path / "restored")


def test_a_manifest_that_is_not_json_is_named(tmp_path, made):
    folder, _ = made
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(BackupError, match="manifest.json is not JSON"):
        restore(folder, tmp_path / "restored")


def test_an_intact_backup_restores_every_blob_and_the_database(tmp_path, made, settings):
    folder, _ = made
    report = restore(folder, tmp_path / "restored")
    assert report.blobs == 1
    restored = tmp_path / "restored"
    with sqlite3.connect(restored / "lure.db") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert not list(tmp_path.glob(".restored.partial-*"))
