"""HTTP request and response bodies (pydantic v2). Validation errors name the field at fault."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from lure_core.drift import DriftPolicy
from lure_core.recipe import RACES
from lure_engine.configs import IMPORTANCE_TIMINGS, UpdateConfig
from lure_engine.data_gate import DataGatePolicy
from lure_engine.forgetting import RESET_SOURCES, STRATEGIES
from lure_engine.gate import PromotionPolicy
from lure_engine.importance import ESTIMATORS
from lure_engine.importance.scope import SCOPES
from lure_engine.lineage_evidence import DEFAULT_SWITCH_SIGNIFICANCE
from service.api.engine_options import (
    change_fields,
    check_strategy_options,
    creation_fields,
    mutable_options,
)

Strategy = Literal[tuple(STRATEGIES)]  # type: ignore[valid-type]
StrategyOrAuto = Literal[(*STRATEGIES, "auto")]  # type: ignore[valid-type]
Importance = Literal[tuple(ESTIMATORS)]  # type: ignore[valid-type]
Scope = Literal[SCOPES]  # type: ignore[valid-type]
ResetSource = Literal[RESET_SOURCES]  # type: ignore[valid-type]
ImportanceTiming = Literal[IMPORTANCE_TIMINGS]  # type: ignore[valid-type]
Race = Literal[RACES]  # type: ignore[valid-type]
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_POLICY = PromotionPolicy()  # the engine holds every default of the gates
_DATA_GATE = DataGatePolicy()
_UPDATE = UpdateConfig()  # the engine's update and training defaults, the API's too
_TRAIN = _UPDATE.train


class PromotionPolicyIn(BaseModel):
    """When a candidate may replace the live version (``lure_engine/gate.py``, which holds the
    defaults); null: rule off."""

    model_config = ConfigDict(extra="forbid")

    min_accuracy_delta: float | None = Field(
        _POLICY.min_accuracy_delta,
        ge=-1,
        le=1,
        description="candidate − live accuracy on the gate split, at least",
    )
    max_ece_increase: float | None = Field(_POLICY.max_ece_increase, ge=0, le=1)
    max_nll_increase: float | None = Field(
        _POLICY.max_nll_increase,
        ge=0,
        le=100,
        description="mean negative log-likelihood per gate row may rise by at most this (nats)",
    )
    min_class_recall: float | None = Field(_POLICY.min_class_recall, ge=0, le=1)
    max_class_recall_drop: float | None = Field(_POLICY.max_class_recall_drop, ge=0, le=1)
    max_flip_rate: float | None = Field(
        _POLICY.max_flip_rate,
        ge=0,
        le=1,
        description="share of gate samples whose predicted label may change",
    )
    significance: float | None = Field(
        _POLICY.significance,
        gt=0,
        lt=1,
        description="a rule holds a candidate only when its one-sided test says it is broken "
        "beyond noise at this level; null: plain thresholds",
    )
    rank_by: Literal["accuracy", "ece", "worst_class_recall"] = "accuracy"


class DataGateIn(BaseModel):
    """The data gate (``lure_engine/data_gate.py``, which holds the defaults): before training,
    the live model scores the new mega-batch; one far out of line with the recent ones is
    quarantined (``quarantine``), only recorded (``warn``), or not checked (``off``)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["off", "warn", "quarantine"] = _DATA_GATE.mode
    max_accuracy_drop: float = Field(
        _DATA_GATE.max_accuracy_drop,
        gt=0,
        le=1,
        description="how far the live model's accuracy on a new mega-batch may fall below its "
        "accuracy on the recent ones",
    )
    significance: float = Field(_DATA_GATE.significance, gt=0, lt=1)
    max_conflict_rate: float = Field(
        _DATA_GATE.max_conflict_rate,
        ge=0,
        le=1,
        description="share of rows that repeat an image of the stream under another label",
    )
    label_skew_significance: float = Field(_DATA_GATE.label_skew_significance, gt=0, lt=1)


_DRIFT = DriftPolicy()


class DriftIn(BaseModel):
    """Compare the live version's recent logged answers with its gate rows (``lure_core/drift.py``:
    Kolmogorov–Smirnov on the top-1 confidence, chi-square on the predicted classes)."""

    model_config = ConfigDict(extra="forbid")

    window: int = Field(_DRIFT.window, ge=20, le=100_000, description="recent answers compared")
    check_every: int = Field(
        _DRIFT.check_every, ge=1, le=1_000_000, description="logged answers between two checks"
    )
    min_seconds: float = Field(
        _DRIFT.min_seconds, ge=0, le=86_400, description="and at least this long between two"
    )
    p_value: float = Field(
        _DRIFT.p_value, gt=0, lt=1, description="a check drifts below this family-wise level"
    )
    seal: bool = Field(
        _DRIFT.seal,
        description="a drifted check seals the open mega-batch early (once per live version)",
    )


class LogPredictionsIn(BaseModel):
    """Keep a sample of ``/predict`` answers (image, version, top-k, time) so that labels can
    arrive later by prediction id (``/feedback``) and the label queue can say what to label."""

    model_config = ConfigDict(extra="forbid")

    sample_rate: float = Field(1.0, ge=0, le=1, description="share of predicted images logged")
    keep_days: float = Field(30.0, gt=0, le=3650, description="older entries are pruned")
    max_rows: int = Field(
        100_000, ge=1, le=100_000_000, description="the oldest entries beyond it are pruned"
    )
    drift: DriftIn | None = Field(
        default_factory=DriftIn, description="drift checks on the logged answers; none: off"
    )


class TrainUntilIn(BaseModel):
    """Train each update to convergence: until an epoch's running training accuracy reaches
    ``train_accuracy``, at most ``max_epochs`` epochs (the learning-rate milestones count from
    it)."""

    model_config = ConfigDict(extra="forbid")

    train_accuracy: float = Field(0.99, gt=0, le=1)
    max_epochs: int = Field(200, ge=1, le=10_000)


class _Candidates(BaseModel):
    """Fields shared by creation and PATCH: which strategies train and when one goes live."""

    strategy: StrategyOrAuto = Field(
        "lure",
        description=(
            "auto: race every warm-family rule (warm, dash, lure, shrink_perturb, fire) or the "
            "challengers, keeping the better half after each mega-batch (race)"
        ),
    )
    challengers: list[Strategy] = Field(
        default_factory=list,
        max_length=5,
        description="strategies trained beside the primary on every mega-batch",
    )
    retire_after: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="auto: stop training a strategy whose lineage is significantly behind the "
        "live one on the newest evidence of K mega-batches in a row (default 3; without "
        "lineages: after K losses in a row)",
    )
    race: Race | None = Field(
        None,
        description="auto: halving (default) keeps the lineages whose candidates and heads got "
        "the most rows right in the better half after each mega-batch until one is left (cost "
        "bounded: 1.5x one rule's steps over 8 mega-batches with full replay); evidence retires "
        "one only when it is significantly behind the live one retire_after times in a row",
    )
    lineages: bool = Field(
        True,
        description="with several strategies, each continues its own versions; the live pointer "
        "moves to another lineage only when it is ahead on the newest mega-batch's evidence at "
        "switch_significance. false: every candidate starts from the live version and the best "
        "one goes live",
    )
    switch_significance: float = Field(
        DEFAULT_SWITCH_SIGNIFICANCE,
        gt=0,
        lt=1,
        description="with lineages: the one-sided level at which another lineage counts as "
        "ahead of the live one on the newest evidence (retirement keeps the gate's level)",
    )
    promotion: PromotionPolicyIn = Field(default_factory=PromotionPolicyIn)
    data_gate: DataGateIn = Field(default_factory=DataGateIn)
    keep_versions: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="retention: keep the checkpoints of the newest N versions plus the live one; "
        "older versions keep their rows (lineage, metrics) but their files are deleted; "
        "none: keep every checkpoint",
    )
    train_until: TrainUntilIn | None = Field(
        None,
        description="train each update until this training accuracy (max_epochs the cap) "
        "instead of exactly `epochs`; every version records the epochs and steps it took",
    )
    log_predictions: LogPredictionsIn | None = Field(
        None,
        description="log /predict answers for feedback by prediction id and the label queue; "
        "none: nothing is logged",
    )
    shadow: list[int] = Field(
        default_factory=list,
        max_length=3,
        description="versions that also answer every logged request, off the request path and "
        "never returned: their agreement with live and accuracy on feedback (GET .../shadow)",
    )

    @model_validator(mode="after")
    def _candidates_make_sense(self):
        if len(set(self.challengers)) != len(self.challengers):
            raise ValueError("challengers must not repeat a strategy")
        if self.retire_after is not None and self.strategy != "auto":
            raise ValueError("retire_after applies only to strategy 'auto'")
        if self.race is not None and self.strategy != "auto":
            raise ValueError("race applies only to strategy 'auto'")
        if self.strategy == "auto" and len(self.challengers) == 1:
            raise ValueError(
                "strategy 'auto' needs two or more challengers (or none: the defaults)"
            )
        if self.shadow and not self.log_predictions:
            raise ValueError(
                "shadow versions answer logged requests: set log_predictions to use them"
            )
        if len(set(self.shadow)) != len(self.shadow) or any(v < 0 for v in self.shadow):
            raise ValueError("shadow must name distinct version numbers")
        return self


class ModelCreate(_Candidates, creation_fields()):  # type: ignore[misc]
    """A model and its update recipe. The engine's training and unlearning options (epochs, lr,
    lr_milestones, keep_fraction, importance, ...) come from their one declaration, with the
    engine's defaults (the paper's) and bounds (``service/api/engine_options.py``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="lowercase letters, digits, '-' and '_'")
    architecture: str = Field(
        "resnet18",
        max_length=200,
        description="a built-in (resnet18, resnet50, wide_resnet50_2, vgg16_bn, small_cnn, mlp), "
        "torchvision:NAME (any torchvision classification model), timm:NAME (timm extra), or the "
        "name of a lure.architectures entry point",
    )
    width: float = Field(1.0, gt=0, le=8)
    num_classes: int = Field(ge=2, le=10_000)
    image_size: int = Field(32, ge=4, le=512)
    channels: Literal[1, 3] = 3
    replay: Literal["full", "buffer", "none"] = "full"
    buffer_size: int | None = Field(None, ge=1)
    megabatch_size: int = Field(1000, ge=10, le=10_000_000)
    strategy_options: dict[Strategy, dict[str, Any]] = Field(
        default_factory=dict,
        description='per strategy, its rule\'s own settings, e.g. {"dash": {"shrink": 0.3, '
        '"alpha": 0.3}}, {"l2_init": {"weight": 0.01}}, '
        '{"shrink_perturb": {"shrink": 0.4, "noise": 0.001}}; unnamed: the rule\'s defaults',
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)
    resize: Literal["squash", "resize_crop"] = Field(
        "squash", description="squash to size × size, or resize the short side and crop the centre"
    )
    mean: list[float] | None = Field(
        None, description="per channel; default ImageNet's for torchvision/timm, else 0.5"
    )
    std: list[float] | None = Field(None, description="per channel; default ImageNet's, else 0.25")
    class_names: list[str] | None = Field(None, description="one name per class, in label order")
    later_blocks: list[str] | None = Field(
        None, description="modules LLF re-initialises, when not the architecture's default"
    )

    @model_validator(mode="after")
    def _architecture_and_preprocessing(self) -> ModelCreate:
        """Resolve the architecture (close matches on a typo) and fill the pixel statistics.
        A registry name is only read here; the probe at creation checks it exists
        (``service/operations/model_probe.py``), so this imports no registry into the API."""
        from lure_engine.models import ModelSpec, available_models, default_normalization
        from lure_engine.preprocess import default_statistics

        if self.architecture in available_models():
            ModelSpec(
                self.architecture, self.num_classes, self.channels, self.image_size, self.width
            )
        normalization = default_normalization(self.architecture)
        mean, std = default_statistics(normalization, self.channels)
        self.mean, self.std = self.mean or list(mean), self.std or list(std)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} values, one per channel")
        if min(self.std) <= 0:
            raise ValueError("std values must be positive")
        if self.class_names is not None and (
            len(self.class_names) != self.num_classes
            or len(set(self.class_names)) != self.num_classes
        ):
            raise ValueError(f"class_names needs {self.num_classes} distinct names, one per class")
        return self

    @model_validator(mode="after")
    def _strategy_options_fit_their_rules(self) -> ModelCreate:
        """Each rule's options by its declared types and bounds: an unknown option or a value
        out of its range is a 422 naming the strategy, not a failed update later."""
        check_strategy_options(self.strategy_options)
        return self

    @model_validator(mode="after")
    def _milestones_in_order(self) -> ModelCreate:
        milestones = self.lr_milestones
        if any(not 0 < m < 1 for m in milestones) or milestones != sorted(set(milestones)):
            raise ValueError("lr_milestones must be distinct increasing fractions in (0, 1)")
        return self

    @model_validator(mode="after")
    def _buffer_size_with_buffer(self) -> ModelCreate:
        if self.replay == "buffer" and self.buffer_size is None:
            raise ValueError("replay 'buffer' needs buffer_size")
        if self.replay != "buffer" and self.buffer_size is not None:
            raise ValueError("buffer_size is only valid with replay 'buffer'")
        return self


MUTABLE_FIELDS = (
    "strategy",
    "challengers",
    "retire_after",
    "race",
    "lineages",
    "switch_significance",
    "promotion",
    "data_gate",
    "class_names",
    "keep_versions",
    "train_until",
    *mutable_options(),  # the engine's options declared mutable (recalibrate_norm, ...)
    "log_predictions",
    "shadow",
)


class ModelPatch(change_fields()):  # type: ignore[misc]
    """The recipe fields that may change while a model learns; the others are fixed at creation
    because stored data, weight shapes or the stream's splits depend on them."""

    model_config = ConfigDict(extra="allow")

    strategy: StrategyOrAuto | None = None
    challengers: list[Strategy] | None = Field(None, max_length=5)
    retire_after: int | None = Field(None, ge=1, le=1000)
    race: Race | None = None
    lineages: bool | None = None
    switch_significance: float | None = Field(None, gt=0, lt=1)
    promotion: PromotionPolicyIn | None = None
    data_gate: DataGateIn | None = None
    class_names: list[str] | None = None
    keep_versions: int | None = Field(None, ge=1, le=1_000_000)
    train_until: TrainUntilIn | None = None
    log_predictions: LogPredictionsIn | None = None
    shadow: list[int] | None = Field(None, max_length=3)

    @model_validator(mode="after")
    def _only_mutable_fields(self) -> ModelPatch:
        fixed = sorted(self.model_extra or {})
        if fixed:
            raise ValueError(
                f"cannot change {', '.join(fixed)} after creation (only "
                f"{', '.join(MUTABLE_FIELDS)} may change): stored data, weight shapes or the "
                "stream's splits depend on them; create a new model instead"
            )
        return self


class ModelOut(BaseModel):
    name: str
    config: dict
    live_version: int | None
    created_at: datetime
    open_megabatch: dict | None = None
    disk_bytes: int | None = Field(
        None, description="bytes its chunks, checkpoints and exports take in the blob store"
    )


class ChunkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: Literal["train", "test"] = "train"
    images: list[str] = Field(min_length=1, description="base64 PNG or JPEG")
    labels: list[StrictInt] = Field(
        min_length=1, description='integers; 1.0, "1" and true are refused'
    )

    @model_validator(mode="after")
    def _same_length(self) -> ChunkCreate:
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        return self


class MegaBatchOut(BaseModel):
    index: int
    state: str
    n_samples: int
    size: int
    n_train: int | None = None
    n_val: int | None = None
    split_seed: int | None = None
    job_id: int | None = None
    version: int | None = None
    sealed_at: datetime | None = None
    data_gate: dict | None = Field(
        None,
        description="the data gate's verdict on it: passed, warned or quarantined, its reasons "
        "and numbers, and who released or discarded it",
    )


class ChunkOut(BaseModel):
    id: int
    model: str
    split: str
    accepted: int
    megabatch: MegaBatchOut | None = Field(None, description="the mega-batch holding this chunk")
    open_megabatch: MegaBatchOut | None = None
    sealed: list[int] = Field(default_factory=list, description="mega-batches this request sealed")
    jobs: list[int] = Field(default_factory=list, description="update jobs this request queued")
    trained_in_version: int | None = None
    kept: int | None = Field(
        None,
        description="samples still stored, when retention deleted those no kept version can reach",
    )
    replayed: bool = Field(
        False, description="true when an Idempotency-Key matched an earlier chunk"
    )


class JobOut(BaseModel):
    id: int
    model: str
    megabatch: int
    state: str
    attempts: int
    attempts_left: int = Field(description="attempts this job may still make before it is failed")
    failures: list[dict] = Field(
        description="one entry per failed attempt: attempt, at, kind, runner, error"
    )
    runner: str | None = Field(None, description="host:pid of the process running it now")
    parent_version: int | None = Field(
        None, description="the live version the current attempt started from"
    )
    progress: dict
    timings: dict
    error: str | None
    version: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class WorkerOut(BaseModel):
    name: str = Field(description="host:pid of the worker process")
    started_at: datetime
    seen_at: datetime = Field(description="its last heartbeat")


class VersionOut(BaseModel):
    number: int
    model: str
    live: bool
    megabatch: int | None = Field(description="the mega-batch it trained on (none: imported)")
    parent: int | None
    strategy: str
    origin: str = Field(description="update: trained on a mega-batch; import: the team's weights")
    seeds: dict
    sha256: str
    mask_sha256: str | None
    momentum_sha256: str | None = None
    replay_size: int
    release: str = Field(
        description="live: went live when published; superseded: a promotion made during "
        "its training won, so it was published without going live; held: the promotion gate "
        "held it back; not_chosen: a sibling candidate of the same mega-batch ranked higher"
    )
    release_note: str | None = None
    damaged: str | None = Field(
        None, description="why its stored checkpoint failed the sha256 check, if it did"
    )
    pruned: bool = Field(
        False, description="retention deleted its checkpoint; the row and metrics remain"
    )
    gate: dict | None = Field(
        None,
        description="the promotion gate's verdict (passed, held or forced), its reasons, the "
        "numbers compared against the live version, whether it won its mega-batch",
    )
    candidate_seconds: float | None = Field(None, description="what training this candidate took")
    inputs: dict | None = Field(None, description="what an audit needs to rebuild it")
    config: dict | None = Field(
        None,
        description="the resolved update configuration it was trained with (strategy, importance, "
        "training); an audit rebuilds from it, not from the model's current recipe",
    )
    created_at: datetime
    metrics: dict


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    images: list[str] = Field(min_length=1, description="base64 PNG or JPEG")


class Ranked(BaseModel):
    label: int
    class_name: str | None = None
    probability: float


class Prediction(BaseModel):
    label: int
    class_name: str | None = Field(None, description="the label's name, when the model has names")
    probability: float = Field(description="the probability of the predicted label")
    top_k: list[Ranked] = Field(description="the k most probable labels, most probable first")
    probabilities: list[float]
    prediction_id: str = Field(
        description="names this answer in POST /feedback when the model logs predictions "
        "(log_predictions) and this image was sampled"
    )


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[Prediction]
