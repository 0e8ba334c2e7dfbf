"""Later-layer forgetting (Zhou et al. 2022): re-initialise whole named blocks, weights and
stats.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lure_engine.forgetting.base import ForgetContext, fresh_state


@dataclass
class LaterLayerForgetting:
    """``blocks`` empty means the architecture's default (ResNet: layer3, layer4)."""

    blocks: tuple[str, ...] = field(default_factory=tuple)
    name: str = "llf"

    def block_names(self, context: ForgetContext) -> tuple[str, ...]:
        return tuple(self.blocks) or context.spec.later_blocks

    def apply(self, model: nn.Module, context: ForgetContext) -> nn.Module:
        blocks = self.block_names(context)
        modules = dict(model.named_modules())
        missing = [b for b in blocks if b not in modules]
        if missing:
            raise ValueError(f"llf: model has no block named {', '.join(missing)}")
        fresh = fresh_state(model, context)
        state = model.state_dict(keep_vars=True)
        with torch.no_grad():
            for name, tensor in state.items():
                if any(name.startswith(block + ".") for block in blocks):
                    tensor.copy_(fresh[name])
        return model
