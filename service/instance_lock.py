"""One server per embedded data folder: a second one is refused with a clear message.

SQLite serialises writers but the API keeps per-model state in memory (the ingest lock that fills
mega-batches in order), so two API processes on one SQLite folder interleave their writes: sample
counts are lost and a unique constraint answers 500. PostgreSQL deployments coordinate through the
database and may run many replicas; this lock applies to the embedded SQLite default only.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

_held: dict[
    Path, int
] = {}  # lock files this process holds (``lure up`` takes it before the API starts)


class DataDirInUse(RuntimeError):
    pass


def hold_data_dir(data_dir: Path) -> None:
    """Take the folder's lock for this process's lifetime, or raise :class:`DataDirInUse`."""
    path = (Path(data_dir) / "server.lock").resolve()
    if path in _held:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
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
