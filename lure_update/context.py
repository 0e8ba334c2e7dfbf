"""What an update carries through an attempt: its settings, where records and blobs are, and
who runs it.

No torch here: the Celery process that supervises update processes imports this module.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import BlobStore
from lure_core.job_store import JobStore
from lure_core.settings import SharedSettings


@dataclass
class UpdateContext:
    settings: SharedSettings
    sessions: sessionmaker[Session]
    blobs: BlobStore

    @property
    def jobs(self) -> JobStore:
        return JobStore(self.sessions, self.settings)


def runner_name(pid: int | None = None) -> str:
    """Who runs an attempt: host and process id, recorded on the job while it runs."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"
