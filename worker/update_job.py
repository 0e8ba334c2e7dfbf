"""One update job, claim to publish: the function an update process runs (``worker/isolation.py``).

Order and idempotency are enforced against the database, so they hold whichever worker runs the
job and however often the broker delivers it: a job runs only after every earlier mega-batch of
its model is done, only one worker can claim it (``worker/attempts.py``), and the version row is
unique per mega-batch.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass

import numpy as np
import torch
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError as SQLAlchemyIntegrityError
from sqlalchemy.orm import Session

from lure_engine.data import to_tensor
from lure_engine.metrics import evaluate, evaluate_logits, predict_logits, reliability_bins
from lure_engine.models import build_model
from lure_engine.replay import make_replay
from lure_engine.seeding import derive_seed
from lure_engine.trainer import Progress
from lure_engine.update import UpdateSeeds, run_update
from worker import recipe
from worker.attempts import Outcome, WorkerContext, now, record_failure, runner_name
from worker.attempts import claim as claim_job
from worker.config import StorageSettings
from worker.samples import SampleReader, sample_ids
from worker.storage.blobs import IntegrityError
from worker.storage.checkpoints import load_state, save_state
from worker.storage.lineage import clear_damage, record_damage, retreat_live, version_row
from worker.storage.schema import JobRow, MegaBatchRow, MetricsRow, ModelRow, VersionRow

log = logging.getLogger("lure.worker")


class _ProgressWriter:
    """Writes job progress (and the heartbeat) at most once a second: cheap enough for any loop."""

    def __init__(self, ctx: WorkerContext, job_id: int, runner: str) -> None:
        self.ctx, self.job_id, self.runner, self.last = ctx, job_id, runner, 0.0

    def phase(self, name: str, **extra) -> None:
        self._write({"phase": name, **extra})

    def training(self, p: Progress) -> None:
        if time.monotonic() - self.last >= 1.0 or (p.epoch == p.epochs and p.step == p.steps):
            self._write({"phase": "relearn", "epoch": p.epoch, "epochs": p.epochs, "step": p.step,
                         "steps": p.steps, "loss": round(p.loss, 5)})

    def _write(self, progress: dict) -> None:
        self.last = time.monotonic()
        with self.ctx.sessions.begin() as session:
            session.execute(update(JobRow).where(JobRow.id == self.job_id, JobRow.runner == self.runner)
                            .values(progress=progress, heartbeat_at=now()))  # a taken-over attempt writes nothing


def execute_job(ctx: WorkerContext, job_id: int, runner: str | None = None) -> Outcome:
    """Claim, update and publish one job; an exception is recorded as a failed attempt."""
    runner = runner or runner_name()
    claim = claim_job(ctx, job_id, runner)
    if claim is not None:
        return claim
    progress = _ProgressWriter(ctx, job_id, runner)
    try:
        number = _run_claimed(ctx, job_id, progress)
    except Exception:
        return record_failure(ctx, job_id, runner, "exception", traceback.format_exc())
    log.info("job %s published version %s", job_id, number, extra={"job_id": job_id, "version": number})
    return Outcome.PUBLISHED


def training_device(settings: StorageSettings) -> torch.device:
    """Chosen once per update: CUDA when present (``auto``), or what ``LURE_DEVICE`` names."""
    if settings.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(settings.device)


def _tensors(x: np.ndarray, y: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return to_tensor(x, device), torch.from_numpy(y).to(device)


class NoIntactCheckpoint(RuntimeError):
    """Every version in the live version's lineage failed its integrity check."""


@dataclass
class Learner:
    """The state an update starts from: a parent version's weights, forget-mask and replay memory."""

    parent: VersionRow | None
    state: dict[str, torch.Tensor] | None
    mask: dict[str, torch.Tensor] | None


def _load_learner(ctx: WorkerContext, model_row: ModelRow, session: Session) -> Learner:
    """The live version's learner; a damaged one is recorded and its newest intact ancestor used."""
    number, damaged = model_row.live_version, []
    while number is not None:
        version = version_row(session, model_row.id, number)
        try:
            state = load_state(ctx.blobs, version.checkpoint_key, version.checkpoint_sha256)
            mask = None
            if version.mask_key:
                mask = {k: v.bool() for k, v in load_state(ctx.blobs, version.mask_key, version.mask_sha256).items()}
        except IntegrityError as error:
            record_damage(ctx.sessions, version, str(error))
            damaged.append(f"version {number}: {error}")
            number = version.parent_number
            continue
        clear_damage(ctx.sessions, version)
        if damaged:
            retreat_live(ctx.sessions, model_row.id, model_row.live_version, version.number)
        return Learner(version, state, mask)
    if damaged:
        raise NoIntactCheckpoint(f"no intact checkpoint to start from: {'; '.join(damaged)}")
    return Learner(None, None, None)


@dataclass
class UpdateInputs:
    """Everything one update reads from the records and blobs, gathered in one short session."""

    job_id: int
    model_id: int
    config: dict
    megabatch_index: int
    attempt: int
    learner: Learner
    promotion_epoch: int
    x_megabatch: np.ndarray
    y_megabatch: np.ndarray
    train_rows: np.ndarray
    x_train: np.ndarray  # replay + the mega-batch's train split
    y_train: np.ndarray
    x_val: np.ndarray  # every sealed mega-batch's validation split so far
    y_val: np.ndarray
    test: tuple[np.ndarray, np.ndarray] | None
    replay: object
    parent_cer: int


def _load_inputs(ctx: WorkerContext, job_id: int) -> UpdateInputs:
    with ctx.sessions() as session:
        job = session.get(JobRow, job_id)
        model_row = session.get(ModelRow, job.model_id)
        megabatch = session.get(MegaBatchRow, job.megabatch_id)
        config = model_row.config
        learner = _load_learner(ctx, model_row, session)
        replay = make_replay(recipe.replay_spec(config), seed=derive_seed(config["seed"], "replay"))
        parent_cer = 0
        if learner.parent is not None:
            replay.load_state_dict(learner.parent.replay_state)
            parent_cer = session.scalar(select(MetricsRow.cer).where(MetricsRow.version_id == learner.parent.id)) or 0
        reader = SampleReader(session, ctx.blobs, model_row.id)
        x_mb, y_mb = reader.megabatch(megabatch.index)
        train_rows, _ = reader.split(megabatch)
        x_replay, y_replay = reader.gather(replay.ids())
        val_parts = []
        for row in session.scalars(select(MegaBatchRow).where(
                MegaBatchRow.model_id == model_row.id, MegaBatchRow.state == "sealed",
                MegaBatchRow.index <= megabatch.index).order_by(MegaBatchRow.index)):
            _, val_rows = reader.split(row)
            x_all, y_all = reader.megabatch(row.index)
            val_parts.append((x_all[val_rows], y_all[val_rows]))
        inputs = UpdateInputs(
            job_id=job_id, model_id=model_row.id, config=config, megabatch_index=megabatch.index,
            attempt=job.attempts, learner=learner, promotion_epoch=model_row.promotion_epoch,
            x_megabatch=x_mb, y_megabatch=y_mb, train_rows=train_rows,
            x_train=np.concatenate([x_replay, x_mb[train_rows]]), y_train=np.concatenate([y_replay, y_mb[train_rows]]),
            x_val=np.concatenate([v[0] for v in val_parts]), y_val=np.concatenate([v[1] for v in val_parts]),
            test=reader.test_set(), replay=replay, parent_cer=parent_cer,
        )
    with ctx.sessions.begin() as session:  # what this attempt started from: publish checks it
        session.execute(update(JobRow).where(JobRow.id == job_id).values(
            parent_version=learner.parent.number if learner.parent else None,
            promotion_epoch=inputs.promotion_epoch))
    return inputs


def _run_claimed(ctx: WorkerContext, job_id: int, progress: _ProgressWriter) -> int:
    started = time.perf_counter()
    device = training_device(ctx.settings)
    inputs = _load_inputs(ctx, job_id)
    config = inputs.config
    spec, update_config = recipe.model_spec(config), recipe.update_config(config)
    model = build_model(spec, seed=recipe.init_seed(config))
    if inputs.learner.state is not None:
        model.load_state_dict(inputs.learner.state)
    model.to(device)
    mask = None
    if inputs.learner.mask is not None:
        mask = {k: v.to(device) for k, v in inputs.learner.mask.items()}
    x_mb, y_mb, train_rows = inputs.x_megabatch, inputs.y_megabatch, inputs.train_rows

    mb_x, mb_y = _tensors(x_mb, y_mb, device)
    train_x, train_y = _tensors(inputs.x_train, inputs.y_train, device)
    val_x, val_y = _tensors(inputs.x_val, inputs.y_val, device)
    load_seconds = time.perf_counter() - started

    # prequential accuracy: the parent, untouched, on the new data before learning it
    prequential = evaluate(model, mb_x, mb_y).accuracy
    progress.phase("unlearn")
    seeds = UpdateSeeds.derive(config["seed"], inputs.megabatch_index)
    train_index = torch.from_numpy(train_rows).to(device)
    result = run_update(
        model, spec, mask, has_parent=inputs.learner.parent is not None, train_x=train_x, train_y=train_y,
        megabatch_x=mb_x[train_index], megabatch_y=mb_y[train_index],
        config=update_config, seeds=seeds, progress=progress.training,
    )
    model = result.model

    progress.phase("evaluate")
    evaluate_started = time.perf_counter()
    train_eval = evaluate(model, train_x, train_y)
    val_eval = evaluate(model, val_x, val_y)
    test_eval, reliability = None, []
    if inputs.test is not None:
        test_x, test_y = _tensors(*inputs.test, device)
        logits = predict_logits(model, test_x)
        test_eval = evaluate_logits(logits, test_y)
        reliability = reliability_bins(logits.softmax(1), test_y)
    evaluate_seconds = time.perf_counter() - evaluate_started

    progress.phase("publish")
    replay = inputs.replay
    replay.observe(sample_ids(inputs.megabatch_index, train_rows), y_mb[train_rows])
    prefix = f"models/{inputs.model_id}/versions/mb{inputs.megabatch_index:05d}-a{inputs.attempt}"
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
                    "split": recipe.split_seed(config, inputs.megabatch_index), "reinit": seeds.reinit,
                    "train": seeds.train, "importance": seeds.importance}
    parent = inputs.learner.parent
    version = VersionRow(
        model_id=inputs.model_id, parent_number=parent.number if parent else None,
        strategy=config["strategy"], seeds=seeds_record, checkpoint_key=f"{prefix}/weights.safetensors",
        checkpoint_sha256=checkpoint_sha, mask_key=mask_key, mask_sha256=mask_sha,
        replay_state=replay.state_dict(),
    )
    metrics = MetricsRow(
        test_accuracy=test_eval.accuracy if test_eval else None,
        test_errors=test_eval.errors if test_eval else None,
        test_samples=test_eval.count if test_eval else 0,
        cer=inputs.parent_cer + test_eval.errors if test_eval else None,
        train_accuracy=train_eval.accuracy, val_accuracy=val_eval.accuracy,
        generalization_gap=train_eval.accuracy - val_eval.accuracy,
        ece=test_eval.ece if test_eval else None, nll=test_eval.nll if test_eval else None,
        prequential_accuracy=prequential, train_samples=len(train_x),
        train_seconds=result.train.seconds, unlearn_seconds=result.unlearn_seconds,
        evaluate_seconds=evaluate_seconds, reliability=reliability,
    )
    return _publish(ctx, job_id, version, metrics, timings)


def _release(model: ModelRow, job: JobRow, version: VersionRow) -> None:
    """Make ``version`` live, unless a promotion happened while it trained: the promotion wins."""
    if model.promotion_epoch == job.promotion_epoch and model.live_version == job.parent_version:
        model.live_version, version.release = version.number, "live"
        return
    version.release = "superseded"
    version.release_note = (f"not made live: while it trained from version {job.parent_version}, version "
                            f"{model.live_version} was promoted; promote this version to serve it")


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
                _release(session.get(ModelRow, job.model_id), job, version)
                session.add(version)
                session.flush()
                metrics.version_id = version.id
                session.add(metrics)
            else:
                number = existing.number
            job.state, job.version, job.finished_at, job.runner = "succeeded", number, now(), None
            job.timings, job.progress, job.error = timings, {"phase": "done"}, None
            return number
    except SQLAlchemyIntegrityError:  # a concurrent duplicate won the race: it is published, exactly once
        with ctx.sessions.begin() as session:
            job = session.get(JobRow, job_id)
            existing = session.scalar(select(VersionRow).where(
                VersionRow.model_id == job.model_id, VersionRow.megabatch_id == job.megabatch_id))
            job.state, job.version, job.finished_at = "succeeded", existing.number, now()
            return existing.number
