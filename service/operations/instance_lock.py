"""One server per embedded data folder: a second one is refused with a clear message.

SQLite serialises writers but the API keeps per-model state in memory (the ingest lock that fills
mega-batches in order), so two API processes on one SQLite folder interleave their writes: sample
counts are lost and a unique constraint answers 500. PostgreSQL deployments coordinate through the
database and may run many replicas; this lock applies to the embedded SQLite default only.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

_held: dict[
    Path, int
] = {}  # lock files this process holds (``lure up`` takes it before the API starts)


class DataDirInUse(RuntimeError):
    pass


def held_lock_descriptors() -> tuple[int, ...]:
    """The lock files this process holds, to pass to its children: the lock stays held until
    the last of them exits (a worker left behind by a killed ``lure up`` keeps the folder busy
    until it has stopped)."""
    return tuple(_held.values())


def _take(descriptor: int, wait_seconds: float) -> bool:
    """The exclusive lock, waiting up to ``wait_seconds`` for a previous holder to exit."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


def hold_data_dir(data_dir: Path, wait_seconds: float = 20.0) -> None:
    """Take the folder's lock for this process's lifetime, or raise :class:`DataDirInUse`.

    Waits a little first: the processes of a server that was just killed need a few seconds to
    hand their work back and exit."""
    path = (Path(data_dir) / "server.lock").resolve()
    if path in _held:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if not _take(descriptor, wait_seconds):
        holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(descriptor)
        raise DataDirInUse(
            f"data folder {path.parent} is in use by another LURE server (pid {holder}); two "
            "servers on one SQLite database would lose updates. Stop that one, give this one "
            "another --data-dir, or use "
            "PostgreSQL (LURE_DATABASE_URL) to run several API replicas."
        ) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, str(os.getpid()).encode(), 0)
    _held[path] = descriptor
