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
from sqlalchemy import select, update

from lure_core.checkpoints import save_state
from lure_core.recipe import Recipe
from lure_core.records import JobRow, MegaBatchRow, MetricsRow, ModelRow, VersionRow
from lure_core.samples import SampleReader, sample_ids
from lure_core.settings import SharedSettings
from lure_engine.models import build_model
from lure_engine.pipeline import MegaBatchData, MegaBatchUpdate, update_on_megabatch
from lure_engine.replay import Replay, make_replay
from lure_engine.trainer import Progress
from lure_engine.update import UpdateSeeds
from worker.attempts import Outcome, WorkerContext, now, record_failure, runner_name
from worker.attempts import claim as claim_job
from worker.learner import Learner, load_learner
from worker.publish import publish

log = logging.getLogger("lure.worker")


class _ProgressWriter:
    """Writes job progress (and the heartbeat) at most once a second: cheap enough for any loop."""

    def __init__(self, ctx: WorkerContext, job_id: int, runner: str) -> None:
        self.ctx, self.job_id, self.runner, self.last = ctx, job_id, runner, 0.0

    def phase(self, name: str, **extra) -> None:
        self._write({"phase": name, **extra})

    def training(self, p: Progress) -> None:
        if time.monotonic() - self.last >= 1.0 or (p.epoch == p.epochs and p.step == p.steps):
            self._write(
                {
                    "phase": "relearn",
                    "epoch": p.epoch,
                    "epochs": p.epochs,
                    "step": p.step,
                    "steps": p.steps,
                    "loss": round(p.loss, 5),
                }
            )

    def _write(self, progress: dict) -> None:
        self.last = time.monotonic()
        with self.ctx.sessions.begin() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.id == self.job_id, JobRow.runner == self.runner)
                .values(progress=progress, heartbeat_at=now())
            )  # a taken-over attempt writes nothing


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
    log.info(
        "job %s published version %s", job_id, number, extra={"job_id": job_id, "version": number}
    )
    return Outcome.PUBLISHED


def training_device(settings: SharedSettings) -> torch.device:
    """Chosen once per update: CUDA when present (``auto``), or what ``LURE_DEVICE`` names."""
    if settings.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(settings.device)


@dataclass
class UpdateInputs:
    """Everything one update reads from the records and blobs, gathered in one short session."""

    model_id: int
    recipe: Recipe
    megabatch_index: int
    attempt: int
    learner: Learner
    replay: Replay  # the parent's replay memory, before this mega-batch joins it
    parent_cer: int
    data: MegaBatchData
    train_rows: np.ndarray  # the mega-batch's train rows (they join the replay memory)


def _load_inputs(ctx: WorkerContext, job_id: int) -> UpdateInputs:
    """Step 1: the parent learner, the mega-batch, replay, validation and test data."""
    with ctx.sessions() as session:
        job = session.get(JobRow, job_id)
        model = session.get(ModelRow, job.model_id)
        megabatch = session.get(MegaBatchRow, job.megabatch_id)
        recipe = model.recipe
        learner = load_learner(ctx, session, model)
        replay = make_replay(recipe.replay_spec, seed=recipe.replay_seed)
        parent_cer = 0
        if learner.parent is not None:
            replay.load_state_dict(learner.parent.replay_state)
            parent_cer = (
                session.scalar(
                    select(MetricsRow.cer).where(MetricsRow.version_id == learner.parent.id)
                )
                or 0
            )
        reader = SampleReader(session, ctx.blobs, model.id)
        inputs = UpdateInputs(
            model.id,
            recipe,
            megabatch.index,
            job.attempts,
            learner,
            replay,
            parent_cer,
            reader.update_data(megabatch, replay.ids()),
            reader.split(megabatch)[0],
        )
        promotion_epoch = model.promotion_epoch
    with ctx.sessions.begin() as session:  # what this attempt started from: publishing checks it
        session.execute(
            update(JobRow)
            .where(JobRow.id == job_id)
            .values(
                parent_version=learner.parent.number if learner.parent else None,
                promotion_epoch=promotion_epoch,
            )
        )
    return inputs


def _update(
    inputs: UpdateInputs, device: torch.device, progress: _ProgressWriter
) -> MegaBatchUpdate:
    """Step 2: unlearn, relearn, estimate importance and evaluate (the engine's pipeline)."""
    recipe, learner = inputs.recipe, inputs.learner
    model = build_model(recipe.model_spec, seed=recipe.init_seed)
    if learner.state is not None:
        model.load_state_dict(learner.state)
    mask = {k: v.to(device) for k, v in learner.mask.items()} if learner.mask is not None else None
    progress.phase("unlearn")
    return update_on_megabatch(
        model.to(device),
        recipe.model_spec,
        mask,
        inputs.data,
        has_parent=learner.parent is not None,
        parent_cer=inputs.parent_cer,
        config=recipe.update_config,
        seeds=UpdateSeeds.derive(recipe.seed, inputs.megabatch_index),
        device=device,
        preprocessing=recipe.preprocessing,
        progress=progress.training,
    )


def _save_artefacts(
    ctx: WorkerContext, inputs: UpdateInputs, update: MegaBatchUpdate
) -> VersionRow:
    """Step 3: weights and forget-mask as safetensors (atomic, sha256 recorded); the version's
    record.
    """
    prefix = f"models/{inputs.model_id}/versions/mb{inputs.megabatch_index:05d}-a{inputs.attempt}"
    checkpoint_sha = save_state(
        ctx.blobs, f"{prefix}/weights.safetensors", update.model.state_dict()
    )
    mask_key = mask_sha = None
    if update.next_mask is not None:
        mask_key = f"{prefix}/mask.safetensors"
        mask_sha = save_state(
            ctx.blobs, mask_key, {k: v.to(torch.uint8) for k, v in update.next_mask.items()}
        )
    recipe, seeds = inputs.recipe, UpdateSeeds.derive(inputs.recipe.seed, inputs.megabatch_index)
    replay = inputs.replay
    replay.observe(sample_ids(inputs.megabatch_index, inputs.train_rows), inputs.data.train_split.y)
    parent = inputs.learner.parent
    return VersionRow(
        model_id=inputs.model_id,
        parent_number=parent.number if parent else None,
        strategy=recipe.strategy,
        seeds={
            "model_seed": recipe.seed,
            "init": recipe.init_seed,
            "split": recipe.split_seed(inputs.megabatch_index),
            "reinit": seeds.reinit,
            "train": seeds.train,
            "importance": seeds.importance,
            **(
                {"initial_mask": "computed on this mega-batch: the parent had none"}
                if update.result.initial_mask
                else {}
            ),
        },
        checkpoint_key=f"{prefix}/weights.safetensors",
        checkpoint_sha256=checkpoint_sha,
        mask_key=mask_key,
        mask_sha256=mask_sha,
        replay_state=replay.state_dict(),
    )


def _run_claimed(ctx: WorkerContext, job_id: int, progress: _ProgressWriter) -> int:
    """Load inputs → update → save artefacts → publish, timing each step."""
    started = time.perf_counter()
    inputs = _load_inputs(ctx, job_id)
    load_seconds = time.perf_counter() - started
    update = _update(inputs, training_device(ctx.settings), progress)
    progress.phase("publish")
    version = _save_artefacts(ctx, inputs, update)
    metrics = update.metrics
    timings = {
        "load_seconds": load_seconds,
        "reset_seconds": metrics.reset_seconds,
        "train_seconds": metrics.train_seconds,
        "importance_seconds": metrics.importance_seconds,
        "unlearn_seconds": metrics.unlearn_seconds,
        "evaluate_seconds": metrics.evaluate_seconds,
        "total_seconds": time.perf_counter() - started,
    }
    return publish(ctx, job_id, version, metrics, timings)
