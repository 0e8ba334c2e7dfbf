"""Robustness evaluation: label noise for training, weight-perturbation flatness, PGD, corruptions.

Corruptions use torchvision's tensor ops (blur, contrast, brightness, JPEG) plus two one-liners
(noise, pixelate): ``imagecorruptions`` is unmaintained and does not accept 8x8 or grayscale input.
Attacks and corruptions work in pixel space ([0, 1] floats) and normalise just before the model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

from lure_engine.data import PIXEL_MEAN, PIXEL_STD
from lure_engine.metrics import evaluate, predict_logits, reliability_bins
from lure_engine.seeding import torch_generator


def symmetric_label_noise(
    labels: np.ndarray, rate: float, num_classes: int, seed: int
) -> np.ndarray:
    """With probability ``rate`` replace each label by one drawn uniformly from all classes."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"label noise rate must lie in [0, 1], got {rate}")
    rng = np.random.default_rng(seed)
    flip = rng.random(len(labels)) < rate
    noisy = labels.copy()
    noisy[flip] = rng.integers(0, num_classes, int(flip.sum()))
    return noisy


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - PIXEL_MEAN) / PIXEL_STD


def _pixels(normalised: torch.Tensor) -> torch.Tensor:
    return normalised * PIXEL_STD + PIXEL_MEAN


@torch.no_grad()
def weight_perturbation_curve(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    sigmas: Sequence[float],
    seed: int = 0,
    draws: int = 3,
) -> list[dict]:
    """Accuracy when every weight tensor gets Gaussian noise of std σ·rms(tensor) (a
    flatness probe).

    Noise is relative to each tensor's scale so one σ means the same for conv and linear layers.
    """
    generator = torch_generator(seed)
    curve = []
    for sigma in sigmas:
        accuracies = []
        for _ in range(draws):
            noisy = copy.deepcopy(model)
            for p in noisy.parameters():
                scale = p.pow(2).mean().sqrt()
                p.add_(torch.randn(p.shape, generator=generator).to(p.device) * sigma * scale)
            accuracies.append(evaluate(noisy, x, y).accuracy)
        curve.append({"sigma": float(sigma), "accuracy": float(np.mean(accuracies))})
    return curve


def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    steps: int = 10,
    step_size: float | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """L∞ PGD (Madry et al.) with a random start; ``epsilon`` is in pixel units ([0, 1])."""
    model.eval()
    step_size = step_size if step_size is not None else 2.5 * epsilon / steps
    pixels = _pixels(x)
    generator = torch_generator(seed)
    delta = (torch.rand(pixels.shape, generator=generator).to(x.device) * 2 - 1) * epsilon
    adversarial = (pixels + delta).clamp(0, 1)
    for _ in range(steps):
        adversarial.requires_grad_(True)
        loss = F.cross_entropy(model(_normalise(adversarial)), y)
        (grad,) = torch.autograd.grad(loss, adversarial)
        with torch.no_grad():
            adversarial = adversarial + step_size * grad.sign()
            adversarial = torch.min(
                torch.max(adversarial, pixels - epsilon), pixels + epsilon
            ).clamp(0, 1)
    return _normalise(adversarial.detach())


def pgd_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilons: Sequence[float],
    batch_size: int = 256,
) -> list[dict]:
    out = []
    for eps in epsilons:
        attacked = torch.cat(
            [
                pgd_attack(model, x[i : i + batch_size], y[i : i + batch_size], eps)
                for i in range(0, len(x), batch_size)
            ]
        )
        out.append({"epsilon": float(eps), "accuracy": evaluate(model, attacked, y).accuracy})
    return out


def _gaussian_noise(p: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    std = (0.04, 0.06, 0.08, 0.09, 0.10)[s - 1]
    return p + torch.randn(p.shape, generator=g).to(p.device) * std


def _blur(p: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    sigma = (0.4, 0.6, 0.7, 0.8, 1.0)[s - 1]
    return TF.gaussian_blur(p, kernel_size=[3, 3], sigma=[sigma, sigma])


def _contrast(p: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    return TF.adjust_contrast(p, (0.75, 0.5, 0.4, 0.3, 0.15)[s - 1])


def _brightness(p: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    return TF.adjust_brightness(p, (1.05, 1.1, 1.15, 1.2, 1.3)[s - 1])


def _jpeg(p: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    quality = (80, 65, 58, 50, 40)[s - 1]
    as_uint8 = (p.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    if as_uint8.shape[1] not in (1, 3):
        raise ValueError("JPEG corruption needs 1 or 3 channels")
    return TF.to_dtype(T.JPEG(quality)(as_uint8), torch.float32, scale=True).to(p.device)


def _pixelate(p: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    factor = (0.95, 0.9, 0.85, 0.75, 0.65)[s - 1]
    size = p.shape[-1]
    small = F.interpolate(p, size=max(1, int(size * factor)), mode="area")
    return F.interpolate(small, size=size, mode="nearest")


CORRUPTIONS: dict[str, Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]] = {
    "gaussian_noise": _gaussian_noise,
    "gaussian_blur": _blur,
    "contrast": _contrast,
    "brightness": _brightness,
    "jpeg_compression": _jpeg,
    "pixelate": _pixelate,
}


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` 1–5 to normalised images; returns normalised
    images.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose one of {', '.join(CORRUPTIONS)}")
    if severity not in range(1, 6):
        raise ValueError(f"severity must be 1..5, got {severity}")
    corrupted = CORRUPTIONS[name](_pixels(x), severity, torch_generator(seed))
    return _normalise(corrupted.clamp(0, 1))


def corruption_severity_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, severities: Sequence[int] = (1, 2, 3, 4, 5)
) -> dict[str, list[float]]:
    """Accuracy per corruption at each severity."""
    return {
        name: [evaluate(model, corrupt(x, name, s), y).accuracy for s in severities]
        for name in CORRUPTIONS
    }


def corruption_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, severities: Sequence[int] = (1, 2, 3, 4, 5)
) -> dict[str, float]:
    """Mean accuracy over severities per corruption, plus their mean (mCA)."""
    by_severity = corruption_severity_accuracy(model, x, y, severities)
    result = {name: float(np.mean(accuracies)) for name, accuracies in by_severity.items()}
    result["mean"] = float(np.mean(list(result.values())))
    return result


PGD_EPSILONS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)  # the paper's Section 7 budgets
FLATNESS_SIGMAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)


def robustness_profile(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> dict:
    """Everything the paper's Sections 6-7 measure on one model, as one JSON-ready document:
    clean accuracy and ECE, reliability bins, accuracy per corruption and severity with mCA,
    PGD-10 accuracy at ε = 1, 2, 4, 8 / 255, and the weight-perturbation flatness curve.
    """
    model.eval()
    clean = evaluate(model, x, y)
    probs = torch.softmax(predict_logits(model, x), dim=1)
    by_severity = corruption_severity_accuracy(model, x, y)
    return {
        "clean_accuracy": clean.accuracy,
        "ece": clean.ece,
        "reliability": reliability_bins(probs, y),
        "corruptions": by_severity,
        "mca": float(np.mean([np.mean(a) for a in by_severity.values()])),
        "pgd10": pgd_accuracy(model, x, y, PGD_EPSILONS),
        "flatness": weight_perturbation_curve(model, x, y, FLATNESS_SIGMAS, seed=seed),
    }
