"""The preprocessing a model's weights expect, applied by one object everywhere: when chunks are
ingested and when ``/predict`` decodes images (size, resize policy, channels), when tensors are made
for training and inference (channel mean and std), and inside exported models (so a consumer feeds
uint8 images).

Resize policies: ``squash`` resizes to size × size whatever the aspect ratio; ``resize_crop``
resizes the shorter side to the size and crops the centre square (torchvision's classification
presets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

RESIZE_POLICIES = ("squash", "resize_crop")
CIFAR_MEAN, CIFAR_STD = 0.5, 0.25  # this project's fixed statistics for its CIFAR-style models
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def default_statistics(kind: str, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel for ``cifar`` or ``imagenet`` statistics."""
    if kind == "imagenet" and channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    if kind == "imagenet":
        return (sum(IMAGENET_MEAN) / 3,) * channels, (sum(IMAGENET_STD) / 3,) * channels
    return (CIFAR_MEAN,) * channels, (CIFAR_STD,) * channels


@dataclass(frozen=True)
class Preprocessing:
    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = "squash"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_POLICIES:
            raise ValueError(
                f"resize must be one of {', '.join(RESIZE_POLICIES)}, got {self.resize!r}"
            )
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need one value per channel ({self.channels})")
        if min(self.std) <= 0:
            raise ValueError("std values must be positive")

    def fit_image(self, image: Image.Image) -> np.ndarray:
        """A decoded image as the model's uint8 (size, size, channels)."""
        image = image.convert("L" if self.channels == 1 else "RGB")
        if self.resize == "resize_crop" and image.size != (self.size, self.size):
            scale = self.size / min(image.size)
            width, height = (
                max(self.size, round(image.width * scale)),
                max(self.size, round(image.height * scale)),
            )
            image = image.resize((width, height), Image.Resampling.BILINEAR)
            left, top = (width - self.size) // 2, (height - self.size) // 2
            image = image.crop((left, top, left + self.size, top + self.size))
        elif image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
        return array[..., None] if self.channels == 1 else array

    def fit_array(self, x: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 1|3) → the model's (N, size, size, channels)."""
        if x.shape[3] == self.channels and x.shape[1:3] == (self.size, self.size):
            return np.ascontiguousarray(x)
        mode = "L" if x.shape[3] == 1 else "RGB"
        return np.stack(
            [
                self.fit_image(Image.fromarray(img[..., 0] if mode == "L" else img, mode))
                for img in x
            ]
        )

    def to_tensor(self, x: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """uint8 NHWC → normalised float32 NCHW (a channels_last view; see data.for_backward)."""
        tensor = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        tensor = tensor.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean, device=tensor.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=tensor.device).view(1, -1, 1, 1)
        return tensor.sub_(mean).div_(std)

    def module(self) -> nn.Module:
        """The same normalisation as a module, for exported models: uint8 NHWC in."""
        return _Normalise(self.mean, self.std)

    def as_dict(self) -> dict:
        return {
            "size": self.size,
            "channels": self.channels,
            "resize": self.resize,
            "mean": list(self.mean),
            "std": list(self.std),
            "input": "uint8 NHWC (N, size, size, channels)",
        }


class _Normalise(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0
        return (x - self.mean) / self.std


CIFAR_DEFAULT = Preprocessing(32, 3, (CIFAR_MEAN,) * 3, (CIFAR_STD,) * 3)
