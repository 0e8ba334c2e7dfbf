"""One LURE update of one mega-batch: unlearn, relearn, then estimate importance for next time.

This is the function the ALMA simulator and the server's worker both call, so a benchmark measures
exactly what production runs (DESIGN.md, "The update, precisely", steps 2, 3 and 5).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from lure_engine.forgetting import ForgetContext, make_strategy, uses_importance_mask
from lure_engine.importance import Mask, compute_keep_mask
from lure_engine.models import ModelSpec
from lure_engine.seeding import derive_seed
from lure_engine.trainer import EpochCallback, ProgressCallback, TrainConfig, TrainResult, train


@dataclass(frozen=True)
class UpdateConfig:
    strategy: str = "lure"
    importance: str = "snip"
    keep_fraction: float = 0.8
    scope: str = "conv_linear_weights"
    reset_source: str = "fresh_model"
    importance_sample_fraction: float = 0.2
    strategy_options: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        make_strategy(self.strategy, **self.strategy_options)  # fails early on a bad name
        if not 0.0 < self.keep_fraction < 1.0:
            raise ValueError(f"keep fraction must lie in (0, 1), got {self.keep_fraction}")
        if not 0.0 < self.importance_sample_fraction <= 1.0:
            raise ValueError("importance sample fraction must lie in (0, 1]")


@dataclass
class UpdateSeeds:
    """The recorded seeds of one update, all derived from a base seed and the mega-batch index."""

    reinit: int
    train: int
    importance: int

    @classmethod
    def derive(cls, base: int, index: int) -> "UpdateSeeds":
        return cls(derive_seed(base, "reinit", index), derive_seed(base, "train", index),
                   derive_seed(base, "importance", index))


@dataclass
class UpdateResult:
    model: nn.Module
    next_mask: Mask | None
    train: TrainResult
    reset_seconds: float
    importance_seconds: float
    importance_sample_size: int

    @property
    def unlearn_seconds(self) -> float:
        """Importance estimation plus reset: the whole price of forgetting for one update."""
        return self.reset_seconds + self.importance_seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_update(
    model: nn.Module,
    spec: ModelSpec,
    previous_mask: Mask | None,
    *,
    has_parent: bool,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    megabatch_x: torch.Tensor,
    megabatch_y: torch.Tensor,
    config: UpdateConfig,
    seeds: UpdateSeeds,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: ProgressCallback | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> UpdateResult:
    """Update ``model`` on one mega-batch.

    ``train_x/y`` is the training set (the mega-batch's train split plus replay); ``megabatch_x/y``
    is the mega-batch's train split alone, from which the importance sample π is drawn. Without a
    parent (the first mega-batch) there is nothing to unlearn.
    """
    device = train_x.device
    strategy = make_strategy(config.strategy, **config.strategy_options)
    started = time.perf_counter()
    if has_parent:
        context = ForgetContext(spec, seeds.reinit, previous_mask, config.reset_source)
        model = strategy.apply(model, context)
    _sync(device)
    reset_seconds = time.perf_counter() - started

    train_result = train(model, train_x, train_y, config.train, seed=seeds.train, val=val, progress=progress,
                         on_epoch_end=on_epoch_end)

    next_mask, sample_size, importance_seconds = None, 0, 0.0
    if uses_importance_mask(config.strategy):
        started = time.perf_counter()
        sample_size = max(1, int(round(config.importance_sample_fraction * len(megabatch_x))))
        rng = np.random.default_rng(seeds.importance)
        pick = torch.from_numpy(np.sort(rng.choice(len(megabatch_x), sample_size, replace=False))).to(device)
        next_mask = compute_keep_mask(
            model, megabatch_x[pick], megabatch_y[pick], estimator=config.importance,
            keep_fraction=config.keep_fraction, scope=config.scope, seed=seeds.importance,
        )
        _sync(device)
        importance_seconds = time.perf_counter() - started
    return UpdateResult(model, next_mask, train_result, reset_seconds, importance_seconds, sample_size)
