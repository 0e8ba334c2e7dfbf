"""``lure backup DIR`` and ``lure restore DIR``: the embedded default's database and blobs, copied
consistently while the server runs (``lure_core/backup.py``), with a progress bar."""

from __future__ import annotations

from pathlib import Path

import typer

from lure_client.errors import fail
from lure_core.backup import (
    BackupError,
    backup,
    blob_bytes,
    referenced_blobs,
    require_empty,
    restore,
)
from service.settings import ServerSettings

PG_ADVICE = (
    "LURE_DATABASE_URL names a PostgreSQL database: back it up with `pg_dump` (restore with "
    "`pg_restore`) and copy the blob folder LURE_DATA_DIR/blobs beside it (docs/SERVER.md)"
)
S3_ADVICE = (
    "LURE_BLOB_URL keeps the blobs in object storage, which `lure backup` does not copy: back up "
    "the database (`pg_dump`; SQLite: `sqlite3 lure.db '.backup FILE'`), then copy the bucket "
    "prefix with `aws s3 sync` or `rclone sync` (docs/SERVER.md, Backup and restore)"
)
DATA_DIR = typer.Option(None, help="The server's data folder (LURE_DATA_DIR, default ./lure-data).")


def _embedded(data_dir: Path | None) -> ServerSettings:
    settings = ServerSettings(**({"data_dir": data_dir} if data_dir else {}))
    if not settings.resolved_database_url.startswith("sqlite"):
        raise fail(PG_ADVICE)
    if settings.blob_url:
        raise fail(S3_ADVICE)
    return settings


def backup_command(
    target: Path = typer.Argument(..., help="A new (or empty) folder for the backup."),
    data_dir: Path = DATA_DIR,
) -> None:
    """Back up the embedded server (SQLite + blobs); safe while it runs."""
    settings = _embedded(data_dir)
    try:
        require_empty(target, "backup folder")  # before a progress bar is drawn
        total = _total(settings.data_dir)  # an estimate: the snapshot is taken next
        with typer.progressbar(length=total, label="copying blobs") as bar:
            report = backup(settings.data_dir, target, on_progress=bar.update)
    except BackupError as error:
        raise fail(str(error)) from None
    typer.echo(
        f"backed up {report.versions} versions and {report.blobs} blobs "
        f"({report.bytes / 1e6:.1f} MB) to {target}"
    )
    for problem in report.problems:
        typer.echo(f"warning: {problem} (left out of the backup)", err=True)


def restore_command(
    source: Path = typer.Argument(..., help="A folder written by `lure backup`."),
    data_dir: Path = DATA_DIR,
) -> None:
    """Restore a backup into a new data folder; start `lure up --data-dir` on it afterwards."""
    settings = _embedded(data_dir)
    try:
        require_empty(settings.data_dir, "data folder")  # before a progress bar is drawn
        with typer.progressbar(length=_folder_bytes(source), label="restoring blobs") as bar:
            report = restore(source, settings.data_dir, on_progress=bar.update)
    except BackupError as error:
        raise fail(str(error)) from None
    typer.echo(
        f"restored {report.versions} versions and {report.blobs} blobs into {settings.data_dir}; "
        f"run: lure up --data-dir {settings.data_dir}"
    )


def _total(data_dir: Path) -> int:
    database = data_dir / "lure.db"
    if not database.is_file():
        return 1
    return max(1, blob_bytes(data_dir, referenced_blobs(database)))


def _folder_bytes(folder: Path) -> int:
    blobs = folder / "blobs"
    return max(1, sum(p.stat().st_size for p in blobs.rglob("*") if p.is_file()))
