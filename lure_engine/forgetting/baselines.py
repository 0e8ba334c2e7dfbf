"""The two ends of the spectrum: warm start (forget nothing) and cold start (forget everything)."""

from __future__ import annotations

from torch import nn

from lure_engine.forgetting.base import ForgetContext
from lure_engine.models import build_model


class WarmStart:
    """The paper's baseline BL: keep training the previous model as it is."""

    name = "warm"

    def apply(self, model: nn.Module, context: ForgetContext) -> nn.Module:
        return model


class ColdStart:
    """Retrain from scratch: a whole new model drawn from the context's seed."""

    name = "cold"

    def apply(self, model: nn.Module, context: ForgetContext) -> nn.Module:
        device = next(model.parameters()).device
        return build_model(context.spec, seed=context.seed).to(device)
