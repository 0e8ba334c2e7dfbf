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
from dataclasses import dataclass, field

import torch
from sqlalchemy import update

from lure_core.candidates import retired_strategies
from lure_core.checkpoints import save_state
from lure_core.drift import Answers
from lure_core.infrastructure import is_infrastructure_fault, ride_out
from lure_core.job_store import (
    Outcome,
    heartbeat,
    now,
    record_failure,
    record_start,
    release_interrupted,
)
from lure_core.job_store import claim as claim_job
from lure_core.records import ChunkRow, JobRow, MegaBatchRow, ModelRow, Release, VersionRow
from lure_core.retention import apply_retention
from lure_core.settings import SharedSettings
from lure_core.update_inputs import (
    UpdateInputs,
    gather_inputs,
    replay_source,
    starting_model,
    train_candidate,
)
from lure_engine.data_gate import json_safe
from lure_engine.devices import choose_device
from lure_engine.gate import (
    GateEvaluation,
    GateSplit,
    PromotionPolicy,
    Verdict,
    evaluate_on_gate,
    judge,
    margin,
    split_gate,
)
from lure_engine.lineage_evidence import Discordance, LineageChoice
from lure_engine.pipeline import MegaBatchUpdate, as_tensors
from lure_engine.trainer import Progress
from lure_engine.update import (
    UpdateConfig,
    trains_alike_without_parent,
    update_config_from_dict,
    update_config_to_dict,
)
from worker.attempts import WorkerContext, runner_name
from worker.data_check import check_data
from worker.learner import load_starting_point
from worker.lineup import Lineup, line_up, offered, pairs, prequential_pairs
from worker.publish import Published, publish

log = logging.getLogger("lure.worker")


class _ProgressWriter:
    """Writes job progress (and the heartbeat) at most once a second: cheap enough for any loop."""

    def __init__(self, ctx: WorkerContext, job_id: int, runner: str) -> None:
        self.ctx, self.job_id, self.runner, self.last = ctx, job_id, runner, 0.0
        self.candidate: dict = {}  # which candidate strategy is training, of how many

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
        progress = {**progress, **self.candidate}
        self.last = time.monotonic()
        try:
            heartbeat(self.ctx.sessions, self.job_id, self.runner, progress)
        except Exception as error:  # the database is away: training goes on, progress waits
            if not is_infrastructure_fault(error):
                raise


def execute_job(ctx: WorkerContext, job_id: int, runner: str | None = None) -> Outcome:
    """Claim, update and publish one job; an exception is recorded as a failed attempt, unless
    it was the database or broker failing (then the attempt is handed back, uncounted)."""
    runner = runner or runner_name()
    claim = ride_out(lambda: claim_job(ctx.jobs, job_id, runner), f"job {job_id}: claiming it")
    if claim is not None:
        return claim
    progress = _ProgressWriter(ctx, job_id, runner)
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


@dataclass
class Candidate:
    """One strategy trained on the mega-batch, judged against the live version (and, in its own
    lineage, against its parent)."""

    strategy: str
    inputs: UpdateInputs  # what it trained from: its own starting point, the shared data
    update: MegaBatchUpdate
    evaluation: GateEvaluation
    verdict: Verdict
    seconds: float
    config: dict  # the resolved update configuration it was trained with (recorded)
    lineage: dict = field(default_factory=dict)  # parent, extends (recorded with lineages)


def _load_inputs(ctx: WorkerContext, job_id: int) -> Lineup:
    """Step 1: the live starting point, the stream's replay memory, the mega-batch, validation
    and test data; the candidate strategies still in the running and where each starts."""
    with ctx.sessions() as session:
        job = session.get(JobRow, job_id)
        model = session.get(ModelRow, job.model_id)
        megabatch = session.get(MegaBatchRow, job.megabatch_id)
        recipe = model.recipe
        start = load_starting_point(ctx, session, model)
        inputs = gather_inputs(
            session,
            ctx.blobs,
            model.id,
            recipe,
            megabatch,
            start,
            replay_source(session, model, megabatch.index, start.version),
        )
        retired = retired_strategies(session, model.id, recipe)
        strategies = tuple(s for s in recipe.candidates if s not in retired)
        lineup = line_up(ctx, session, model, inputs, strategies)
        promotion_epoch = model.promotion_epoch
    with ctx.sessions.begin() as session:  # what this attempt started from: publishing checks it
        parent = start.version.number if start.version else None
        record_start(session, job_id, parent, promotion_epoch)
        _record_lost_chunks(session, job_id, inputs.lost_chunks)
    return lineup


def _record_lost_chunks(session, job_id: int, lost: dict[int, str]) -> None:
    """Mark chunks whose blob this update could not read: ``/readyz`` and the chunk's record say
    so, and the update goes on without their rows."""
    for chunk_id, reason in lost.items():
        marked = session.execute(
            update(ChunkRow)
            .where(ChunkRow.id == chunk_id, ChunkRow.lost_at.is_(None))
            .values(lost_at=now(), lost_reason=reason[:500])
        ).rowcount
        if marked:
            log.error(
                "job %s: chunk %s is lost (%s); training goes on without its rows",
                job_id,
                chunk_id,
                reason,
                extra={"job_id": job_id},
            )


@dataclass
class _GateContext:
    """The gate rows and the live version's scores on them, shared by every candidate; its
    parents' scores, cached by version number (lineages share heads)."""

    gate: GateSplit
    live: GateEvaluation | None
    live_own: float | None
    device: torch.device
    live_version: VersionRow | None = None
    parents: dict[int, GateEvaluation] = field(default_factory=dict)

    def is_live(self, version: VersionRow | None) -> bool:
        live = self.live_version
        return version is None or (live is not None and version.number == live.number)

    def parent(self, inputs: UpdateInputs) -> GateEvaluation | None:
        """The candidate's own parent on the gate rows (the live version's when it is live)."""
        version = inputs.start.version
        if version is None or self.is_live(version):
            return self.live
        if version.number not in self.parents:
            model = starting_model(inputs).to(self.device)
            self.parents[version.number] = evaluate_on_gate(model, self.gate.x, self.gate.y)
        return self.parents[version.number]


def _gate_context(inputs: UpdateInputs, device: torch.device) -> _GateContext:
    recipe = inputs.recipe
    gate = split_gate(
        *as_tensors(inputs.data.val, device, recipe.preprocessing), inputs.data.val_own_rows
    )
    if inputs.start.version is None:
        return _GateContext(gate, None, None, device)
    start = starting_model(inputs).to(device)
    live_own = evaluate_on_gate(start, gate.own_x, gate.own_y).accuracy
    live = evaluate_on_gate(start, gate.x, gate.y)
    return _GateContext(gate, live, live_own, device, inputs.start.version)


def _train_candidates(
    lineup: Lineup, device: torch.device, progress: _ProgressWriter
) -> tuple[list[Candidate], GateEvaluation | None]:
    """Step 2: each candidate from its starting point, on the same data and seeds
    (``lure_core.update_inputs.train_candidate``), judged on the gate split against live."""
    context = _gate_context(lineup.live, device)
    candidates: list[Candidate] = []
    for number, strategy in enumerate(lineup.strategies, start=1):
        progress.candidate = {"candidate": strategy, "candidate_number": number}
        progress.candidate["candidates"] = len(lineup.strategies)
        progress.phase("unlearn")
        candidates.append(_train_one(lineup, strategy, context, candidates, progress))
    return candidates, context.live


def _train_one(
    lineup: Lineup,
    strategy: str,
    context: _GateContext,
    trained: list[Candidate],
    progress: _ProgressWriter,
) -> Candidate:
    """Train (or reuse an identical sibling's weights), then judge against live and parent."""
    started = time.perf_counter()
    inputs = lineup.inputs[strategy]
    recipe, gate = inputs.recipe, context.gate
    config = recipe.update_config_for(strategy)
    sibling = _alike_sibling(inputs, config, trained)
    device = context.device
    update = (
        sibling.update
        if sibling
        else train_candidate(inputs, strategy, device, progress.training, config=config)
    )
    # the same weights as a sibling's score the same: no second pass over the gate rows
    evaluation = sibling.evaluation if sibling else evaluate_on_gate(update.model, gate.x, gate.y)
    verdict = judge(evaluation, context.live, recipe.policy)
    own = (
        sibling.verdict.numbers["own_rows_accuracy"]["candidate"]
        if sibling
        else evaluate_on_gate(update.model, gate.own_x, gate.own_y).accuracy
    )
    verdict.numbers["gate_rows"] = gate.record()
    verdict.numbers["own_rows_accuracy"] = {"candidate": own, "live": context.live_own}
    if sibling:  # not trained again: the same weights as this sibling's
        verdict.numbers["same_weights_as"] = sibling.strategy
    lineage = _lineage_verdict(lineup, inputs, evaluation, verdict, context)
    seconds = time.perf_counter() - started
    config_record = update_config_to_dict(config)
    return Candidate(strategy, inputs, update, evaluation, verdict, seconds, config_record, lineage)


def _lineage_verdict(
    lineup: Lineup,
    inputs: UpdateInputs,
    evaluation: GateEvaluation,
    verdict: Verdict,
    context: _GateContext,
) -> dict:
    """With lineages: does this version extend its lineage, i.e. does it pass the gate against
    its own parent (what this strategy alone would have decided)?"""
    if not lineup.own_lineages:
        return {}
    parent = inputs.start.version
    own = verdict
    if not context.is_live(parent):
        own = judge(evaluation, context.parent(inputs), inputs.recipe.policy)
    record = {"parent": parent.number if parent else None, "extends": own.passed}
    if own is not verdict:
        record["reasons_against_parent"] = own.reasons
    return record


def _alike_sibling(
    inputs: UpdateInputs, config: UpdateConfig, trained: list[Candidate]
) -> Candidate | None:
    """On a model's first mega-batch (no parent) lure, warm, dash … train the same weights: the
    first such sibling's update is published again under this strategy instead of retraining it
    (same sha256; the gate records the tie)."""
    if inputs.start.version is not None or not trains_alike_without_parent(config):
        return None
    for sibling in trained:
        alike = trains_alike_without_parent(update_config_from_dict(sibling.config))
        if alike and sibling.inputs.start.version is None:
            return sibling
    return None


def _winner(
    lineup: Lineup,
    candidates: list[Candidate],
    fresh: dict[str, dict[str, Discordance]],
    policy: PromotionPolicy,
) -> tuple[int, LineageChoice | None]:
    """The candidate offered to go live: the best by the policy's ranking metric (a tie goes to
    the primary strategy), or, with lineages, the live lineage's unless another is ahead."""
    evaluations = {c.strategy: c.evaluation for c in candidates}
    significance = lineup.live.recipe.lineage_switch_significance
    strategy, choice = offered(lineup, evaluations, fresh, policy.rank_by, significance)
    return [c.strategy for c in candidates].index(strategy), choice


def _version_row(
    ctx: WorkerContext, candidate: Candidate, gate: dict, replay_state: dict
) -> VersionRow:
    """Step 3: weights and forget-mask as safetensors (atomic, sha256 recorded); the version's
    record, its gate verdict and what an audit needs to rebuild it."""
    inputs = candidate.inputs
    attempt_prefix = f"mb{inputs.megabatch_index:05d}-{candidate.strategy}-{time.time_ns()}"
    prefix = f"models/{inputs.model_id}/versions/{attempt_prefix}"
    update = candidate.update
    checkpoint_sha = save_state(
        ctx.blobs, f"{prefix}/weights.safetensors", update.model.state_dict()
    )
    mask_key = mask_sha = None
    if update.next_mask is not None:
        mask_key = f"{prefix}/mask.safetensors"
        mask_sha = save_state(
            ctx.blobs, mask_key, {k: v.to(torch.uint8) for k, v in update.next_mask.items()}
        )
    recipe, seeds, parent = inputs.recipe, inputs.seeds, inputs.start.version
    return VersionRow(
        model_id=inputs.model_id,
        parent_number=parent.number if parent else None,
        strategy=candidate.strategy,
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
        replay_state=replay_state,
        gate=gate,
        inputs=inputs.record(),
        config=candidate.config,
        candidate_seconds=candidate.seconds,
        drift_reference=drift_reference(candidate.evaluation),
    )


def drift_reference(evaluation: GateEvaluation) -> dict | None:
    """The version's answers on its gate rows: what its live traffic is compared with."""
    if evaluation.confidence is None or not evaluation.count:
        return None
    return Answers.of(evaluation.confidence.tolist(), evaluation.predictions.tolist()).to_record()


def _gate_record(
    candidate: Candidate,
    best: Candidate,
    live: GateEvaluation | None,
    rank_by: str,
    lineage: dict | None,
) -> dict:
    """``tied``: a sibling that scored exactly what the winner scored (on the first mega-batch
    lure and warm train the same weights): not a loss, so it does not count toward retirement.
    ``lineage`` (with lineages): its parent, whether it extends its lineage, its discordant
    rows against each sibling and the choice of the live lineage."""
    score = candidate.evaluation.score(rank_by)
    record = {
        **candidate.verdict.to_dict(),
        "winner": candidate is best,
        "tied": candidate is not best and score == best.evaluation.score(rank_by),
        "rank_by": rank_by,
        "margin": json_safe(margin(candidate.evaluation, live, rank_by)),
    }
    if lineage is not None:
        record["lineage"] = json_safe({**candidate.lineage, **lineage})
    return record


def _lineage_records(
    candidates: list[Candidate],
    fresh: dict[str, dict[str, Discordance]],
    choice: LineageChoice | None,
) -> dict[str, dict | None]:
    """Per strategy, what its gate record says about lineages (None: lineages off): the
    candidates' discordant gate rows (``pairs``), their parents' on the new mega-batch's rows
    (``prequential_pairs``: the evidence the live lineage is chosen on) and the choice."""
    if choice is None:
        return {c.strategy: None for c in candidates}
    discordant = pairs({c.strategy: c.evaluation for c in candidates})

    def others(table: dict[str, Discordance], this: str) -> dict:
        return {other: d.to_dict() for other, d in table.items() if other != this}

    return {
        c.strategy: {
            "pairs": others(discordant[c.strategy], c.strategy),
            "prequential_pairs": others(fresh.get(c.strategy, {}), c.strategy),
            "choice": choice.to_dict(),
        }
        for c in candidates
    }


def _published(
    ctx: WorkerContext,
    lineup: Lineup,
    candidates: list[Candidate],
    live: GateEvaluation | None,
    fresh: dict[str, dict[str, Discordance]],
) -> tuple[list[Published], int]:
    """Step 3: every candidate saved as a version; which one is offered to go live."""
    policy = lineup.live.recipe.policy
    best, choice = _winner(lineup, candidates, fresh, policy)
    lineages = _lineage_records(candidates, fresh, choice)
    replay_state = lineup.live.replay_after()
    published = [
        Published(
            _version_row(
                ctx,
                c,
                _gate_record(c, candidates[best], live, policy.rank_by, lineages[c.strategy]),
                replay_state,
            ),
            c.update.metrics,
        )
        for c in candidates
    ]
    return published, best


def _run_claimed(ctx: WorkerContext, job_id: int, progress: _ProgressWriter) -> int | None:
    """Load inputs → train every candidate → save artefacts → publish, timing each step."""
    started = time.perf_counter()
    torch.use_deterministic_algorithms(ctx.settings.deterministic)
    lineup = ride_out(lambda: _load_inputs(ctx, job_id), f"job {job_id}: reading its inputs")
    inputs = lineup.live
    load_seconds = time.perf_counter() - started
    device = training_device(ctx.settings)
    progress.phase("data gate")
    if ride_out(lambda: check_data(ctx, job_id, inputs, device), f"job {job_id}: data gate"):
        return None  # quarantined: nothing trained, nothing published
    fresh = prequential_pairs(lineup, device)  # the heads, before anything trains
    candidates, live = _train_candidates(lineup, device, progress)
    progress.candidate = {}
    progress.phase("publish")
    published, best = _published(ctx, lineup, candidates, live, fresh)
    metrics = candidates[best].update.metrics
    timings = {
        "load_seconds": load_seconds,
        "reset_seconds": metrics.reset_seconds,
        "train_seconds": metrics.train_seconds,
        "importance_seconds": metrics.importance_seconds,
        "unlearn_seconds": metrics.unlearn_seconds,
        "evaluate_seconds": metrics.evaluate_seconds,
        "candidate_seconds": {c.strategy: c.seconds for c in candidates},
        "total_seconds": time.perf_counter() - started,
    }
    number = ride_out(
        lambda: publish(ctx, job_id, published, best, timings), f"job {job_id}: publishing"
    )
    try:
        _log_published(ctx, job_id, number, inputs.megabatch_index, published[best])
    except Exception as error:  # the version is published; only its log line is lost
        if not is_infrastructure_fault(error):
            raise
    try:
        apply_retention(ctx.sessions, ctx.blobs, inputs.model_id)
    except Exception:  # the version is published; retention runs again after the next one
        log.exception("retention failed for model %s", inputs.model_id)
    return number


NOT_LIVE = {
    Release.HELD: "held by the promotion gate",
    Release.SUPERSEDED: "not live: a promotion made during its training won",
}


def _log_published(
    ctx: WorkerContext, job_id: int, number: int, megabatch: int, winner: Published
) -> None:
    """One line a person watching the console reads: which version, live or not, how good."""
    with ctx.sessions() as session:
        model = session.get(ModelRow, winner.version.model_id)
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
    status = "live" if live == number else NOT_LIVE.get(winner.version.release, "not live")
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
