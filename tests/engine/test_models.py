import pytest
import torch

from lure_engine.models import ModelSpec, available_models, build_model


@pytest.mark.parametrize("name", available_models())
@pytest.mark.parametrize("channels,size", [(3, 32), (1, 8)])
def test_every_model_builds_and_runs_at_any_shape(name, channels, size):
    model = build_model(ModelSpec(name, 7, channels, size, 0.125), seed=0)
    assert model(torch.randn(2, channels, size, size)).shape == (2, 7)


def test_cifar_resnet18_matches_the_paper():
    model = build_model(ModelSpec("resnet18", 10), seed=0)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())


def test_same_seed_same_weights_and_width_scales():
    spec = ModelSpec("resnet18", 10, width=0.25)
    a, b = build_model(spec, seed=4), build_model(spec, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=False))
    narrow = sum(p.numel() for p in a.parameters())
    assert narrow < 11_173_962 / 10


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="unknown architecture 'resnet1000'.*resnet101"):
        ModelSpec("resnet1000", 10)
    with pytest.raises(ValueError, match="num_classes"):
        ModelSpec("mlp", 1)
