"""Shrink & Perturb (Ash & Adams 2020): θ ← λθ + σ·θ_fresh on every parameter."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lure_engine.configs import check_options, option
from lure_engine.forgetting.base import ForgetContext, fresh_state


@dataclass
class ShrinkPerturb:
    shrink: float = option(0.4, ge=0, le=1, recipe=None, bench=None, help="λ: θ's share kept")
    noise: float = option(0.001, ge=0, recipe=None, bench=None, help="σ: the fresh draw's share")
    name: str = "shrink_perturb"

    def __post_init__(self) -> None:
        check_options(self)

    def apply(self, model: nn.Module, context: ForgetContext) -> nn.Module:
        fresh = fresh_state(model, context)
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(self.shrink * param + self.noise * fresh[name])
        return model
