"""Backup and restore of the embedded default (SQLite + the blob folder), safe while it runs.

The database is copied with SQLite's online backup API, which yields one consistent snapshot even
while the server writes. Blobs are written once and never changed, so copying the ones that
snapshot references (checkpoints, masks, chunks, exports) after it is taken gives a consistent
pair; blobs written later are simply not in the backup, as the rows naming them are not. Every
copied blob is checked against the sha256 its row records. A backup or a restore is built in a
staging folder and renamed into place, so a crash leaves no half backup and no half data folder.

A restore trusts nothing in the backup folder: before it writes anything it checks the database
(its sha256 against the manifest, SQLite's ``integrity_check``, its schema revision), that every
blob key is a plain relative path inside the blob folder and is one the database names, and the
sha256 of every blob. Only then does it copy, into a staging folder of its own beside the new
data folder, and nothing is ever written or deleted anywhere else.

PostgreSQL deployments back up with ``pg_dump`` plus a copy of the blob volume (docs/SERVER.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lure_core.blobs import check_key

MANIFEST = "manifest.json"
DATABASE = "lure.db"
BLOBS = "blobs"
# (table, key column, sha256 column, condition): every row that names a stored blob
BLOB_COLUMNS = (
    ("versions", "checkpoint_key", "checkpoint_sha256", "pruned_at IS NULL"),
    ("versions", "mask_key", "mask_sha256", "pruned_at IS NULL"),
    ("versions", "momentum_key", "momentum_sha256", "pruned_at IS NULL"),
    ("chunks", "blob_key", "sha256", "1 = 1"),
    ("exports", "blob_key", "sha256", "1 = 1"),
    # logged /predict images: a label may still arrive for them by prediction id
    ("predictions", "image_key", "image_sha256", "1 = 1"),
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
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
        for table, key_column, sha_column, condition in BLOB_COLUMNS:
            if table not in tables:  # a database from before that table's migration
                continue
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
            problem = _backup_one(data_dir, staging, key, sha256, on_progress)
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
            "database_sha256": _file_sha256(staging / DATABASE),
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


def _backup_one(
    data_dir: Path, staging: Path, key: str, sha256: str, on_progress: Progress | None
) -> str:
    """Copy one referenced blob into the backup; a problem in words, or ''."""
    try:
        check_key(key)
    except ValueError:
        return "its key is not a path inside the blob folder; not copied"
    return _copy_checked(data_dir / BLOBS / key, staging / BLOBS / key, sha256, on_progress)


def restore(source: Path, data_dir: Path, on_progress: Progress | None = None) -> BackupReport:
    """A new data folder from a backup, written only after everything in it was verified."""
    manifest = read_manifest(source)
    require_empty(data_dir, "data folder")
    verify_database(source / DATABASE, manifest.get("database_sha256"))
    blobs = verified_blobs(source, manifest, on_progress)  # every sha256, before any write
    staging = _staging(data_dir)
    try:
        shutil.copyfile(source / DATABASE, staging / DATABASE)
        verify_database(staging / DATABASE, _file_sha256(source / DATABASE))
        report = BackupReport(data_dir, versions=_count_versions(staging / DATABASE))
        for key, sha256 in blobs:
            problem = _copy_checked(_inside(source, key), staging / BLOBS / key, sha256, None)
            if problem:  # changed since it was verified a moment ago
                raise BackupError(
                    f"the backup changed while it was restored: blob {key}: {problem}"
                )
            report.blobs += 1
            report.bytes += (staging / BLOBS / key).stat().st_size
        report.problems = [str(p) for p in manifest.get("problems", [])]
        _requeue_unsent_jobs(staging / DATABASE)
        _publish(staging, data_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def read_manifest(source: Path) -> dict:
    """The backup's manifest, refused unless it has the shape ``backup`` writes."""
    path = source / MANIFEST
    if not path.is_file():
        raise BackupError(f"{source} holds no {MANIFEST}: it is not a `lure backup` folder")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise BackupError(f"the backup is damaged: {MANIFEST} is not JSON ({error})") from None
    blobs = manifest.get("blobs") if isinstance(manifest, dict) else None
    if not isinstance(blobs, dict) or not all(isinstance(v, str) for v in blobs.values()):
        raise BackupError(f"the backup is damaged: {MANIFEST} lists no blobs with their sha256")
    if not isinstance(manifest.get("problems", []), list):
        raise BackupError(f"the backup is damaged: {MANIFEST}'s problems is not a list")
    return manifest


def verify_database(database: Path, expected_sha256: str | None) -> None:
    """The backup's database is intact: its recorded sha256 (backups made since it was recorded)
    and SQLite's own ``integrity_check``; BackupError saying what is wrong otherwise."""
    if not database.is_file() or database.is_symlink():
        raise BackupError(f"the backup is damaged: {database} is missing or not a plain file")
    if expected_sha256 is not None and _file_sha256(database) != expected_sha256:
        raise BackupError(
            f"the backup is damaged: {database.name} does not match the sha256 its manifest "
            "recorded; restore an earlier backup"
        )
    try:
        with _connect(database, read_only=True, immutable=True) as connection:
            result = connection.execute("PRAGMA integrity_check").fetchall()
            connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"the backup is damaged: {database.name}: {error}") from None
    if result != [("ok",)]:
        first = "; ".join(str(row[0]) for row in result[:3])
        raise BackupError(f"the backup is damaged: {database.name} fails SQLite's check: {first}")


def verified_blobs(
    source: Path, manifest: dict, on_progress: Progress | None = None
) -> list[tuple[str, str]]:
    """(key, sha256) of the blobs to restore: keys that stay inside the blob folder and that
    the backup's database names, each file's sha256 checked. Reads only."""
    listed: dict[str, str] = manifest["blobs"]
    for key in listed:
        try:
            check_key(key)
        except ValueError:
            raise BackupError(
                f"the backup is damaged: its manifest names the blob key {key!r}, which is not a "
                "path inside the blob folder; nothing was written"
            ) from None
    named = dict(referenced_blobs(source / DATABASE))
    strangers = sorted(set(listed) - set(named))
    if strangers:
        raise BackupError(
            f"the backup is damaged: its manifest names {len(strangers)} blob(s) its database "
            f"does not (first: {strangers[0]!r}); nothing was written"
        )
    missing_at_backup = " ".join(str(p) for p in manifest.get("problems", []))
    chosen = []
    for key, sha256 in sorted(named.items()):
        if listed.get(key) != sha256:
            if f"blob {key}:" in missing_at_backup:
                continue  # missing or damaged when the backup was made; recorded then
            raise BackupError(f"the backup is damaged: blob {key} is not in its manifest")
        problem = _hash_checked(_inside(source, check_key(key)), sha256, on_progress)
        if problem:
            raise BackupError(f"the backup is damaged: blob {key}: {problem}; nothing was written")
        chosen.append((key, sha256))
    return chosen


def _inside(source: Path, key: str) -> Path:
    """The backup's file for ``key``, refused if a link leads it out of the blob folder."""
    root = (source / BLOBS).resolve()
    path = (source / BLOBS / key).resolve()
    if not path.is_relative_to(root):
        raise BackupError(f"the backup is damaged: blob {key} is a link out of its blob folder")
    return path


def _hash_checked(path: Path, sha256: str, on_progress: Progress | None) -> str:
    if not path.is_file():
        return "missing"
    digest = _file_sha256(path, on_progress)
    if digest != sha256:
        return f"sha256 {digest[:12]}… differs from the recorded {sha256[:12]}…"
    return ""


def _file_sha256(path: Path, on_progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as reader:
        for block in _blocks(reader):
            digest.update(block)
            if on_progress:
                on_progress(len(block))
    return digest.hexdigest()


def _count_versions(database: Path) -> int:
    with _connect(database, read_only=True) as connection:
        return int(connection.execute("SELECT count(*) FROM versions").fetchone()[0])


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
def _connect(
    path: Path, read_only: bool = False, immutable: bool = False
) -> Iterator[sqlite3.Connection]:
    """A connection committed on success and always closed (sqlite3's own ``with`` never
    closes). ``immutable``: a file no one writes (a backup's), opened without creating any side
    file next to it."""
    flags = "mode=ro&immutable=1" if immutable else "mode=ro"
    connection = (
        sqlite3.connect(f"file:{path}?{flags}", uri=True, timeout=30)
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
    """A new, uniquely named folder beside ``final`` (never one that already existed)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))


def _publish(staging: Path, final: Path) -> None:
    if final.exists():
        final.rmdir()  # checked empty before any work was done
    os.replace(staging, final)


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True))
