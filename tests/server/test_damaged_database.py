"""A truncated SQLite database (issue 23 A): the server says what is wrong and how to restore,
with a 503 on /readyz and on the routes that need it, and ``lure up`` refuses to start on it
with that sentence instead of a traceback."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from fastapi.testclient import TestClient

from lure_core.database import DatabaseDamaged, check_sqlite_intact
from service.app import create_app
from tests.helpers import DIGITS_MODEL, NPZ, npz_body
from tests.integration.processes import lure_command
from tests.server.conftest import new_key


def _truncate(database) -> None:
    data = database.read_bytes()
    database.write_bytes(data[: len(data) // 3])
    for side in ("-wal", "-shm"):
        database.with_name(database.name + side).unlink(missing_ok=True)


@pytest.fixture()
def damaged(settings, digits):
    """A data folder with a model and a chunk, whose database was then cut to a third."""
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {new_key(client, 'admin', ['admin'])}"
        client.post("/v1/models", json=DIGITS_MODEL).raise_for_status()
        client.post(
            "/v1/models/digits/chunks?split=train",
            content=npz_body(digits.train.x[:50], digits.train.y[:50]),
            headers=NPZ,
        ).raise_for_status()
        key = client.headers["Authorization"]
    _truncate(settings.data_dir / "lure.db")
    return key


def test_the_damage_is_found_before_a_server_starts(settings, damaged):
    with pytest.raises(DatabaseDamaged, match="is damaged .*lure restore"):
        check_sqlite_intact(settings.resolved_database_url)


def test_lure_up_refuses_a_damaged_database_in_words(settings, damaged, tmp_path):
    folder = tmp_path / "copy"  # this test process holds the original folder's lock
    folder.mkdir()
    shutil.copyfile(settings.data_dir / "lure.db", folder / "lure.db")
    result = subprocess.run(
        lure_command("up", "--port", "0", "--data-dir", str(folder)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "is damaged" in result.stderr and "lure restore" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def _post_chunks(client, digits, starts) -> None:
    for start in starts:
        rows = slice(start, start + 50)
        body = npz_body(digits.train.x[rows], digits.train.y[rows])
        client.post(
            "/v1/models/digits/chunks?split=train", content=body, headers=NPZ
        ).raise_for_status()


def test_a_database_damaged_under_a_running_server_is_a_503_that_says_so(settings, digits):
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {new_key(client, 'admin', ['admin'])}"
        client.post("/v1/models", json=DIGITS_MODEL).raise_for_status()
        _post_chunks(client, digits, range(0, 200, 50))  # pages of rows, so a cut loses some
        engine = client.app.state.resources.sessions.kw["bind"]
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        database = settings.data_dir / "lure.db"
        database.write_bytes(database.read_bytes()[: 4096 * 3])
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert "damaged" in ready.json()["checks"]["database"]
        chunks = client.get("/v1/models/digits/chunks/1")
        assert chunks.status_code == 503 and "lure restore" in chunks.json()["detail"]


@pytest.mark.parametrize("cut", ["half", "empty"])
def test_no_chunk_is_acknowledged_into_a_file_truncated_under_the_server(settings, digits, cut):
    """Issue 42 §4: the server's connections keep the pages they read, so a file cut under it
    went on answering 201 (three times) and ``database: ok``, and those chunks could never be
    read back. Every write now checks the file before it commits."""
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {new_key(client, 'admin', ['admin'])}"
        client.post("/v1/models", json=DIGITS_MODEL).raise_for_status()
        _post_chunks(client, digits, range(0, 200, 50))
        with client.app.state.resources.sessions() as session:  # the pages into the main file
            session.connection().exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        database = settings.data_dir / "lure.db"
        data = database.read_bytes()
        database.write_bytes(data[: len(data) // 2] if cut == "half" else b"")
        for start in (200, 250, 300):  # the reporter's three posts, on the same connections
            refused = client.post(
                "/v1/models/digits/chunks?split=train",
                content=npz_body(
                    digits.train.x[start : start + 50], digits.train.y[start : start + 50]
                ),
                headers=NPZ,
            )
            assert refused.status_code == 503, refused.text
            assert "is damaged" in refused.json()["detail"]
            assert "lure restore" in refused.json()["detail"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "damaged" in ready.json()["checks"]["database"]
