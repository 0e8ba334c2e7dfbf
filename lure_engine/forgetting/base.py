"""The one interface every forgetting strategy implements, and where reset values come from."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from lure_engine.importance.mask import Mask
from lure_engine.models import ModelSpec, build_model
from lure_engine.seeding import torch_generator

RESET_SOURCES = ("fresh_model", "kaiming_uniform")


@dataclass
class ForgetContext:
    """What a strategy may use: the architecture, the previous keep-mask and a recorded seed."""

    spec: ModelSpec
    seed: int
    mask: Mask | None = None
    reset_source: str = "fresh_model"

    def __post_init__(self) -> None:
        if self.reset_source not in RESET_SOURCES:
            raise ValueError(
                f"unknown reset source {self.reset_source!r}; choose {', '.join(RESET_SOURCES)}"
            )


class ForgettingStrategy(Protocol):
    """Takes the previous model and returns the model to relearn from (possibly the same object)."""

    name: str

    def apply(self, model: nn.Module, context: ForgetContext) -> nn.Module: ...


def fresh_state(model: nn.Module, context: ForgetContext) -> dict[str, torch.Tensor]:
    """Fresh initial values for every parameter and buffer of ``model``.

    ``fresh_model`` (default) draws a whole new model of the same architecture from the context's
    seed, so each layer gets the distribution its own initialiser uses. ``kaiming_uniform`` draws
    weights (≥2-d) from PyTorch's default kaiming-uniform instead; other tensors keep the fresh
    model's values.
    """
    reference = build_model(context.spec, seed=context.seed).state_dict()
    device = next(model.parameters()).device
    state = {name: value.to(device) for name, value in reference.items()}
    if context.reset_source == "kaiming_uniform":
        generator = torch_generator(context.seed)
        for name, value in reference.items():
            if value.dim() >= 2 and value.is_floating_point():
                fan_in = value[0].numel()
                bound = math.sqrt(6.0 / ((1 + 5.0) * fan_in))  # a = sqrt(5), as nn.Linear/Conv do
                draw = torch.rand(value.shape, generator=generator) * 2 * bound - bound
                state[name] = draw.to(device)
    return state
