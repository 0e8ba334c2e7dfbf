"""CIFAR-style ResNets (3x3 stem, stride 1, no max-pool) from torchvision's residual blocks.

torchvision's ResNet hard-codes ImageNet widths and a 7x7 stem; the paper's CIFAR variant and our
narrow CPU variants need both changed, so we assemble the same blocks with our own stem and widths.
Child names follow torchvision (``layer1`` … ``layer4``, ``fc``) so later-layer forgetting can name
them.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck


def _scaled(channels: int, width: float) -> int:
    return max(4, int(round(channels * width)))


class CifarResNet(nn.Module):
    """ResNet for small images: conv3x3 stem, four stages, global average pool, linear head."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        num_classes: int,
        channels: int,
        width: float,
        width_per_group: int = 64,
    ) -> None:
        super().__init__()
        self.base_width = width_per_group
        self.inplanes = _scaled(64, width)
        self.conv1 = nn.Conv2d(channels, self.inplanes, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        planes = [_scaled(p, width) for p in (64, 128, 256, 512)]
        self.layer1 = self._make_layer(block, planes[0], layers[0], stride=1)
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes[3] * block.expansion, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        extra = {"base_width": self.base_width} if block is Bottleneck else {}
        stage = [block(self.inplanes, planes, stride, downsample, **extra)]
        self.inplanes = planes * block.expansion
        stage += [block(self.inplanes, planes, **extra) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(num_classes: int, channels: int = 3, image_size: int = 32, width: float = 1.0):
    """The paper's CIFAR ResNet18; ``width`` scales every stage (0.25 trains on two CPU cores)."""
    return CifarResNet(BasicBlock, [2, 2, 2, 2], num_classes, channels, width)


def resnet50(num_classes: int, channels: int = 3, image_size: int = 32, width: float = 1.0):
    return CifarResNet(Bottleneck, [3, 4, 6, 3], num_classes, channels, width)


def wide_resnet50_2(num_classes: int, channels: int = 3, image_size: int = 32, width: float = 1.0):
    return CifarResNet(Bottleneck, [3, 4, 6, 3], num_classes, channels, width, width_per_group=128)
