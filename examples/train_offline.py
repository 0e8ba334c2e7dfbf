"""Stand-in for a team's existing model: torchvision's ShuffleNetV2 x0.5 trained for a few steps on
scikit-learn's digits, with plain PyTorch, saved as a ``.pth`` state dict.

    python examples/train_offline.py --out team.pth

Its preprocessing is the one the server is told about when the model is created: digits
resized (squash) to 32×32 RGB, ImageNet mean and std.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torchvision
from PIL import Image
from sklearn.datasets import load_digits

MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


def digits_as_rgb32() -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 32, 32, 3) images and labels, the way the server stores them after ingest."""
    digits = load_digits()
    gray = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    images = [
        np.asarray(Image.fromarray(g).convert("RGB").resize((32, 32), Image.BILINEAR)) for g in gray
    ]
    return np.stack(images), digits.target.astype(np.int64)


def normalise(images: np.ndarray) -> torch.Tensor:
    x = (images.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="team.pth")
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    torch.manual_seed(0)
    images, labels = digits_as_rgb32()
    x, y = normalise(images[:1000]), torch.from_numpy(labels[:1000])
    model = torchvision.models.shufflenet_v2_x0_5(num_classes=10)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(args.steps):
        batch = torch.randint(0, len(x), (64,), generator=torch.Generator().manual_seed(step))
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model.train()(x[batch]), y[batch]).backward()
        optimiser.step()
    with torch.no_grad():
        accuracy = (
            model.eval()(normalise(images[1000:])).argmax(1).numpy() == labels[1000:]
        ).mean()
    torch.save(model.state_dict(), args.out)
    print(
        f"saved {args.out}: ShuffleNetV2 x0.5, {args.steps} steps, accuracy on the other "
        f"{len(images) - 1000} digits {accuracy:.3f}"
    )


if __name__ == "__main__":
    main()
