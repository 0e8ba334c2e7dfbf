"""DASH, Direction-Aware SHrinking (Shin et al. 2024): before relearning, shrink each weight
group by how little it agrees with the direction the new data pulls it.

One gradient pass over the data the update trains on, in order, in batches the size of the new
mega-batch, keeps an exponential moving average of the negative gradient (``alpha``: the newest
batch's weight, so the new rows count most). Each conv kernel (a filter's h×w slice for one input
channel) and each linear row is then scaled by ``clamp(cos(w, −g), shrink, 1)``: a weight already
pointing where the loss wants it stays, one pointing against it shrinks to ``shrink`` times itself.
A bias is scaled as one vector. Normalisation layers are left alone. As in the authors' code
(baekrok/DASH-Direction-Aware-SHrinking, ``utils/train_utils.py``), the gradient is taken on a copy
in evaluation mode; their defaults are ``shrink`` (λ) = ``alpha`` = 0.3.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from lure_engine.configs import check_options, option
from lure_engine.data import for_backward
from lure_engine.forgetting.base import ForgetContext

_SHRUNK = (nn.Conv2d, nn.Linear)


def negative_gradient_ema(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, alpha: float
) -> dict[nn.Module, dict[str, torch.Tensor]]:
    """Per conv/linear module: the EMA over in-order batches of −∂L/∂weight and −∂L/∂bias."""
    probe = copy.deepcopy(model).eval()
    layers = {
        m: o
        for m, o in zip(probe.modules(), model.modules(), strict=True)
        if isinstance(m, _SHRUNK)
    }
    ema: dict[nn.Module, dict[str, torch.Tensor]] = {
        original: {n: torch.zeros_like(p) for n, p in m.named_parameters(recurse=False)}
        for m, original in layers.items()
    }
    for start in range(0, len(x), batch_size):
        probe.zero_grad(set_to_none=True)
        images = for_backward(x[start : start + batch_size])
        F.cross_entropy(probe(images), y[start : start + batch_size]).backward()
        with torch.no_grad():
            for m, original in layers.items():
                for name, param in m.named_parameters(recurse=False):
                    average = ema[original][name]
                    if param.grad is not None:  # a layer the loss does not reach keeps 0
                        average.mul_(1 - alpha).add_(param.grad, alpha=-alpha)
    return ema


def direction_scale(weight: torch.Tensor, direction: torch.Tensor, shrink: float) -> torch.Tensor:
    """clamp(cos(w, d), shrink, 1) per kernel (conv: over h×w) or per row (linear), shaped to
    multiply ``weight``; a 1-d tensor (a bias) is one group."""
    if weight.dim() == 1:
        cosine = F.cosine_similarity(weight.reshape(1, -1), direction.reshape(1, -1), dim=1)
        return cosine.clamp(shrink, 1.0)
    groups = weight.reshape(weight.shape[0], -1) if weight.dim() == 2 else weight.flatten(2)
    cosine = F.cosine_similarity(groups, direction.reshape(groups.shape), dim=-1)
    return cosine.clamp(shrink, 1.0).reshape(*cosine.shape, *([1] * (weight.dim() - cosine.dim())))


@dataclass
class DirectionAwareShrinking:
    shrink: float = option(
        0.3, ge=0, le=1, recipe=None, bench=None, help="λ: the least a weight group keeps of itself"
    )
    alpha: float = option(
        0.3,
        gt=0,
        le=1,
        recipe=None,
        bench=None,
        help="the EMA weight of each newer batch's gradient",
    )
    name: str = "dash"

    def __post_init__(self) -> None:
        check_options(self)

    def apply(self, model: nn.Module, context: ForgetContext) -> nn.Module:
        if context.train_set is None or not len(context.train_set[0]):
            raise ValueError(
                "dash needs the data the update will train on (ForgetContext.train_set)"
            )
        x, y = context.train_set
        batch = context.new_rows or len(x)
        ema = negative_gradient_ema(model, x, y, batch, self.alpha)
        with torch.no_grad():
            for module, directions in ema.items():
                for name, param in module.named_parameters(recurse=False):
                    param.mul_(direction_scale(param, directions[name], self.shrink))
        return model
