"""Later-layer forgetting (Zhou et al. 2022): re-initialise whole named blocks, weights and
stats.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lure_engine.configs import option
from lure_engine.forgetting.base import ForgetContext, fresh_state
from lure_engine.models import ModelSpec
from lure_engine.models.sources import default_later_blocks


def later_blocks_for(model: nn.Module, spec: ModelSpec) -> tuple[str, ...]:
    """The blocks LLF resets in ``model``: configured, the architecture's, or found on the model."""
    blocks = spec.later_blocks or default_later_blocks(model)
    if not blocks:
        raise ValueError(
            f"llf: {spec.architecture} has no default later blocks (no layer3/layer4, features, "
            "stages or blocks); name the modules to reset in the model's later_blocks"
        )
    missing = [b for b in blocks if b not in dict(model.named_modules())]
    if missing:
        raise ValueError(f"llf: {spec.architecture} has no module named {', '.join(missing)}")
    return blocks


@dataclass
class LaterLayerForgetting:
    """``blocks`` empty means the architecture's default (ResNet: layer3, layer4)."""

    blocks: tuple[str, ...] = option(
        default_factory=tuple,
        recipe=None,
        bench=None,
        help="the blocks to re-initialise (none: the architecture's later blocks)",
    )
    name: str = "llf"

    def block_names(self, model: nn.Module, context: ForgetContext) -> tuple[str, ...]:
        """The strategy's own blocks, or the model's configured or default later blocks."""
        return tuple(self.blocks) or later_blocks_for(model, context.spec)

    def apply(self, model: nn.Module, context: ForgetContext) -> nn.Module:
        blocks = self.block_names(model, context)
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
