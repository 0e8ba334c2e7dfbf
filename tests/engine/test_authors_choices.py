"""The paper's public-code choices as engine options (issue 16 §3): each one does what it says."""

import pytest
import torch

from lure_engine.importance import compute_keep_mask, resettable_parameter_names
from lure_engine.models import build_model
from lure_engine.trainer import TrainConfig, train
from lure_engine.update import UpdateConfig, UpdateSeeds, _importance_mask, run_update


def _images(spec, count=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, spec.channels, spec.image_size, spec.image_size, generator=generator)
    return x, torch.randint(0, spec.num_classes, (count,), generator=generator)


def test_all_scored_conv_reset_thresholds_over_everything_but_resets_only_conv_and_fc(resnet_spec):
    model = build_model(resnet_spec, seed=0)
    x, y = _images(resnet_spec)
    mask = compute_keep_mask(model, x, y, keep_fraction=0.8, scope="all_scored_conv_reset")
    names = [name for name, _ in model.named_parameters()]
    assert list(mask) == names  # every parameter was scored
    resettable = set(resettable_parameter_names(model, "all_scored_conv_reset"))
    assert "fc.weight" in resettable and "conv1.weight" in resettable
    assert not any("bn" in n or "downsample" in n or n.endswith("bias") for n in resettable)
    for name in names:
        if name not in resettable:
            assert mask[name].all(), f"{name} is never reset, so its mask keeps it whole"
    dropped = sum(int((~mask[n]).sum()) for n in resettable)
    total = sum(mask[n].numel() for n in names)
    # the global threshold counted BatchNorm and shortcut entries, so fewer than 20 % are dropped
    assert 0 < dropped < 0.2 * total


def test_before_reset_scores_the_parent_on_the_head_of_the_training_set(resnet_spec):
    parent = build_model(resnet_spec, seed=1)
    head, tail = _images(resnet_spec, 100, seed=2), _images(resnet_spec, 60, seed=3)
    train_set = (torch.cat([head[0], tail[0]]), torch.cat([head[1], tail[1]]))
    config = UpdateConfig(
        strategy="lure",
        scope="all_scored_conv_reset",
        reset_source="kaiming_uniform",
        importance_timing="before_reset",
        importance_sample_size=100,
        train=TrainConfig(epochs=1, batch_size=32, hflip=False, crop_padding=0),
    )
    expected = compute_keep_mask(
        build_model(resnet_spec, seed=1), *head, keep_fraction=0.8, scope="all_scored_conv_reset"
    )
    result = run_update(
        parent,
        resnet_spec,
        previous_mask=None,
        has_parent=True,
        train_set=train_set,
        megabatch=tail,
        config=config,
        seeds=UpdateSeeds.derive(0, 2),
        val=tail,
    )
    assert result.next_mask is None  # nothing is scored after training: next time scores anew
    assert not result.initial_mask and result.importance_seconds > 0
    # the mask that drove the reset: the parent scored on the first 100 rows (replay first)
    actual = _importance_mask(build_model(resnet_spec, seed=1), train_set, config, seed=0)
    assert all(torch.equal(actual[n], expected[n]) for n in expected)


def test_unknown_importance_timing_is_refused():
    with pytest.raises(ValueError, match="importance timing"):
        UpdateConfig(importance_timing="during")
    with pytest.raises(ValueError, match="sample size"):
        UpdateConfig(importance_sample_size=-1)


def test_carried_momentum_changes_the_first_step_and_is_returned(digits_tensors, cnn_spec):
    x, y = digits_tensors
    x, y = x[:64], y[:64]
    config = TrainConfig(epochs=1, batch_size=64, hflip=False, crop_padding=0, carry_momentum=True)
    first = build_model(cnn_spec, seed=0)
    result = train(first, x, y, config, seed=0)
    assert result.momentum and set(result.momentum) == {n for n, _ in first.named_parameters()}

    fresh, carried = build_model(cnn_spec, seed=0), build_model(cnn_spec, seed=0)
    train(fresh, x, y, config, seed=0)
    train(carried, x, y, config, seed=0, momentum=result.momentum)
    changed = [
        not torch.equal(a, b) for a, b in zip(fresh.parameters(), carried.parameters(), strict=True)
    ]
    assert all(changed)  # one step with v = 0.9·v_old + g differs from v = g everywhere
    ignored = build_model(cnn_spec, seed=0)
    train(
        ignored,
        x,
        y,
        TrainConfig(epochs=1, batch_size=64, hflip=False, crop_padding=0),
        seed=0,
        momentum=result.momentum,
    )
    assert all(
        torch.equal(a, b) for a, b in zip(fresh.parameters(), ignored.parameters(), strict=True)
    )
