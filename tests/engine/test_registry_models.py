"""Every strategy on every kind of architecture: torchvision's and timm's registries (issue 13)."""

from __future__ import annotations

import pytest
import torch

from lure_engine.forgetting.llf import later_blocks_for
from lure_engine.models import ModelSpec, build_model, probe_model
from lure_engine.trainer import TrainConfig
from lure_engine.update import UpdateConfig, UpdateSeeds, run_update

ARCHITECTURES = ["torchvision:mobilenet_v3_small", "torchvision:resnet18", "timm:resnet10t"]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("strategy", ["warm", "lure", "shrink_perturb", "llf", "cold"])
def test_every_strategy_updates_a_registry_model(architecture, strategy):
    spec = ModelSpec(architecture, num_classes=4, channels=3, image_size=32)
    model = build_model(spec, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 32, 32, generator=generator)
    y = torch.randint(0, 4, (16,), generator=generator)
    config = UpdateConfig(
        strategy=strategy, train=TrainConfig(epochs=1, batch_size=8, crop_padding=4)
    )
    result = run_update(
        model,
        spec,
        None,
        has_parent=True,
        train_set=(x, y),
        megabatch=(x, y),
        config=config,
        seeds=UpdateSeeds(1, 2, 3),
    )
    after = result.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    if strategy == "lure":  # a parent without a mask gets one from this mega-batch first
        assert result.initial_mask and result.next_mask is not None


@pytest.mark.parametrize(
    "architecture,blocks",
    [
        ("torchvision:resnet18", ("layer3", "layer4")),
        ("torchvision:mobilenet_v3_small", ("features.11", "features.12")),
        ("timm:resnet10t", ("layer3", "layer4")),
        ("resnet18", ("layer3", "layer4")),
    ],
)
def test_llf_finds_the_later_stages_of_registry_models(architecture, blocks):
    spec = ModelSpec(architecture, num_classes=4, width=1.0 if ":" in architecture else 0.125)
    assert later_blocks_for(build_model(spec, seed=0), spec) == blocks


def test_registry_models_are_built_without_weights_and_refuse_what_they_cannot_take():
    with pytest.raises(ValueError, match="fixed width"):
        ModelSpec("torchvision:resnet18", num_classes=4, width=0.5)
    with pytest.raises(ValueError, match="cannot take 3x32x32"):
        probe_model(ModelSpec("torchvision:vit_b_16", num_classes=4))
    a = build_model(ModelSpec("torchvision:resnet18", 4), seed=0).state_dict()
    b = build_model(ModelSpec("torchvision:resnet18", 4), seed=0).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # seeded: a LURE reset can redraw them
