"""The relearn step: one plain SGD loop over tensors, with a fresh optimiser per mega-batch
(or, with ``carry_momentum``, the previous update's momentum buffers, as the paper's code does).

Data stay as tensors on the training device and are augmented there; the loop reports progress
through a callback and can keep the best weights on a validation set.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import update_bn

from lure_engine.augment import augment_batch
from lure_engine.configs import TrainConfig
from lure_engine.data import for_backward
from lure_engine.seeding import torch_generator


@dataclass(frozen=True)
class Progress:
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float


ProgressCallback = Callable[[Progress], None]
# Called after each epoch with (epoch number from 1, model); benchmarks use it for accuracy curves.
EpochCallback = Callable[[int, nn.Module], None]


@dataclass(frozen=True)
class Anchor:
    """A pull towards fixed weights: the loss gains ``weight · ‖θ − θ₀‖²`` (l2_init, Kumar et al.
    2023), applied as its gradient ``2 · weight · (θ − θ₀)`` after each backward pass."""

    weights: dict[str, torch.Tensor]  # parameter name → θ₀, on the training device
    weight: float


@dataclass
class TrainResult:
    seconds: float
    samples_seen: int
    final_loss: float
    best_epoch: int | None = None
    momentum: dict[str, torch.Tensor] | None = None  # the buffers at the end, if carried
    epochs: int = 0  # epochs actually trained (fewer than the cap when a target was reached)
    steps: int = 0  # optimiser steps taken: the update's compute
    train_accuracy: float | None = None  # running accuracy of the last epoch's mini-batches


def _milestone_steps(config: TrainConfig) -> list[int]:
    return sorted({max(1, int(round(m * config.epochs))) for m in config.milestones})


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    model.eval()
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return correct / max(len(x), 1)


@dataclass
class _Run:
    """What one training run carries from step to step."""

    config: TrainConfig
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    channels_last: bool
    progress: ProgressCallback | None
    progress_every: int
    anchor: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # (parameter, θ₀) pairs
    anchor_weight: float = 0.0
    loss: float = float("nan")
    steps: int = 0


def _pull_to_anchor(run: _Run) -> None:
    """Add the anchor's gradient, 2λ(θ − θ₀), to every anchored parameter."""
    assert run.anchor is not None
    weight = 2.0 * run.anchor_weight
    with torch.no_grad():
        for param, start in run.anchor:
            if param.grad is not None:
                param.grad.add_(param - start, alpha=weight)


def _step_batch(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, run: _Run
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment, forward, backward and step on one mini-batch; returns the (undetached) loss and
    the number of correctly classified images (a tensor: reading it would sync the device)."""
    config, device = run.config, images.device
    images = augment_batch(
        images, run.generator, hflip=config.hflip, crop_padding=config.crop_padding
    )
    if run.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    else:  # without crop augmentation the batch may still be a channels_last view
        images = for_backward(images)
    with torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and config.amp
    ):
        logits = model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if run.anchor is not None:
        _pull_to_anchor(run)
    run.optimizer.step()
    run.steps += 1
    return loss, (logits.detach().argmax(1) == labels).sum()


def _train_epoch(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int, run: _Run
) -> float:
    """One pass over (x, y) in a seeded random order, reporting progress as it goes; returns the
    running accuracy of the epoch's mini-batches (as trained on: augmented, in training mode)."""
    config = run.config
    model.train()
    steps = (len(x) + config.batch_size - 1) // config.batch_size
    order = torch.randperm(len(x), generator=run.generator).to(x.device)
    correct, seen = torch.zeros((), dtype=torch.long, device=x.device), 0
    for step in range(steps):
        index = order[step * config.batch_size : (step + 1) * config.batch_size]
        if len(index) < 2 and len(x) >= 2:  # BatchNorm cannot train on a batch of one
            continue
        loss, hits = _step_batch(model, x[index], y[index], run)
        correct += hits
        seen += len(index)
        if step == steps - 1 or (run.progress is not None and step % run.progress_every == 0):
            run.loss = float(loss.detach())  # reading the loss syncs the device: not on every step
            if run.progress is not None:
                run.progress(Progress(epoch, config.epochs, step + 1, steps, run.loss))
    return int(correct) / max(seen, 1)


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    *,
    seed: int,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: ProgressCallback | None = None,
    progress_every: int = 10,
    on_epoch_end: EpochCallback | None = None,
    momentum: dict[str, torch.Tensor] | None = None,
    anchor: Anchor | None = None,
) -> TrainResult:
    """Train ``model`` in place on (x, y) (normalised NCHW tensors on the model's device).

    ``progress`` is called every ``progress_every`` steps and on each epoch's last step.
    ``momentum`` (parameter name → buffer) seeds SGD's momentum when ``config.carry_momentum``.
    ``anchor``: pull the weights towards θ₀ (l2_init). Stops early once an epoch reaches
    ``config.until_train_accuracy``.
    """
    started = time.perf_counter()
    cuda = x.device.type == "cuda"
    channels_last = cuda and config.channels_last and x.dim() == 4
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer, scheduler = _optimizer(model, config, momentum)
    run = _Run(config, optimizer, torch_generator(seed), channels_last, progress, progress_every)
    if anchor is not None:
        run.anchor = [(p, anchor.weights[name]) for name, p in model.named_parameters()]
        run.anchor_weight = anchor.weight
    epoch, train_accuracy, best = _epochs(model, x, y, run, scheduler, val, on_epoch_end)
    if best.state is not None:
        model.load_state_dict(best.state)
    if config.recalibrate_norm:
        recalibrate_norm(model, x, max(config.batch_size, RECALIBRATION_BATCH))
    if cuda:
        torch.cuda.synchronize(x.device)
    return TrainResult(
        time.perf_counter() - started,
        len(x) * epoch,
        run.loss,
        best.epoch,
        _momentum_buffers(model, optimizer) if config.carry_momentum else None,
        epochs=epoch,
        steps=run.steps,
        train_accuracy=train_accuracy,
    )


# rows per forward pass when BatchNorm statistics are recomputed: each pass normalises with its
# own batch's statistics, so small batches (32 rows of a 1×1 map) give noisy deeper statistics
RECALIBRATION_BATCH = 256


@torch.no_grad()
def recalibrate_norm(model: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """BatchNorm running statistics recomputed with the current weights (a cumulative average
    over ``x`` in batches); a model without BatchNorm is left untouched."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        batches = (x[start : start + batch_size] for start in range(0, len(x), batch_size))
        update_bn(batches, model)


def _optimizer(
    model: nn.Module, config: TrainConfig, momentum: dict[str, torch.Tensor] | None
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.MultiStepLR]:
    """A fresh SGD (with the previous update's momentum when carried) and its step schedule."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    if config.carry_momentum and momentum:
        _load_momentum(model, optimizer, momentum)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, _milestone_steps(config), config.gamma
    )
    return optimizer, scheduler


def _epochs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    run: _Run,
    scheduler: torch.optim.lr_scheduler.MultiStepLR,
    val: tuple[torch.Tensor, torch.Tensor] | None,
    on_epoch_end: EpochCallback | None,
) -> tuple[int, float | None, _BestEpoch]:
    """Up to ``config.epochs`` epochs, fewer once one reaches ``until_train_accuracy``; returns
    the epochs run, the last one's running accuracy and the best validation epoch."""
    config, best = run.config, _BestEpoch()
    epoch, train_accuracy = 0, None
    while epoch < config.epochs:
        epoch += 1
        train_accuracy = _train_epoch(model, x, y, epoch, run)
        scheduler.step()
        if config.keep_best_on_validation and val is not None:
            best.observe(epoch, model, val)
        if on_epoch_end is not None:
            on_epoch_end(epoch, model)
        target = config.until_train_accuracy
        if target is not None and train_accuracy >= target:
            break
    return epoch, train_accuracy, best


@dataclass
class _BestEpoch:
    """The epoch with the best validation accuracy so far, and its weights."""

    accuracy: float = -1.0
    epoch: int | None = None
    state: dict[str, torch.Tensor] | None = None

    def observe(self, epoch: int, model: nn.Module, val: tuple[torch.Tensor, torch.Tensor]) -> None:
        accuracy = _accuracy(model, *val)
        if accuracy > self.accuracy:
            self.accuracy, self.epoch = accuracy, epoch
            self.state = copy.deepcopy(model.state_dict())


def _load_momentum(
    model: nn.Module, optimizer: torch.optim.Optimizer, momentum: dict[str, torch.Tensor]
) -> None:
    """SGD uses a parameter's ``momentum_buffer`` state from its first step when one is present."""
    for name, param in model.named_parameters():
        if name in momentum:
            optimizer.state[param]["momentum_buffer"] = momentum[name].to(param.device).clone()


def _momentum_buffers(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, torch.Tensor]:
    return {
        name: optimizer.state[param]["momentum_buffer"].detach().clone()
        for name, param in model.named_parameters()
        if optimizer.state.get(param, {}).get("momentum_buffer") is not None
    }
