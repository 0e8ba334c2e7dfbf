"""LURE's unlearn step: reset the entries the keep-mask drops, leave every kept entry bit-
identical.
"""

from __future__ import annotations

import torch
from torch import nn

from lure_engine.forgetting.base import ForgetContext, fresh_state


class LureForgetting:
    name = "lure"

    def apply(self, model: nn.Module, context: ForgetContext) -> nn.Module:
        if context.mask is None:  # the first mega-batch has no previous mask: nothing to forget
            return model
        fresh = fresh_state(model, context)
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, keep in context.mask.items():
                param = params[name]
                param.copy_(torch.where(keep.to(param.device), param, fresh[name]))
        return model
