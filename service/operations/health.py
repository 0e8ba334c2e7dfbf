"""Is the server doing its job? The checks behind ``/readyz`` and the health gauges on ``/metrics``.

Reachability (database, broker, blob store) is not enough: a model whose worker died, whose job
hangs, whose update keeps failing or whose live checkpoint is damaged accepts data and never learns
from it. Each such condition is a *problem* with a sentence saying what is wrong and what to do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import BlobStore, ChecksumMismatch, ObjectStoreUnavailable
from lure_core.model_store import is_live
from lure_core.records import (
    ChunkRow,
    JobRow,
    JobState,
    MegaBatchRow,
    MegaBatchState,
    ModelRow,
    VersionRow,
    WorkerRow,
)


class FileVerifier:
    """sha256 checks of stored blobs, re-hashed only when a blob's signature (size, inode and
    mtime in a folder; size and ETag in object storage) changes.

    An object store that cannot be reached makes the answer unknown (None), never "damaged":
    an outage is not damage, and it is the blob store's own check that reports it.
    """

    # after the store failed to answer, files are not asked about for this long: each request
    # to a store that is down waits out its timeouts, and a health pass asks about every model
    UNREACHABLE_BACKOFF_SECONDS = 10.0

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._known: dict[tuple[str, str], tuple[Hashable, bool]] = {}
        self._lock = threading.Lock()
        self._unreachable_until = 0.0

    def intact(self, key: str, expected_sha256: str) -> bool | None:
        if time.monotonic() < self._unreachable_until:
            return None
        try:
            return self._intact(key, expected_sha256)
        except ObjectStoreUnavailable:
            self._unreachable_until = time.monotonic() + self.UNREACHABLE_BACKOFF_SECONDS
            return None

    def _intact(self, key: str, expected_sha256: str) -> bool:
        signature = self.blobs.signature(key, expected_sha256)
        if signature is None:
            return False
        with self._lock:
            known = self._known.get((key, expected_sha256))
        if known is None or known[0] != signature:
            try:
                self.blobs.read(key, expected_sha256)
                known = (signature, True)
            except ChecksumMismatch:
                known = (signature, False)
            with self._lock:
                self._known[key, expected_sha256] = known
        return known[1]


@dataclass
class Health:
    workers_alive: int = 0
    stale_jobs: list[str] = field(default_factory=list)
    failed_jobs: dict[str, list[str]] = field(default_factory=dict)  # model → problems
    damaged_live: dict[str, str] = field(default_factory=dict)  # model → problem
    lost_chunks: list[str] = field(default_factory=list)
    retreated: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _lost_chunks(session: Session, names: dict[int, str], verifier: FileVerifier) -> list[str]:
    """Chunks an update found unreadable and whose file is still not intact."""
    problems = []
    for chunk in session.scalars(
        select(ChunkRow).where(ChunkRow.lost_at.is_not(None)).order_by(ChunkRow.id)
    ):
        if verifier.intact(chunk.blob_key, chunk.sha256):
            continue  # the file was put back: the next update reads it again
        problems.append(
            f"model {names[chunk.model_id]}: chunk {chunk.id} is lost ({chunk.lost_reason}); "
            f"its {chunk.n_samples} samples are left out of training, replay and evaluation. "
            "Put the file back from a backup to use them again (docs/RELIABILITY.md)"
        )
    return problems


def _quarantined(session: Session, names: dict[int, str]) -> list[str]:
    """Mega-batches the data gate stopped, waiting for an admin's decision."""
    problems = []
    for megabatch in session.scalars(
        select(MegaBatchRow)
        .where(MegaBatchRow.state == MegaBatchState.QUARANTINED)
        .order_by(MegaBatchRow.model_id, MegaBatchRow.index)
    ):
        name, reasons = names[megabatch.model_id], (megabatch.data_gate or {}).get("reasons", [])
        problems.append(
            f"model {name}: mega-batch {megabatch.index} is quarantined by the data gate"
            f"{' (' + reasons[0][:300] + ')' if reasons else ''}; it is not trained on until an "
            f"admin releases or discards it (`lure megabatches release|discard "
            f"{megabatch.index} --model {name}`)"
        )
    return problems


def _failed_jobs(session: Session, names: dict[int, str]) -> dict[str, list[str]]:
    failed: dict[str, list[str]] = {}
    rows = session.execute(
        select(JobRow, MegaBatchRow.index)
        .join(MegaBatchRow, JobRow.megabatch_id == MegaBatchRow.id)
        .where(JobRow.state == JobState.FAILED)
        .order_by(JobRow.id)
    ).all()
    for job, index in rows:
        last = (job.error or "").strip().splitlines()[:1]
        failed.setdefault(names[job.model_id], []).append(
            f"model {names[job.model_id]}: job {job.id} (mega-batch {index}) failed"
            f"{': ' + last[0][:300] if last else ''}; its data is not trained on until it is "
            "retried "
            f"(POST /v1/jobs/{job.id}/retry or `lure jobs retry {job.id}`)"
        )
    return failed


def _retreated(session: Session, names: dict[int, str], verifier: FileVerifier) -> list[str]:
    """Models serving an ancestor because newer versions are damaged (their files fail the
    sha256 check): the model goes on, but what those versions learnt is not served."""
    problems = []
    rows = session.execute(
        select(VersionRow, ModelRow.live_version)
        .join(ModelRow, ModelRow.id == VersionRow.model_id)
        .where(VersionRow.damaged.is_not(None), VersionRow.pruned_at.is_(None))
        .order_by(VersionRow.model_id, VersionRow.number)
    ).all()
    for version, live in rows:
        if live is None or version.number <= live:
            continue
        if verifier.intact(version.checkpoint_key, version.checkpoint_sha256):
            continue  # the file was put back: the next predict or update may use it again
        problems.append(
            f"model {names[version.model_id]}: version {version.number} is damaged "
            f"({version.damaged.splitlines()[0][:200]}); the model serves and trains from "
            f"version {live}, an older one. Put the file back from a backup to use it again"
        )
    return problems


def _damaged_live(session: Session, verifier: FileVerifier) -> dict[str, str]:
    damaged = {}
    rows = session.execute(select(ModelRow.name, VersionRow).join(VersionRow, is_live())).all()
    for name, version in rows:
        if version.damaged or (
            verifier.intact(version.checkpoint_key, version.checkpoint_sha256) is False
        ):
            damaged[name] = (
                f"model {name}: the live version {version.number}'s checkpoint fails its sha256 "
                f"check; the next predict or update moves the model to its newest intact ancestor"
            )
    return damaged


def assess(
    sessions: sessionmaker[Session],
    verifier: FileVerifier,
    *,
    worker_timeout: float,
    stale_after: float,
) -> Health:
    """Read the records once and list every reason the server is not doing its job."""
    now = datetime.now(UTC)
    health = Health()
    with sessions() as session:
        health.workers_alive = len(
            session.scalars(
                select(WorkerRow.name).where(
                    WorkerRow.seen_at >= now - timedelta(seconds=worker_timeout)
                )
            ).all()
        )
        names = dict(session.execute(select(ModelRow.id, ModelRow.name)).all())
        for job in session.scalars(
            select(JobRow).where(
                JobRow.state == JobState.RUNNING,
                JobRow.heartbeat_at < now - timedelta(seconds=stale_after),
            )
        ):
            silent = (now - job.heartbeat_at).total_seconds()
            health.stale_jobs.append(
                f"model {names[job.model_id]}: job {job.id} is running but its worker has "
                f"not reported for {silent:.0f} s (limit {stale_after:.0f} s)"
            )
        health.failed_jobs = _failed_jobs(session, names)
        health.damaged_live = _damaged_live(session, verifier)
        health.lost_chunks = _lost_chunks(session, names, verifier)
        health.retreated = _retreated(session, names, verifier)
        health.quarantined = _quarantined(session, names)
    if health.workers_alive == 0:
        health.problems.append(
            f"no worker has reported in the last {worker_timeout:.0f} s: sealed mega-batches "
            "are not being trained (start one with `lure worker`)"
        )
    health.problems += health.stale_jobs
    health.problems += [p for problems in health.failed_jobs.values() for p in problems]
    health.problems += list(health.damaged_live.values())
    health.problems += health.lost_chunks
    health.problems += health.retreated
    health.problems += health.quarantined
    return health
