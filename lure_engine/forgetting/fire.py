"""FIRE, Frobenius-Isometry REinitialization (Han et al., ICLR 2026): before relearning, replace
each weight matrix by the isometry closest to it in Frobenius norm, then rescale.

The closest semi-orthogonal matrix to W (min ‖W − Q‖_F with QᵀQ = I) is the polar factor U Vᵀ of
W's SVD; like the authors' code (isaac7778/FIRE, ``vision/interventions/fire.py``) it is reached
by ``iterations`` Newton–Schulz steps X ← 1.5 X − 0.5 X XᵀX from W / ‖W‖_F (the transpose when W
is wide). A conv weight is orthogonalised one kernel position at a time (each out×in slice
W[:, :, i, j]); every result is scaled by √(d_out / d_in) / (kernel h·w). Each linear and conv
weight is treated, the classifier included; biases and normalisation layers are left alone. So
the parent's directions survive (stability) while every layer's spectrum is flattened back to an
isometry, as at a fresh orthogonal initialisation (plasticity). Their default is 10 iterations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lure_engine.configs import check_options, option
from lure_engine.forgetting.base import ForgetContext

_ORTHOGONALISED = (nn.Conv2d, nn.Linear)


def newton_schulz(matrices: torch.Tensor, iterations: int) -> torch.Tensor:
    """The polar factor of each (…, m, n) matrix, approximately: the authors' iteration, batched
    over leading dimensions. A zero matrix stays zero (the authors' code would divide by 0)."""
    wide = matrices.shape[-1] > matrices.shape[-2]
    x = matrices.transpose(-2, -1) if wide else matrices
    norm = torch.linalg.matrix_norm(x, keepdim=True)  # Frobenius: every singular value ≤ 1
    x = x / norm.clamp_min(torch.finfo(x.dtype).tiny)
    for _ in range(iterations):
        x = 1.5 * x - 0.5 * x @ (x.transpose(-2, -1) @ x)
    return x.transpose(-2, -1) if wide else x


def fire_weight(weight: torch.Tensor, iterations: int) -> torch.Tensor:
    """FIRE of one linear (out, in) or conv (out, in, h, w) weight."""
    scale = math.sqrt(weight.shape[0] / weight.shape[1])
    if weight.dim() == 2:
        return newton_schulz(weight.float(), iterations) * scale
    slices = weight.float().permute(2, 3, 0, 1)  # (h, w, out, in): one matrix per kernel position
    kernel = weight.shape[2] * weight.shape[3]
    return newton_schulz(slices, iterations).permute(2, 3, 0, 1) * (scale / kernel)


@dataclass
class FrobeniusIsometryReinit:
    iterations: int = option(
        10, ge=1, le=100, recipe=None, bench=None, help="Newton–Schulz steps (the authors' 10)"
    )
    name: str = "fire"

    def __post_init__(self) -> None:
        check_options(self)

    def apply(self, model: nn.Module, context: ForgetContext) -> nn.Module:
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, _ORTHOGONALISED):
                    weight = module.weight
                    weight.copy_(fire_weight(weight, self.iterations).to(weight.dtype))
        return model
