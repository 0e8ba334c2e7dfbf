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
    """What a strategy may use: the architecture, the previous keep-mask, a recorded seed, the
    model's own initial weights' seed (``init_seed``) and the data the update will train on."""

    spec: ModelSpec
    seed: int
    mask: Mask | None = None
    reset_source: str = "fresh_model"
    init_seed: int | None = None  # the seed the model's first weights were drawn from
    # what the relearn step will train on (replay first, then the new rows), and how many of its
    # last rows are the new mega-batch's
    train_set: tuple[torch.Tensor, torch.Tensor] | None = None
    new_rows: int = 0

    def __post_init__(self) -> None:
        if self.reset_source not in RESET_SOURCES:
            raise ValueError(
                f"unknown reset source {self.reset_source!r}; choose {', '.join(RESET_SOURCES)}"
            )


class ForgettingStrategy(Protocol):
    """Takes the previous model and returns the model to relearn from (possibly the same object).

    A strategy that also shapes the relearn step (l2_init) has an ``anchor(model, context)``
    method returning a :class:`lure_engine.trainer.Anchor`; it is asked on every update, the
    first included, while ``apply`` runs only when there is a parent.
    """

    name: str

    def apply(self, model: nn.Module, context: ForgetContext) -> nn.Module: ...


def initial_state(model: nn.Module, context: ForgetContext) -> dict[str, torch.Tensor]:
    """The model's own first weights θ₀ (drawn again from ``context.init_seed``), on its device."""
    if context.init_seed is None:
        raise ValueError("this strategy needs the model's init seed (ForgetContext.init_seed)")
    device = next(model.parameters()).device
    reference = build_model(context.spec, seed=context.init_seed).state_dict()
    return {name: value.to(device) for name, value in reference.items()}


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
