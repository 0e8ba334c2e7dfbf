"""An update's progress, as its job record shows it: the phase, the candidate training and its
epoch and step, written with the job's heartbeat at most once a second."""

from __future__ import annotations

import time

from lure_core.infrastructure import is_infrastructure_fault
from lure_core.job_store import heartbeat
from lure_engine.trainer import Progress
from lure_update.context import UpdateContext


class ProgressWriter:
    """Writes job progress (and the heartbeat) at most once a second: cheap enough for any loop."""

    def __init__(self, ctx: UpdateContext, job_id: int, runner: str) -> None:
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
            heartbeat(self.ctx.jobs, self.job_id, self.runner, progress)
        except Exception as error:  # the database is away: training goes on, progress waits
            if not is_infrastructure_fault(error):
                raise
