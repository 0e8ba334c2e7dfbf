"""The one preprocessing object: resize policies, per-channel statistics, and the module exports
carry (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lure_engine.data import to_tensor
from lure_engine.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, default_statistics


def test_squash_and_resize_crop_differ_on_a_wide_image():
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :10] = 255  # a white band on the far left, which a centre crop cuts away
    squash = Preprocessing(10, 3, IMAGENET_MEAN, IMAGENET_STD, "squash").fit_image(
        Image.fromarray(wide)
    )
    crop = Preprocessing(10, 3, IMAGENET_MEAN, IMAGENET_STD, "resize_crop").fit_image(
        Image.fromarray(wide)
    )
    assert squash.shape == crop.shape == (10, 10, 3)
    assert squash[:, 0].mean() > 200 and crop[:, 0].mean() < 50


def test_the_default_statistics_reproduce_the_engine_tensors_exactly():
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    mean, std = default_statistics("cifar", 3)
    assert torch.equal(Preprocessing(8, 3, mean, std).to_tensor(x), to_tensor(x))


def test_the_export_module_matches_to_tensor_on_uint8_nhwc():
    x = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    pre = Preprocessing(16, 3, IMAGENET_MEAN, IMAGENET_STD)
    assert torch.allclose(pre.module()(torch.from_numpy(x)), pre.to_tensor(x), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"resize": "stretch"}, "resize must be one of"),
        ({"mean": (0.5,)}, "one value per channel"),
        ({"std": (0.2, 0.0, 0.2)}, "positive"),
    ],
)
def test_bad_preprocessing_is_refused(kwargs, message):
    values = {"size": 8, "channels": 3, "mean": (0.5,) * 3, "std": (0.25,) * 3} | kwargs
    with pytest.raises(ValueError, match=message):
        Preprocessing(**values)
