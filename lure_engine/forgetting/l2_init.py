"""L2 Init, regenerative regularisation (Kumar et al. 2023, "Maintaining plasticity via
regenerative regularization"): nothing is reset; instead every update's loss gains
``weight · ‖θ − θ₀‖²`` towards the model's own initial weights θ₀, on every parameter, so weights
the data stop needing drift back to where a fresh network would start.

θ₀ is drawn again from the model's recorded init seed (an imported model's updates are pulled
towards the architecture's fresh initialisation from that seed, not towards the imported weights).
With ``weight`` 0 it trains exactly as warm does. The authors of DASH use λ = 0.01 in their
comparison (``--l2_init_lambda``); that is the default here.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lure_engine.configs import check_options, option
from lure_engine.forgetting.base import ForgetContext, initial_state
from lure_engine.trainer import Anchor


@dataclass
class L2Init:
    weight: float = option(
        0.01, ge=0, recipe=None, bench=None, help="λ: the pull toward the initial weights"
    )
    name: str = "l2_init"

    def __post_init__(self) -> None:
        check_options(self)

    def apply(self, model: nn.Module, context: ForgetContext) -> nn.Module:
        return model  # nothing is forgotten at once; the anchor pulls during relearning

    def anchor(self, model: nn.Module, context: ForgetContext) -> Anchor:
        start = initial_state(model, context)
        names = dict(model.named_parameters())
        return Anchor({name: start[name] for name in names}, self.weight)
