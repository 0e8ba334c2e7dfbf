"""Shrink & Perturb (Ash & Adams 2020): θ ← λθ + σ·θ_fresh on every parameter."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lure_engine.forgetting.base import ForgetContext, fresh_state


@dataclass
class ShrinkPerturb:
    shrink: float = 0.4
    noise: float = 0.001
    name: str = "shrink_perturb"

    def __post_init__(self) -> None:
        if not 0.0 <= self.shrink <= 1.0 or self.noise < 0:
            raise ValueError("shrink_perturb needs 0 <= shrink <= 1 and noise >= 0")

    def apply(self, model: nn.Module, context: ForgetContext) -> nn.Module:
        fresh = fresh_state(model, context)
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(self.shrink * param + self.noise * fresh[name])
        return model
