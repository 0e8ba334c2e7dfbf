import numpy as np
import pytest
import torch
from torch.nn import functional as F

from lure_engine.importance import compute_keep_mask, keep_count, scored_parameter_names, top_k_mask
from lure_engine.models import ModelSpec, build_model


def _independent_snip_scores(model, x, y, names):
    model.eval()
    params = dict(model.named_parameters())
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, [params[n] for n in names])
    return torch.cat([(g * params[n]).abs().flatten() for g, n in zip(grads, names, strict=False)])


@pytest.mark.parametrize("keep", [0.2, 0.8, 0.55])
def test_snip_keeps_exactly_top_k_of_g_times_theta(cnn, digits_tensors, keep):
    x, y = digits_tensors
    x, y = x[:120], y[:120]
    names = scored_parameter_names(cnn)
    mask = compute_keep_mask(cnn, x, y, estimator="snip", keep_fraction=keep)
    assert list(mask) == names
    flat_mask = torch.cat([mask[n].flatten() for n in names])
    expected_count = round(keep * flat_mask.numel())
    assert int(flat_mask.sum()) == expected_count

    scores = _independent_snip_scores(cnn, x, y, names).detach().numpy()
    # highest score first; among equal scores (dead ReLUs give many zeros) the earlier entry wins
    order = np.lexsort((np.arange(len(scores)), -scores))
    expected = set(order[:expected_count].tolist())
    assert set(torch.nonzero(flat_mask).flatten().tolist()) == expected


def test_default_scope_scores_conv_and_linear_weights_only(cnn):
    names = scored_parameter_names(cnn)
    assert names and all(n.endswith(".weight") for n in names)
    modules = dict(cnn.named_modules())
    for name in names:
        assert isinstance(modules[name.rsplit(".", 1)[0]], (torch.nn.Conv2d, torch.nn.Linear))
    all_names = scored_parameter_names(cnn, "all")
    assert any("bias" in n for n in all_names) and set(names) < set(all_names)
    with pytest.raises(ValueError, match="unknown parameter scope"):
        scored_parameter_names(cnn, "everything")


def test_ties_are_broken_by_position():
    scores = {"a": torch.zeros(4), "b": torch.zeros(6)}
    mask = top_k_mask(scores, 0.3)
    assert mask["a"].tolist() == [True, True, True, False]
    assert not mask["b"].any()


def test_keep_fraction_must_be_inside_open_interval():
    for bad in (0.0, 1.0, 1.2, -0.1):
        with pytest.raises(ValueError, match="keep fraction"):
            keep_count(100, bad)


@pytest.mark.parametrize("estimator", ["fisher", "magnitude", "random"])
def test_other_estimators_keep_exact_counts(cnn, digits_tensors, estimator):
    x, y = digits_tensors
    mask = compute_keep_mask(cnn, x[:64], y[:64], estimator=estimator, keep_fraction=0.8)
    total = sum(m.numel() for m in mask.values())
    assert sum(int(m.sum()) for m in mask.values()) == round(0.8 * total)


def test_magnitude_keeps_the_largest_weights(cnn):
    mask = compute_keep_mask(cnn, None, None, estimator="magnitude", keep_fraction=0.5)
    params = dict(cnn.named_parameters())
    kept = torch.cat([params[n].detach().abs()[m] for n, m in mask.items()])
    dropped = torch.cat([params[n].detach().abs()[~m] for n, m in mask.items()])
    assert kept.min() >= dropped.max()


def test_scoring_does_not_change_the_model(digits_tensors):
    model = build_model(ModelSpec("small_cnn", 10, 1, 8, 0.25), seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = digits_tensors
    compute_keep_mask(model, x[:64], y[:64], estimator="snip")
    compute_keep_mask(model, x[:64], y[:64], estimator="fisher")
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_unknown_estimator_is_refused(cnn, digits_tensors):
    x, y = digits_tensors
    with pytest.raises(ValueError, match="unknown importance estimator"):
        compute_keep_mask(cnn, x[:8], y[:8], estimator="hessian")
