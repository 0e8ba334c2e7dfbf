"""Tiny models for tests, demos and CPU benchmarks: a three-block CNN and a two-hidden-layer MLP."""

from __future__ import annotations

from torch import nn


def _conv_block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int, channels: int, image_size: int, width: float) -> None:
        super().__init__()
        widths = [max(4, int(round(w * width))) for w in (32, 64, 128)]
        self.block1 = _conv_block(channels, widths[0], pool=image_size >= 2)
        self.block2 = _conv_block(widths[0], widths[1], pool=image_size >= 4)
        self.block3 = _conv_block(widths[1], widths[2], pool=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(widths[2], num_classes)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(x)))
        return self.head(self.pool(x).flatten(1))


class MLP(nn.Module):
    def __init__(self, num_classes: int, channels: int, image_size: int, width: float) -> None:
        super().__init__()
        hidden = max(8, int(round(256 * width)))
        self.hidden1 = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * image_size**2, hidden), nn.ReLU()
        )
        self.hidden2 = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.hidden2(self.hidden1(x)))


def small_cnn(num_classes: int, channels: int = 3, image_size: int = 32, width: float = 1.0):
    return SmallCNN(num_classes, channels, image_size, width)


def mlp(num_classes: int, channels: int = 3, image_size: int = 32, width: float = 1.0):
    return MLP(num_classes, channels, image_size, width)
