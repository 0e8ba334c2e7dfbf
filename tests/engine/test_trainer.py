from dataclasses import replace

import torch

from lure_engine.augment import random_crop, random_hflip
from lure_engine.metrics import evaluate
from lure_engine.models import ModelSpec, build_model
from lure_engine.trainer import TrainConfig, _milestone_steps, train


def _train_once(digits_tensors, seed):
    x, y = digits_tensors
    model = build_model(ModelSpec("mlp", 10, 1, 8, 0.25), seed=0)
    config = TrainConfig(epochs=3, hflip=False, crop_padding=1)
    train(model, x[:300], y[:300], config, seed=seed)
    return model


def test_training_is_deterministic_for_a_seed(digits_tensors):
    a, b = _train_once(digits_tensors, 1), _train_once(digits_tensors, 1)
    c = _train_once(digits_tensors, 2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=False))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=False))


def test_training_learns_digits(digits, digits_tensors):
    x, y = digits_tensors
    model = build_model(ModelSpec("small_cnn", 10, 1, 8, 0.5), seed=0)
    events = []
    train(
        model,
        x,
        y,
        TrainConfig(epochs=4, hflip=False, crop_padding=1),
        seed=0,
        progress=events.append,
        progress_every=5,
    )
    from lure_engine.data import to_tensor

    accuracy = evaluate(model, to_tensor(digits.test.x), torch.from_numpy(digits.test.y)).accuracy
    assert accuracy > 0.85
    assert [e.epoch for e in events] == sorted(e.epoch for e in events)
    assert {e.epoch for e in events} == {1, 2, 3, 4}
    assert all(e.step == e.steps or (e.step - 1) % 5 == 0 for e in events)


def test_learning_rate_steps_at_40_and_80_percent():
    assert _milestone_steps(TrainConfig(epochs=50)) == [20, 40]
    assert _milestone_steps(TrainConfig(epochs=10)) == [4, 8]


def test_keep_best_on_validation_restores_the_best_epoch(digits_tensors):
    x, y = digits_tensors
    model = build_model(ModelSpec("mlp", 10, 1, 8, 0.25), seed=0)
    # a learning rate this high diverges, so the best epoch is an early one
    config = TrainConfig(
        epochs=6, lr=3.0, hflip=False, crop_padding=0, keep_best_on_validation=True
    )
    result = train(model, x[:400], y[:400], config, seed=0, val=(x[400:600], y[400:600]))
    assert result.best_epoch is not None
    best = evaluate(model, x[400:600], y[400:600]).accuracy
    assert best >= 0.1


def test_crop_is_a_shifted_copy_and_flip_mirrors():
    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    cropped = random_crop(images, 2, torch.Generator().manual_seed(0))
    assert cropped.shape == images.shape
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(cropped[i], w) for w in windows)
    flipped = random_hflip(images, torch.Generator().manual_seed(0))
    for i in range(2):
        assert torch.equal(flipped[i], images[i]) or torch.equal(flipped[i], images[i].flip(2))


def _first_norm_input(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the first BatchNorm layer sees for ``x``, per channel: (N·H·W, C)."""
    seen: list[torch.Tensor] = []
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    handle = norm.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0]))
    with torch.no_grad():
        model.eval()(x)
    handle.remove()
    return seen[0].transpose(0, 1).flatten(1).T


def test_norm_statistics_are_recomputed_with_the_final_weights(digits_tensors):
    x, y = digits_tensors
    x, y = x[:256], y[:256]
    spec = ModelSpec("small_cnn", 10, 1, 8)
    stale, fresh = build_model(spec, seed=0), build_model(spec, seed=0)
    config = TrainConfig(epochs=2, batch_size=64, lr=0.1, hflip=False, crop_padding=0)
    train(stale, x, y, replace(config, recalibrate_norm=False), seed=0)
    train(fresh, x, y, config, seed=0)
    for name, weight in stale.state_dict().items():  # the same weights: only statistics differ
        if "running" not in name and "num_batches" not in name:
            assert torch.equal(weight, fresh.state_dict()[name]), name
    norm = next(m for m in fresh.modules() if isinstance(m, torch.nn.BatchNorm2d))
    inputs = _first_norm_input(fresh, x)  # the final weights' activations on the training rows
    assert torch.allclose(norm.running_mean, inputs.mean(0), atol=1e-5)
    assert torch.allclose(norm.running_var, inputs.var(0), rtol=1e-3, atol=1e-5)
    stale_norm = next(m for m in stale.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not torch.allclose(stale_norm.running_mean, inputs.mean(0), atol=1e-3)


def test_a_model_without_norm_layers_trains_the_same_either_way(digits_tensors):
    x, y = digits_tensors
    spec = ModelSpec("mlp", 10, 1, 8)
    a, b = build_model(spec, seed=0), build_model(spec, seed=0)
    config = TrainConfig(epochs=1, batch_size=64, hflip=False, crop_padding=0)
    train(a, x[:128], y[:128], config, seed=0)
    train(b, x[:128], y[:128], replace(config, recalibrate_norm=False), seed=0)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_a_recorded_configuration_from_before_recalibration_rebuilds_without_it():
    from lure_engine.update import UpdateConfig, update_config_from_dict, update_config_to_dict

    recorded = update_config_to_dict(UpdateConfig())
    assert update_config_from_dict(recorded).train.recalibrate_norm is True
    del recorded["train"]["recalibrate_norm"]  # a version published before the option existed
    assert update_config_from_dict(recorded).train.recalibrate_norm is False
