"""Backup and restore of the embedded default (SQLite + the blob folder), safe while it runs.

The database is copied with SQLite's online backup API, which yields one consistent snapshot even
while the server writes. Blobs are written once and never changed, so copying the ones that
snapshot references (checkpoints, masks, chunks, exports) after it is taken gives a consistent
pair; blobs written later are simply not in the backup, as the rows naming them are not. Every
copied blob is checked against the sha256 its row records. A backup or a restore is built in a
staging folder and renamed into place, so a crash leaves no half backup and no half data folder.

PostgreSQL deployments back up with ``pg_dump`` plus a copy of the blob volume (docs/SERVER.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

MANIFEST = "manifest.json"
DATABASE = "lure.db"
BLOBS = "blobs"
# (table, key column, sha256 column, condition): every row that names a stored blob
BLOB_COLUMNS = (
    ("versions", "checkpoint_key", "checkpoint_sha256", "pruned_at IS NULL"),
    ("versions", "mask_key", "mask_sha256", "pruned_at IS NULL"),
    ("chunks", "blob_key", "sha256", "1 = 1"),
    ("exports", "blob_key", "sha256", "1 = 1"),
)

Progress = Callable[[int], None]  # called with the bytes just copied


class BackupError(RuntimeError):
    """The backup or restore cannot be made as asked; the message says why and what to do."""


@dataclass
class BackupReport:
    folder: Path
    blobs: int = 0
    bytes: int = 0
    versions: int = 0
    problems: list[str] = field(default_factory=list)


def referenced_blobs(database: Path) -> list[tuple[str, str]]:
    """(key, sha256) of every blob the database names, each once."""
    with _connect(database, read_only=True) as connection:
        found: dict[str, str] = {}
        for table, key_column, sha_column, condition in BLOB_COLUMNS:
            rows = connection.execute(
                f"SELECT {key_column}, {sha_column} FROM {table} "
                f"WHERE {key_column} IS NOT NULL AND {condition}"
            )
            found.update(dict(rows))
    return sorted(found.items())


def blob_bytes(data_dir: Path, blobs: list[tuple[str, str]]) -> int:
    """What copying ``blobs`` from ``data_dir`` will move (for a progress bar)."""
    sizes = (data_dir / BLOBS / key for key, _ in blobs)
    return sum(path.stat().st_size for path in sizes if path.exists())


def snapshot(data_dir: Path, target: Path) -> Path:
    """Step 1 of a backup: a consistent copy of the database in a new staging folder."""
    source = data_dir / DATABASE
    if not source.is_file():
        raise BackupError(f"{source} does not exist: is {data_dir} a LURE data folder?")
    require_empty(target, "backup folder")
    staging = _staging(target)
    with _connect(source, read_only=True) as live, _connect(staging / DATABASE) as copy:
        live.backup(copy)
        # one self-contained file: the copy inherits WAL mode, whose side files a later
        # read-only connection would leave behind (and a restore would not copy)
        copy.execute("PRAGMA journal_mode=DELETE")
    return staging


def backup(data_dir: Path, target: Path, on_progress: Progress | None = None) -> BackupReport:
    """Copy the embedded server's database and the blobs it references into ``target``."""
    staging = snapshot(data_dir, target)
    try:
        blobs = referenced_blobs(staging / DATABASE)
        report = BackupReport(target)
        for key, sha256 in blobs:
            problem = _copy_checked(
                data_dir / BLOBS / key, staging / BLOBS / key, sha256, on_progress
            )
            if problem:
                report.problems.append(f"blob {key}: {problem}")
            else:
                report.blobs += 1
                report.bytes += (staging / BLOBS / key).stat().st_size
        with _connect(staging / DATABASE, read_only=True) as connection:
            report.versions = connection.execute("SELECT count(*) FROM versions").fetchone()[0]
            schema = connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        manifest = {
            "created_at": datetime.now(UTC).isoformat(),
            "source": str(data_dir.resolve()),
            "schema": schema,
            "versions": report.versions,
            "blobs": dict(blobs),
            "problems": report.problems,
        }
        _write_json(staging / MANIFEST, manifest)
        _publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def restore(source: Path, data_dir: Path, on_progress: Progress | None = None) -> BackupReport:
    """A new data folder from a backup: every blob checked against the manifest first."""
    manifest_path = source / MANIFEST
    if not manifest_path.is_file():
        raise BackupError(f"{source} holds no {MANIFEST}: it is not a `lure backup` folder")
    manifest = json.loads(manifest_path.read_text())
    require_empty(data_dir, "data folder")
    staging = _staging(data_dir)
    try:
        shutil.copy2(source / DATABASE, staging / DATABASE)
        report = BackupReport(data_dir, versions=manifest["versions"])
        for key, sha256 in manifest["blobs"].items():
            origin = source / BLOBS / key
            if not origin.exists() and any(key in p for p in manifest["problems"]):
                continue  # missing when the backup was made; recorded then
            problem = _copy_checked(origin, staging / BLOBS / key, sha256, on_progress)
            if problem:
                raise BackupError(f"the backup is damaged: blob {key}: {problem}")
            report.blobs += 1
            report.bytes += origin.stat().st_size
        report.problems = list(manifest["problems"])
        _requeue_unsent_jobs(staging / DATABASE)
        _publish(staging, data_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _requeue_unsent_jobs(database: Path) -> None:
    """Queued jobs were sent to a queue the backup does not hold: the outbox sends them again."""
    with _connect(database) as connection:
        connection.execute("UPDATE jobs SET dispatched_at = NULL WHERE state = 'queued'")


def _copy_checked(origin: Path, target: Path, sha256: str, on_progress: Progress | None) -> str:
    """Copy while hashing; a problem in words, or '' when the copy matches its record."""
    if not origin.is_file():
        return "missing"
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(origin, "rb") as reader, open(target, "wb") as writer:
        for block in _blocks(reader):
            digest.update(block)
            writer.write(block)
            if on_progress:
                on_progress(len(block))
        writer.flush()
        os.fsync(writer.fileno())
    if digest.hexdigest() != sha256:
        target.unlink()
        return f"sha256 {digest.hexdigest()[:12]}… differs from the recorded {sha256[:12]}…"
    return ""


def _blocks(handle, size: int = 1 << 20) -> Iterator[bytes]:
    while block := handle.read(size):
        yield block


@contextmanager
def _connect(path: Path, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection committed on success and always closed (sqlite3's own ``with`` never
    closes)."""
    connection = (
        sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        if read_only
        else sqlite3.connect(path, timeout=30)
    )
    try:
        yield connection
        connection.commit()
    finally:
        connection.close()


def require_empty(folder: Path, what: str) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupError(f"the {what} {folder} exists and is not empty; name a new folder")


def _staging(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def _publish(staging: Path, final: Path) -> None:
    if final.exists():
        final.rmdir()  # checked empty before any work was done
    os.replace(staging, final)


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True))
