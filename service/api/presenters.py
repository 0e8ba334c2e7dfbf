"""Rows → response bodies, in one place so every route shows a record the same way."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.schemas import JobOut, MegaBatchOut, ModelOut, VersionOut
from worker.storage.schema import JobRow, MegaBatchRow, MetricsRow, ModelRow, VersionRow

METRIC_FIELDS = ("test_accuracy", "test_errors", "test_samples", "cer", "train_accuracy", "val_accuracy",
                 "generalization_gap", "ece", "nll", "prequential_accuracy", "train_samples",
                 "train_seconds", "unlearn_seconds", "evaluate_seconds")


def megabatch_out(session: Session, model: ModelRow, row: MegaBatchRow) -> MegaBatchOut:
    job = session.scalar(select(JobRow).where(JobRow.megabatch_id == row.id))
    version = session.scalar(select(VersionRow.number).where(VersionRow.megabatch_id == row.id))
    return MegaBatchOut(index=row.index, state=row.state, n_samples=row.n_samples,
                        size=model.config["megabatch_size"], n_train=row.n_train, n_val=row.n_val,
                        split_seed=row.split_seed, job_id=job.id if job else None, version=version,
                        sealed_at=row.sealed_at)


def model_out(session: Session, model: ModelRow) -> ModelOut:
    open_row = session.scalar(select(MegaBatchRow).where(
        MegaBatchRow.model_id == model.id, MegaBatchRow.state == "open"))
    return ModelOut(name=model.name, config=model.config, live_version=model.live_version,
                    created_at=model.created_at,
                    open_megabatch=megabatch_out(session, model, open_row).model_dump() if open_row else None)


def metrics_dict(row: MetricsRow | None, with_reliability: bool = False) -> dict:
    if row is None:
        return {}
    out = {name: getattr(row, name) for name in METRIC_FIELDS}
    if with_reliability:
        out["reliability"] = row.reliability
    return out


def version_out(session: Session, model: ModelRow, row: VersionRow, with_reliability: bool = False) -> VersionOut:
    metrics = session.get(MetricsRow, row.id)
    index = session.scalar(select(MegaBatchRow.index).where(MegaBatchRow.id == row.megabatch_id))
    return VersionOut(number=row.number, model=model.name, live=model.live_version == row.number,
                      megabatch=index, parent=row.parent_number, strategy=row.strategy, seeds=row.seeds,
                      sha256=row.checkpoint_sha256, mask_sha256=row.mask_sha256,
                      replay_size=len(row.replay_state.get("ids", [])), release=row.release,
                      release_note=row.release_note, damaged=row.damaged, created_at=row.created_at,
                      metrics=metrics_dict(metrics, with_reliability))


def job_out(session: Session, row: JobRow, max_attempts: int) -> JobOut:
    model_name = session.scalar(select(ModelRow.name).where(ModelRow.id == row.model_id))
    index = session.scalar(select(MegaBatchRow.index).where(MegaBatchRow.id == row.megabatch_id))
    left = 0 if row.state in ("succeeded", "failed") else max_attempts - (row.attempts - row.attempts_base)
    return JobOut(id=row.id, model=model_name, megabatch=index, state=row.state, attempts=row.attempts,
                  attempts_left=max(left, 0), failures=row.failures or [], runner=row.runner,
                  parent_version=row.parent_version, progress=row.progress or {}, timings=row.timings or {}, error=row.error, version=row.version,
                  created_at=row.created_at, started_at=row.started_at, finished_at=row.finished_at)
