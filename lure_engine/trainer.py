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

from lure_engine.augment import augment_batch
from lure_engine.data import for_backward
from lure_engine.seeding import torch_generator


@dataclass(frozen=True)
class TrainConfig:
    """The paper's recipe by default: SGD 0.1, momentum 0.9, wd 1e-4, ×0.1 at 40 % and 80 %."""

    epochs: int = 50
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[float, float] = (0.4, 0.8)
    gamma: float = 0.1
    hflip: bool = True
    crop_padding: int = 4
    keep_best_on_validation: bool = False
    # start from the previous update's SGD momentum buffers (the paper's code keeps one optimiser
    # for the whole stream) instead of zero momentum
    carry_momentum: bool = False
    amp: bool = True  # bf16 autocast, used on CUDA only
    # NHWC layout, CUDA only: on the CPU it was 18 % faster, but torch 2.14.1's channels_last CPU
    # backward kernels corrupt the heap on some CPUs (lure_engine.data.for_backward)
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")


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


@dataclass
class TrainResult:
    seconds: float
    samples_seen: int
    final_loss: float
    best_epoch: int | None = None
    momentum: dict[str, torch.Tensor] | None = None  # the buffers at the end, if carried


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
    loss: float = float("nan")


def _step_batch(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, run: _Run
) -> torch.Tensor:
    """Augment, forward, backward and step on one mini-batch; returns the (undetached) loss."""
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
        loss = F.cross_entropy(model(images), labels)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return loss


def _train_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int, run: _Run) -> None:
    """One pass over (x, y) in a seeded random order, reporting progress as it goes."""
    config = run.config
    model.train()
    steps = (len(x) + config.batch_size - 1) // config.batch_size
    order = torch.randperm(len(x), generator=run.generator).to(x.device)
    for step in range(steps):
        index = order[step * config.batch_size : (step + 1) * config.batch_size]
        if len(index) < 2 and len(x) >= 2:  # BatchNorm cannot train on a batch of one
            continue
        loss = _step_batch(model, x[index], y[index], run)
        if step == steps - 1 or (run.progress is not None and step % run.progress_every == 0):
            run.loss = float(loss.detach())  # reading the loss syncs the device: not on every step
            if run.progress is not None:
                run.progress(Progress(epoch, config.epochs, step + 1, steps, run.loss))


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
) -> TrainResult:
    """Train ``model`` in place on (x, y) (normalised NCHW tensors on the model's device).

    ``progress`` is called every ``progress_every`` steps and on each epoch's last step.
    ``momentum`` (parameter name → buffer) seeds SGD's momentum when ``config.carry_momentum``.
    """
    started = time.perf_counter()
    cuda = x.device.type == "cuda"
    channels_last = cuda and config.channels_last and x.dim() == 4
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    if config.carry_momentum and momentum:
        _load_momentum(model, optimizer, momentum)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, _milestone_steps(config), config.gamma
    )
    run = _Run(config, optimizer, torch_generator(seed), channels_last, progress, progress_every)
    best_accuracy, best_state, best_epoch = -1.0, None, None
    for epoch in range(1, config.epochs + 1):
        _train_epoch(model, x, y, epoch, run)
        scheduler.step()
        if config.keep_best_on_validation and val is not None:
            accuracy = _accuracy(model, *val)
            if accuracy > best_accuracy:
                best_accuracy, best_epoch, best_state = (
                    accuracy,
                    epoch,
                    copy.deepcopy(model.state_dict()),
                )
        if on_epoch_end is not None:
            on_epoch_end(epoch, model)
    if best_state is not None:
        model.load_state_dict(best_state)
    if cuda:
        torch.cuda.synchronize(x.device)
    return TrainResult(
        time.perf_counter() - started,
        len(x) * config.epochs,
        run.loss,
        best_epoch,
        _momentum_buffers(model, optimizer) if config.carry_momentum else None,
    )


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
