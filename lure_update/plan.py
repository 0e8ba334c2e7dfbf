"""Step 1 of an update: its plan, read from the database once. From the plan on, an update is
plain data (``lure_update/run.py`` trains it without a database), and an audit rebuilds a
version from the same kind of record (``lure_update/audit.py``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from sqlalchemy import update

from lure_core.job_store import now, record_start
from lure_core.records import ChunkRow, JobRow, MegaBatchRow, ModelRow
from lure_engine.update import UpdateConfig
from lure_update.context import UpdateContext
from lure_update.inputs import UpdateInputs, gather_inputs, replay_source
from lure_update.lineup import Lineup, line_up
from lure_update.selection import retired_strategies
from lure_update.starting_point import load_starting_point

log = logging.getLogger("lure.worker")


@dataclass(frozen=True)
class UpdatePlan:
    """What one attempt trains: per candidate its parent, data, seeds (``lineup.inputs``) and the
    configuration resolved from the recipe once (``configs``, recorded on its version), and the
    device chosen once."""

    job_id: int
    lineup: Lineup
    configs: dict[str, UpdateConfig]
    device: torch.device
    load_seconds: float

    @property
    def inputs(self) -> UpdateInputs:
        """The live lineage's inputs: the data gate and the promotion gate judge on them."""
        return self.lineup.live


def plan_update(ctx: UpdateContext, job_id: int, device: torch.device) -> UpdatePlan:
    """Read the job's inputs and resolve each candidate's configuration."""
    started = time.perf_counter()
    lineup = _line_up(ctx, job_id)
    configs = {s: lineup.inputs[s].recipe.update_config_for(s) for s in lineup.strategies}
    return UpdatePlan(job_id, lineup, configs, device, time.perf_counter() - started)


def _line_up(ctx: UpdateContext, job_id: int) -> Lineup:
    """The live starting point, the stream's replay memory, the mega-batch, validation and test
    data; the candidate strategies still in the running and where each starts."""
    with ctx.sessions() as session:
        job = session.get_one(JobRow, job_id)
        model = session.get_one(ModelRow, job.model_id)
        megabatch = session.get_one(MegaBatchRow, job.megabatch_id)
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
        retired = retired_strategies(session, model, recipe)
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
