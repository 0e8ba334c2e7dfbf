"""One update job, start to publish, as a plain function the Celery task wraps.

Order and idempotency are enforced here, against the database, so they hold whichever worker
runs the job and however often the broker delivers it: a job runs only after every earlier
mega-batch of its model is published, only one worker can claim it, and the version row is unique
per mega-batch.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

import numpy as np
import torch
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lure_engine.data import to_tensor
from lure_engine.metrics import evaluate, evaluate_logits, predict_logits, reliability_bins
from lure_engine.models import build_model
from lure_engine.replay import make_replay
from lure_engine.seeding import derive_seed
from lure_engine.trainer import Progress
from lure_engine.update import UpdateSeeds, run_update
from worker import recipe
from worker.config import StorageSettings
from worker.samples import SampleReader, sample_ids
from worker.storage.blobs import BlobStore
from worker.storage.checkpoints import load_state, save_state
from worker.storage.schema import JobRow, MegaBatchRow, MetricsRow, ModelRow, VersionRow

log = logging.getLogger("lure.worker")


class Outcome(str, Enum):
    PUBLISHED = "published"
    ALREADY_DONE = "already_done"
    WAIT = "wait"  # an earlier mega-batch is still pending, or another worker holds this job
    FAILED = "failed"
    MISSING = "missing"


@dataclass
class WorkerContext:
    settings: StorageSettings
    sessions: sessionmaker[Session]
    blobs: BlobStore

    @property
    def device(self) -> torch.device:
        if self.settings.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.settings.device)


def _now() -> datetime:
    return datetime.now(UTC)


def _claim(ctx: WorkerContext, job_id: int) -> Outcome | None:
    """Take the job if it is ours to run; None means claimed."""
    with ctx.sessions.begin() as session:
        job = session.get(JobRow, job_id)
        if job is None:
            return Outcome.MISSING
        if job.state in ("succeeded", "failed"):
            return Outcome.ALREADY_DONE
        index = session.scalar(select(MegaBatchRow.index).where(MegaBatchRow.id == job.megabatch_id))
        earlier_pending = session.scalar(
            select(func.count()).select_from(JobRow).join(MegaBatchRow, JobRow.megabatch_id == MegaBatchRow.id)
            .where(JobRow.model_id == job.model_id, MegaBatchRow.index < index,
                   JobRow.state.in_(("queued", "running"))))
        if earlier_pending:
            return Outcome.WAIT
        stale = _now() - timedelta(seconds=ctx.settings.stale_job_seconds)
        claimed = session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, or_(JobRow.state == "queued",
                                            (JobRow.state == "running") & (JobRow.heartbeat_at < stale)))
            .values(state="running", attempts=JobRow.attempts + 1, started_at=_now(), heartbeat_at=_now(),
                    progress={"phase": "loading"}, error=None)
        ).rowcount
        return None if claimed == 1 else Outcome.WAIT


class _ProgressWriter:
    """Writes job progress (and the heartbeat) at most once a second: cheap enough for any loop."""

    def __init__(self, ctx: WorkerContext, job_id: int) -> None:
        self.ctx, self.job_id, self.last = ctx, job_id, 0.0

    def phase(self, name: str, **extra) -> None:
        self._write({"phase": name, **extra})

    def training(self, p: Progress) -> None:
        if time.monotonic() - self.last >= 1.0 or (p.epoch == p.epochs and p.step == p.steps):
            self._write({"phase": "relearn", "epoch": p.epoch, "epochs": p.epochs, "step": p.step,
                         "steps": p.steps, "loss": round(p.loss, 5)})

    def _write(self, progress: dict) -> None:
        self.last = time.monotonic()
        with self.ctx.sessions.begin() as session:
            session.execute(update(JobRow).where(JobRow.id == self.job_id)
                            .values(progress=progress, heartbeat_at=_now()))


def execute_job(ctx: WorkerContext, job_id: int) -> Outcome:
    claim = _claim(ctx, job_id)
    if claim is not None:
        return claim
    progress = _ProgressWriter(ctx, job_id)
    try:
        number = _run_claimed(ctx, job_id, progress)
        log.info("job %s published version %s", job_id, number, extra={"job_id": job_id, "version": number})
        return Outcome.PUBLISHED
    except Exception:
        error = traceback.format_exc()
        log.error("job %s failed: %s", job_id, error, extra={"job_id": job_id})
        with ctx.sessions.begin() as session:
            session.execute(update(JobRow).where(JobRow.id == job_id).values(
                state="failed", error=error[-4000:], finished_at=_now()))
        return Outcome.FAILED


def _tensors(x: np.ndarray, y: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return to_tensor(x, device), torch.from_numpy(y).to(device)


def _run_claimed(ctx: WorkerContext, job_id: int, progress: _ProgressWriter) -> int:
    started = time.perf_counter()
    device = ctx.device
    with ctx.sessions() as session:
        job = session.get(JobRow, job_id)
        model_row = session.get(ModelRow, job.model_id)
        megabatch = session.get(MegaBatchRow, job.megabatch_id)
        config = model_row.config
        spec, update_config = recipe.model_spec(config), recipe.update_config(config)
        parent = None
        if model_row.live_version is not None:
            parent = session.scalar(select(VersionRow).where(
                VersionRow.model_id == model_row.id, VersionRow.number == model_row.live_version))
        parent_cer = 0
        if parent is not None:
            parent_cer = session.scalar(select(MetricsRow.cer).where(MetricsRow.version_id == parent.id)) or 0

        # 1. the published parent (random init for the first version), its mask and replay memory
        model = build_model(spec, seed=recipe.init_seed(config))
        mask, replay = None, make_replay(recipe.replay_spec(config), seed=derive_seed(config["seed"], "replay"))
        if parent is not None:
            model.load_state_dict(load_state(ctx.blobs, parent.checkpoint_key, parent.checkpoint_sha256))
            if parent.mask_key:
                mask = {k: v.bool() for k, v in load_state(ctx.blobs, parent.mask_key, parent.mask_sha256).items()}
            replay.load_state_dict(parent.replay_state)
        model.to(device)
        if mask is not None:
            mask = {k: v.to(device) for k, v in mask.items()}

        reader = SampleReader(session, ctx.blobs, model_row.id)
        x_mb, y_mb = reader.megabatch(megabatch.index)
        train_rows, _ = reader.split(megabatch)
        x_replay, y_replay = reader.gather(replay.ids())
        x_train = np.concatenate([x_replay, x_mb[train_rows]])
        y_train = np.concatenate([y_replay, y_mb[train_rows]])
        val_parts = []
        for row in session.scalars(select(MegaBatchRow).where(
                MegaBatchRow.model_id == model_row.id, MegaBatchRow.state == "sealed",
                MegaBatchRow.index <= megabatch.index).order_by(MegaBatchRow.index)):
            _, val_rows = reader.split(row)
            x_all, y_all = reader.megabatch(row.index)
            val_parts.append((x_all[val_rows], y_all[val_rows]))
        test = reader.test_set()
        megabatch_index, model_id = megabatch.index, model_row.id
        parent_number = parent.number if parent is not None else None
        attempt = job.attempts

    mb_x, mb_y = _tensors(x_mb, y_mb, device)
    train_x, train_y = _tensors(x_train, y_train, device)
    val_x, val_y = _tensors(np.concatenate([v[0] for v in val_parts]), np.concatenate([v[1] for v in val_parts]),
                            device)
    load_seconds = time.perf_counter() - started

    # prequential accuracy: the parent, untouched, on the new data before learning it
    prequential = evaluate(model, mb_x, mb_y).accuracy
    progress.phase("unlearn")
    seeds = UpdateSeeds.derive(config["seed"], megabatch_index)
    train_index = torch.from_numpy(train_rows).to(device)
    result = run_update(
        model, spec, mask, has_parent=parent is not None, train_x=train_x, train_y=train_y,
        megabatch_x=mb_x[train_index], megabatch_y=mb_y[train_index],
        config=update_config, seeds=seeds, progress=progress.training,
    )
    model = result.model

    progress.phase("evaluate")
    evaluate_started = time.perf_counter()
    train_eval = evaluate(model, train_x, train_y)
    val_eval = evaluate(model, val_x, val_y)
    test_eval, reliability = None, []
    if test is not None:
        test_x, test_y = _tensors(*test, device)
        logits = predict_logits(model, test_x)
        test_eval = evaluate_logits(logits, test_y)
        reliability = reliability_bins(logits.softmax(1), test_y)
    evaluate_seconds = time.perf_counter() - evaluate_started

    progress.phase("publish")
    replay.observe(sample_ids(megabatch_index, train_rows), y_mb[train_rows])
    prefix = f"models/{model_id}/versions/mb{megabatch_index:05d}-a{attempt}"
    checkpoint_sha = save_state(ctx.blobs, f"{prefix}/weights.safetensors", model.state_dict())
    mask_key = mask_sha = None
    if result.next_mask is not None:
        mask_key = f"{prefix}/mask.safetensors"
        mask_sha = save_state(ctx.blobs, mask_key, {k: v.to(torch.uint8) for k, v in result.next_mask.items()})
    timings = {
        "load_seconds": load_seconds, "reset_seconds": result.reset_seconds,
        "train_seconds": result.train.seconds, "importance_seconds": result.importance_seconds,
        "unlearn_seconds": result.unlearn_seconds, "evaluate_seconds": evaluate_seconds,
        "total_seconds": time.perf_counter() - started,
    }
    seeds_record = {"model_seed": config["seed"], "init": recipe.init_seed(config),
                    "split": recipe.split_seed(config, megabatch_index), "reinit": seeds.reinit,
                    "train": seeds.train, "importance": seeds.importance}
    version = VersionRow(
        model_id=model_id, parent_number=parent_number,
        strategy=config["strategy"], seeds=seeds_record, checkpoint_key=f"{prefix}/weights.safetensors",
        checkpoint_sha256=checkpoint_sha, mask_key=mask_key, mask_sha256=mask_sha,
        replay_state=replay.state_dict(),
    )
    metrics = MetricsRow(
        test_accuracy=test_eval.accuracy if test_eval else None,
        test_errors=test_eval.errors if test_eval else None,
        test_samples=test_eval.count if test_eval else 0,
        cer=parent_cer + test_eval.errors if test_eval else None,
        train_accuracy=train_eval.accuracy, val_accuracy=val_eval.accuracy,
        generalization_gap=train_eval.accuracy - val_eval.accuracy,
        ece=test_eval.ece if test_eval else None, nll=test_eval.nll if test_eval else None,
        prequential_accuracy=prequential, train_samples=len(train_x),
        train_seconds=result.train.seconds, unlearn_seconds=result.unlearn_seconds,
        evaluate_seconds=evaluate_seconds, reliability=reliability,
    )
    return _publish(ctx, job_id, version, metrics, timings)


def _publish(ctx: WorkerContext, job_id: int, version: VersionRow, metrics: MetricsRow, timings: dict) -> int:
    """One transaction: version + metrics + live pointer + job state; a duplicate publishes nothing."""
    try:
        with ctx.sessions.begin() as session:
            job = session.get(JobRow, job_id)
            existing = session.scalar(select(VersionRow).where(
                VersionRow.model_id == job.model_id, VersionRow.megabatch_id == job.megabatch_id))
            if existing is None:
                number = (session.scalar(select(func.max(VersionRow.number))
                                         .where(VersionRow.model_id == job.model_id)) or 0) + 1
                version.number, version.megabatch_id = number, job.megabatch_id
                session.add(version)
                session.flush()
                metrics.version_id = version.id
                session.add(metrics)
                session.get(ModelRow, job.model_id).live_version = number
            else:
                number = existing.number
            job.state, job.version, job.finished_at = "succeeded", number, _now()
            job.timings, job.progress = timings, {"phase": "done"}
            return number
    except IntegrityError:  # a concurrent duplicate won the race: it is published, exactly once
        with ctx.sessions.begin() as session:
            job = session.get(JobRow, job_id)
            existing = session.scalar(select(VersionRow).where(
                VersionRow.model_id == job.model_id, VersionRow.megabatch_id == job.megabatch_id))
            job.state, job.version, job.finished_at = "succeeded", existing.number, _now()
            return existing.number
