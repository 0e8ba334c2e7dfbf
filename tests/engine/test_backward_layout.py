"""Every backward pass on the CPU is fed NCHW memory (see ``lure_engine.data.for_backward``).

``to_tensor`` returns channels_last views; a backward pass through them ran oneDNN's brgemm
channels_last kernels, which crashed SNIP and Fisher scoring on real CIFAR-10 (issue 11).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lure_engine.data import to_tensor
from lure_engine.importance import compute_keep_mask
from lure_engine.models import ModelSpec, build_model
from lure_engine.trainer import TrainConfig, train


def _record_layouts(model: torch.nn.Module) -> list[bool]:
    """Whether each input of the first convolution was NCHW-contiguous, for passes that
    need grads.
    """
    seen: list[bool] = []
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(
        lambda _m, inputs, _o: (
            seen.append(inputs[0].is_contiguous()) if torch.is_grad_enabled() else None
        )
    )
    return seen


@pytest.fixture()
def images():
    rng = np.random.default_rng(0)
    return to_tensor(rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)), torch.from_numpy(
        rng.integers(0, 10, 24)
    )


def test_to_tensor_gives_channels_last_views_which_backward_passes_must_not_see(images):
    x, _ = images
    assert x.shape == (24, 3, 16, 16) and not x.is_contiguous()  # the premise of the tests below


@pytest.mark.parametrize("estimator", ["snip", "fisher"])
def test_importance_backward_passes_run_on_nchw_memory(images, estimator):
    model = build_model(ModelSpec("resnet18", 10, 3, 16, 0.125), seed=0)
    seen = _record_layouts(model)
    compute_keep_mask(model, *images, estimator=estimator, keep_fraction=0.8)
    assert seen and all(seen)


def test_training_without_crop_augmentation_runs_on_nchw_memory(images):
    model = build_model(ModelSpec("resnet18", 10, 3, 16, 0.125), seed=0)
    seen = _record_layouts(model)
    train(model, *images, TrainConfig(epochs=1, batch_size=8, hflip=False, crop_padding=0), seed=0)
    assert seen and all(seen)
