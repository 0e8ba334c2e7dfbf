"""SQLAlchemy 2.0 schema. Created and changed only by Alembic migrations (``migrations/``)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, get_args, get_type_hints

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from lure_core.recipe import Recipe
from lure_engine.metrics_record import UpdateMetrics


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    QUARANTINED = "quarantined"  # the data gate stopped its mega-batch: an admin releases it
    DISCARDED = "discarded"  # an admin discarded its quarantined mega-batch


PENDING = (JobState.QUEUED, JobState.RUNNING)  # a job that may still run
FINISHED = (JobState.SUCCEEDED, JobState.FAILED, JobState.QUARANTINED, JobState.DISCARDED)


class MegaBatchState(StrEnum):
    OPEN = "open"
    SEALED = "sealed"
    QUARANTINED = "quarantined"  # out of line with the stream: not trained on, not in replay
    DISCARDED = "discarded"  # quarantined, then discarded by an admin: never trained on


class Origin(StrEnum):
    UPDATE = "update"  # trained by an update job on a mega-batch
    IMPORT = "import"  # a team's own weights, imported as version 0


class Release(StrEnum):
    LIVE = "live"  # went live when published
    SUPERSEDED = "superseded"  # published, but a promotion made during its training won
    HELD = "held"  # the promotion gate held it back: stored and visible, not live
    NOT_CHOSEN = "not_chosen"  # a sibling candidate of the same mega-batch ranked higher


class GateVerdict(StrEnum):
    PASSED = "passed"  # every rule of the model's promotion policy held
    HELD = "held"  # a rule failed; the version's gate record names which, with the numbers
    FORCED = "forced"  # held, then promoted by an admin anyway


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator):
    """A timestamp that is always timezone-aware UTC in Python, on every database.

    SQLite has no time zones and hands back naive values while PostgreSQL hands back aware ones;
    comparing the two raises ``TypeError``. Values are stored as UTC and read back as aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive timestamp {value!r}: pass an aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    """A named, continuously updated classifier and its update recipe."""

    __tablename__ = "models"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    config: Mapped[dict] = mapped_column(JSON)
    live_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # bumped by every manual promotion: an update that started under an older value may publish
    # its version but never make it live (a rollback made during training wins)
    promotion_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    @property
    def recipe(self) -> Recipe:
        return Recipe.from_config(self.config)


class MegaBatchRow(Base):
    """The unit of an update: train chunks in arrival order, split 90/10 with a recorded seed."""

    __tablename__ = "megabatches"
    __table_args__ = (UniqueConstraint("model_id", "index"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)  # 1-based per model
    state: Mapped[str] = mapped_column(String(16), default=MegaBatchState.OPEN)
    n_samples: Mapped[int] = mapped_column(Integer, default=0)
    n_train: Mapped[int | None] = mapped_column(Integer, nullable=True)
    n_val: Mapped[int | None] = mapped_column(Integer, nullable=True)
    split_seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sealed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # the data gate's verdict (lure_engine/data_gate.py) and who released or discarded it
    data_gate: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class ChunkRow(Base):
    """One accepted upload; its samples live in a compressed blob with a recorded sha256."""

    __tablename__ = "chunks"
    __table_args__ = (
        UniqueConstraint("model_id", "idempotency_key", name="uq_chunks_model_idempotency"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    split: Mapped[str] = mapped_column(String(8))  # train | test
    n_samples: Mapped[int] = mapped_column(Integer)
    blob_key: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    megabatch_id: Mapped[int | None] = mapped_column(
        ForeignKey("megabatches.id"), nullable=True, index=True
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # set when retention shrank the blob to the rows a kept state can still reach (the blob then
    # also holds ``rows``, their positions in the chunk); ``n_samples`` stays what was accepted
    kept_samples: Mapped[int | None] = mapped_column(Integer, nullable=True)
    compacted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # set by the update that found the blob missing or altered: its rows are left out of training
    # from then on (lure_update/samples.py); cleared when the file is intact again
    lost_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    lost_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)


class JobRow(Base):
    """An update of one sealed mega-batch. The table is also the outbox the dispatcher drains."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    megabatch_id: Mapped[int] = mapped_column(ForeignKey("megabatches.id"), unique=True)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # attempts made before the last manual retry: the retry budget counts from here
    attempts_base: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # one entry per failed attempt: {"attempt", "at", "kind" (exception|signal|exit|lost), "error"}
    failures: Mapped[list | None] = mapped_column(JSON, default=list, nullable=True)
    runner: Mapped[str | None] = mapped_column(
        String(128), nullable=True
    )  # host:pid of the attempt running it
    parent_version: Mapped[int | None] = mapped_column(
        Integer, nullable=True
    )  # the live version it started from
    promotion_epoch: Mapped[int | None] = mapped_column(
        Integer, nullable=True
    )  # the model's, when it started
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    timings: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class VersionRow(Base):
    """A published checkpoint: the whole learner (weights, forget-mask, replay state) and
    lineage.
    """

    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("model_id", "number"),
        # one version per candidate strategy of a mega-batch: siblings share the mega-batch
        UniqueConstraint("model_id", "megabatch_id", "strategy", name="uq_versions_candidate"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    # the mega-batch it trained on; None for weights imported as version 0
    megabatch_id: Mapped[int | None] = mapped_column(ForeignKey("megabatches.id"), nullable=True)
    origin: Mapped[str] = mapped_column(String(16), default=Origin.UPDATE, server_default="update")
    parent_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    strategy: Mapped[str] = mapped_column(String(32))
    seeds: Mapped[dict] = mapped_column(JSON)
    checkpoint_key: Mapped[str] = mapped_column(String(255))
    checkpoint_sha256: Mapped[str] = mapped_column(String(64))
    mask_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    mask_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # SGD's momentum buffers at the end of its training, kept when its recipe carries momentum
    momentum_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    momentum_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    replay_state: Mapped[dict] = mapped_column(JSON)
    release: Mapped[str] = mapped_column(
        String(16), default=Release.LIVE, server_default="live"
    )  # see Release
    release_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # set when a stored file of this version failed its sha256 check: never served or trained from
    # again
    damaged: Mapped[str | None] = mapped_column(Text, nullable=True)
    damaged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # retention deleted its checkpoint (and mask, exports); the row stays for lineage and metrics
    pruned_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # the promotion gate's record: {"verdict": GateVerdict, "reasons", "numbers", "winner",
    # "margin", "rank_by"}, plus who forced it; None for versions published before gates
    gate: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # what an audit needs to rebuild it: parent, replay_from, mega-batch, digest of the sample
    # references trained on, torch threads (lure_update/inputs.py)
    inputs: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # the resolved update configuration it was trained with (lure_engine.update's UpdateConfig as
    # data): an audit rebuilds from it, never from the model's current (PATCHable) recipe; None
    # for imported weights and versions published before it was recorded
    config: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    candidate_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    # what traffic is compared with while it is live (lure_core/drift.py): its top-1 confidence
    # and predicted class on each gate row, {"confidence": [...], "predicted": [...]}; None for
    # imported weights (no gate rows yet) and versions published before drift checks
    drift_reference: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


_COLUMN_TYPES = {float: Float, int: Integer, list: JSON}


def _metric_columns() -> dict:
    """One typed column per field of the engine's :class:`UpdateMetrics` (None allowed when
    Optional).
    """
    columns = {}
    for name, hint in get_type_hints(UpdateMetrics).items():
        optional = type(None) in get_args(hint)
        python_type = next(t for t in (get_args(hint) or (hint,)) if t is not type(None))
        columns[name] = mapped_column(_COLUMN_TYPES[python_type], nullable=optional)
    return columns


MetricsRow: Any = type(  # built from UpdateMetrics' fields; Any to a type checker
    "MetricsRow",
    (Base,),
    {
        "__doc__": "The anytime metrics of one version: the columns are UpdateMetrics' fields.",
        "__tablename__": "metrics",
        "__module__": __name__,
        "version_id": mapped_column(ForeignKey("versions.id"), primary_key=True),
        **_metric_columns(),
    },
)
METRIC_FIELDS = tuple(name for name in get_type_hints(UpdateMetrics) if name != "reliability")


def metrics_row(version_id: int, metrics: UpdateMetrics) -> Any:
    return MetricsRow(version_id=version_id, **asdict(metrics))


class ExportRow(Base):
    """A version exported in one format: built once, verified against the server's own forward
    pass, stored beside the checkpoint with its sha256, and described by its model card."""

    __tablename__ = "exports"
    __table_args__ = (UniqueConstraint("version_id", "format"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    format: Mapped[str] = mapped_column(String(16))  # safetensors | torchscript | onnx
    blob_key: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    card: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class PredictionRow(Base):
    """One logged ``/predict`` answer (a model's ``log_predictions``): the image as the model saw it
    (a content-addressed blob), who answered, what it said and how sure it was; a label arrives
    later by its id (``/feedback``) and turns it into a training sample."""

    __tablename__ = "predictions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex, the prediction_id
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    version_number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    image_key: Mapped[str] = mapped_column(String(255))
    image_sha256: Mapped[str] = mapped_column(String(64))
    top_k: Mapped[list] = mapped_column(JSON)  # [[label, probability], ...], most probable first
    predicted: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)  # top-1 probability
    margin: Mapped[float] = mapped_column(Float)  # top-1 minus top-2 probability
    entropy: Mapped[float] = mapped_column(Float)  # of the whole distribution, in nats
    label: Mapped[int | None] = mapped_column(Integer, nullable=True)
    labelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    chunk_id: Mapped[int | None] = mapped_column(ForeignKey("chunks.id"), nullable=True)
    # the Idempotency-Key of the chunk its label goes into, set when the label is claimed (before
    # the chunk is stored): an interrupted feedback request is finished by the next one
    feedback_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class ShadowAnswerRow(Base):
    """What a shadow version (a model's ``shadow``) answered on one logged request, computed off
    the request path and never returned: its agreement with the version that answered and its
    accuracy on the labels that arrive by prediction id."""

    __tablename__ = "shadow_answers"
    __table_args__ = (UniqueConstraint("prediction_id", "version_number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.id"), index=True)
    version_number: Mapped[int] = mapped_column(Integer)
    predicted: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)


class DriftCheckRow(Base):
    """One comparison of a live version's recent logged answers with its reference (its gate
    rows): the record behind the dashboard's drift chart, ``/metrics`` and an early seal."""

    __tablename__ = "drift_checks"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    version_number: Mapped[int] = mapped_column(Integer)
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    window_rows: Mapped[int] = mapped_column(Integer)  # recent logged answers compared
    reference_rows: Mapped[int] = mapped_column(Integer)
    confidence_statistic: Mapped[float] = mapped_column(Float)  # Kolmogorov–Smirnov D
    confidence_p_value: Mapped[float] = mapped_column(Float)
    class_p_value: Mapped[float] = mapped_column(Float)  # chi-square on predicted classes
    drifted: Mapped[bool] = mapped_column(Boolean)
    # the open mega-batch this check sealed early (its index), when the policy asked for it
    sealed_megabatch: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ApiKeyRow(Base):
    """An API key: only its sha256 is stored; the prefix finds the row without scanning."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list] = mapped_column(JSON)
    # the models it may touch: names, or prefixes ending in '*'; None: every model
    models: Mapped[list | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class WorkerRow(Base):
    """A worker process's heartbeat: readiness reports when none has been seen for a while."""

    __tablename__ = "workers"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)  # host:pid
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
