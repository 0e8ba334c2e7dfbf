"""One update job, claim to publish: the function an update process runs (``worker/isolation.py``).

An update is plan → run → publish: ``lure_update/plan.py:plan_update`` reads it from the
database, ``lure_update/run.py:run_plan`` trains and judges the candidates without one,
``lure_update/version_records.py:version_rows`` stores their checkpoints and rows, and
``lure_update/publish.py:publish`` writes them, the live pointer and the job's end in one
transaction.

Order and idempotency are enforced against the database, so they hold whichever worker runs the
job and however often the broker delivers it: a job runs only after every earlier mega-batch of
its model is done, only one worker can claim it (a compare-and-set in ``lure_core/job_store.py``),
and the version row is unique per mega-batch.
"""

from __future__ import annotations

import logging
import time
import traceback

import torch

from lure_core.infrastructure import is_infrastructure_fault, ride_out
from lure_core.job_store import Outcome, record_failure, release_interrupted
from lure_core.job_store import claim as claim_job
from lure_core.records import ModelRow, Release
from lure_core.settings import SharedSettings
from lure_engine.devices import choose_device
from lure_update.context import UpdateContext, runner_name
from lure_update.data_check import check_data
from lure_update.plan import plan_update
from lure_update.progress import ProgressWriter
from lure_update.publish import Published, publish
from lure_update.retention import apply_retention
from lure_update.run import AttemptResult, run_plan
from lure_update.version_records import version_rows

__all__ = ["Outcome", "UpdateContext", "execute_job", "training_device"]

log = logging.getLogger("lure.worker")


def execute_job(ctx: UpdateContext, job_id: int, runner: str | None = None) -> Outcome:
    """Claim, update and publish one job; an exception is recorded as a failed attempt, unless
    it was the database or broker failing (then the attempt is handed back, uncounted)."""
    runner = runner or runner_name()
    claim = ride_out(lambda: claim_job(ctx.jobs, job_id, runner), f"job {job_id}: claiming it")
    if claim is not None:
        return claim
    progress = ProgressWriter(ctx, job_id, runner)
    try:
        if _run_claimed(ctx, job_id, progress) is None:
            return Outcome.QUARANTINED
    except Exception as error:
        if is_infrastructure_fault(error):
            reason = f"an unreachable database, broker or blob store ({type(error).__name__})"
            return ride_out(
                lambda: release_interrupted(ctx.jobs, job_id, runner, reason, kind="unreachable"),
                f"job {job_id}: handing the attempt back",
            )
        failure = traceback.format_exc()
        return ride_out(
            lambda: record_failure(ctx.jobs, job_id, runner, "exception", failure),
            f"job {job_id}: recording its failed attempt",
        )
    return Outcome.PUBLISHED


def training_device(settings: SharedSettings) -> torch.device:
    """Chosen once per update: CUDA when present (``auto``), or what ``LURE_DEVICE`` names."""
    return choose_device(settings.device)


def _run_claimed(ctx: UpdateContext, job_id: int, progress: ProgressWriter) -> int | None:
    """Plan → data gate → run → store the versions → publish, timing each step."""
    started = time.perf_counter()
    torch.use_deterministic_algorithms(ctx.settings.deterministic)
    device = training_device(ctx.settings)
    plan = ride_out(lambda: plan_update(ctx, job_id, device), f"job {job_id}: reading its inputs")
    inputs = plan.inputs
    progress.phase("data gate")
    if ride_out(lambda: check_data(ctx, job_id, inputs, device), f"job {job_id}: data gate"):
        return None  # quarantined: nothing trained, nothing published
    result = run_plan(plan, progress)
    progress.phase("publish")
    published = version_rows(ctx.blobs, result)
    timings = _timings(result, started)
    number = ride_out(
        lambda: publish(ctx, job_id, published, result.best, timings), f"job {job_id}: publishing"
    )
    try:
        _log_published(ctx, job_id, number, inputs.megabatch_index, published[result.best])
    except Exception as error:  # the version is published; only its log line is lost
        if not is_infrastructure_fault(error):
            raise
    try:
        apply_retention(ctx.sessions, ctx.blobs, inputs.model_id)
    except Exception:  # the version is published; retention runs again after the next one
        log.exception("retention failed for model %s", inputs.model_id)
    return number


def _timings(result: AttemptResult, started: float) -> dict:
    """Where the attempt's time went: the winner's steps, each candidate, the whole."""
    metrics = result.winner.update.metrics
    return {
        "load_seconds": result.plan.load_seconds,
        "reset_seconds": metrics.reset_seconds,
        "train_seconds": metrics.train_seconds,
        "importance_seconds": metrics.importance_seconds,
        "unlearn_seconds": metrics.unlearn_seconds,
        "evaluate_seconds": metrics.evaluate_seconds,
        "candidate_seconds": {c.strategy: c.seconds for c in result.candidates},
        "total_seconds": time.perf_counter() - started,
    }


NOT_LIVE = {
    Release.HELD: "held by the promotion gate",
    Release.SUPERSEDED: "not live: a promotion made during its training won",
}


def _log_published(
    ctx: UpdateContext, job_id: int, number: int, megabatch: int, winner: Published
) -> None:
    """One line a person watching the console reads: which version, live or not, how good."""
    with ctx.sessions() as session:
        model = session.get_one(ModelRow, winner.version.model_id)
        name, live = model.name, model.live_version
    m = winner.metrics
    quality = (
        f"test accuracy {m.test_accuracy:.3f}, CER {m.cer}"
        + ("" if m.ece is None else f", ECE {m.ece:.3f}")
        if m.test_accuracy is not None
        else f"validation accuracy {m.val_accuracy:.3f} (no test data posted)"
        if m.val_accuracy is not None
        else "no held-out data to measure it on"
    )
    release = Release(winner.version.release)
    status = "live" if live == number else NOT_LIVE.get(release, "not live")
    if winner.version.release == Release.HELD:
        reasons = "; ".join((winner.version.gate or {}).get("reasons", [])) or "see its record"
        status = (
            f"held by the promotion gate: {reasons} "
            f"(lure versions --model {name} --version {number})"
        )
    log.info(
        "%s version %s published from mega-batch %s by %s: %s; %s",
        name,
        number,
        megabatch,
        winner.version.strategy,
        status,
        quality,
        extra={"job_id": job_id, "version": number, "model": name},
    )
