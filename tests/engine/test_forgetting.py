import math

import pytest
import torch

from lure_engine.forgetting import ForgetContext, fresh_state, make_strategy
from lure_engine.importance import compute_keep_mask
from lure_engine.models import build_model


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_lure_keeps_kept_entries_and_resets_the_rest_to_fresh_values(cnn, cnn_spec, digits_tensors):
    x, y = digits_tensors
    mask = compute_keep_mask(cnn, x[:100], y[:100], keep_fraction=0.7)
    before = _snapshot(cnn)
    context = ForgetContext(cnn_spec, seed=123, mask=mask)
    fresh = build_model(cnn_spec, seed=123).state_dict()
    make_strategy("lure").apply(cnn, context)
    after = cnn.state_dict()
    for name, keep in mask.items():
        assert torch.equal(after[name][keep], before[name][keep]), name
        assert torch.equal(after[name][~keep], fresh[name][~keep]), name
        assert (~keep).any()
    for name in before:
        if name not in mask:  # BatchNorm affine terms, biases, running statistics
            assert torch.equal(after[name], before[name]), name


def test_lure_without_a_mask_changes_nothing(cnn, cnn_spec):
    before = _snapshot(cnn)
    make_strategy("lure").apply(cnn, ForgetContext(cnn_spec, seed=1, mask=None))
    assert all(torch.equal(v, before[k]) for k, v in cnn.state_dict().items())


def test_shrink_perturb_is_exactly_lambda_theta_plus_sigma_fresh(cnn, cnn_spec):
    before = _snapshot(cnn)
    fresh = build_model(cnn_spec, seed=7).state_dict()
    make_strategy("shrink_perturb").apply(cnn, ForgetContext(cnn_spec, seed=7))
    for name, param in cnn.named_parameters():
        assert torch.equal(param.detach(), 0.4 * before[name] + 0.001 * fresh[name]), name


def test_llf_changes_only_the_named_blocks(resnet_spec):
    model = build_model(resnet_spec, seed=0)
    with torch.no_grad():  # make the model differ from any fresh draw everywhere
        for p in model.parameters():
            p.add_(1.0)
    before = _snapshot(model)
    fresh = build_model(resnet_spec, seed=9).state_dict()
    make_strategy("llf").apply(model, ForgetContext(resnet_spec, seed=9))
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith(("layer3.", "layer4.")) for k in changed)
    for key in after:
        if key.startswith(("layer3.", "layer4.")):
            assert torch.equal(after[key], fresh[key]), key


def test_llf_refuses_unknown_blocks(cnn, cnn_spec):
    with pytest.raises(ValueError, match="no block named"):
        make_strategy("llf", blocks=("layer9",)).apply(cnn, ForgetContext(cnn_spec, seed=0))


def test_cold_shares_no_weights_with_the_old_model(cnn, cnn_spec):
    new = make_strategy("cold").apply(cnn, ForgetContext(cnn_spec, seed=5))
    assert new is not cnn
    for (name, old), (_, fresh) in zip(cnn.named_parameters(), new.named_parameters(), strict=True):
        assert old.data_ptr() != fresh.data_ptr()
        if old.dim() >= 2:  # BatchNorm ones/zeros are equal by construction
            assert not torch.isclose(old, fresh).any(), name


def test_warm_changes_nothing(cnn, cnn_spec):
    before = _snapshot(cnn)
    same = make_strategy("warm").apply(cnn, ForgetContext(cnn_spec, seed=5))
    assert same is cnn
    assert all(torch.equal(v, before[k]) for k, v in cnn.state_dict().items())


def test_kaiming_uniform_reset_source_draws_within_the_kaiming_bound(cnn, cnn_spec):
    state = fresh_state(cnn, ForgetContext(cnn_spec, seed=3, reset_source="kaiming_uniform"))
    reference = build_model(cnn_spec, seed=3).state_dict()
    weight = state["block2.0.weight"]
    bound = math.sqrt(6.0 / (6.0 * weight[0].numel()))
    assert weight.abs().max() <= bound
    assert not torch.equal(weight, reference["block2.0.weight"])
    with pytest.raises(ValueError, match="unknown reset source"):
        ForgetContext(cnn_spec, seed=3, reset_source="zeros")


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("forget_everything")
