"""DASH, l2_init and training to a training-accuracy target (issue 25), each tested as a rule."""

import pytest
import torch
from torch import nn

from lure_engine.forgetting import ForgetContext, make_strategy
from lure_engine.forgetting.dash import direction_scale, negative_gradient_ema
from lure_engine.models import ModelSpec, build_model
from lure_engine.trainer import Anchor, TrainConfig, train
from lure_engine.update import UpdateConfig, UpdateSeeds, run_update


def test_dash_keeps_an_aligned_weight_and_shrinks_an_opposed_one_to_lambda():
    direction = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])
    weight = torch.tensor([[2.0, 4.0, 6.0], [-1.0, -2.0, -3.0], [1.0, 0.0, 0.0]])
    scale = direction_scale(weight, direction, shrink=0.3)
    assert scale.shape == (3, 1)
    assert scale[0].item() == pytest.approx(1.0)  # along −g: kept whole
    assert scale[1].item() == pytest.approx(0.3)  # against −g: λ times itself
    assert scale[2].item() == pytest.approx(0.3)  # orthogonal: cos 0, clamped up to λ


def test_dash_scales_each_conv_kernel_over_its_spatial_extent():
    direction = torch.zeros(2, 2, 3, 3)
    direction[:, :, 1, 1] = 1.0
    weight = direction.clone()
    weight[0, 1] = -direction[0, 1]
    weight[1, 0, 0, 0] = 1.0  # cos = 1/√2 with the direction
    scale = direction_scale(weight, direction, shrink=0.3)
    assert scale.shape == (2, 2, 1, 1)
    assert scale[0, 0].item() == pytest.approx(1.0)
    assert scale[0, 1].item() == pytest.approx(0.3)
    assert scale[1, 0].item() == pytest.approx(2**-0.5)


def test_dash_applies_clamped_cosines_to_a_linear_layer_from_the_ema_of_the_negative_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.randn(12, 4), torch.tensor([0, 1, 2] * 4)
    before = model[1].weight.detach().clone()
    ema = negative_gradient_ema(model, x, y, batch_size=4, alpha=0.3)[model[1]]["weight"]
    # the EMA by hand: three in-order batches, each newer one weighted 0.3
    expected = torch.zeros_like(before)
    for start in (0, 4, 8):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[start : start + 4]), y[start : start + 4]).backward()
        expected = 0.7 * expected - 0.3 * model[1].weight.grad
    assert torch.allclose(ema, expected, atol=1e-7)
    context = ForgetContext(None, seed=0, train_set=(x, y), new_rows=4)  # type: ignore[arg-type]
    make_strategy("dash").apply(model, context)
    cosine = nn.functional.cosine_similarity(before, expected, dim=1).clamp(0.3, 1.0)
    assert torch.allclose(model[1].weight, before * cosine[:, None], atol=1e-7)


def test_dash_leaves_normalisation_layers_alone(resnet_spec):
    model = build_model(resnet_spec, seed=0)
    x, y = torch.randn(16, 3, 16, 16), torch.randint(0, 10, (16,))
    norms = {k: v.clone() for k, v in model.state_dict().items() if "bn" in k}
    convs = {k: v.clone() for k, v in model.state_dict().items() if "conv" in k}
    make_strategy("dash").apply(model, ForgetContext(resnet_spec, 0, train_set=(x, y), new_rows=8))
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in norms.items())
    shrunk = [k for k, v in convs.items() if not torch.equal(after[k], v)]
    assert shrunk and all(after[k].abs().le(convs[k].abs() + 1e-7).all() for k in shrunk)


def _two_updates(digits_tensors, strategy: str, options: dict | None = None):
    x, y = digits_tensors
    spec = ModelSpec("small_cnn", 10, 1, 8, 0.25)
    config = UpdateConfig(
        strategy=strategy,
        strategy_options=options or {},
        train=TrainConfig(epochs=2, hflip=False, crop_padding=1),
    )
    model = build_model(spec, seed=UpdateSeeds.derive(5, 1).init)
    for index, rows in ((1, slice(0, 200)), (2, slice(0, 400))):
        result = run_update(
            model,
            spec,
            None,
            has_parent=index > 1,
            train_set=(x[rows], y[rows]),
            megabatch=(x[rows][-200:], y[rows][-200:]),
            config=config,
            seeds=UpdateSeeds.derive(5, index),
        )
        model = result.model
    return model


def test_l2_init_with_weight_zero_is_warm_bit_for_bit(digits_tensors):
    warm = _two_updates(digits_tensors, "warm")
    l2 = _two_updates(digits_tensors, "l2_init", {"weight": 0.0})
    assert all(
        torch.equal(a, b)
        for a, b in zip(warm.state_dict().values(), l2.state_dict().values(), strict=True)
    )


def test_l2_init_pulls_the_weights_towards_the_models_initial_ones(digits_tensors):
    spec = ModelSpec("small_cnn", 10, 1, 8, 0.25)
    start = build_model(spec, seed=UpdateSeeds.derive(5, 1).init).state_dict()

    def distance(model):
        return sum(float((p.detach() - start[n]).pow(2).sum()) for n, p in model.named_parameters())

    warm = distance(_two_updates(digits_tensors, "warm"))
    pulled = distance(_two_updates(digits_tensors, "l2_init", {"weight": 0.5}))
    assert pulled < 0.5 * warm


def test_the_anchor_adds_two_lambda_theta_minus_theta0_to_every_gradient():
    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))

    def one_step(anchor_weight: float | None, extra_decay: float = 0.0):
        model = nn.Sequential(nn.Linear(4, 3))
        with torch.no_grad():
            model[0].weight.fill_(0.5)
            model[0].bias.fill_(0.1)
        config = TrainConfig(
            epochs=1,
            batch_size=8,
            momentum=0.0,
            weight_decay=extra_decay,
            hflip=False,
            crop_padding=0,
            lr=0.1,
        )
        zeros = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
        anchor = Anchor(zeros, anchor_weight) if anchor_weight is not None else None
        train(model, x, y, config, seed=0, anchor=anchor)
        return model[0].weight.detach()

    # λ‖θ − 0‖² has the gradient 2λθ: exactly SGD's weight decay with 2λ
    assert torch.allclose(one_step(0.05), one_step(None, extra_decay=0.1), atol=1e-7)


def test_training_stops_at_the_first_epoch_reaching_the_accuracy_target(digits_tensors):
    x, y = digits_tensors
    model = build_model(ModelSpec("mlp", 10, 1, 8, 0.5), seed=0)
    config = TrainConfig(epochs=40, lr=0.05, hflip=False, crop_padding=0, until_train_accuracy=0.9)
    epochs_seen: list[int] = []
    result = train(
        model, x[:500], y[:500], config, seed=0, on_epoch_end=lambda e, m: epochs_seen.append(e)
    )
    assert 1 < result.epochs < 40
    assert result.train_accuracy >= 0.9
    assert epochs_seen == list(range(1, result.epochs + 1))
    assert result.steps == result.epochs * 8  # 500 rows in batches of 64
    assert result.samples_seen == 500 * result.epochs


def test_training_without_a_target_runs_every_epoch_and_counts_its_steps(digits_tensors):
    x, y = digits_tensors
    model = build_model(ModelSpec("mlp", 10, 1, 8, 0.25), seed=0)
    config = TrainConfig(epochs=3, hflip=False, crop_padding=0)
    result = train(model, x[:129], y[:129], config, seed=0)
    assert (result.epochs, result.steps) == (3, 6)  # 64 + 64 rows; a last batch of one is skipped


def test_a_target_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="until_train_accuracy"):
        TrainConfig(until_train_accuracy=1.5)
