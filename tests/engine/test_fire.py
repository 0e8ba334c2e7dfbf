"""FIRE (Han et al., ICLR 2026) tested as its paper states it: each weight is replaced by the
isometry closest to it in Frobenius norm (the polar factor), rescaled by √(d_out/d_in)/(h·w), and
the authors' loop over kernel positions is what the batched code computes."""

import math

import pytest
import torch
from torch import nn

from lure_engine.forgetting import ForgetContext, make_strategy
from lure_engine.forgetting.fire import fire_weight, newton_schulz
from lure_engine.models import build_model


def _polar(matrix: torch.Tensor) -> torch.Tensor:
    u, _, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    return (u @ vh).float()


def _well_conditioned(rows: int, cols: int, seed: int) -> torch.Tensor:
    """A matrix whose singular values lie in [0.5, 2] (a trained layer is no worse than this)."""
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(cols, cols, generator=generator))
    k = min(rows, cols)
    singular = torch.linspace(0.5, 2.0, k)
    return u[:, :k] @ torch.diag(singular) @ v[:, :k].T


@pytest.mark.parametrize("shape", [(64, 16), (16, 64), (32, 32)])
def test_newton_schulz_reaches_the_nearest_isometry_the_polar_factor(shape):
    matrix = _well_conditioned(*shape, seed=sum(shape))
    result = newton_schulz(matrix, iterations=10)
    assert torch.allclose(result, _polar(matrix), atol=1e-4)
    singular = torch.linalg.svdvals(result)
    assert singular.min() > 0.9999 and singular.max() < 1.0001
    # closest in Frobenius norm: no other isometry tried is nearer to the matrix
    distance = torch.linalg.matrix_norm(matrix - result)
    for seed in range(20):
        other = _polar(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)))
        assert distance < torch.linalg.matrix_norm(matrix - other)


def test_a_conv_weight_is_orthogonalised_per_kernel_position_as_the_authors_loop_does():
    weight = torch.randn(8, 4, 3, 3, generator=torch.Generator().manual_seed(1))
    result = fire_weight(weight, iterations=10)
    scale = math.sqrt(8 / 4) / 9
    for i in range(3):
        for j in range(3):  # the authors' loop: ortho[:, :, i, j] = newton_schulz(W[:, :, i, j])
            expected = newton_schulz(weight[:, :, i, j], iterations=10) * scale
            assert torch.allclose(result[:, :, i, j], expected, atol=1e-6)


def test_fire_treats_every_conv_and_linear_weight_and_leaves_biases_and_norms(resnet_spec):
    model = build_model(resnet_spec, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    make_strategy("fire").apply(model, ForgetContext(resnet_spec, seed=0))
    after = model.state_dict()
    weights = {
        f"{name}.weight"
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    }
    assert weights and all(not torch.equal(after[k], before[k]) for k in weights)
    assert all(torch.equal(after[k], before[k]) for k in before if k not in weights)
    head = next(m for m in model.modules() if isinstance(m, nn.Linear))
    rows = head.weight / math.sqrt(head.weight.shape[0] / head.weight.shape[1])
    # the classifier (10 × d, wide): its rows come out orthonormal up to the rescaling
    assert torch.allclose(rows @ rows.T, torch.eye(rows.shape[0]), atol=1e-3)


def test_a_zero_weight_stays_zero_and_the_iterations_are_bounded():
    assert torch.equal(fire_weight(torch.zeros(4, 3), iterations=10), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="iterations"):
        make_strategy("fire", iterations=0)
