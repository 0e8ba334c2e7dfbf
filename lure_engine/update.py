"""One LURE update of one mega-batch: unlearn, relearn, then estimate importance for next time.

The core of :func:`lure_engine.pipeline.update_on_megabatch`, which the ALMA simulator and the
server's worker both call (docs/ARCHITECTURE.md walks the whole update step by step).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn

from lure_engine.configs import TrainConfig, UpdateConfig
from lure_engine.forgetting import ForgetContext, make_strategy, uses_importance_mask
from lure_engine.importance import Mask, compute_keep_mask
from lure_engine.models import ModelSpec
from lure_engine.seeding import derive_seed
from lure_engine.trainer import (
    Anchor,
    EpochCallback,
    ProgressCallback,
    TrainResult,
    train,
)


def update_config_to_dict(config: UpdateConfig) -> dict:
    """The configuration as JSON-able data: what a version records, so it can be rebuilt without
    reading anything that may have changed since (a model's recipe can be PATCHed)."""
    return asdict(config)


def update_config_from_dict(data: dict) -> UpdateConfig:
    """The inverse of :func:`update_config_to_dict`. Fields added later take their defaults,
    except where the default changed what training does: a record without ``recalibrate_norm``
    was trained before it existed, so without it."""
    train = {"recalibrate_norm": False, **data.get("train", {})}
    if "milestones" in train:
        train["milestones"] = tuple(train["milestones"])
    known_train = {f.name for f in fields(TrainConfig)}
    known = {f.name for f in fields(UpdateConfig)} - {"train"}
    return UpdateConfig(
        **{k: v for k, v in data.items() if k in known},
        train=TrainConfig(**{k: v for k, v in train.items() if k in known_train}),
    )


@dataclass
class UpdateSeeds:
    """The recorded seeds of one update, all derived from a base seed and the mega-batch index;
    ``init`` is the model's own (its first weights), which l2_init pulls back towards."""

    reinit: int
    train: int
    importance: int
    init: int | None = None

    @classmethod
    def derive(cls, base: int, index: int) -> UpdateSeeds:
        return cls(
            derive_seed(base, "reinit", index),
            derive_seed(base, "train", index),
            derive_seed(base, "importance", index),
            derive_seed(base, "init"),
        )


@dataclass
class UpdateResult:
    model: nn.Module
    next_mask: Mask | None
    train: TrainResult
    reset_seconds: float
    importance_seconds: float
    initial_mask: bool = False  # the parent had no mask: one was computed on this mega-batch first

    @property
    def unlearn_seconds(self) -> float:
        """Importance estimation plus reset: the whole price of forgetting for one update."""
        return self.reset_seconds + self.importance_seconds


Tensors = tuple[torch.Tensor, torch.Tensor]  # images (N, C, H, W) and labels (N,)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _sample_size(config: UpdateConfig, available: int) -> int:
    if config.importance_sample_size > 0:
        return min(config.importance_sample_size, available)
    return max(1, int(round(config.importance_sample_fraction * available)))


def _importance_mask(model: nn.Module, sample: Tensors, config: UpdateConfig, seed: int) -> Mask:
    """Score the model on its importance sample and keep the top k.

    After training the sample is a seeded random π-sample of the mega-batch's train split; before
    the reset it is the head of the training set, as the paper's code reads it (unshuffled).
    """
    x, y = sample
    size = _sample_size(config, len(x))
    if config.importance_timing == "before_reset":
        pick = torch.arange(size, device=x.device)
    else:
        rows = np.sort(np.random.default_rng(seed).choice(len(x), size, replace=False))
        pick = torch.from_numpy(rows).to(x.device)
    return compute_keep_mask(
        model,
        x[pick],
        y[pick],
        estimator=config.importance,
        keep_fraction=config.keep_fraction,
        scope=config.scope,
        seed=seed,
    )


def _unlearn(
    model: nn.Module,
    spec: ModelSpec,
    mask: Mask | None,
    config: UpdateConfig,
    seeds: UpdateSeeds,
    train_set: Tensors,
    megabatch: Tensors,
    has_parent: bool,
) -> tuple[nn.Module, Anchor | None]:
    """The strategy's reset (only with a parent), and the pull towards θ₀ it asks the relearn
    step for (l2_init; on every update, the first included)."""
    strategy = make_strategy(config.strategy, **config.strategy_options)
    context = ForgetContext(
        spec,
        seeds.reinit,
        mask,
        config.reset_source,
        init_seed=seeds.init,
        train_set=train_set,
        new_rows=len(megabatch[0]),
    )
    if has_parent:
        model = strategy.apply(model, context)
    anchor = strategy.anchor(model, context) if hasattr(strategy, "anchor") else None
    return model, anchor


def trains_alike_without_parent(config: UpdateConfig) -> bool:
    """Without a parent no strategy resets anything (``_unlearn``), so every strategy that does
    not pull towards θ₀ trains exactly what warm-starting trains: siblings that do need not train
    twice."""
    strategy = make_strategy(config.strategy, **config.strategy_options)
    return not hasattr(strategy, "anchor")


def run_update(
    model: nn.Module,
    spec: ModelSpec,
    previous_mask: Mask | None,
    *,
    has_parent: bool,
    train_set: Tensors,
    megabatch: Tensors,
    config: UpdateConfig,
    seeds: UpdateSeeds,
    val: Tensors | None = None,
    progress: ProgressCallback | None = None,
    on_epoch_end: EpochCallback | None = None,
    momentum: dict[str, torch.Tensor] | None = None,
) -> UpdateResult:
    """Update ``model`` on one mega-batch.

    ``train_set`` is what is trained on (the mega-batch's train split plus replay); ``megabatch`` is
    the mega-batch's train split alone, from which the importance sample π is drawn. Without a
    parent (the first mega-batch) there is nothing to unlearn. ``momentum``: SGD momentum buffers
    carried from the previous update (``TrainConfig.carry_momentum``).
    """
    device = train_set[0].device
    started = time.perf_counter()
    uses_mask = uses_importance_mask(config.strategy)
    scores_before = config.importance_timing == "before_reset"
    initial_mask = has_parent and uses_mask and previous_mask is None and not scores_before
    importance_seconds = 0.0
    if scores_before and has_parent and uses_mask:
        previous_mask = _importance_mask(model, train_set, config, seeds.importance)
        _sync(device)
        importance_seconds = time.perf_counter() - started
        started = time.perf_counter()
    elif initial_mask:  # a parent no update produced (imported weights): score it on the new data
        previous_mask = _importance_mask(model, megabatch, config, seeds.importance)
    model, anchor = _unlearn(
        model, spec, previous_mask, config, seeds, train_set, megabatch, has_parent
    )
    _sync(device)
    reset_seconds = time.perf_counter() - started
    train_result = train(
        model,
        *train_set,
        config.train,
        seed=seeds.train,
        val=val,
        progress=progress,
        on_epoch_end=on_epoch_end,
        momentum=momentum,
        anchor=anchor,
    )
    next_mask = None
    if (uses_mask or config.always_estimate_mask) and not scores_before:
        started = time.perf_counter()
        next_mask = _importance_mask(model, megabatch, config, seeds.importance)
        _sync(device)
        importance_seconds += time.perf_counter() - started
    return UpdateResult(
        model, next_mask, train_result, reset_seconds, importance_seconds, initial_mask
    )
