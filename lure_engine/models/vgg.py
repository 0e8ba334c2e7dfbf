"""VGG16-BN adapted to small images: named stages so LLF can reset the later ones.

torchvision's ``make_layers`` fixes three input channels and five pools (which would shrink an 8x8
image to nothing), so stages are built here with a pool only while the feature map can halve.
"""

from __future__ import annotations

from torch import nn

_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class SmallImageVGG(nn.Module):
    def __init__(self, num_classes: int, channels: int, image_size: int, width: float) -> None:
        super().__init__()
        size, in_channels = image_size, channels
        for index, stage_widths in enumerate(_STAGES, start=1):
            layers: list[nn.Module] = []
            for out in stage_widths:
                out = max(4, int(round(out * width)))
                layers += [
                    nn.Conv2d(in_channels, out, 3, padding=1),
                    nn.BatchNorm2d(out),
                    nn.ReLU(True),
                ]
                in_channels = out
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            self.add_module(f"stage{index}", nn.Sequential(*layers))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        for index in range(1, len(_STAGES) + 1):
            x = getattr(self, f"stage{index}")(x)
        return self.classifier(self.pool(x).flatten(1))


def vgg16_bn(num_classes: int, channels: int = 3, image_size: int = 32, width: float = 1.0):
    return SmallImageVGG(num_classes, channels, image_size, width)
