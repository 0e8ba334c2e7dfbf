import numpy as np
import pytest
import torch

from lure_engine.data import to_tensor
from lure_engine.metrics import evaluate
from lure_engine.models import ModelSpec, build_model
from lure_engine.robustness import (
    CORRUPTIONS,
    corrupt,
    pgd_accuracy,
    symmetric_label_noise,
    weight_perturbation_curve,
)
from lure_engine.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def trained(digits):
    x, y = to_tensor(digits.train.x), torch.from_numpy(digits.train.y)
    model = build_model(ModelSpec("small_cnn", 10, 1, 8, 0.5), seed=0)
    train(model, x, y, TrainConfig(epochs=4, hflip=False, crop_padding=1), seed=0)
    return model, to_tensor(digits.test.x), torch.from_numpy(digits.test.y)


def test_symmetric_label_noise_flips_about_the_rate():
    labels = np.zeros(20000, dtype=np.int64)
    noisy = symmetric_label_noise(labels, 0.4, 10, seed=0)
    # a uniform draw keeps the true class 1/10 of the time: 0.4 * 0.9 = 0.36 change
    assert abs((noisy != labels).mean() - 0.36) < 0.02
    assert np.array_equal(symmetric_label_noise(labels, 0.0, 10, seed=0), labels)


def test_pgd_lowers_accuracy_and_stays_in_the_epsilon_ball(trained):
    model, x, y = trained
    clean = evaluate(model, x, y).accuracy
    result = pgd_accuracy(model, x[:200], y[:200], [0.0, 0.1])
    assert result[0]["accuracy"] == pytest.approx(
        evaluate(model, x[:200], y[:200]).accuracy, abs=0.02
    )
    assert result[1]["accuracy"] < clean - 0.2
    from lure_engine.robustness import pgd_attack

    adversarial = pgd_attack(model, x[:50], y[:50], 0.05)
    assert ((adversarial - x[:50]) * 0.25).abs().max() <= 0.05 + 1e-5


def test_weight_perturbation_curve_starts_at_clean_accuracy_and_falls(trained):
    model, x, y = trained
    curve = weight_perturbation_curve(model, x, y, [0.0, 2.0])
    assert curve[0]["accuracy"] == pytest.approx(evaluate(model, x, y).accuracy)
    assert curve[1]["accuracy"] < curve[0]["accuracy"]


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruptions_change_images_more_at_higher_severity(trained, name):
    _, x, _ = trained
    mild = (corrupt(x[:64], name, 1) - x[:64]).abs().mean()
    harsh = (corrupt(x[:64], name, 5) - x[:64]).abs().mean()
    assert corrupt(x[:64], name, 3).shape == x[:64].shape
    assert 0 < mild <= harsh
