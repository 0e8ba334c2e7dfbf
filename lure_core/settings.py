"""Settings shared by every process (API and worker): where data, records and the queue live, and
how updates are retried.

Every field is an environment variable with the ``LURE_`` prefix (``LURE_DATA_DIR``,
``LURE_DATABASE_URL``, ``LURE_BROKER_URL``...). The embedded default needs no services: SQLite and
a filesystem queue inside the data folder.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class SharedSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LURE_", extra="ignore")

    data_dir: Path = Path("lure-data")
    database_url: str | None = None  # default: SQLite at DATA_DIR/lure.db
    broker_url: str | None = None  # default: kombu's filesystem transport under DATA_DIR/queue
    device: str = "auto"  # training device for the worker: auto | cpu | cuda
    torch_threads: int | None = (
        None  # CPU threads for training and inference (None: torch's default)
    )
    stale_job_seconds: float = (
        60.0  # a running job with no heartbeat for this long may be taken over
    )
    max_update_attempts: int = (
        3  # attempts of one job (crash, exception or lost worker) before it is failed
    )
    retry_backoff_seconds: float = 5.0  # wait before retry n: this × 2^(n-1), at most 10 minutes
    update_timeout_seconds: float | None = (
        None  # kill an update process running longer (None: never)
    )
    heartbeat_seconds: float = 5.0  # how often a worker (and each running job) reports it is alive
    # PyTorch's deterministic algorithms in updates: needed on CUDA for audits to match bit for bit
    # (set CUBLAS_WORKSPACE_CONFIG=:4096:8 too); CPU updates are reproducible without it
    deterministic: bool = False
    # where blobs (chunks, checkpoints, masks, replay memories, exports) live: None keeps them in
    # DATA_DIR/blobs; ``s3://bucket/prefix`` puts them in S3-compatible object storage, shared by
    # every host (credentials the standard AWS way: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY...)
    blob_url: str | None = None
    s3_endpoint_url: str | None = None  # e.g. http://seaweedfs:8333 (None: AWS itself)
    s3_timeout_seconds: float = 10.0  # connect and read timeout of one object-store request
    # local read cache of object-store blobs, keyed by sha256, evicted least recently used first
    blob_cache_bytes: int = 1 << 30
    # a blob no record names is removed once this old (a crash between writing it and its record)
    orphan_blob_grace_seconds: float = 86400.0

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'lure.db').resolve()}"

    @cached_property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def blob_cache_dir(self) -> Path:
        return self.data_dir / "blob-cache"

    @property
    def queue_dir(self) -> Path:
        return self.data_dir / "queue"

    def ensure_dirs(self) -> None:
        """Create the data folders: called by the processes that use them, never at import."""
        for name in ("in", "processed", "control"):
            (self.queue_dir / name).mkdir(parents=True, exist_ok=True)
        if not self.blob_url:  # on object storage the folder holds only the read cache
            self.blob_dir.mkdir(parents=True, exist_ok=True)
