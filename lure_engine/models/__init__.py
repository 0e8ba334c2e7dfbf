"""Model registry: architectures by name, each buildable at any width, channel count and size.

A :class:`ModelSpec` is everything needed to rebuild a model bit-for-bit from a seed, which is
what the forgetting strategies need to draw fresh initial values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from lure_engine.models.resnet import resnet18, resnet50, wide_resnet50_2
from lure_engine.models.small import mlp, small_cnn
from lure_engine.models.vgg import vgg16_bn

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: its builder and its default later blocks for LLF."""

    builder: Builder
    later_blocks: tuple[str, ...]


ARCHITECTURES: dict[str, Architecture] = {
    "resnet18": Architecture(resnet18, ("layer3", "layer4")),
    "resnet50": Architecture(resnet50, ("layer3", "layer4")),
    "wide_resnet50_2": Architecture(wide_resnet50_2, ("layer3", "layer4")),
    "vgg16_bn": Architecture(vgg16_bn, ("stage5", "classifier")),
    "small_cnn": Architecture(small_cnn, ("block3", "head")),
    "mlp": Architecture(mlp, ("hidden2", "head")),
}


@dataclass(frozen=True)
class ModelSpec:
    """The full recipe of a model: architecture name and its shape parameters."""

    architecture: str
    num_classes: int
    channels: int = 3
    image_size: int = 32
    width: float = 1.0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            known = ", ".join(sorted(ARCHITECTURES))
            raise ValueError(f"unknown model {self.architecture!r}; known models: {known}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")
        if self.channels < 1 or self.image_size < 4:
            raise ValueError("channels must be >= 1 and image_size >= 4")
        if not self.width > 0:
            raise ValueError(f"width must be positive, got {self.width}")

    @property
    def later_blocks(self) -> tuple[str, ...]:
        return ARCHITECTURES[self.architecture].later_blocks


def build_model(spec: ModelSpec, seed: int | None = None) -> nn.Module:
    """Build ``spec``; with a seed, the initial weights are a pure function of it."""
    builder = ARCHITECTURES[spec.architecture].builder
    kwargs = dict(
        num_classes=spec.num_classes,
        channels=spec.channels,
        image_size=spec.image_size,
        width=spec.width,
        **spec.extra,
    )
    if seed is None:
        return builder(**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(**kwargs)


def available_models() -> list[str]:
    return sorted(ARCHITECTURES)
